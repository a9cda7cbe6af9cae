package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/baton-ml/baton/internal/experiment"
	"github.com/baton-ml/baton/internal/fault"
	"github.com/baton-ml/baton/internal/store"
)

// experiments is the server's view of running experiments: assigners
// rebuilt every reload, and a writer that batches exposures so the
// serving path never waits on the store. An exposure the store cannot
// take yet (a failed batch, or past the in-memory bound) goes to a durable
// spill log in the home and is written at the next flush or start; one
// that can be neither kept nor spilled is refused: counted in
// baton_experiment_events_refused_total and answered with an error.
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
	// flushMu makes flushes one at a time, so a replay never races a
	// spill of the same records.
	flushMu sync.Mutex
	spill   *experiment.Spill[store.Exposure]
	// journal holds, in the order accepted, every exposure of pending
	// (written before expose returns): a process killed before its flush
	// loses none, the next start writes them. Each flush retires it and
	// starts another; retired journals are removed once what they hold is
	// in the store or the spill log.
	journal    *experiment.Spill[store.Exposure]
	journalDir string
	journalSeq int
	retired    []string

	refused *prometheus.CounterVec // by kind and reason
	spilled prometheus.Counter
}

// maxPending bounds exposures waiting in memory to be written.
const maxPending = 100_000

// errExposureRefused is an exposure that could be neither kept nor
// spilled.
var errExposureRefused = errors.New("exposure refused")

func (s *Server) openExperiments() error {
	x := &experiments{s: s, kick: make(chan struct{}, 1)}
	empty := map[string]*experiment.Assigner{}
	emptyEP := map[string][]*experiment.Assigner{}
	x.assigners.Store(&empty)
	x.byEP.Store(&emptyEP)
	x.monitor = experiment.NewMonitor(s.st, s.opt.Now, s.publish, s.log)
	sp, err := experiment.OpenSpill[store.Exposure](filepath.Join(s.home.Dir, "spill", "exposures.log"))
	if err != nil {
		return fmt.Errorf("experiments: exposure spill log: %w", err)
	}
	x.spill = sp
	x.journalDir = filepath.Join(s.home.Dir, "spill")
	x.refused = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_experiment_events_refused_total",
		Help: "Experiment exposures and metric events refused (answered with an error), by kind and reason."}, []string{"kind", "reason"})
	x.spilled = prometheus.NewCounter(prometheus.CounterOpts{Name: "baton_experiment_exposures_spilled_total",
		Help: "Exposures written to the local spill log because the store could not take them yet."})
	x.refused = registerOr(s.m.reg, x.refused)
	x.spilled = registerOr(s.m.reg, x.spilled)
	s.exps = x
	// Exposures accepted by a process that was killed before writing them,
	// then those spilled before a crash or stop, are written now.
	if err := x.recoverJournals(context.Background()); err != nil {
		return fmt.Errorf("experiments: exposure journal: %w", err)
	}
	x.replay(context.Background())
	if x.journal, err = experiment.OpenSpill[store.Exposure](filepath.Join(x.journalDir, journalName)); err != nil {
		return fmt.Errorf("experiments: exposure journal: %w", err)
	}
	return nil
}

const journalName = "exposures.journal"

// recoverJournals writes the exposures of journals a previous process left
// (it was killed, or its store failed) to the store, or if the store
// fails, to the spill log; then removes them.
func (x *experiments) recoverJournals(ctx context.Context) error {
	paths, err := filepath.Glob(filepath.Join(x.journalDir, journalName+"*"))
	if err != nil {
		return err
	}
	for _, p := range paths {
		j, err := experiment.OpenSpill[store.Exposure](p)
		if err != nil {
			return err
		}
		n, err := j.Replay(10_000, func(es []store.Exposure) error {
			if _, err := x.s.st.AddExposures(ctx, es); err != nil {
				// Durable elsewhere before the journal goes.
				return x.spill.Append(es)
			}
			return nil
		})
		j.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if err := os.Remove(p); err != nil {
			return err
		}
		if n > 0 {
			x.s.log.Info("exposures accepted before a stop or crash written", "n", n, "journal", p)
		}
	}
	return nil
}

