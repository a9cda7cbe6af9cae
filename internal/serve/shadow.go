package serve

import (
	"cmp"
	"context"
	"encoding/json"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Shadow versions get a copy of live traffic: their answers are compared
// with what was served and never served themselves. Copies go through a
// bounded queue; when it is full they are dropped (and counted) rather
// than slow the live path.

type shadowJob struct {
	endpoint string
	v        *version
	in       Input
	primary  Response
	timeout  time.Duration
}

// ShadowStats compares one shadow version with what was served.
type ShadowStats struct {
	Version  int `json:"version"`
	Requests int `json:"requests"`
	// Agreed counts answers equal to the served one (numbers within
	// 1e-9, or the same after rounding a probability to a class).
	Agreed  int     `json:"agreed"`
	Errors  int     `json:"errors"`
	Dropped int     `json:"dropped"`
	MeanAbs float64 `json:"mean_abs_diff"`
	// Recent holds the last comparisons, for a look at what differs.
	Recent []ShadowRecord `json:"recent,omitempty"`
}

// ShadowRecord is one logged comparison.
type ShadowRecord struct {
	At      time.Time `json:"at"`
	Key     string    `json:"key"`
	Served  any       `json:"served"`
	Shadow  any       `json:"shadow"`
	Error   string    `json:"error,omitempty"`
	Agreed  bool      `json:"agreed"`
	Latency float64   `json:"latency_ms"`
}

const shadowRecent = 20

type shadowRunner struct {
	s *Service
	q chan shadowJob
	// done stops the workers; q is never closed, so a request still in
	// flight when the service closes drops its copy instead of panicking.
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
	mu    sync.Mutex
	st    map[collectKey]*ShadowStats
	sum   map[collectKey]float64
	count *prometheus.CounterVec
}

func newShadowRunner(s *Service, depth int) *shadowRunner {
	r := &shadowRunner{s: s, q: make(chan shadowJob, depth), done: make(chan struct{}), st: map[collectKey]*ShadowStats{}, sum: map[collectKey]float64{},
		count: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_shadow_predictions_total",
			Help: "Shadow predictions, by endpoint and outcome (agreed, differed, error, dropped)."}, []string{"endpoint", "outcome"})}
	for range 2 {
		r.wg.Go(r.work)
	}
	return r
}

func (r *shadowRunner) register(reg prometheus.Registerer) { reg.MustRegister(r.count) }

func (r *shadowRunner) submit(j shadowJob) {
	select {
	case <-r.done:
		return
	default:
	}
	select {
	case r.q <- j:
	default:
		r.mu.Lock()
		r.stat(j.endpoint, j.v.v.Version).Dropped++
		r.mu.Unlock()
		r.count.WithLabelValues(j.endpoint, "dropped").Inc()
	}
}

func (r *shadowRunner) close() {
	r.once.Do(func() { close(r.done) })
	r.wg.Wait()
}

func (r *shadowRunner) stat(endpoint string, version int) *ShadowStats {
	k := collectKey{endpoint, version}
	st := r.st[k]
	if st == nil {
		st = &ShadowStats{Version: version}
		r.st[k] = st
	}
	return st
}

func (r *shadowRunner) work() {
	for {
		var j shadowJob
		select {
		case <-r.done:
			return
		case j = <-r.q:
		}
		start := time.Now()
		out, err := r.s.run(context.Background(), j.v, j.in, j.timeout)
		rec := ShadowRecord{At: start, Key: j.in.Key, Served: j.primary.Prediction, Shadow: out.Prediction,
			Latency: float64(time.Since(start).Microseconds()) / 1000}
		r.mu.Lock()
		st := r.stat(j.endpoint, j.v.v.Version)
		st.Requests++
		outcome := "differed"
		if err != nil {
			st.Errors++
			rec.Error = err.Error()
			outcome = "error"
		} else {
			k := collectKey{j.endpoint, j.v.v.Version}
			d, agreed := compare(j.primary.Prediction, out.Prediction)
			if !math.IsNaN(d) {
				r.sum[k] += d
				st.MeanAbs = r.sum[k] / float64(st.Requests-st.Errors)
			}
			if agreed {
				st.Agreed++
				outcome = "agreed"
			}
			rec.Agreed = agreed
		}
		st.Recent = append(st.Recent, rec)
		if len(st.Recent) > shadowRecent {
			st.Recent = st.Recent[len(st.Recent)-shadowRecent:]
		}
		r.mu.Unlock()
		r.count.WithLabelValues(j.endpoint, outcome).Inc()
	}
}

// compare returns the absolute difference of two numeric answers (NaN for
// others) and whether they agree: equal numbers, the same class for two
// probabilities, or equal JSON.
func compare(a, b any) (float64, bool) {
	x, okx := a.(float64)
	y, oky := b.(float64)
	if okx && oky {
		d := math.Abs(x - y)
		sameClass := x >= 0 && x <= 1 && y >= 0 && y <= 1 && (x >= 0.5) == (y >= 0.5)
		return d, d < 1e-9 || sameClass
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return math.NaN(), string(ja) == string(jb)
}

func (r *shadowRunner) stats(endpoint string) []ShadowStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []ShadowStats
	for k, st := range r.st {
		if k.endpoint == endpoint {
			c := *st
			c.Recent = append([]ShadowRecord(nil), st.Recent...)
			out = append(out, c)
		}
	}
	// By version, not in Go's random map order: an endpoint with two
	// shadows would list them in either order from one status to the next.
	slices.SortFunc(out, func(a, b ShadowStats) int { return cmp.Compare(a.Version, b.Version) })
	return out
}
