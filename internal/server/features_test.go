package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/feature"
	"github.com/baton-ml/baton/internal/store"
)

const featureDefs = `entities:
  - {name: member, key: member_id}
sources:
  - name: plays
    entity: member
    timestamp: ts
    fields: {minutes: float, market: string}
features:
  - {name: plays_1h, source: plays, aggregate: count, window: 1h}
  - {name: minutes_1h, source: plays, aggregate: sum, field: minutes, window: 1h, freshness_sla: 300ms, stale_signal: true}
`

func applyFeatures(t *testing.T, h *harness, defs string) {
	t.Helper()
	d, err := feature.Parse("f.yaml", []byte(defs))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := feature.Apply(context.Background(), h.st, "f.yaml", d); err != nil {
		t.Fatal(err)
	}
	wake(h.s.wakeReload)
	waitUntil(t, 5*time.Second, func() bool { return h.s.features.Catalog().Sources["plays"] != nil }, "server did not load the features")
}

func TestFeaturesOverHTTP(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	h.apply(t, `signals:
  - name: feature_stale
    params:
      feature: {type: string, required: true}
      staleness_seconds: {type: float}
`)
	applyFeatures(t, h, featureDefs)
	now := time.Now().UTC()
	var events []map[string]any
	for i := range 10 {
		events = append(events, map[string]any{"member_id": "m1", "ts": now.Add(-time.Duration(i) * time.Minute).Format(time.RFC3339Nano), "minutes": float64(i), "market": "US"})
	}
	events = append(events, map[string]any{"member_id": "m1", "ts": "yesterday"}, map[string]any{"ts": now.Format(time.RFC3339)})
	r := h.do(t, "POST", "/api/v1/features/events/plays", events, "")
	var res feature.IngestResult
	r.json(t, &res)
	if r.code != 200 || res.Accepted != 10 || res.Rejected != 2 || len(res.Errors) != 2 || !strings.Contains(res.Errors[1].Reason, "missing key") {
		t.Fatalf("ingest %d: %s", r.code, r.body)
	}
	// JSON lines work too.
	r = h.do(t, "POST", "/api/v1/features/events/plays", fmt.Sprintf(`{"member_id":"m2","ts":%q,"minutes":5}`+"\n", now.Format(time.RFC3339Nano)), "")
	if r.code != 200 {
		t.Fatalf("json lines: %d %s", r.code, r.body)
	}
	// The look-up sees the events at once.
	r = h.do(t, "GET", "/api/v1/features/online/m1?feature=plays_1h&feature=minutes_1h", nil, "")
	var v feature.Vector
	r.json(t, &v)
	if r.code != 200 || v.Features["plays_1h"] != 10.0 || v.Features["minutes_1h"] != 45.0 || v.Versions["plays_1h"] != 1 {
		t.Fatalf("online %d: %s", r.code, r.body)
	}
	// Bad input: unknown source, unknown feature, malformed body.
	for _, c := range []struct{ method, path, body, want string }{
		{"POST", "/api/v1/features/events/views", "[]", `unknown source \"views\"`},
		{"GET", "/api/v1/features/online/m1?feature=nope", "", `unknown feature \"nope\"`},
		{"POST", "/api/v1/features/events/plays", "[{]", "JSON array of events"},
		{"GET", "/api/v1/features/online/m1?at=soon", "", "neither RFC 3339"},
	} {
		var body any
		if c.body != "" {
			body = c.body
		}
		if r := h.do(t, c.method, c.path, body, ""); r.code != 400 || !strings.Contains(string(r.body), c.want) {
			t.Errorf("%s %s: %d %s", c.method, c.path, r.code, r.body)
		}
	}
	// With no events for 300 ms the SLA breaks: a gauge, and a
	// feature_stale signal for the episode. (A slow machine may see an
	// earlier episode between the two posts above, hence "at least".)
	waitUntil(t, 10*time.Second, func() bool {
		sigs, _ := h.st.Signals(context.Background(), store.SignalFilter{Name: "feature_stale"})
		r := h.do(t, "GET", "/api/v1/features/freshness", nil, "")
		return len(sigs) >= 1 && r.code == 200 && strings.Contains(string(r.body), `"breached": true`)
	}, "no feature_stale signal with the freshness breached")
	if r := h.do(t, "GET", "/metrics", nil, ""); !strings.Contains(string(r.body), `baton_feature_stale{feature="minutes_1h"} 1`) ||
		!strings.Contains(string(r.body), "baton_feature_freshness_seconds_count") {
		t.Fatalf("metrics lack the feature series")
	}
	// A changed definition reaches the running server as a new version.
	applyFeatures(t, h, strings.Replace(featureDefs, "window: 1h}\n  - {name: minutes_1h", "window: 5m}\n  - {name: minutes_1h", 1))
	waitUntil(t, 5*time.Second, func() bool { return h.s.features.Catalog().Features["plays_1h"].Version == 2 }, "no reload")
	r = h.do(t, "GET", "/api/v1/features/online/m1?feature=plays_1h", nil, "")
	r.json(t, &v)
	if v.Features["plays_1h"] != 5.0 || v.Versions["plays_1h"] != 2 {
		t.Fatalf("after the change: %s", r.body)
	}
}

