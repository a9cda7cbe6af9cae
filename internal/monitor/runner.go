package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/baton-ml/baton/internal/feature"
	"github.com/baton-ml/baton/internal/serve"
	"github.com/baton-ml/baton/internal/store"
)

// Features is what monitors read of the feature engine (*feature.Engine).
type Features interface {
	Catalog() *feature.Catalog
	Snapshot(ctx context.Context, feats []*feature.Feature, active time.Duration, at time.Time) (*feature.Snapshot, error)
	Events(ctx context.Context, source string, from, to time.Time, fn func(ev *feature.Event) error) error
}

// Samples are serving's samples of each endpoint version's answers
// (*serve.Collector): the confidence served in [from, to).
type Samples interface {
	Metrics(endpoint string, version int, from, to time.Time) map[string][]float64
}

// Pages are what a recommend endpoint's served pages showed
// (*serve.PageStats).
type Pages interface {
	Window(endpoint string, from, to time.Time) serve.PageWindow
}

// Blobs reads an artifact's content by digest (*artifact.Store).
type Blobs interface {
	Open(ctx context.Context, digest string) (io.ReadCloser, error)
}

// Store is what evaluating reads (the monitors, the registry, the
// endpoints, run artifacts) and writes (results).
type Store interface {
	store.MonitorStore
	store.ModelStore
	store.ServeStore
	store.RunReader
	ScenarioReader
}

// Publisher publishes a signal under its contract with an id that makes it
// once-only (the server's publish).
type Publisher func(ctx context.Context, name, id string, params map[string]any) error

// Deps are what a Runner reads and calls. A nil reader makes the monitors
// that need it fail with an error in their result (never a panic).
type Deps struct {
	Store    Store
	Features Features
	Blobs    Blobs
	Samples  Samples
	Pages    Pages
	Publish  Publisher
	Log      *slog.Logger
	// Reg registers the monitors' Prometheus series (nil: none).
	Reg prometheus.Registerer
}

// Check is one judged value of an evaluation: a value below Min or above
// Max breaches. A check without a value (no data) or not judged (too
// little data, say why in Note) never breaches.
type Check struct {
	Name     string   `json:"name"`
	Value    *float64 `json:"value"`
	Min      *float64 `json:"min,omitempty"`
	Max      *float64 `json:"max,omitempty"`
	Judged   bool     `json:"judged"`
	Breached bool     `json:"breached"`
	Note     string   `json:"note,omitempty"`
}

// judge makes a check of value v against min and max; judged says whether
// there was enough data to judge it (a NaN or infinite value is no value).
func judge(name string, v float64, min, max *float64, judged bool, note string) Check {
	c := Check{Name: name, Min: min, Max: max, Note: note}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		if c.Note == "" {
			c.Note = "no data"
		}
		return c
	}
	c.Value = &v
	c.Judged = judged
	if judged {
		c.Breached = min != nil && v < *min || max != nil && v > *max
	}
	return c
}

// Result is one evaluation of a monitor.
type Result struct {
	ID          int64           `json:"id,omitempty"`
	Monitor     string          `json:"monitor"`
	Kind        string          `json:"kind"`
	Trigger     string          `json:"trigger"`
	DueAt       time.Time       `json:"due_at"`
	EvaluatedAt time.Time       `json:"evaluated_at"`
	Checks      []Check         `json:"checks"`
	Breached    bool            `json:"breached"`
	Evidence    json.RawMessage `json:"evidence"`
	// Repeated: a breach like the previous result's, not published again.
	Repeated bool `json:"repeated,omitempty"`
	// Signal is the id of the signal the breach published; Error what
	// went wrong (the evaluation, or the publication), if anything.
	Signal string `json:"signal,omitempty"`
	Error  string `json:"error,omitempty"`
}

// Breaches are the checks that breached.
func (r Result) Breaches() []Check {
	var out []Check
	for _, c := range r.Checks {
		if c.Breached {
			out = append(out, c)
		}
	}
	return out
}

