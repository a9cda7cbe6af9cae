package experiment

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/baton-ml/baton/internal/abtest"
	"github.com/baton-ml/baton/internal/store"
)

// Tuning is the sequential intervals' N* (Waudby-Smith et al.), as in the
// analysis.
const Tuning = 5000

// Data is an experiment's per-unit values of one metric, by variant: each
// unit exposed under this allocation version, with its metric events from
// its exposure on summed (0 when it has none). Events before the exposure,
// or of a unit's earlier allocation, are not the variant's doing.
func Data(ctx context.Context, st store.ExperimentStore, name string, version int, metric string, until time.Time) (map[string][]float64, error) {
	exps, err := st.Exposures(ctx, name, version)
	if err != nil {
		return nil, err
	}
	evs, err := st.MetricEvents(ctx, name, metric)
	if err != nil {
		return nil, err
	}
	return DataFrom(exps, evs, until), nil
}

// DataFrom is Data over rows already read (until zero: all of them), so a
// report over many times reads the store once.
func DataFrom(exps []store.Exposure, evs []store.MetricEvent, until time.Time) map[string][]float64 {
	since := make(map[string]time.Time, len(exps))
	for _, e := range exps {
		if until.IsZero() || !e.At.After(until) {
			since[e.Unit] = e.At
		}
	}
	sum := make(map[string]float64, len(exps))
	for _, e := range evs {
		at, ok := since[e.Unit]
		if !ok || e.At.Before(at) || !until.IsZero() && e.At.After(until) {
			continue
		}
		sum[e.Unit] += e.Value
	}
	out := map[string][]float64{}
	for _, e := range exps {
		if _, ok := since[e.Unit]; ok {
			out[e.Variant] = append(out[e.Variant], sum[e.Unit])
		}
	}
	return out
}

// Check is one guardrail's evaluation for one treatment variant.
type Check struct {
	Experiment string  `json:"experiment"`
	Metric     string  `json:"metric"`
	Variant    string  `json:"variant"`
	Control    float64 `json:"control_mean"`
	Treatment  float64 `json:"treatment_mean"`
	Low        float64 `json:"ci_low"`
	High       float64 `json:"ci_high"`
	Tolerance  float64 `json:"tolerance"`
	N          int     `json:"n"`
	Violated   bool    `json:"violated"`
}

// Evaluate checks every guardrail of a running experiment with anytime-
// valid confidence sequences on treatment − control: a guardrail is
// violated when the whole interval lies beyond the tolerated degradation
// (MaxDegradation × |control mean|) in the harmful direction. Peeking at
// every interval keeps its error rate, which is why the sequential method.
func Evaluate(ctx context.Context, st store.ExperimentStore, l Loaded, until time.Time) ([]Check, error) {
	s := l.Spec.WithDefaults()
	var out []Check
	for _, g := range s.Guardrails {
		data, err := Data(ctx, st, s.Name, l.Version, g.Metric, until)
		if err != nil {
			return nil, err
		}
		ctl := abtest.Summarize(data[s.Control])
		for _, v := range s.Variants {
			if v.Name == s.Control {
				continue
			}
			trt := abtest.Summarize(data[v.Name])
			c := Check{Experiment: s.Name, Metric: g.Metric, Variant: v.Name, Control: ctl.Mean, Treatment: trt.Mean, N: ctl.N + trt.N}
			if ctl.N < 2 || trt.N < 2 {
				c.Low, c.High = math.Inf(-1), math.Inf(1)
				out = append(out, c)
				continue
			}
			c.Low, c.High = abtest.SequentialInterval(ctl, trt, s.Alpha, Tuning)
			c.Tolerance = g.MaxDegradation * math.Abs(ctl.Mean)
			switch g.Direction {
			case "increase":
				c.Violated = c.Low > c.Tolerance
			case "decrease":
				c.Violated = c.High < -c.Tolerance
			}
			out = append(out, c)
		}
	}
	return out, nil
}

// Monitor evaluates guardrails every experiment's interval and pauses a
// harmful experiment by itself: all units get control, experiment_paused
// is published and the webhook called.
type Monitor struct {
	st      MonitorStore
	now     func() time.Time
	publish func(ctx context.Context, name, id string, params map[string]any) error
	log     *slog.Logger
	client  *http.Client

	mu   sync.Mutex
	last map[string]time.Time // this process's copy of the stored clocks
}

// MonitorStore is what the guardrail monitor needs: the experiments'
// data, and a cursor per experiment for the time it has checked up to.
type MonitorStore interface {
	store.ExperimentStore
	Cursor(ctx context.Context, name string) (int64, error)
	SetCursor(ctx context.Context, name string, v int64) error
}

