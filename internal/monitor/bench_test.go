package monitor

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/rec"
	"github.com/baton-ml/baton/internal/serve"
)

// benchMembers is the population the benchmarks watch.
const benchMembers = 100_000

// driftBench is an env holding three days of plays of 100,000 members (one
// each a day, 300,000 events in the log) and a 100,000-row training set.
func driftBench(b *testing.B) *env {
	b.Helper()
	e := newEnv(b)
	rng := rand.New(rand.NewPCG(7, 7))
	e.model(b, "rec-home", trainingSet(rng, benchMembers))
	e.apply(b, featureDriftYAML)
	for day := range 3 {
		at := t0.Add(time.Duration(day)*24*time.Hour + 12*time.Hour)
		var lines []string
		for i := range benchMembers {
			lines = append(lines, fmt.Sprintf(`{"member_id":"m%d","ts":%q,"title_id":"t%d","market":"US","minutes":%.2f,"completed":1}`,
				i, at.Format(time.RFC3339), rng.IntN(20), max(0, 60+15*rng.NormFloat64())))
		}
		e.ingest(b, "plays", lines)
	}
	return e
}

// BenchmarkFeatureDrift: one evaluation of a feature_drift monitor (two
// features) over the 100,000 members active in the last day, the whole
// of it: current values from the log, the comparison, the result stored.
// The reference is read once, then cached by digest.
func BenchmarkFeatureDrift(b *testing.B) {
	e := driftBench(b)
	ctx := context.Background()
	now := t0.Add(72 * time.Hour)
	if r, err := e.r.Evaluate(ctx, "member-drift", now); err != nil || r.Error != "" || !strings.Contains(string(r.Evidence), `"keys":100000`) {
		b.Fatalf("%+v %v", r.Error, err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := e.r.Evaluate(ctx, "member-drift", now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOnlineValues is the baseline of BenchmarkFeatureDrift's
// current values: the same 100,000 members' two features read one key at
// a time from the online store, as serving reads them.
func BenchmarkOnlineValues(b *testing.B) {
	e := driftBench(b)
	ctx := context.Background()
	now := t0.Add(72 * time.Hour)
	feats, err := e.eng.Catalog().Select([]string{"minutes_24h", "last_title"})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for i := range benchMembers {
			if _, err := e.eng.Get(ctx, "m"+fmt.Sprint(i), feats, now); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkSnapshot is the current values alone: the log read for the
// window and the features computed for the active keys.
func BenchmarkSnapshot(b *testing.B) {
	e := driftBench(b)
	ctx := context.Background()
	now := t0.Add(72 * time.Hour)
	feats, _ := e.eng.Catalog().Select([]string{"minutes_24h", "last_title"})
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		snap, err := e.eng.Snapshot(ctx, feats, 24*time.Hour, now)
		if err != nil || len(snap.Keys) != benchMembers {
			b.Fatal(err)
		}
	}
}

// BenchmarkResponsibleAI: one evaluation of a responsible_ai monitor over a
// day of pages a recommend endpoint served from a 10,000-title catalog
// (5,000 pages in 24 hourly slots, read from serve.PageStats), with the
// quality per market over 100,000 plays of the day, result stored.
func BenchmarkResponsibleAI(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	w, err := rec.Synthesize(rec.Synth{Seed: 3, Members: 2000, Titles: 10_000, Interactions: 2000 * 30})
	if err != nil {
		b.Fatal(err)
	}
	m, err := rec.Train(ctx, rec.KindPopularity, w.Data, nil)
	if err != nil {
		b.Fatal(err)
	}
	var mb bytes.Buffer
	if err := m.Save(&mb); err != nil {
		b.Fatal(err)
	}
	e.model(b, "rec-home", mb.String())
	// A generous timeout: on a loaded machine a page must not give way to
	// the static fallback (which is no page), or the count would vary.
	ep := serve.Endpoint{Name: "home", Kind: serve.KindRecommend, Model: "rec-home", Fallback: serve.Fallback{Static: []any{}}, Timeout: serve.Duration(time.Minute),
		Recommend: &serve.RecommendConfig{Rows: []serve.RowConfig{{Type: serve.RowTopPicks}, {Type: serve.RowTrending}, {Type: serve.RowTopInMarket}, {Type: serve.RowNew, Within: serve.Duration(60 * 24 * time.Hour)}}}}
	if _, err := serve.Apply(ctx, e.st, []serve.Endpoint{ep}); err != nil {
		b.Fatal(err)
	}
	var clock time.Time
	svc := serve.New(serve.Deps{Store: e.st, Blobs: e.blobs, Now: func() time.Time { return clock }})
	defer svc.Close()
	if err := svc.Refresh(ctx); err != nil {
		b.Fatal(err)
	}
	for i := range 5000 {
		clock = t0.Add(time.Duration(i) * 24 * time.Hour / 5000)
		if _, err := svc.Predict(ctx, "home", serve.Request{Key: w.Data.Members[i%len(w.Data.Members)].ID}); err != nil {
			b.Fatal(err)
		}
	}
	e.pages = nil
	e.r = NewRunner(Deps{Store: e.st, Features: e.eng, Blobs: e.blobs, Pages: svc.Pages, Publish: e.pub.publish, Log: e.r.d.Log})
	markets := []string{"US", "GB", "BR", "DE"}
	rng := rand.New(rand.NewPCG(8, 8))
	var lines []string
	for i := range benchMembers {
		lines = append(lines, fmt.Sprintf(`{"member_id":"m%d","ts":%q,"title_id":"t1","market":%q,"minutes":10,"completed":%d}`,
			i, t0.Add(12*time.Hour).Format(time.RFC3339), markets[i%4], rng.IntN(2)))
	}
	e.ingest(b, "plays", lines)
	e.apply(b, strings.Replace(responsibleYAML, "publish: drift_detected", "", 1))
	now := t0.Add(24 * time.Hour)
	r, err := e.r.Evaluate(ctx, "home-rai", now)
	if err != nil || r.Error != "" || !strings.Contains(string(r.Evidence), `"pages":5000`) {
		b.Fatalf("%+v %v", r, err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := e.r.Evaluate(ctx, "home-rai", now); err != nil {
			b.Fatal(err)
		}
	}
}