func (r Result) record() (store.MonitorResult, error) {
	checks, err := json.Marshal(r.Checks)
	if err != nil {
		return store.MonitorResult{}, fmt.Errorf("monitor %s: checks: %w", r.Monitor, err)
	}
	return store.MonitorResult{Monitor: r.Monitor, Kind: r.Kind, Trigger: r.Trigger, DueAt: r.DueAt, EvaluatedAt: r.EvaluatedAt,
		Checks: checks, Breached: r.Breached, Repeated: r.Repeated, Evidence: r.Evidence, Signal: r.Signal, Error: r.Error}, nil
}

func fromRecord(m store.MonitorResult) (Result, error) {
	r := Result{ID: m.ID, Monitor: m.Monitor, Kind: m.Kind, Trigger: m.Trigger, DueAt: m.DueAt.UTC(), EvaluatedAt: m.EvaluatedAt.UTC(),
		Breached: m.Breached, Repeated: m.Repeated, Evidence: m.Evidence, Signal: m.Signal, Error: m.Error, Checks: []Check{}}
	if err := json.Unmarshal(m.Checks, &r.Checks); err != nil {
		return r, fmt.Errorf("result %d of monitor %s: its stored checks do not decode: %w", m.ID, m.Monitor, err)
	}
	return r, nil
}

// Results reads a monitor's results, newest first (limit 0: 100).
func Results(ctx context.Context, st store.MonitorStore, monitor string, limit int) ([]Result, error) {
	ms, err := st.MonitorResults(ctx, store.MonitorResultFilter{Monitor: monitor, Limit: limit})
	if err != nil {
		return nil, err
	}
	out := make([]Result, 0, len(ms))
	for _, m := range ms {
		r, err := fromRecord(m)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Runner evaluates monitors. It keeps nothing the store lacks but caches
// (parsed reference data): a restart or another leader carries on from
// the stored results.
type Runner struct {
	d    Deps
	refs *refCache
	// answered is, per monitor and period, the newest slot this runner
	// knows has a result: a pass every poll then costs no query per
	// monitor until a slot turns.
	mu       sync.Mutex
	answered map[string]time.Time

	value    *prometheus.GaugeVec
	breaches *prometheus.CounterVec
	failures *prometheus.CounterVec
}

// NewRunner makes a Runner.
func NewRunner(d Deps) *Runner {
	if d.Log == nil {
		d.Log = slog.Default()
	}
	r := &Runner{d: d, refs: newRefCache(8), answered: map[string]time.Time{},
		value: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "baton_monitor_value",
			Help: "The value of each monitor check at its last evaluation."}, []string{"monitor", "check"}),
		breaches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_monitor_breaches_total",
			Help: "Monitor evaluations with a breached check, by monitor."}, []string{"monitor"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_monitor_errors_total",
			Help: "Monitor evaluations stored with an error, by monitor and stage (evaluate: the data could not be read; publish: the breach's signal was refused)."}, []string{"monitor", "stage"}),
	}
	if d.Reg != nil {
		r.value = registerOr(d.Reg, r.value)
		r.breaches = registerOr(d.Reg, r.breaches)
		r.failures = registerOr(d.Reg, r.failures)
	}
	return r
}

