package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/baton-ml/baton/internal/artifact"
	"github.com/baton-ml/baton/internal/bandit"
	"github.com/baton-ml/baton/internal/fault"
	"github.com/baton-ml/baton/internal/registry"
	"github.com/baton-ml/baton/internal/search"
	"github.com/baton-ml/baton/internal/store"
)

// FeatureReader reads online feature values for a key.
type FeatureReader interface {
	Values(ctx context.Context, key string, names []string, at time.Time) (map[string]any, error)
}

// Deps are what the service needs from the server.
type Deps struct {
	Store    store.Store
	Blobs    *artifact.Store
	Features FeatureReader // nil: requests must carry their features
	Log      *slog.Logger
	Reg      prometheus.Registerer
	Now      func() time.Time
	// Route, when set, lets an experiment pick the model version a unit
	// is served (0: the endpoint's usual one) from the unit and its
	// attributes (targeting); label names the experiment and variant, and
	// expose records the exposure, called only once the variant's version
	// is the one that serves. An exposure that cannot be recorded is an
	// error: the unit is then served as if it were not in the experiment,
	// so that no unit is served an arm without being counted in it.
	Route func(endpoint, unit string, attrs map[string]any) (version int, label string, expose func() error, ok bool)
	// Decisions logs a served page's bandit decisions (the server's
	// decision log); nil counts them as unlogged.
	Decisions func(endpoint string, p bandit.Page) error
	// Publish publishes a signal (canary_passed, canary_failed) with an
	// id that makes it once-only.
	Publish func(ctx context.Context, name, id string, params map[string]any) error
}

// Paths and reasons a response records.
const (
	PathModel    = "model"
	PathFallback = "fallback"

	ReasonModel         = "model"
	ReasonLowConfidence = "low_confidence"
	ReasonError         = "error"
	ReasonTimeout       = "timeout"
	ReasonNoModel       = "no_model"
)

// Request is a prediction request.
type Request struct {
	// Key is the entity key whose features the model reads.
	Key string `json:"key"`
	// Unit is what the canary share is decided on (default the key).
	Unit string `json:"unit,omitempty"`
	// Features, when given, are used instead of the online store's.
	Features map[string]any `json:"features,omitempty"`
	// Query is what a search endpoint searches for (Key, when given, is
	// the member whose tastes re-rank the titles).
	Query string `json:"query,omitempty"`
	// Attributes describe the unit for experiments' targeting
	// (attrs.market == "US"). Targeting sees the request's features (given
	// or read from the online store) and these attributes; on a name
	// clash the attribute wins, as the caller said it explicitly.
	Attributes map[string]any `json:"attributes,omitempty"`
}

// Response is a served prediction and how it was served.
type Response struct {
	Endpoint   string  `json:"endpoint"`
	Model      string  `json:"model"`
	Version    int     `json:"version"`
	Prediction any     `json:"prediction"`
	Confidence float64 `json:"confidence"`
	// ModelConfidence is the confidence the endpoint's model answered
	// with, set whenever it answered, also when the gate sent the request
	// to the fallback (Confidence is then the fallback's): it is what the
	// gate decided on.
	ModelConfidence *float64 `json:"model_confidence,omitempty"`
	// Path is model or fallback; Reason why: model, low_confidence,
	// error, timeout or no_model. Detail is the error, if any.
	Path   string `json:"path"`
	Reason string `json:"reason"`
	Detail string `json:"detail,omitempty"`
	Canary bool   `json:"canary,omitempty"`
	// Experiment is the experiment/variant that chose the version.
	Experiment string  `json:"experiment,omitempty"`
	LatencyMS  float64 `json:"latency_ms"`
}

// ErrUnknownEndpoint is returned for a request to no endpoint.
var ErrUnknownEndpoint = fault.New(fault.NotFound, "unknown endpoint")

// BadRequest is a malformed request (HTTP 400).
type BadRequest struct{ Msg string }

func (e *BadRequest) Error() string { return e.Msg }

// Is sorts a bad request as invalid input.
func (e *BadRequest) Is(target error) bool { return target == fault.Invalid }

type version struct {
	v store.ModelVersion
	m Model
	// builtin models cannot hang, so they run without a guard goroutine.
	builtin bool
}

