package serve

import (
	"cmp"
	"slices"
	"strings"
	"sync"
	"time"
)

// Sample is what one served request tells the canary judge.
type Sample struct {
	At time.Time
	// Key is the request's key: it orders requests of one instant (see
	// Metrics).
	Key        string
	LatencyMS  float64
	Error      float64 // 1 when the model erred or timed out
	Fallback   float64 // 1 when the fallback served
	Confidence float64
}

// Collector keeps the recent samples of each (endpoint, version) in a ring
// of fixed size: memory stays flat however long the server serves. Each
// ring has its own lock, found without one: requests to different
// endpoints do not wait for each other.
type Collector struct {
	size  int
	rings sync.Map // collectKey → *ring
}

type collectKey struct {
	endpoint string
	version  int
}

type ring struct {
	mu   sync.Mutex
	buf  []Sample
	next int
	full bool
}

// NewCollector keeps up to size samples per endpoint version.
func NewCollector(size int) *Collector {
	return &Collector{size: size}
}

// Add records a sample.
func (c *Collector) Add(endpoint string, version int, s Sample) {
	k := collectKey{endpoint, version}
	v, ok := c.rings.Load(k)
	if !ok {
		v, _ = c.rings.LoadOrStore(k, &ring{buf: make([]Sample, c.size)})
	}
	r := v.(*ring)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf[r.next] = s
	r.next++
	if r.next == len(r.buf) {
		r.next, r.full = 0, true
	}
}

// Metrics returns the samples taken in [from, to) as the judge's metrics:
// latency_ms, error, fallback and confidence.
func (c *Collector) Metrics(endpoint string, version int, from, to time.Time) map[string][]float64 {
	out := map[string][]float64{"latency_ms": nil, "error": nil, "fallback": nil, "confidence": nil}
	v, ok := c.rings.Load(collectKey{endpoint, version})
	if !ok {
		return out
	}
	r := v.(*ring)
	r.mu.Lock()
	n := r.next
	if r.full {
		n = len(r.buf)
	}
	var ss []Sample
	for i := range n {
		if s := r.buf[i]; !s.At.Before(from) && s.At.Before(to) {
			ss = append(ss, s)
		}
	}
	r.mu.Unlock()
	// In time order, requests of one instant by key: the judge's series
	// are means of consecutive requests, and concurrent requests land in
	// the ring in whichever order they finish (two runs of the same
	// simulated traffic, whose clock stands still through an hour's
	// requests, would judge different series). Sorting also puts a ring
	// that wrapped back in time order.
	slices.SortStableFunc(ss, func(a, b Sample) int {
		return cmp.Or(a.At.Compare(b.At), strings.Compare(a.Key, b.Key),
			cmp.Compare(a.Error, b.Error), cmp.Compare(a.Fallback, b.Fallback), cmp.Compare(a.Confidence, b.Confidence))
	})
	for _, s := range ss {
		out["latency_ms"] = append(out["latency_ms"], s.LatencyMS)
		out["error"] = append(out["error"], s.Error)
		out["fallback"] = append(out["fallback"], s.Fallback)
		out["confidence"] = append(out["confidence"], s.Confidence)
	}
	return out
}
