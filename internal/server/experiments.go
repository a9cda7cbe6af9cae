package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-ml/baton/internal/experiment"
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
		return l, &httpError{http.StatusNotFound, err}
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
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return badRequest("read the body: %v", err)
	}
	// Problems name the JSON field: [0].variants[1].model_version.
	doc, err := experiment.ParseJSON(body)
	// A document with problems of its own is still checked against the
	// store, so that every problem is reported at once.
	if doc == nil {
		return err
	}
	out, err := doc.Apply(r.Context(), s.st)
	if err != nil {
		return err
	}
	_ = s.exps.refresh(r.Context())
	return writeJSON(w, http.StatusOK, out)
}

// assignUnit answers GET /api/v1/experiments/{name}/assign?unit=U&attr.K=V
// and logs the exposure of a unit that is in.
func (s *Server) assignUnit(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	unit := q.Get("unit")
	if unit == "" {
		return badRequest("unit is required")
	}
	a := (*s.exps.assigners.Load())[r.PathValue("name")]
	if a == nil {
		if _, err := s.findExperiment(r); err != nil {
			return err
		}
		_ = s.exps.refresh(r.Context())
		if a = (*s.exps.assigners.Load())[r.PathValue("name")]; a == nil {
			return &httpError{http.StatusNotFound, errors.New("unknown experiment")}
		}
	}
	attrs := map[string]any{}
	for k, v := range q {
		if name, ok := strings.CutPrefix(k, "attr."); ok && len(v) > 0 {
			attrs[name] = v[0]
		}
	}
	as := a.Assign(unit, attrs)
	if as.In && q.Get("expose") != "false" {
		s.exps.expose(store.Exposure{Experiment: as.Experiment, Version: as.Version, Unit: unit, Variant: as.Variant, At: s.opt.Now()})
	}
	return writeJSON(w, http.StatusOK, as)
}

func (s *Server) ingestExposures(w http.ResponseWriter, r *http.Request) error {
	l, err := s.findExperiment(r)
	if err != nil {
		return err
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxEventsBody)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return badRequest("read the body: %v", err)
	}
	es, err := experiment.DecodeExposuresJSON(body)
	if err != nil {
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
	r.Body = http.MaxBytesReader(w, r.Body, maxEventsBody)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return badRequest("read the body: %v", err)
	}
	ms, err := experiment.DecodeMetricsJSON(body)
	if err != nil {
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