type endpointState struct {
	spec     Endpoint
	baseline *version
	canary   *version
	share    float64 // percent of units the canary serves
	rollout  *store.Rollout
	shadows  []*version
	fallback *version
	policy   *bandit.Policy // a recommend endpoint's bandit, if any
}

// Service serves every endpoint.
type Service struct {
	d      Deps
	client *http.Client

	state  atomic.Pointer[map[string]*endpointState]
	models sync.Map // digest → Model
	// policies are loaded bandit policies, by digest.
	policies sync.Map
	// indexes are search endpoints' BM25 indexes, by catalog digest.
	indexes sync.Map
	arms    sync.Map // "model@n" → *version, for experiment arms
	// byEndpoint holds each endpoint's series (endpointSeries).
	byEndpoint sync.Map
	refMu      sync.Mutex

	Collector *Collector
	shadow    *shadowRunner
	faults    faults
	// Pages holds what recommend endpoints' served pages showed.
	Pages *PageStats

	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	// What recommend endpoints' re-ranking made of the rows served.
	rowDiversity, rowNewCreators *prometheus.HistogramVec
	decisions                    *prometheus.CounterVec
}

// New makes the service; call Refresh before serving.
func New(d Deps) *Service {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.Default()
	}
	s := &Service{d: d, client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
		Collector: NewCollector(100_000), Pages: NewPageStats(DefaultPageSlot, DefaultPageSlots)}
	empty := map[string]*endpointState{}
	s.state.Store(&empty)
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_predictions_total",
		Help: "Predictions served, by endpoint, path (model, fallback) and reason."}, []string{"endpoint", "path", "reason"})
	s.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "baton_prediction_latency_seconds",
		Help:    "Prediction latency, by endpoint and path.",
		Buckets: []float64{.0001, .00025, .0005, .001, .002, .005, .01, .025, .05, .1, .25, 1}}, []string{"endpoint", "path"})
	// Written out: LinearBuckets(0, 0.1, 11) sums floats and labels a
	// bucket le="0.30000000000000004".
	shares := []float64{0, .1, .2, .3, .4, .5, .6, .7, .8, .9, 1}
	s.rowDiversity = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "baton_recommend_row_diversity",
		Help:    "Intra-list diversity (1 - mean pairwise genre Jaccard) of the rows recommend endpoints served, by endpoint and row.",
		Buckets: shares}, []string{"endpoint", "row"})
	s.rowNewCreators = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "baton_recommend_row_new_creator_share",
		Help:    "Share of new creators' titles in the rows recommend endpoints served, by endpoint and row.",
		Buckets: shares}, []string{"endpoint", "row"})
	s.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_bandit_decisions_total",
		Help: "Bandit decisions of served pages, by endpoint and outcome (logged; failed or unlogged: served but not in the decision log)."}, []string{"endpoint", "outcome"})
	s.shadow = newShadowRunner(s, 1024)
	if d.Reg != nil {
		d.Reg.MustRegister(s.requests, s.latency, s.rowDiversity, s.rowNewCreators, s.decisions)
		s.shadow.register(d.Reg)
	}
	return s
}

// Close stops the shadow workers.
func (s *Service) Close() { s.shadow.close() }

