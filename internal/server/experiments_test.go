package server

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/experiment"
	"github.com/baton-ml/baton/internal/serve"
	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/token"
)

// TestExperimentsEndToEnd: an experiment on a serving endpoint picks each
// unit's model version and logs its exposure; metric events come in over
// the API (bad ones rejected); a harmful treatment is paused by the
// leader's guardrail loop, which publishes experiment_paused; then every
// unit gets control.
func TestExperimentsEndToEnd(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	h.apply(t, `signals:
  - name: experiment_paused
    params:
      experiment: {type: string, required: true}
      reason: {type: string}
`)
	modelVersion(t, h, "m", `{"kind":"linear","bias":1,"weights":{"x":0}}`, store.ModelCanary, store.ModelProduction)
	modelVersion(t, h, "m", `{"kind":"linear","bias":2,"weights":{"x":0}}`)
	eps := []serve.Endpoint{{Name: "m", Model: "m", Fallback: serve.Fallback{Static: 0.0}}}
	if r := h.do(t, "POST", "/api/v1/endpoints", eps, ""); r.code != 200 {
		t.Fatalf("endpoints: %d %s", r.code, r.body)
	}
	exp := []experiment.Spec{{Name: "bias2", Endpoint: "m", Metrics: []string{"latency"},
		Variants:   []experiment.Variant{{Name: "control", Weight: 0.5, ModelVersion: 1}, {Name: "treatment", Weight: 0.5, ModelVersion: 2}},
		Guardrails: []experiment.Guardrail{{Metric: "latency", Direction: "increase"}}, Interval: experiment.Duration(200 * time.Millisecond)}}
	if r := h.do(t, "POST", "/api/v1/experiments", exp, ""); r.code != 200 {
		t.Fatalf("apply: %d %s", r.code, r.body)
	}
	bad := []experiment.Spec{{Name: "w", Variants: []experiment.Variant{{Name: "a", Weight: 0.7}, {Name: "b", Weight: 0.7}}}}
	if r := h.do(t, "POST", "/api/v1/experiments", bad, ""); r.code != 400 || !strings.Contains(string(r.body), "weights sum to 1.4") {
		t.Fatalf("bad weights: %d %s", r.code, r.body)
	}
	// Serving: the variant decides the version.
	seen := map[string]float64{}
	for i := range 200 {
		var resp serve.Response
		r := h.do(t, "POST", "/api/v1/predict/m", map[string]any{"key": fmt.Sprintf("u%d", i), "features": map[string]any{"x": 0}}, "")
		r.json(t, &resp)
		seen[resp.Experiment] = resp.Prediction.(float64)
		if want := map[string]float64{"bias2/control": 1, "bias2/treatment": 2}[resp.Experiment]; resp.Prediction != want {
			t.Fatalf("%s served %v", resp.Experiment, resp.Prediction)
		}
	}
	if len(seen) != 2 {
		t.Fatalf("arms served: %v", seen)
	}
	waitUntil(t, 5*time.Second, func() bool {
		ex, _ := h.st.Exposures(context.Background(), "bias2", 1)
		return len(ex) == 200
	}, "exposures not logged")
	// Metric events: the treatment is 2% slower; one event of an unknown
	// metric is rejected.
	ex, _ := h.st.Exposures(context.Background(), "bias2", 1)
	rng := rand.New(rand.NewPCG(1, 2))
	var evs []store.MetricEvent
	for _, e := range ex {
		for range 100 {
			v := 100 + 2*rng.NormFloat64()
			if e.Variant == "treatment" {
				v *= 1.02
			}
			evs = append(evs, store.MetricEvent{Unit: e.Unit, Metric: "latency", Value: v / 100})
		}
	}
	evs = append(evs, store.MetricEvent{Unit: "u1", Metric: "nope", Value: 1})
	r := h.do(t, "POST", "/api/v1/experiments/bias2/metrics", evs, "")
	var res experiment.IngestResult
	r.json(t, &res)
	if r.code != 200 || res.Rejected != 1 || res.Accepted != len(evs)-1 || !strings.Contains(res.Reasons[0], `no metric "nope"`) {
		t.Fatalf("metrics: %d %s", r.code, r.body)
	}
	// The rejection is counted in /metrics, by kind and reason.
	if m := h.do(t, "GET", "/metrics", nil, ""); !strings.Contains(string(m.body), `baton_experiment_events_refused_total{kind="metric",reason="unknown_metric"} 1`) {
		t.Fatalf("refusal not counted:\n%s", m.body)
	}
	if r := h.do(t, "POST", "/api/v1/experiments/nope/exposures", []store.Exposure{{Unit: "u", Variant: "a"}}, ""); r.code != 404 {
		t.Fatalf("unknown experiment: %d", r.code)
	}
	waitUntil(t, 10*time.Second, func() bool {
		sigs, _ := h.st.Signals(context.Background(), store.SignalFilter{Name: "experiment_paused"})
		return len(sigs) == 1
	}, "no pause")
	waitUntil(t, 5*time.Second, func() bool {
		var as experiment.Assignment
		r := h.do(t, "GET", "/api/v1/experiments/bias2/assign?unit=u1", nil, "")
		r.json(t, &as)
		return !as.In && as.Why == string(store.ExperimentPaused) && as.Variant == "control"
	}, "paused experiment still assigns")
	r = h.do(t, "GET", "/api/v1/experiments/bias2/report", nil, "")
	if r.code != 200 || !strings.Contains(string(r.body), `"status": "paused"`) {
		t.Fatalf("report: %d %s", r.code, r.body)
	}

	// Promotion over the API is the CLI's: a paused experiment whose
	// treatment lost is refused, and nothing moves.
	r = h.do(t, "POST", "/api/v1/experiments/bias2/promote", map[string]any{"variant": "treatment", "better": "decrease"}, "")
	if r.code != 400 || !strings.Contains(string(r.body), "paused") {
		t.Fatalf("promote a paused experiment: %d %s", r.code, r.body)
	}
	if v, _ := h.st.ModelVersion(context.Background(), "m", 2); v.State != store.ModelRegistered {
		t.Fatalf("refused promotion moved version 2 to %s", v.State)
	}
	if r := h.do(t, "POST", "/api/v1/experiments/bias2/promote", map[string]any{"variant": "treatment", "better": "up"}, ""); r.code != 400 ||
		!strings.Contains(string(r.body), "better") {
		t.Fatalf("promote with better=up: %d %s", r.code, r.body)
	}
	// Status: a viewer may not change it; a reason is required; a stopped
	// experiment stays stopped.
	viewer, vt, _ := token.New("v", store.RoleViewer)
	if err := h.st.CreateToken(context.Background(), vt); err != nil {
		t.Fatal(err)
	}
	if r := h.do(t, "POST", "/api/v1/experiments/bias2/status", map[string]any{"status": "running", "reason": "x"}, viewer); r.code != 403 {
		t.Fatalf("a viewer's status change: %d %s", r.code, r.body)
	}
	if r := h.do(t, "POST", "/api/v1/experiments/bias2/status", map[string]any{"status": "running"}, ""); r.code != 400 ||
		!strings.Contains(string(r.body), "reason") {
		t.Fatalf("no reason: %d %s", r.code, r.body)
	}
	r = h.do(t, "POST", "/api/v1/experiments/bias2/status", map[string]any{"status": "running", "reason": "latency fixed"}, "")
	var x store.Experiment
	r.json(t, &x)
	if r.code != 200 || x.Status != store.ExperimentRunning {
		t.Fatalf("resume: %d %s", r.code, r.body)
	}
	if r := h.do(t, "POST", "/api/v1/experiments/bias2/status", map[string]any{"status": "stopped", "reason": "done"}, ""); r.code != 200 {
		t.Fatalf("stop: %d %s", r.code, r.body)
	}
	if r := h.do(t, "POST", "/api/v1/experiments/bias2/status", map[string]any{"status": "running", "reason": "again"}, ""); r.code != 409 {
		t.Fatalf("resume a stopped experiment: %d %s", r.code, r.body)
	}
}

