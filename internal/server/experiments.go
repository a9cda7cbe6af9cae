package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-ml/baton/internal/experiment"
	"github.com/baton-ml/baton/internal/fault"
	"github.com/baton-ml/baton/internal/signal"
	"github.com/baton-ml/baton/internal/store"
)

// experiments is the server's view of running experiments: assigners
// rebuilt every reload, and a writer that batches exposures so the
// serving path never waits on the store.
type experiments struct {
	s         *Server
	assigners atomic.Pointer[map[string]*experiment.Assigner]
	byEP      atomic.Pointer[map[string][]*experiment.Assigner]
	monitor   *experiment.Monitor
	// refMu makes refreshes one at a time: the loop's refresh that read
	// the store before an apply committed must not store its older answer
	// after the apply's own refresh.
	refMu sync.Mutex

	mu      sync.Mutex
	pending []store.Exposure
	kick    chan struct{}
}

func (s *Server) openExperiments() {
	x := &experiments{s: s, kick: make(chan struct{}, 1)}
	empty := map[string]*experiment.Assigner{}
	emptyEP := map[string][]*experiment.Assigner{}
	x.assigners.Store(&empty)
	x.byEP.Store(&emptyEP)
	x.monitor = experiment.NewMonitor(s.st, s.opt.Now, s.publish, s.log)
	s.exps = x
}

func (x *experiments) refresh(ctx context.Context) error {
	x.refMu.Lock()
	defer x.refMu.Unlock()
	ls, err := experiment.Load(ctx, x.s.st)
	if err != nil {
		return err
	}
	m := map[string]*experiment.Assigner{}
	ep := map[string][]*experiment.Assigner{}
	var errs []error
	for _, l := range ls {
		a, err := experiment.NewAssigner(l)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m[l.Spec.Name] = a
		if l.Spec.Endpoint != "" {
			ep[l.Spec.Endpoint] = append(ep[l.Spec.Endpoint], a)
		}
	}
	x.assigners.Store(&m)
	x.byEP.Store(&ep)
	return errors.Join(errs...)
}

// route picks, for a serving request, the model version the unit's
// variant serves, and logs the exposure.
func (x *experiments) route(endpoint, unit string) (version int, label string, expose func(), ok bool) {
	for _, a := range (*x.byEP.Load())[endpoint] {
		as := a.Assign(unit, nil)
		if !as.In {
			continue
		}
		return as.ModelVersion, as.Experiment + "/" + as.Variant, func() {
			x.expose(store.Exposure{Experiment: as.Experiment, Version: as.Version, Unit: unit, Variant: as.Variant, At: x.s.opt.Now()})
		}, true
	}
	return 0, "", nil, false
}

// maxPending bounds exposures waiting to be written.
const maxPending = 100_000

func (x *experiments) expose(e store.Exposure) {
	x.mu.Lock()
	if len(x.pending) < maxPending {
		x.pending = append(x.pending, e)
	}
	x.mu.Unlock()
	select {
	case x.kick <- struct{}{}:
	default:
	}
}

// loop writes exposures in batches and, on the leader, runs the guardrail
// monitor.
func (x *experiments) loop(ctx context.Context) {
	t := time.NewTicker(x.s.opt.Reload)
	defer t.Stop()
	flush := func() { x.flush(context.WithoutCancel(ctx)) }
	defer flush()
	for {
		select {
		case <-ctx.Done():
			return
		case <-x.kick:
			// Let a burst gather before writing it.
			time.Sleep(20 * time.Millisecond)
			flush()
			continue
		case <-t.C:
		}
		flush()
		if err := x.refresh(ctx); err != nil && ctx.Err() == nil {
			x.s.log.Warn("experiments", "err", err)
		}
		if x.s.leading.Load() {
			if _, err := x.monitor.Tick(ctx); err != nil && ctx.Err() == nil {
				x.s.log.Warn("guardrails", "err", err)
			}
		}
	}
}

// flush writes pending exposures; a batch the store refuses goes back to
// wait for the next flush (within the bound).
func (x *experiments) flush(ctx context.Context) {
	x.mu.Lock()
	batch := x.pending
	x.pending = nil
	x.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	if _, err := x.s.st.AddExposures(ctx, batch); err != nil {
		x.s.log.Error("write exposures: will retry", "n", len(batch), "err", err)
		x.mu.Lock()
		if len(x.pending)+len(batch) <= maxPending {
			x.pending = append(batch, x.pending...)
		}
		x.mu.Unlock()
	}
}

func (s *Server) findExperiment(r *http.Request) (experiment.Loaded, error) {
	l, err := experiment.Find(r.Context(), s.st, r.PathValue("name"))
	if errors.Is(err, store.ErrNotFound) {
		return l, err
	}
	return l, err
}

func (s *Server) listExperiments(w http.ResponseWriter, r *http.Request) error {
	ls, err := experiment.Load(r.Context(), s.st)
	if err != nil {
		return err
	}
	if ls == nil {
		ls = []experiment.Loaded{}
	}
	return writeJSON(w, http.StatusOK, ls)
}