// Refresh reloads endpoints, the versions that serve them and any running
// rollout, loading models it has not loaded yet.
func (s *Service) Refresh(ctx context.Context) error {
	s.refMu.Lock()
	defer s.refMu.Unlock()
	eps, err := s.d.Store.Endpoints(ctx)
	if err != nil {
		return err
	}
	next := map[string]*endpointState{}
	// An endpoint whose state cannot be read now (a store error, a
	// cancelled refresh) keeps serving as it did: a transient failure must
	// not turn a served endpoint into a 404.
	prev := *s.state.Load()
	keep := func(name string) {
		if old := prev[name]; old != nil {
			next[name] = old
		}
	}
	reg := registry.New(s.d.Store)
	var errs []error
	for _, e := range eps {
		spec, err := Stored(e)
		if err != nil {
			errs = append(errs, err)
			keep(e.Name)
			continue
		}
		st := &endpointState{spec: spec}
		vs, err := s.d.Store.ModelVersions(ctx, spec.Model)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			errs = append(errs, fmt.Errorf("endpoint %s: model versions: %w", e.Name, err))
			keep(e.Name)
			continue
		}
		rs, err := s.d.Store.Rollouts(ctx, spec.Name)
		if err != nil {
			errs = append(errs, fmt.Errorf("endpoint %s: rollouts: %w", e.Name, err))
			keep(e.Name)
			continue
		}
		if len(rs) > 0 && rs[0].Status == store.RolloutRunning {
			r := rs[0]
			st.rollout = &r
			st.share = r.Stages[min(r.Stage, len(r.Stages)-1)]
		}
		for _, v := range vs {
			switch {
			case st.rollout != nil && v.Version == st.rollout.CanaryVersion:
				st.canary = s.load(ctx, v, &errs)
			case v.State == store.ModelProduction:
				st.baseline = s.load(ctx, v, &errs)
			case v.State == store.ModelShadow && *st.spec.Shadow:
				if lv := s.load(ctx, v, &errs); lv != nil {
					st.shadows = append(st.shadows, lv)
				}
			}
		}
		if fb := spec.Fallback; fb.Model != "" {
			ref := fb.Version
			if ref == "" {
				ref = string(store.ModelProduction)
			}
			v, err := reg.Resolve(ctx, fb.Model, ref)
			if err != nil {
				errs = append(errs, fmt.Errorf("endpoint %s fallback: %w", spec.Name, err))
			} else {
				st.fallback = s.load(ctx, v, &errs)
			}
		}
		// A recommend endpoint serves each version as a page of rows,
		// personalized by its bandit's production policy.
		if rc := spec.Recommend; rc != nil && rc.Personalize != nil {
			st.policy = s.policy(ctx, reg, spec.Name, rc.Personalize.Model, &errs)
		}
		st.baseline = s.forEndpoint(spec, st.baseline, false, st.policy)
		st.canary = s.forEndpoint(spec, st.canary, false, st.policy)
		for i, sh := range st.shadows {
			st.shadows[i] = s.forEndpoint(spec, sh, false, st.policy)
		}
		st.fallback = s.forEndpoint(spec, st.fallback, true, nil)
		if spec.Kind == KindSearch && spec.Search != nil {
			// A search endpoint's versions re-rank its catalog's BM25
			// candidates; BM25 alone is its fallback.
			ix, err := s.searchIndex(ctx, spec.Search)
			if err != nil {
				errs = append(errs, fmt.Errorf("endpoint %s: %w", spec.Name, err))
				keep(e.Name)
				continue
			}
			st.baseline = forSearch(spec, st.baseline, ix)
			st.canary = forSearch(spec, st.canary, ix)
			for i, sh := range st.shadows {
				st.shadows[i] = forSearch(spec, sh, ix)
			}
			if st.fallback, err = bm25Version(spec, ix); err != nil {
				errs = append(errs, fmt.Errorf("endpoint %s: %w", spec.Name, err))
				keep(e.Name)
				continue
			}
		}
		// A page's model goes live with what its rows read built: no
		// request works out a title's neighbours.
		for _, v := range append([]*version{st.baseline, st.canary, st.fallback}, st.shadows...) {
			if err := s.warm(ctx, v); err != nil {
				errs = append(errs, fmt.Errorf("endpoint %s: model %s version %d: %w", spec.Name, v.v.Model, v.v.Version, err))
			}
		}
		next[spec.Name] = st
	}
	if err := ctx.Err(); err != nil {
		// Reads cut short by the cancel would look like missing models.
		return err
	}
	s.state.Store(&next)
	return errors.Join(errs...)
}

// policy loads the production version of a bandit policy model, once per
// digest. Without one the page keeps its configured order (and the error
// says why).
func (s *Service) policy(ctx context.Context, reg *registry.Registry, endpoint, model string, errs *[]error) *bandit.Policy {
	v, err := reg.Resolve(ctx, model, string(store.ModelProduction))
	if err != nil {
		*errs = append(*errs, fmt.Errorf("endpoint %s personalize: %w", endpoint, err))
		return nil
	}
	if p, ok := s.policies.Load(v.Digest); ok {
		return p.(*bandit.Policy)
	}
	b, err := s.d.Blobs.Read(ctx, v.Digest)
	if err == nil {
		var p *bandit.Policy
		if p, err = bandit.LoadPolicy(bytes.NewReader(b), fmt.Sprintf("model %s version %d", model, v.Version)); err == nil {
			s.policies.Store(v.Digest, p)
			return p
		}
	}
	*errs = append(*errs, fmt.Errorf("endpoint %s personalize: model %s version %d: %w", endpoint, model, v.Version, err))
	return nil
}