// registerOr registers c, or returns the collector already registered
// under its name (a second runner on one registry).
func registerOr[C prometheus.Collector](reg prometheus.Registerer, c C) C {
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

// Slot is the start of the slot of every that holds now: the due time an
// evaluation at now answers. Slots count from year 1 (Go's zero time), so
// 1d slots are UTC days and 1h slots whole hours.
func Slot(now time.Time, every time.Duration) time.Time {
	return now.UTC().Truncate(every)
}

// EvaluateDue evaluates every monitor whose current slot (Slot(now,
// every)) has no scheduled result yet, stores the results and publishes
// the breaches' signals; it returns the results it stored. A slot another
// evaluator answered meanwhile is skipped. Call it on the leader (the
// server does, every poll) or from a driver with a simulated clock.
func (r *Runner) EvaluateDue(ctx context.Context, now time.Time) ([]Result, error) {
	specs, err := Load(ctx, r.d.Store)
	if err != nil {
		return nil, err
	}
	var out []Result
	var errs []error
	for _, s := range specs {
		due := Slot(now, s.Every.D())
		key := s.Name + "@" + s.Every.String()
		r.mu.Lock()
		known := r.answered[key]
		r.mu.Unlock()
		if !known.Before(due) {
			continue
		}
		last, err := r.d.Store.MonitorResults(ctx, store.MonitorResultFilter{Monitor: s.Name, Trigger: store.MonitorScheduled, Limit: 1})
		if err != nil {
			errs = append(errs, fmt.Errorf("monitor %s: %w", s.Name, err))
			continue
		}
		if len(last) > 0 && !last[0].DueAt.Before(due) {
			r.answer(key, last[0].DueAt)
			continue
		}
		res, err := r.run(ctx, s, now, due, store.MonitorScheduled)
		if errors.Is(err, store.ErrConflict) {
			r.answer(key, due)
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r.answer(key, due)
		out = append(out, res)
	}
	return out, errors.Join(errs...)
}

func (r *Runner) answer(key string, due time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if due.After(r.answered[key]) {
		r.answered[key] = due
	}
}

// Evaluate evaluates one monitor now, whatever its schedule (its result
// is manual: the schedule's slots are not taken), stores the result and
// publishes a breach's signal.
func (r *Runner) Evaluate(ctx context.Context, name string, now time.Time) (Result, error) {
	s, err := Find(ctx, r.d.Store, name)
	if err != nil {
		return Result{}, err
	}
	return r.run(ctx, s, now, now.UTC(), store.MonitorManual)
}

// run evaluates, publishes a breach, stores the result and counts it.
// The signal goes before the result: its id is fixed by the slot, so a
// pass that dies between the two publishes the same signal again (once:
// ids are unique), and none is lost.
func (r *Runner) run(ctx context.Context, s Spec, now, due time.Time, trigger string) (Result, error) {
	res := Result{Monitor: s.Name, Kind: s.Kind, Trigger: trigger, DueAt: due.UTC(), EvaluatedAt: now.UTC()}
	ev, err := r.evaluate(ctx, s, now)
	if ctx.Err() != nil {
		// Cut short by the caller: nothing is stored, the slot stays due.
		return res, ctx.Err()
	}
	res.Checks = ev.checks
	if res.Checks == nil {
		res.Checks = []Check{}
	}
	for _, c := range res.Checks {
		res.Breached = res.Breached || c.Breached
	}
	var stages []string
	var errs []string
	if res.Evidence, err = marshalEvidence(ev.evidence, err); err != nil {
		errs, stages = append(errs, "evaluate: "+err.Error()), append(stages, "evaluate")
	}
	// A breach is published even when part of the evaluation failed: the
	// checks it did judge breached, and the evidence says what is missing.
	// A scheduled evaluation publishes a breach that is new, as an alert
	// fires when its state changes: a drift that lasts until the model
	// serving changes must not start a retraining every slot (each
	// retraining would supersede the last before any could be tested). A
	// breach continues a run of breached results back to one whose
	// signal went out; a run whose signal never went out (the contract
	// refused it) publishes again, so no breach goes unsaid.
	publish := res.Breached && s.Publish != ""
	if publish && trigger != store.MonitorManual {
		said, err := r.breachSaid(ctx, s.Name)
		if err != nil {
			return res, err
		}
		if said {
			publish = false
			res.Repeated = true
		}
	}
	if publish {
		id := "monitor/" + s.Name + "/" + res.DueAt.Format(time.RFC3339Nano)
		if trigger == store.MonitorManual {
			id = "monitor/" + s.Name + "/manual/" + res.EvaluatedAt.Format(time.RFC3339Nano)
		}
		if err := r.d.Publish(ctx, s.Publish, id, signalParams(s, res, ev.model)); err != nil {
			errs, stages = append(errs, fmt.Sprintf("publish %s: %v", s.Publish, err)), append(stages, "publish")
		} else {
			res.Signal = id
		}
	}
	res.Error = strings.Join(errs, "; ")
	rec, err := res.record()
	if err != nil {
		return res, err
	}
	stored, err := r.d.Store.AddMonitorResult(ctx, rec)
	if err != nil {
		return res, err
	}
	res.ID = stored.ID
	for _, c := range res.Checks {
		if c.Value != nil {
			r.value.WithLabelValues(s.Name, c.Name).Set(*c.Value)
		}
	}
	if res.Breached {
		r.breaches.WithLabelValues(s.Name).Inc()
	}
	for _, stage := range stages {
		r.failures.WithLabelValues(s.Name, stage).Inc()
	}
	if res.Error != "" {
		r.d.Log.Warn("monitor", "monitor", s.Name, "due", res.DueAt, "err", res.Error)
	} else if res.Breached {
		r.d.Log.Info("monitor breached", "monitor", s.Name, "due", res.DueAt, "signal", res.Signal)
	}
	return res, nil
}

// breachSaid reports whether the monitor's newest scheduled results are
// a run of breaches one of which published its signal.
func (r *Runner) breachSaid(ctx context.Context, monitor string) (bool, error) {
	var before int64
	for {
		prev, err := r.d.Store.MonitorResults(ctx, store.MonitorResultFilter{Monitor: monitor, Trigger: store.MonitorScheduled, BeforeID: before, Limit: 100})
		if err != nil {
			return false, err
		}
		for _, p := range prev {
			if !p.Breached {
				return false, nil
			}
			if p.Signal != "" {
				return true, nil
			}
		}
		if len(prev) < 100 {
			return false, nil
		}
		before = prev[len(prev)-1].ID
	}
}

// marshalEvidence writes an evaluation's evidence; an evaluation that
// failed keeps what it found before failing, with the error.
func marshalEvidence(ev any, evalErr error) (json.RawMessage, error) {
	if ev == nil {
		ev = struct{}{}
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return json.RawMessage(`{}`), errors.Join(evalErr, fmt.Errorf("the evidence cannot be written as JSON: %w", err))
	}
	return b, evalErr
}

// evaluation is what one kind's evaluation found: its checks, the
// evidence (a JSON object) and the model it concerns, if any.
type evaluation struct {
	checks   []Check
	evidence any
	model    string
}

func (r *Runner) evaluate(ctx context.Context, s Spec, now time.Time) (evaluation, error) {
	switch s.Kind {
	case KindFeatureDrift:
		return r.featureDrift(ctx, s, now)
	case KindPredictionDrift:
		return r.predictionDrift(ctx, s, now)
	case KindOnlineQuality:
		if r.d.Features == nil {
			return evaluation{}, errors.New("this process has no feature engine")
		}
		q, checks, err := quality(ctx, r.d.Features, s.quality(), "", now.Add(-s.Window.D()), now)
		return evaluation{checks: checks, evidence: q}, err
	case KindResponsibleAI:
		return r.responsibleAI(ctx, s, now)
	case KindScenario:
		return r.scenario(ctx, s, now)
	}
	return evaluation{}, fmt.Errorf("unknown kind %q", s.Kind)
}

// signalParams are the params a breach publishes (docs/monitors.md has
// the contract): the monitor, its kind, the model it concerns, the first
// breached check with its value and the threshold crossed, every breached
// check, the evidence and when it was evaluated.
func signalParams(s Spec, res Result, model string) map[string]any {
	breaches := res.Breaches()
	first := breaches[0]
	var threshold float64
	switch {
	case first.Min != nil && *first.Value < *first.Min:
		threshold = *first.Min
	case first.Max != nil:
		threshold = *first.Max
	}
	return map[string]any{
		"monitor":      s.Name,
		"kind":         s.Kind,
		"model":        model,
		"check":        first.Name,
		"value":        *first.Value,
		"threshold":    threshold,
		"checks":       breaches,
		"evidence":     res.Evidence,
		"evaluated_at": res.EvaluatedAt.Format(time.RFC3339Nano),
	}
}

// sampleParams are params of the shape s publishes, for the apply-time
// check of its contract.
func sampleParams(s Spec) map[string]json.RawMessage {
	one, two := 1.0, 2.0
	res := Result{Checks: []Check{{Name: "check", Value: &two, Max: &one, Judged: true, Breached: true}}, Evidence: json.RawMessage(`{}`)}
	out := map[string]json.RawMessage{}
	for k, v := range signalParams(s, res, "model") {
		b, _ := json.Marshal(v)
		out[k] = b
	}
	return out
}