// rotate retires the journal (which holds exactly the batch being taken
// from pending) and starts a new one; x.mu is held. A journal that cannot
// be started leaves x.journal nil: exposures are refused until one can.
func (x *experiments) rotate() {
	if x.journal == nil {
		j, err := experiment.OpenSpill[store.Exposure](filepath.Join(x.journalDir, journalName))
		if err == nil {
			x.journal = j
		}
		return
	}
	x.journalSeq++
	old := x.journal.Path()
	retired := fmt.Sprintf("%s.%d", old, x.journalSeq)
	x.journal.Close()
	x.journal = nil
	if err := os.Rename(old, retired); err != nil {
		x.s.log.Error("exposure journal: retire", "err", err)
		return
	}
	x.retired = append(x.retired, retired)
	j, err := experiment.OpenSpill[store.Exposure](old)
	if err != nil {
		x.s.log.Error("exposure journal: start", "err", err)
		return
	}
	x.journal = j
}

// registerOr registers c, or returns the collector already registered
// under its name (a server run twice in one process).
func registerOr[C prometheus.Collector](reg *prometheus.Registry, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if old, ok := are.ExistingCollector.(C); ok {
				return old
			}
		}
	}
	return c
}

func (x *experiments) refresh(ctx context.Context) error {
	x.refMu.Lock()
	defer x.refMu.Unlock()
	ls, err := experiment.Load(ctx, x.s.st)
	if err != nil {
		return err
	}
	m, err := experiment.NewAssigners(ls)
	ep := map[string][]*experiment.Assigner{}
	for _, l := range ls {
		if a := m[l.Spec.Name]; a != nil && l.Spec.Endpoint != "" {
			ep[l.Spec.Endpoint] = append(ep[l.Spec.Endpoint], a)
		}
	}
	x.assigners.Store(&m)
	x.byEP.Store(&ep)
	return err
}

// route picks, for a serving request, the model version the unit's
// variant serves (targeting sees attrs), and logs the exposure.
func (x *experiments) route(endpoint, unit string, attrs map[string]any) (version int, label string, expose func() error, ok bool) {
	for _, a := range (*x.byEP.Load())[endpoint] {
		as := a.Assign(unit, attrs)
		if !as.In {
			continue
		}
		return as.ModelVersion, as.Experiment + "/" + as.Variant, func() error {
			return x.expose(store.Exposure{Experiment: as.Experiment, Version: as.Version, Unit: unit, Variant: as.Variant, At: x.s.opt.Now()})
		}, true
	}
	return 0, "", nil, false
}

// expose queues an exposure to be written. Past the in-memory bound, the
// queue goes to the spill log first; if that fails too, the exposure is
// refused (counted, and an error for the caller).
func (x *experiments) expose(e store.Exposure) error {
	x.mu.Lock()
	if len(x.pending) >= maxPending {
		full := x.pending
		x.pending = nil
		x.mu.Unlock()
		if err := x.spill.Append(full); err != nil {
			x.mu.Lock()
			// What was queued was accepted, so it stays (past the
			// bound, if requests came meanwhile); only this one is
			// refused.
			x.pending = append(full, x.pending...)
			x.mu.Unlock()
			x.refused.WithLabelValues("exposure", "spill_failed").Inc()
			x.s.log.Error("exposure refused: the queue is full and the spill log failed", "experiment", e.Experiment, "err", err)
			return fault.Wrap(fault.Unavailable, fmt.Errorf("%w: %d exposures wait to be written and the spill log failed: %v", errExposureRefused, len(full), err))
		}
		x.spilled.Add(float64(len(full)))
		x.s.log.Warn("exposures spilled: the queue was full", "n", len(full))
		x.mu.Lock()
	}
	// Journaled and queued under one lock, once it is sure to be accepted:
	// a flush then retires exactly the journal of the batch it takes, and
	// a refused exposure is never written later.
	if x.journal == nil {
		x.rotate()
	}
	err := errors.New("the exposure journal cannot be started")
	if x.journal != nil {
		err = x.journal.Write([]store.Exposure{e})
	}
	if err != nil {
		x.mu.Unlock()
		x.refused.WithLabelValues("exposure", "journal_failed").Inc()
		x.s.log.Error("exposure refused: the journal failed", "experiment", e.Experiment, "err", err)
		return fault.Wrap(fault.Unavailable, fmt.Errorf("%w: %v", errExposureRefused, err))
	}
	x.pending = append(x.pending, e)
	x.mu.Unlock()
	select {
	case x.kick <- struct{}{}:
	default:
	}
	return nil
}

