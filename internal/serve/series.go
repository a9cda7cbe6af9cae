package serve

import (
	"slices"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// endpointSeries are one endpoint's Prometheus series, each looked up in
// its vector once, when first used (a series appears in /metrics as it
// did: at its first count): a request then counts and observes without
// the vector's lock and the hashing of its labels, ten times for a page.
type endpointSeries struct {
	answers   [len(answerKinds)]slot[prometheus.Counter]
	latency   [2]slot[prometheus.Observer] // model, fallback
	diversity []slot[prometheus.Observer]  // by row type (RowTypes)
	newShare  []slot[prometheus.Observer]
	decisions [3]slot[prometheus.Counter] // logged, failed, unlogged
}

// answerKinds are the paths and reasons an answer can have.
var answerKinds = [...][2]string{{PathModel, ReasonModel}, {PathFallback, ReasonLowConfidence},
	{PathFallback, ReasonError}, {PathFallback, ReasonTimeout}, {PathFallback, ReasonNoModel}}

var decisionOutcomes = [3]string{"logged", "failed", "unlogged"}

// slot holds a series once looked up.
type slot[T any] struct{ p atomic.Pointer[T] }

func (s *slot[T]) get(lookup func() T) T {
	if p := s.p.Load(); p != nil {
		return *p
	}
	// Two requests may both look it up: the vector gives both the same.
	v := lookup()
	s.p.Store(&v)
	return v
}

func (s *Service) series(endpoint string) *endpointSeries {
	if v, ok := s.byEndpoint.Load(endpoint); ok {
		return v.(*endpointSeries)
	}
	v, _ := s.byEndpoint.LoadOrStore(endpoint, &endpointSeries{
		diversity: make([]slot[prometheus.Observer], len(RowTypes)), newShare: make([]slot[prometheus.Observer], len(RowTypes))})
	return v.(*endpointSeries)
}

// answered counts an answer by its path and reason.
func (s *Service) answered(es *endpointSeries, endpoint, path, reason string) {
	i := slices.Index(answerKinds[:], [2]string{path, reason})
	if i < 0 {
		s.requests.WithLabelValues(endpoint, path, reason).Inc()
		return
	}
	es.answers[i].get(func() prometheus.Counter { return s.requests.WithLabelValues(endpoint, path, reason) }).Inc()
}

// observeLatency observes an answer's latency by its path.
func (s *Service) observeLatency(es *endpointSeries, endpoint, path string, seconds float64) {
	i := 0
	if path != PathModel {
		i = 1
	}
	es.latency[i].get(func() prometheus.Observer { return s.latency.WithLabelValues(endpoint, path) }).Observe(seconds)
}

// observeRow observes what re-ranking made of a served row.
func (s *Service) observeRow(es *endpointSeries, endpoint string, r *PageRow) {
	i := slices.Index(RowTypes, r.ID)
	if i < 0 {
		s.rowDiversity.WithLabelValues(endpoint, r.ID).Observe(r.Diversity)
		s.rowNewCreators.WithLabelValues(endpoint, r.ID).Observe(r.NewCreatorShare)
		return
	}
	es.diversity[i].get(func() prometheus.Observer { return s.rowDiversity.WithLabelValues(endpoint, r.ID) }).Observe(r.Diversity)
	es.newShare[i].get(func() prometheus.Observer { return s.rowNewCreators.WithLabelValues(endpoint, r.ID) }).Observe(r.NewCreatorShare)
}

// countDecisions counts a served page's bandit decisions by outcome.
func (s *Service) countDecisions(endpoint, outcome string, n int) {
	i := slices.Index(decisionOutcomes[:], outcome)
	es := s.series(endpoint)
	es.decisions[i].get(func() prometheus.Counter { return s.decisions.WithLabelValues(endpoint, outcome) }).Add(float64(n))
}