func (s *Server) applyExperiments(w http.ResponseWriter, r *http.Request) error {
	var specs []experiment.Spec
	if err := decodeJSON(r, &specs, "a JSON array of experiments"); err != nil {
		return err
	}
	out, err := experiment.Apply(r.Context(), s.st, specs)
	if err != nil {
		return err
	}
	_ = s.exps.refresh(r.Context())
	return writeJSON(w, http.StatusOK, out)
}

// assigner finds the named experiment's assigner, refreshing once for an
// experiment applied since the last refresh.
func (s *Server) assigner(r *http.Request) (*experiment.Assigner, error) {
	name := r.PathValue("name")
	if a := (*s.exps.assigners.Load())[name]; a != nil {
		return a, nil
	}
	if _, err := s.findExperiment(r); err != nil {
		return nil, err
	}
	_ = s.exps.refresh(r.Context())
	if a := (*s.exps.assigners.Load())[name]; a != nil {
		return a, nil
	}
	return nil, fault.Errorf(fault.NotFound, "experiment %s is not running here", name)
}

// assignUnit answers GET /api/v1/experiments/{name}/assign?unit=U&attr.K=V:
// which variant the unit gets. A GET only reads: to log the exposure, POST
// the same to this path (exposeUnit).
func (s *Server) assignUnit(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	unit := q.Get("unit")
	if unit == "" {
		return fault.Invalidf("unit", "required")
	}
	if q.Has("expose") {
		return fault.Invalidf("expose", "a GET never logs an exposure: POST {\"unit\", \"attributes\"} to this path to log one")
	}
	a, err := s.assigner(r)
	if err != nil {
		return err
	}
	attrs := map[string]any{}
	for k, v := range q {
		if name, ok := strings.CutPrefix(k, "attr."); ok && len(v) > 0 {
			attrs[name] = v[0]
		}
	}
	return writeJSON(w, http.StatusOK, a.Assign(unit, attrs))
}

// exposeUnit answers POST /api/v1/experiments/{name}/assign {"unit",
// "attributes"}: the unit's variant, with its exposure logged when it is in
// the experiment.
func (s *Server) exposeUnit(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Unit       string         `json:"unit"`
		Attributes map[string]any `json:"attributes"`
	}
	if err := decodeJSON(r, &body, `{"unit", "attributes": {NAME: VALUE}}`); err != nil {
		return err
	}
	if body.Unit == "" {
		return fault.Invalidf("unit", "required")
	}
	a, err := s.assigner(r)
	if err != nil {
		return err
	}
	if body.Attributes == nil {
		body.Attributes = map[string]any{}
	}
	as := a.Assign(body.Unit, body.Attributes)
	if as.In {
		s.exps.expose(store.Exposure{Experiment: as.Experiment, Version: as.Version, Unit: body.Unit, Variant: as.Variant, At: s.opt.Now()})
	}
	return writeJSON(w, http.StatusOK, as)
}

func (s *Server) ingestExposures(w http.ResponseWriter, r *http.Request) error {
	l, err := s.findExperiment(r)
	if err != nil {
		return err
	}
	var es []store.Exposure
	if err := decodeJSON(r, &es, `a JSON array of exposures [{"unit", "variant", "at"}]`); err != nil {
		return err
	}
	res, err := experiment.IngestExposures(r.Context(), s.st, l, es, s.opt.Now())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}

func (s *Server) ingestExpMetrics(w http.ResponseWriter, r *http.Request) error {
	l, err := s.findExperiment(r)
	if err != nil {
		return err
	}
	var ms []store.MetricEvent
	if err := decodeJSON(r, &ms, `a JSON array of metric events [{"unit", "metric", "value", "at"}]`); err != nil {
		return err
	}
	res, err := experiment.IngestMetrics(r.Context(), s.st, l, ms, s.opt.Now())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}

func (s *Server) experimentReport(w http.ResponseWriter, r *http.Request) error {
	l, err := s.findExperiment(r)
	if err != nil {
		return err
	}
	rep, err := experiment.BuildReport(r.Context(), s.st, l, s.opt.Now())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rep)
}

// publish publishes a signal the server raises itself (feature_stale,
// canary_passed, canary_failed, experiment_paused) under the loaded
// contracts, with an id that makes it once-only, and wakes the triggers.
func (s *Server) publish(ctx context.Context, name, id string, params map[string]any) error {
	d := s.defs.Load()
	if d == nil {
		return errors.New("definitions not loaded")
	}
	raw := make(map[string]json.RawMessage, len(params))
	for k, v := range params {
		raw[k] = mustJSON(v)
	}
	if _, _, err := signal.Publish(ctx, s.st, d.contracts, name, id, raw, store.SignalSource{Kind: store.SourceExternal}); err != nil {
		return err
	}
	wake(s.wakeSignals)
	return nil
}