// BenchmarkFeatureLookupHTTP drives GET /api/v1/features/online/{key} of a
// real server (10 features, 10,000 keys with 100 events each in the
// window) at a fixed 2,000 requests a second, open loop, and reports the
// latency percentiles. Target: p99 under 3 ms.
func BenchmarkFeatureLookupHTTP(b *testing.B) {
	h := newHarness(b, Options{})
	defer h.stop()
	var defs strings.Builder
	defs.WriteString("entities:\n  - {name: member, key: member_id}\nsources:\n  - {name: plays, entity: member, timestamp: ts, fields: {minutes: float}}\nfeatures:\n")
	for i, agg := range []string{"count", "sum", "avg", "min", "max", "count", "sum", "avg", "min", "max"} {
		field := ", field: minutes"
		if agg == "count" {
			field = ""
		}
		w := "1h"
		if i >= 5 {
			w = "24h"
		}
		fmt.Fprintf(&defs, "  - {name: f%d, source: plays, aggregate: %s%s, window: %s}\n", i, agg, field, w)
	}
	d, err := feature.Parse("f.yaml", []byte(defs.String()))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := feature.Apply(context.Background(), h.st, "f.yaml", d); err != nil {
		b.Fatal(err)
	}
	wake(h.s.wakeReload)
	waitUntil(b, 5*time.Second, func() bool { return len(h.s.features.Catalog().Features) == 10 }, "no reload")
	now := time.Now()
	const keys = 10_000
	evs := make([]feature.Event, 0, keys*100)
	for i := range keys * 100 {
		evs = append(evs, feature.Event{Key: fmt.Sprintf("m%d", i%keys), Time: now.Add(-23*time.Hour).UnixMicro() + int64(i)*82_000,
			Vals: []feature.Value{{Kind: feature.KindNum, Num: float64(i % 100)}}})
	}
	for i := 0; i < len(evs); i += 8192 {
		if _, err := h.s.features.Apply(context.Background(), "plays", evs[i:min(i+8192, len(evs))]); err != nil {
			b.Fatal(err)
		}
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}}
	defer client.CloseIdleConnections()
	const rate = 2000
	total := max(b.N, 20000) // at least 10 s of load: p99 of fewer requests is noise
	lat := make([]time.Duration, total)
	var wg sync.WaitGroup
	var failed atomic.Int64
	start := time.Now()
	b.ResetTimer()
	for i := range total {
		at := start.Add(time.Duration(i) * time.Second / rate)
		// The sleep is the load's schedule, not a wait for something: an
		// open-loop client sends request i at its time whether or not the
		// earlier ones have answered.
		time.Sleep(time.Until(at))
		wg.Go(func() {
			req, _ := http.NewRequest("GET", fmt.Sprintf("%s/api/v1/features/online/m%d", h.url, i%keys), nil)
			req.Header.Set("Authorization", "Bearer "+h.s.homeToken)
			resp, err := client.Do(req)
			if err != nil {
				failed.Add(1)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				failed.Add(1)
			}
			lat[i] = time.Since(at)
		})
	}
	wg.Wait()
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d requests failed", n)
	}
	b.ReportMetric(float64(total)/time.Since(start).Seconds(), "req/s")
	b.ReportMetric(float64(percentile(lat, 0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
}