func (s *Service) load(ctx context.Context, v store.ModelVersion, errs *[]error) *version {
	if m, ok := s.models.Load(v.Digest); ok {
		lv := m.(*version)
		return &version{v: v, m: lv.m, builtin: lv.builtin}
	}
	b, err := s.d.Blobs.Read(ctx, v.Digest)
	if err != nil {
		*errs = append(*errs, fmt.Errorf("model %s version %d: %w", v.Model, v.Version, err))
		return nil
	}
	m, err := Load(b, s.client)
	if err != nil {
		*errs = append(*errs, fmt.Errorf("model %s version %d: %w", v.Model, v.Version, err))
		return nil
	}
	lv := &version{v: v, m: m}
	switch m.(type) {
	case *linear, ranking, *recModel, *rerankModel:
		lv.builtin = true
	}
	s.models.Store(v.Digest, lv)
	return lv
}

// versionOf loads a model version by number (an experiment's arm), once.
func (s *Service) versionOf(ctx context.Context, model string, n int) *version {
	key := model + "@" + strconv.Itoa(n)
	if v, ok := s.arms.Load(key); ok {
		return v.(*version)
	}
	mv, err := s.d.Store.ModelVersion(ctx, model, n)
	if err != nil {
		return nil
	}
	var errs []error
	v := s.load(ctx, mv, &errs)
	if v != nil {
		s.arms.Store(key, v)
	}
	return v
}

// Endpoint returns an endpoint's spec (with defaults) and whether it exists.
func (s *Service) Endpoint(name string) (Endpoint, bool) {
	st := (*s.state.Load())[name]
	if st == nil {
		return Endpoint{}, false
	}
	return st.spec, true
}

// bucket places a unit in [0, 100) for a rollout, stable for the rollout
// and independent between rollouts.
func bucket(unit string, rollout int64) float64 {
	h := fnv.New64a()
	h.Write([]byte(unit))
	var b [8]byte
	for i := range 8 {
		b[i] = byte(rollout >> (8 * i))
	}
	h.Write(b[:])
	return float64(h.Sum64()%10000) / 100
}