// countRejected counts an ingest's rejections (the caller gets them with
// their reasons in the answer).
func (x *experiments) countRejected(kind string, res experiment.IngestResult) {
	for reason, n := range res.ByReason {
		x.refused.WithLabelValues(kind, reason).Add(float64(n))
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
		if err := x.pass(ctx); err != nil && ctx.Err() == nil {
			x.s.log.Warn("experiments", "err", err)
		}
	}
}

// pass writes the exposures waiting, reloads the experiments and, on the
// leader, checks their guardrails.
func (x *experiments) pass(ctx context.Context) error {
	x.flush(context.WithoutCancel(ctx))
	err := x.refresh(ctx)
	if x.s.orch.Leading() {
		pauses, gerr := x.monitor.Tick(ctx)
		if gerr != nil {
			err = errors.Join(err, fmt.Errorf("guardrails: %w", gerr))
		}
		// A paused experiment stops assigning now, not at the next
		// pass: its treatment must not be served another interval.
		if len(pauses) > 0 {
			err = errors.Join(err, x.refresh(ctx))
		}
	}
	return err
}

// replay writes what the spill log holds; on failure it stays for the
// next flush.
func (x *experiments) replay(ctx context.Context) {
	if x.spill.Len() == 0 {
		return
	}
	n, err := x.spill.Replay(10_000, func(es []store.Exposure) error {
		_, err := x.s.st.AddExposures(ctx, es)
		return err
	})
	if err != nil {
		x.s.log.Warn("replay spilled exposures: kept for the next flush", "written", n, "err", err)
		return
	}
	x.s.log.Info("spilled exposures written", "n", n)
}

// flush writes the spill log's exposures, then the pending ones; a batch
// the store refuses is spilled, or kept in memory (within the bound) if
// the spill fails too; only past that is it dropped, counted and logged.
func (x *experiments) flush(ctx context.Context) {
	x.flushMu.Lock()
	defer x.flushMu.Unlock()
	x.replay(ctx)
	x.mu.Lock()
	batch := x.pending
	x.pending = nil
	if len(batch) > 0 {
		x.rotate()
	}
	retired := x.retired
	x.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	_, err := x.s.st.AddExposures(ctx, batch)
	if err == nil {
		x.removeRetired(retired)
		return
	}
	serr := x.spill.Append(batch)
	if serr == nil {
		x.removeRetired(retired)
		x.spilled.Add(float64(len(batch)))
		x.s.log.Warn("write exposures: spilled to the local log, to be written at the next flush", "n", len(batch), "err", err)
		return
	}
	x.mu.Lock()
	keep := min(len(batch), max(0, maxPending-len(x.pending)))
	x.pending = append(batch[:keep:keep], x.pending...)
	x.mu.Unlock()
	if lost := len(batch) - keep; lost > 0 {
		x.refused.WithLabelValues("exposure", "store_and_spill_failed").Add(float64(lost))
		x.s.log.Error("exposures LOST: the store and the spill log both failed and the queue is full", "n", lost, "err", errors.Join(err, serr))
		return
	}
	x.s.log.Error("write exposures: the store and the spill log failed; kept in memory for the next flush", "n", len(batch), "err", errors.Join(err, serr))
}

// removeRetired removes journals whose exposures are now in the store or
// the spill log: those of this batch, and of batches kept in memory before
// it (they were part of it).
func (x *experiments) removeRetired(paths []string) {
	for _, p := range paths {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			x.s.log.Warn("exposure journal: remove", "path", p, "err", err)
		}
	}
	x.mu.Lock()
	x.retired = slices.DeleteFunc(x.retired, func(p string) bool { return slices.Contains(paths, p) })
	x.mu.Unlock()
}