// NewMonitor makes a guardrail monitor.
func NewMonitor(st MonitorStore, now func() time.Time, publish func(ctx context.Context, name, id string, params map[string]any) error, log *slog.Logger) *Monitor {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return &Monitor{st: st, now: now, publish: publish, log: log, client: &http.Client{Timeout: 5 * time.Second}, last: map[string]time.Time{}}
}

// Pause is a pause the monitor made.
type Pause struct {
	Experiment string `json:"experiment"`
	Reason     string `json:"reason"`
	Check      Check  `json:"check"`
}

// GuardrailClock names the store cursor that holds when an experiment's
// guardrails were last evaluated (Unix microseconds).
func GuardrailClock(experiment string) string { return "guardrail/" + experiment }

// Tick evaluates the experiments whose interval has passed since their
// last evaluation (a first sight only starts the clock) and pauses the
// ones that violate a guardrail.
func (m *Monitor) Tick(ctx context.Context) ([]Pause, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ls, err := Load(ctx, m.st)
	if err != nil {
		return nil, err
	}
	now := m.now()
	var pauses []Pause
	var errs []error
	for _, l := range ls {
		s := l.Spec.WithDefaults()
		if l.Status != store.ExperimentRunning || len(s.Guardrails) == 0 {
			continue
		}
		// The clock is kept in the store, so that a restart or a new
		// leader carries it on rather than starting every experiment's
		// interval over; this process reads it once, at first sight.
		key := GuardrailClock(s.Name)
		last, seen := m.last[s.Name]
		if !seen {
			at, err := m.st.Cursor(ctx, key)
			if err != nil {
				errs = append(errs, fmt.Errorf("experiment %s: guardrail clock: %w", s.Name, err))
				continue
			}
			if at == 0 {
				if err := m.st.SetCursor(ctx, key, now.UnixMicro()); err != nil {
					errs = append(errs, fmt.Errorf("experiment %s: guardrail clock: %w", s.Name, err))
					continue
				}
				m.last[s.Name] = now
				continue
			}
			last = time.UnixMicro(at)
			m.last[s.Name] = last
		}
		if now.Sub(last) < s.Interval.D() {
			continue
		}
		m.last[s.Name] = now
		checks, err := Evaluate(ctx, m.st, l, time.Time{})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		// Saved after the evaluation, so a slow write never delays a
		// pause; a failed save only brings a successor's evaluation sooner.
		if err := m.st.SetCursor(ctx, key, now.UnixMicro()); err != nil {
			errs = append(errs, fmt.Errorf("experiment %s: guardrail clock: %w", s.Name, err))
		}
		i := slices.IndexFunc(checks, func(c Check) bool { return c.Violated })
		if i < 0 {
			continue
		}
		c := checks[i]
		reason := fmt.Sprintf("guardrail %s: %s moved %+.4g (interval [%.4g, %.4g]) against control mean %.4g, beyond the tolerated %.2f%% (%.4g), over %d units",
			c.Metric, c.Variant, c.Treatment-c.Control, c.Low, c.High, c.Control, guardrailOf(s, c.Metric).MaxDegradation*100, c.Tolerance, c.N)
		if _, err := m.st.SetExperimentStatus(ctx, s.Name, []store.ExperimentStatus{store.ExperimentRunning}, store.ExperimentPaused, reason); err != nil {
			if !errors.Is(err, store.ErrConflict) {
				errs = append(errs, err)
			}
			continue
		}
		m.log.Warn("experiment paused by a guardrail", "experiment", s.Name, "reason", reason)
		params := map[string]any{"experiment": s.Name, "reason": reason}
		if m.publish != nil {
			if err := m.publish(ctx, "experiment_paused", fmt.Sprintf("experiment_paused/%s/%d", s.Name, now.Unix()), params); err != nil {
				m.log.Warn("publish experiment_paused", "err", err)
			}
		}
		if s.Webhook != "" {
			m.callWebhook(ctx, s.Webhook, map[string]any{"event": "experiment_paused", "experiment": s.Name, "reason": reason, "check": c, "at": now})
		}
		pauses = append(pauses, Pause{Experiment: s.Name, Reason: reason, Check: c})
	}
	return pauses, errors.Join(errs...)
}

func guardrailOf(s Spec, metric string) Guardrail {
	for _, g := range s.Guardrails {
		if g.Metric == metric {
			return g
		}
	}
	return Guardrail{}
}

func (m *Monitor) callWebhook(ctx context.Context, url string, body any) {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		m.log.Warn("webhook", "url", url, "err", err)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := m.client.Do(req)
	if err != nil {
		m.log.Warn("webhook", "url", url, "err", err)
		return
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		m.log.Warn("webhook", "url", url, "status", resp.Status)
	}
}
