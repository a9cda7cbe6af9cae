// Package featuretest holds what the tests of package feature and of the
// packages beside it (online, ingest, parquet) share: catalogs, the skip
// rule for an absent service, and the freshness probe. Only tests import it.
package featuretest

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/feature"
)

// NeedService skips a test whose service is absent, except under CI=true,
// where a missing service must not pass silently.
func NeedService(tb testing.TB, what string, err error) {
	tb.Helper()
	if os.Getenv("CI") == "true" {
		tb.Fatalf("%s is required when CI=true: %v", what, err)
	}
	tb.Skipf("skipping: %s is not available: %v", what, err)
}

// PlaysCatalog is one source of plays with features over it: by default
// plays_1h, secs_1h, titles_10m and last_title_1h.
func PlaysCatalog(feats ...*feature.Feature) *feature.Catalog {
	c := &feature.Catalog{
		Entities: map[string]*feature.Entity{"member": {Name: "member", Key: "member_id"}},
		Sources: map[string]*feature.Source{"plays": {Name: "plays", Entity: "member", Timestamp: "ts",
			Fields: map[string]feature.FieldType{"secs": feature.Float, "title": feature.String}}},
		Features:       map[string]*feature.Feature{},
		SourceVersions: map[string]int{"plays": 1},
		EntityVersions: map[string]int{"member": 1},
	}
	if len(feats) == 0 {
		feats = []*feature.Feature{
			{Name: "plays_1h", Aggregate: feature.Count, Window: feature.Duration(time.Hour)},
			{Name: "secs_1h", Aggregate: feature.Sum, Field: "secs", Window: feature.Duration(time.Hour)},
			{Name: "titles_10m", Aggregate: feature.DistinctCount, Field: "title", Window: feature.Duration(10 * time.Minute)},
			{Name: "last_title_1h", Aggregate: feature.Last, Field: "title", Window: feature.Duration(time.Hour)},
		}
	}
	for _, f := range feats {
		f.Source, f.Version = "plays", 1
		c.Features[f.Name] = f
	}
	return c
}

// BenchCatalog is the benchmarks' feature set: ten count/sum/avg/min/max
// features over one source, two windows each.
func BenchCatalog() *feature.Catalog {
	src := &feature.Source{Name: "plays", Entity: "member", Timestamp: "ts",
		Fields: map[string]feature.FieldType{"minutes": feature.Float, "title": feature.String}}
	c := &feature.Catalog{Entities: map[string]*feature.Entity{"member": {Name: "member", Key: "member_id"}},
		Sources: map[string]*feature.Source{"plays": src}, Features: map[string]*feature.Feature{},
		SourceVersions: map[string]int{"plays": 1}, EntityVersions: map[string]int{"member": 1}}
	i := 0
	for _, w := range []time.Duration{time.Hour, 24 * time.Hour} {
		for _, agg := range []string{feature.Count, feature.Sum, feature.Avg, feature.Min, feature.Max} {
			f := &feature.Feature{Name: fmt.Sprintf("f%d_%s", i, agg), Source: "plays", Aggregate: agg,
				Window: feature.Duration(w), Version: 1}
			if agg != feature.Count {
				f.Field = "minutes"
			}
			c.Features[f.Name] = f
			i++
		}
	}
	return c
}

// Percentile is the p-quantile of ds (sorted in place).
func Percentile(ds []time.Duration, p float64) time.Duration {
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(float64(len(ds))*p))]
}

// BenchFreshness is the time from an event accepted to its value visible
// online, for small batches as a live stream sends them (one fsync each),
// on the online store given. Every event must become visible: the key's
// count reaches exactly what was sent, or the benchmark fails naming the
// event. Target: p99 under 10 ms.
func BenchFreshness(b *testing.B, online feature.OnlineStore) {
	ctx := context.Background()
	eng := feature.NewEngine(BenchCatalog(), b.TempDir(), online, nil)
	defer eng.Close()
	p, err := NewFreshProbe(eng, 100, 5*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	var lat []time.Duration
	for b.Loop() {
		d, err := p.One(ctx)
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, d)
	}
	b.ReportMetric(float64(Percentile(lat, 0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(Percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
}

// FreshProbe sends one event at a time over keys and waits, after each,
// until the look-up shows it: the key's f0_count equals the events sent to
// it. An event that never shows within wait, or shows twice, is an error
// naming it; counting it as fresh would make the figure measure nothing.
// Its engine is over BenchCatalog.
type FreshProbe struct {
	eng   *feature.Engine
	feats []*feature.Feature
	keys  int
	wait  time.Duration
	sent  map[string]float64
	i     int
}

// NewFreshProbe probes eng over keys keys, waiting up to wait for each
// event.
func NewFreshProbe(eng *feature.Engine, keys int, wait time.Duration) (*FreshProbe, error) {
	feats, err := eng.Catalog().Select([]string{"f0_count"})
	if err != nil {
		return nil, err
	}
	return &FreshProbe{eng: eng, feats: feats, keys: keys, wait: wait, sent: map[string]float64{}}, nil
}

// One sends the next event and returns how long it took to be visible.
func (p *FreshProbe) One(ctx context.Context) (time.Duration, error) {
	i := p.i
	p.i++
	key := "m" + strconv.Itoa(i%p.keys)
	now := time.Now()
	line := fmt.Sprintf(`{"member_id":%q,"ts":%d,"minutes":1}`, key, now.Unix())
	res, err := p.eng.Ingest(ctx, "plays", strings.NewReader(line))
	if err != nil {
		return 0, fmt.Errorf("event %d (key %s): %w", i, key, err)
	}
	if res.Accepted != 1 {
		return 0, fmt.Errorf("event %d (key %s) was not accepted: %+v", i, key, res)
	}
	p.sent[key]++
	want := p.sent[key]
	for {
		v, err := p.eng.Get(ctx, key, p.feats, now.Add(time.Second))
		if err != nil {
			return 0, fmt.Errorf("look-up after event %d (key %s): %w", i, key, err)
		}
		got, _ := v.Features["f0_count"].(float64)
		switch {
		case got == want:
			return time.Since(now), nil
		case got > want:
			return 0, fmt.Errorf("event %d (key %s): count %v, more than the %v sent", i, key, got, want)
		case time.Since(now) > p.wait:
			return 0, fmt.Errorf("event %d (key %s) never became visible: count %v after %s, want %v", i, key, got, p.wait, want)
		}
		// Look again soon: the store may apply asynchronously.
		time.Sleep(50 * time.Microsecond)
	}
}
