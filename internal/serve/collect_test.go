package serve

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// The collector keeps each endpoint version's last samples, from many
// requests at once, apart from other versions', and answers those within
// a window.
func TestCollectorKeepsEachVersionsLastSamples(t *testing.T) {
	c := NewCollector(100)
	t0 := time.Unix(1000, 0)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 300 {
				for v, ep := range []string{"a", "b"} {
					c.Add(ep, v+1, Sample{At: t0.Add(time.Duration(i) * time.Second), LatencyMS: float64(g), Error: float64(v)})
				}
			}
		})
	}
	wg.Wait()
	for v, ep := range []string{"a", "b"} {
		all := c.Metrics(ep, v+1, time.Time{}, t0.Add(time.Hour))
		if len(all["latency_ms"]) != 100 || len(all["error"]) != 100 {
			t.Fatalf("%s: %d samples kept of a ring of 100", ep, len(all["latency_ms"]))
		}
		for _, e := range all["error"] {
			if e != float64(v) {
				t.Fatalf("%s holds a sample of the other endpoint: %v", ep, all["error"])
			}
		}
	}
	for i := range 30 {
		c.Add("a", 1, Sample{At: t0.Add(time.Duration(1000+i) * time.Second)})
	}
	if got := len(c.Metrics("a", 1, t0.Add(1000*time.Second), t0.Add(1010*time.Second))["latency_ms"]); got != 10 {
		t.Fatalf("%d samples in a window of 10 s, want 10", got)
	}
	if m := c.Metrics("a", 2, time.Time{}, t0.Add(time.Hour)); len(m) != 4 || m["latency_ms"] != nil {
		t.Fatalf("a version with no samples: %v", m)
	}
}

// Requests of one instant reach the collector in whichever order they
// finish; the judge's series (means of consecutive requests) must not
// depend on it, nor on where a ring that wrapped begins.
func TestCollectorOrdersSamplesByTimeAndKey(t *testing.T) {
	t0 := time.Unix(1000, 0)
	sample := func(i int) Sample {
		return Sample{At: t0.Add(time.Duration(i/10) * time.Second), Key: fmt.Sprintf("u%02d", i%10), Confidence: float64(i)}
	}
	forward, backward := NewCollector(100), NewCollector(25)
	for i := range 40 {
		forward.Add("e", 1, sample(i))
		backward.Add("e", 1, sample(39-i))
	}
	// backward's ring of 25 holds the last 25 added, i = 24 down to 0,
	// and has wrapped.
	want := make([]float64, 25)
	for i := range want {
		want[i] = float64(i)
	}
	to := t0.Add(time.Hour)
	if got := backward.Metrics("e", 1, time.Time{}, to)["confidence"]; !slices.Equal(got, want) {
		t.Fatalf("confidence in the order %v, want %v", got, want)
	}
	if got := forward.Metrics("e", 1, time.Time{}, t0.Add(2*time.Second))["confidence"]; !slices.Equal(got, want[:20]) {
		t.Fatalf("confidence in the order %v, want %v", got, want[:20])
	}
}