// Predict serves one request. It never fails for the model's sake: a
// model that errs, hangs, answers garbage or is unsure gives way to the
// fallback, and the response says so. Errors are for requests that cannot
// be served at all (unknown endpoint, malformed request).
func (s *Service) Predict(ctx context.Context, name string, req Request) (Response, error) {
	start := time.Now()
	st := (*s.state.Load())[name]
	if st == nil {
		return Response{}, fmt.Errorf("endpoint %q: %w", name, ErrUnknownEndpoint)
	}
	spec := st.spec
	switch {
	case spec.Kind == KindSearch && strings.TrimSpace(req.Query) == "":
		return Response{}, &BadRequest{Msg: `a search request needs "query" (and may name the member in "key")`}
	case spec.Kind == KindSearch && len(req.Query) > search.MaxQueryBytes:
		return Response{}, &BadRequest{Msg: fmt.Sprintf(`"query" has %d bytes: a search query is at most %d bytes`, len(req.Query), search.MaxQueryBytes)}
	case spec.Kind != KindSearch && req.Key == "" && req.Features == nil:
		return Response{}, &BadRequest{Msg: `a request needs "key" (the entity whose features are read) or "features"`}
	}
	if err := checkAttrs("attributes", req.Attributes); err != nil {
		return Response{}, err
	}
	if spec.Recommend != nil && spec.Recommend.Personalize != nil {
		// The features given are the page's logged context too.
		if err := checkAttrs("features", req.Features); err != nil {
			return Response{}, err
		}
	}
	resp := Response{Endpoint: name, Model: spec.Model}
	in := Input{Key: req.Key, Features: req.Features, Attributes: req.Attributes, Query: req.Query}
	if in.Features == nil {
		in.Features = map[string]any{}
		if len(spec.Features) > 0 && req.Key != "" {
			if s.d.Features == nil {
				return Response{}, &BadRequest{Msg: "this server has no online store: send the features with the request"}
			}
			vals, err := s.d.Features.Values(ctx, req.Key, spec.Features, s.d.Now())
			if err != nil {
				return Response{}, &BadRequest{Msg: fmt.Sprintf("features of %q: %v", req.Key, err)}
			}
			in.Features = vals
		}
	}
	v := st.baseline
	unit := req.Unit
	if unit == "" {
		unit = req.Key
	}
	if st.canary != nil && bucket(unit, st.rollout.ID) < st.share {
		v, resp.Canary = st.canary, true
	}
	if s.d.Route != nil && !resp.Canary {
		if n, label, expose, ok := s.d.Route(name, unit, targetingAttrs(in.Features, req.Attributes)); ok {
			arm, served := v, n == 0 || v != nil && v.v.Version == n
			if !served {
				if ev := s.versionOf(ctx, spec.Model, n); ev != nil {
					arm, served = s.forEndpoint(spec, ev, false, st.policy), true
					if spec.Kind == KindSearch && st.fallback != nil {
						if sm, ok := st.fallback.m.(*searchModel); ok {
							arm = forSearch(spec, ev, sm.ix)
						}
					}
				}
			}
			// A unit whose arm's version cannot load, or whose exposure
			// cannot be recorded, is served the usual version and not
			// counted in the arm.
			if served {
				if err := expose(); err != nil {
					s.d.Log.Warn("experiment exposure refused; the unit gets the endpoint's usual version", "endpoint", name, "experiment", label, "err", err)
				} else {
					v, resp.Experiment = arm, label
				}
			}
		}
	}
	var out Output
	var reason, detail string
	if v == nil {
		reason, detail = ReasonNoModel, fmt.Sprintf("model %s has no production version", spec.Model)
	} else {
		resp.Version = v.v.Version
		var err error
		if err = s.injected(ctx, name, unit, spec.Timeout.D()); err == nil {
			out, err = s.run(ctx, v, in, spec.Timeout.D())
		}
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			reason, detail = ReasonTimeout, fmt.Sprintf("no answer within %s", spec.Timeout.D())
		case err != nil:
			reason, detail = ReasonError, err.Error()
		case out.Confidence < spec.MinConfidence:
			// Every digit: 0.5999 against a gate of 0.6 must not read
			// "0.600 below 0.600".
			reason, detail = ReasonLowConfidence, fmt.Sprintf("confidence %s below %s",
				strconv.FormatFloat(out.Confidence, 'g', -1, 64), strconv.FormatFloat(spec.MinConfidence, 'g', -1, 64))
		default:
			reason = ReasonModel
		}
		if err == nil {
			c := out.Confidence
			resp.ModelConfidence = &c
		}
	}
	resp.Reason, resp.Detail = reason, detail
	if reason == ReasonModel {
		resp.Path, resp.Prediction, resp.Confidence = PathModel, out.Prediction, out.Confidence
	} else {
		resp.Path = PathFallback
		s.fallback(ctx, st, in, &resp)
	}
	lat := time.Since(start)
	resp.LatencyMS = float64(lat.Microseconds()) / 1000
	es := s.series(name)
	s.answered(es, name, resp.Path, resp.Reason)
	if pg, ok := resp.Prediction.(Page); ok {
		s.Pages.Add(name, &pg, s.d.Now())
		if pg.decisions != nil {
			s.logDecisions(name, pg.decisions)
		}
		for i := range pg.Rows {
			s.observeRow(es, name, &pg.Rows[i])
		}
	}
	s.observeLatency(es, name, resp.Path, lat.Seconds())
	if v != nil {
		s.Collector.Add(name, v.v.Version, Sample{At: s.d.Now(), Key: req.Key, LatencyMS: resp.LatencyMS,
			Error: b2f(reason == ReasonError || reason == ReasonTimeout), Fallback: b2f(resp.Path == PathFallback), Confidence: out.Confidence})
	}
	for _, sh := range st.shadows {
		s.shadow.submit(shadowJob{endpoint: name, v: sh, in: in, primary: resp, timeout: spec.Timeout.D()})
	}
	return resp, nil
}

// logDecisions hands a served page's bandit decisions to the decision
// log. One that cannot be logged is counted and said: the page was served,
// but off-policy evaluation will not see it.
func (s *Service) logDecisions(endpoint string, p *bandit.Page) {
	n := len(p.Artwork)
	if p.Rows != nil {
		n++
	}
	if s.d.Decisions == nil {
		s.countDecisions(endpoint, "unlogged", n)
		return
	}
	if err := s.d.Decisions(endpoint, *p); err != nil {
		s.countDecisions(endpoint, "failed", n)
		s.d.Log.Warn("bandit decisions not logged", "endpoint", endpoint, "err", err)
		return
	}
	s.countDecisions(endpoint, "logged", n)
}