func (s *Server) findExperiment(r *http.Request) (experiment.Loaded, error) {
	return experiment.Find(r.Context(), s.st, r.PathValue("name"))
}

// setExperimentStatus answers POST /api/v1/experiments/{name}/status
// {"status": "paused"|"running"|"stopped", "reason"}.
func (s *Server) setExperimentStatus(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Status store.ExperimentStatus `json:"status"`
		Reason string                 `json:"reason"`
	}
	if err := decodeJSON(r, &body, `{"status": "paused"|"running"|"stopped", "reason"}`); err != nil {
		return err
	}
	x, err := experiment.SetStatus(r.Context(), s.st, r.PathValue("name"), body.Status, body.Reason)
	if err != nil {
		return err
	}
	_ = s.exps.refresh(r.Context())
	return writeJSON(w, http.StatusOK, x)
}

// promoteExperiment answers POST /api/v1/experiments/{name}/promote
// {"variant", "better", "force"}: the winner's version goes to canary with a
// decision record and a rollout starts, judged by the canary judge. The
// actor is the token's holder.
func (s *Server) promoteExperiment(w http.ResponseWriter, r *http.Request) error {
	body := struct {
		Variant string `json:"variant"`
		Better  string `json:"better"`
		Force   bool   `json:"force"`
	}{Better: "increase"}
	if err := decodeJSON(r, &body, `{"variant", "better": "increase"|"decrease", "force"}`); err != nil {
		return err
	}
	if body.Variant == "" {
		return fault.Invalidf("variant", "required: the winning variant")
	}
	if body.Better != "increase" && body.Better != "decrease" {
		return fault.Invalidf("better", "%q: increase or decrease (which way the first metric improves)", body.Better)
	}
	l, err := s.findExperiment(r)
	if err != nil {
		return err
	}
	p, err := experiment.Promote(r.Context(), s.st, l, experiment.PromoteOptions{Variant: body.Variant, Better: body.Better,
		Actor: identity(r).Name, Force: body.Force, Now: time.Now()})
	if err != nil {
		return err
	}
	if err := s.serving.Refresh(r.Context()); err != nil {
		s.log.Warn("serving", "err", err)
	}
	return writeJSON(w, http.StatusCreated, p)
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
	body, err := readJSON(r)
	if err != nil {
		return err
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
		if err := s.exps.expose(store.Exposure{Experiment: as.Experiment, Version: as.Version, Unit: body.Unit, Variant: as.Variant, At: s.opt.Now()}); err != nil {
			return err
		}
	}
	return writeJSON(w, http.StatusOK, as)
}

func (s *Server) ingestExposures(w http.ResponseWriter, r *http.Request) error {
	l, err := s.findExperiment(r)
	if err != nil {
		return err
	}
	body, err := readJSON(r)
	if err != nil {
		return err
	}
	es, err := experiment.DecodeExposuresJSON(body)
	if err != nil {
		return err
	}
	res, err := experiment.IngestExposures(r.Context(), s.st, l, es, s.opt.Now())
	if err != nil {
		return err
	}
	s.exps.countRejected("exposure", res)
	return writeJSON(w, http.StatusOK, res)
}

func (s *Server) ingestExpMetrics(w http.ResponseWriter, r *http.Request) error {
	l, err := s.findExperiment(r)
	if err != nil {
		return err
	}
	body, err := readJSON(r)
	if err != nil {
		return err
	}
	ms, err := experiment.DecodeMetricsJSON(body)
	if err != nil {
		return err
	}
	res, err := experiment.IngestMetrics(r.Context(), s.st, l, ms, s.opt.Now())
	if err != nil {
		return err
	}
	s.exps.countRejected("metric", res)
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
	raw := make(map[string]json.RawMessage, len(params))
	for k, v := range params {
		raw[k] = mustJSON(v)
	}
	_, _, err := s.orch.Publish(ctx, name, id, raw, store.SignalSource{Kind: store.SourceExternal})
	return err
}