// TestGuardrailPauseServesControlAtOnce: the pass that pauses an
// experiment also stops its assignments, so no unit gets the harmful
// treatment after the pause (with the periodic judges left to Step, as
// baton demo runs the server, nothing else would refresh them).
func TestGuardrailPauseServesControlAtOnce(t *testing.T) {
	t.Parallel()
	now := time.Date(2027, 1, 4, 0, 0, 0, 0, time.UTC)
	h := newHarness(t, Options{Manual: true, Now: func() time.Time { return now }})
	ctx := context.Background()
	modelVersion(t, h, "m", `{"kind":"linear","bias":1,"weights":{"x":0}}`, store.ModelCanary, store.ModelProduction)
	modelVersion(t, h, "m", `{"kind":"linear","bias":2,"weights":{"x":0}}`)
	eps := []serve.Endpoint{{Name: "m", Model: "m", Fallback: serve.Fallback{Static: 0.0}}}
	if r := h.do(t, "POST", "/api/v1/endpoints", eps, ""); r.code != 200 {
		t.Fatalf("endpoints: %d %s", r.code, r.body)
	}
	exp := []experiment.Spec{{Name: "errs", Endpoint: "m", Metrics: []string{"errors"},
		Variants:   []experiment.Variant{{Name: "control", Weight: 0.5, ModelVersion: 1}, {Name: "treatment", Weight: 0.5, ModelVersion: 2}},
		Guardrails: []experiment.Guardrail{{Metric: "errors", Direction: "increase", MaxDegradation: 0.005}}, Interval: experiment.Duration(time.Hour)}}
	if r := h.do(t, "POST", "/api/v1/experiments", exp, ""); r.code != 200 {
		t.Fatalf("apply: %d %s", r.code, r.body)
	}
	if err := h.s.Step(ctx); err != nil {
		t.Fatal(err)
	}
	serveAll := func() map[string]int {
		arms := map[string]int{}
		for i := range 200 {
			var resp serve.Response
			h.do(t, "POST", "/api/v1/predict/m", map[string]any{"key": fmt.Sprintf("u%d", i), "features": map[string]any{"x": 0}}, "").json(t, &resp)
			arms[resp.Experiment]++
		}
		return arms
	}
	if arms := serveAll(); arms["errs/treatment"] == 0 {
		t.Fatalf("before the pause: %v", arms)
	}
	if err := h.s.Step(ctx); err != nil { // the exposures are written
		t.Fatal(err)
	}
	ex, err := h.st.Exposures(ctx, "errs", 1)
	if err != nil || len(ex) != 200 {
		t.Fatalf("%d exposures: %v", len(ex), err)
	}
	var evs []store.MetricEvent
	for _, e := range ex {
		v := 0.0
		if e.Variant == "treatment" {
			v = 1
		}
		evs = append(evs, store.MetricEvent{Unit: e.Unit, Metric: "errors", Value: v})
	}
	if r := h.do(t, "POST", "/api/v1/experiments/errs/metrics", evs, ""); r.code != 200 {
		t.Fatalf("metrics: %d %s", r.code, r.body)
	}
	now = now.Add(time.Hour)
	if err := h.s.Step(ctx); err != nil {
		t.Fatal(err)
	}
	xs, err := h.st.Experiments(ctx)
	if err != nil || len(xs) != 1 || xs[0].Status != store.ExperimentPaused {
		t.Fatalf("after the guardrail's pass: %+v %v", xs, err)
	}
	if arms := serveAll(); arms["errs/treatment"] != 0 {
		t.Fatalf("the pass that paused the experiment left it assigning: %v", arms)
	}
}