// targetingAttrs is what experiments' targeting sees: the request's
// features, overlaid by its attributes (an attribute wins a name clash).
func targetingAttrs(features, attrs map[string]any) map[string]any {
	if len(attrs) == 0 {
		return features
	}
	if len(features) == 0 {
		return attrs
	}
	m := make(map[string]any, len(features)+len(attrs))
	for k, v := range features {
		m[k] = v
	}
	for k, v := range attrs {
		m[k] = v
	}
	return m
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// run asks a model under the timeout. Outside models run in a goroutine
// so that one ignoring its context cannot hold the request.
func (s *Service) run(ctx context.Context, v *version, in Input, timeout time.Duration) (Output, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if v.builtin {
		return s.predict(ctx, v, in)
	}
	type res struct {
		out Output
		err error
	}
	ch := make(chan res, 1)
	go func() {
		o, err := s.predict(ctx, v, in)
		ch <- res{o, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil && ctx.Err() != nil {
			return r.out, context.DeadlineExceeded
		}
		return r.out, r.err
	case <-ctx.Done():
		return Output{}, context.DeadlineExceeded
	}
}

// ErrModelPanicked is what a request gets from a model that panicked
// (errors.Is): it falls back as for any failing model.
var ErrModelPanicked = errors.New("the model panicked")

// predict asks v's model, turning a panic in it into an error and a log
// line with the stack: the request falls back as for any model error.
// A panic not recovered ends the process, every endpoint with it, when it
// is in a goroutine of the request's (an outside model's, a shadow's);
// in the request's own, net/http would drop the connection instead of
// answering the fallback.
func (s *Service) predict(ctx context.Context, v *version, in Input) (out Output, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.d.Log.Error("model panicked; the request falls back", "model", v.v.Model, "version", v.v.Version,
				"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			out, err = Output{}, fmt.Errorf("model %s version %d: %w: %v", v.v.Model, v.v.Version, ErrModelPanicked, p)
		}
	}()
	return v.m.Predict(ctx, in)
}

// fallback fills resp from the fallback model, or the static value when
// there is none or it fails too.
func (s *Service) fallback(ctx context.Context, st *endpointState, in Input, resp *Response) {
	if fb := st.fallback; fb != nil {
		out, err := s.run(ctx, fb, in, st.spec.Timeout.D())
		if err == nil {
			resp.Prediction, resp.Confidence = out.Prediction, out.Confidence
			resp.Model, resp.Version = fb.v.Model, fb.v.Version
			return
		}
		if resp.Detail != "" {
			resp.Detail += "; "
		}
		resp.Detail += "fallback model: " + err.Error()
	}
	resp.Prediction, resp.Confidence = st.spec.Fallback.Static, 0
}

// Status is what an endpoint serves now.
type Status struct {
	Endpoint    string         `json:"endpoint"`
	Model       string         `json:"model"`
	Production  int            `json:"production,omitempty"`
	Canary      int            `json:"canary,omitempty"`
	CanaryShare float64        `json:"canary_share,omitempty"`
	Shadows     []int          `json:"shadows,omitempty"`
	Fallback    string         `json:"fallback"`
	Rollout     *store.Rollout `json:"rollout,omitempty"`
	Shadow      []ShadowStats  `json:"shadow_stats,omitempty"`
}

// Statuses lists every endpoint's status.
func (s *Service) Statuses() []Status {
	m := *s.state.Load()
	var out []Status
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}) {
		st := m[name]
		x := Status{Endpoint: name, Model: st.spec.Model, Rollout: st.rollout}
		if st.baseline != nil {
			x.Production = st.baseline.v.Version
		}
		if st.canary != nil {
			x.Canary, x.CanaryShare = st.canary.v.Version, st.share
		}
		for _, sh := range st.shadows {
			x.Shadows = append(x.Shadows, sh.v.Version)
		}
		switch {
		case st.fallback != nil:
			x.Fallback = st.fallback.v.Model + "@" + strconv.Itoa(st.fallback.v.Version)
		default:
			b, _ := json.Marshal(st.spec.Fallback.Static)
			x.Fallback = "static " + string(b)
		}
		x.Shadow = s.shadow.stats(name)
		out = append(out, x)
	}
	return out
}
