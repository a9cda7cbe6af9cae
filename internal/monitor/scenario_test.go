package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/catalog"
	"github.com/baton-ml/baton/internal/experiment"
	"github.com/baton-ml/baton/internal/store"
)

func scenarioOf(t testing.TB, r Result) ScenarioEvidence {
	t.Helper()
	var ev ScenarioEvidence
	if err := json.Unmarshal(r.Evidence, &ev); err != nil {
		t.Fatalf("evidence: %v\n%s", err, r.Evidence)
	}
	if r.Error != "" {
		t.Fatalf("evaluation error: %s", r.Error)
	}
	return ev
}

// marketPlays are n members' plays in market at time at, a share of them
// completed.
func marketPlays(market string, n int, at time.Time, completed float64) []string {
	var out []string
	for i := range n {
		c := 0
		if float64(i) < completed*float64(n) {
			c = 1
		}
		out = append(out, fmt.Sprintf(`{"member_id":"%s%d","ts":%q,"title_id":"t1","market":%q,"minutes":30,"completed":%d}`,
			strings.ToLower(market), i, at.Format(time.RFC3339), market, c))
	}
	return out
}

const newMarketYAML = `monitors:
  - name: qs-01
    kind: scenario
    every: 1d
    scenario:
      id: QS-01
      target: a new market within 90% of the global completion rate within 10 days
      measure: new_group_quality
      within: 10d
      window: 3d
      quality:
        numerator: {source: plays, field: completed}
        denominator: {source: plays}
        by: market
        min_relative: 0.9
        min_events: 20
`

// A market that appears after the monitor started is measured against
// the global rate: pending while below the target and within its
// deadline, pass once it reaches it. Markets there at the start, or
// within a window of the first event (a platform that starts empty), are
// not measured.
func TestScenarioNewMarket(t *testing.T) {
	e := newEnv(t)
	e.apply(t, newMarketYAML)
	day := func(d int) time.Time { return t0.Add(time.Duration(d) * 24 * time.Hour) }
	e.ingest(t, "plays", marketPlays("US", 100, day(0).Add(time.Hour), 0.6))
	r := e.evaluate(t, day(1))
	ev := scenarioOf(t, r)
	if ev.Status != ScenarioNone || len(ev.Cases) != 0 || !strings.Contains(ev.Detail, "established: US") {
		t.Fatalf("before any launch: %+v", ev)
	}
	// GB comes a day after the first event: part of the start.
	for d := 1; d < 4; d++ {
		e.ingest(t, "plays", append(marketPlays("US", 100, day(d).Add(time.Hour), 0.6), marketPlays("GB", 100, day(d).Add(time.Hour), 0.6)...))
	}
	ev = scenarioOf(t, e.evaluate(t, day(4)))
	if ev.Status != ScenarioNone || !strings.Contains(ev.Detail, "established: GB, US") {
		t.Fatalf("a market of the first days: %+v", ev)
	}
	// JP opens on day 4 at half the global rate.
	for d := 4; d < 7; d++ {
		e.ingest(t, "plays", append(marketPlays("US", 100, day(d).Add(time.Hour), 0.6), marketPlays("JP", 50, day(d).Add(2*time.Hour), 0.3)...))
	}
	ev = scenarioOf(t, e.evaluate(t, day(7)))
	if ev.Status != ScenarioPending || len(ev.Cases) != 1 || ev.Cases[0].Subject != "market JP" {
		t.Fatalf("a launch below target within its deadline: %+v", ev)
	}
	// 0.3 against a global (60+15)/150 = 0.5: 0.6.
	if m := *ev.Measured; m < 0.59 || m > 0.61 {
		t.Fatalf("measured %g, want 0.6", m)
	}
	if !ev.Cases[0].Stimulus.Equal(day(4).Add(2 * time.Hour)) {
		t.Fatalf("launch at %s, want its first event", ev.Cases[0].Stimulus)
	}
	// From day 7 JP completes as often as US: the window of the last 3
	// days reaches the target.
	for d := 7; d < 10; d++ {
		e.ingest(t, "plays", append(marketPlays("US", 100, day(d).Add(time.Hour), 0.6), marketPlays("JP", 50, day(d).Add(2*time.Hour), 0.6)...))
	}
	r = e.evaluate(t, day(10))
	ev = scenarioOf(t, r)
	if ev.Status != ScenarioPass || *ev.Measured < 0.99 || r.Breached || !r.Checks[0].Judged {
		t.Fatalf("the launch reached its target: %+v %+v", ev, r.Checks)
	}
	if c := check(t, r, "QS-01"); c.Min == nil || *c.Min != 0.9 {
		t.Fatalf("check: %+v", c)
	}
	// Once reached it stays passed, whatever comes after.
	e.ingest(t, "plays", append(marketPlays("US", 100, day(10).Add(time.Hour), 0.6), marketPlays("JP", 50, day(10).Add(2*time.Hour), 0)...))
	if ev = scenarioOf(t, e.evaluate(t, day(11))); ev.Status != ScenarioPass {
		t.Fatalf("after reaching its target: %+v", ev)
	}
}

// A new market still below target at its deadline fails, and the check
// is breached.
func TestScenarioNewMarketMissesDeadline(t *testing.T) {
	e := newEnv(t)
	e.apply(t, newMarketYAML)
	day := func(d int) time.Time { return t0.Add(time.Duration(d) * 24 * time.Hour) }
	e.ingest(t, "plays", marketPlays("US", 100, day(0).Add(time.Hour), 0.6))
	e.evaluate(t, day(1))
	for d := 1; d < 17; d++ {
		pl := marketPlays("US", 100, day(d).Add(time.Hour), 0.6)
		if d >= 4 {
			pl = append(pl, marketPlays("BR", 50, day(d).Add(2*time.Hour), 0.3)...)
		}
		e.ingest(t, "plays", pl)
	}
	r := e.evaluate(t, day(17))
	ev := scenarioOf(t, r)
	if ev.Status != ScenarioFail || !r.Breached || !strings.Contains(ev.Detail, "market BR") {
		t.Fatalf("a launch below target past its deadline: %+v", ev)
	}
	// Measured over the window that ends at the deadline, not now.
	if !strings.Contains(ev.Cases[0].Detail, "to "+day(14).Add(2*time.Hour).Format(time.DateTime)) {
		t.Fatalf("window: %s", ev.Cases[0].Detail)
	}
}

const retrainSignals = `signals:
  - name: data_landed
    params:
      table: {type: string, required: true}
      date: {type: string, required: true}
      rows: {type: int, required: true}
  - name: model_trained
    params:
      model: {type: string, required: true}
`

const retrainYAML = `monitors:
  - name: qs-02
    kind: scenario
    every: 1h
    scenario:
      id: QS-02
      measure: retrain_after
      within: 5d
      window: 2d
      change: {signal: data_landed, when: 'params.table == "catalog"', param: rows, min_increase: 100}
      response: {signal: model_trained, when: 'params.model == "rec"'}
      engagement:
        numerator: {source: plays}
        denominator: {source: impressions}
        min_relative: 0.95
        min_events: 10
`

func impressions(n int, at time.Time) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf(`{"member_id":"m%d","ts":%q,"market":"US","items":10}`, i, at.Format(time.RFC3339)))
	}
	return out
}

// A catalog that grows by 100 rows or more is a change; the next
// rec model_trained after it is the response; engagement (plays per
// impression) after the change is measured against the window before.
func TestScenarioRetrainAfter(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := catalog.Apply(ctx, e.st, []catalog.Document{{Path: "signals.yaml", Data: []byte(retrainSignals)}}); err != nil {
		t.Fatal(err)
	}
	e.apply(t, retrainYAML)
	n := 0
	publish := func(name string, params map[string]any) {
		n++
		p := map[string]json.RawMessage{}
		for k, v := range params {
			p[k], _ = json.Marshal(v)
		}
		if _, _, err := e.st.PublishSignal(ctx, store.Signal{ID: fmt.Sprintf("s%d", n), Name: name, Params: p, Source: store.SignalSource{Kind: "api"}}); err != nil {
			t.Fatal(err)
		}
	}
	hour := func(h int) time.Time { return t0.Add(time.Duration(h) * time.Hour) }
	for d := range 6 {
		e.ingest(t, "impressions", impressions(20, hour(24*d+1)))
		e.ingest(t, "plays", plays(rand.New(rand.NewPCG(uint64(d), 1)), 40, hour(24*d+1), 30, 0))
	}
	// History: the catalog before the monitor's first evaluation is not a
	// change.
	publish("data_landed", map[string]any{"table": "catalog", "date": "d0", "rows": 300})
	ev := scenarioOf(t, e.evaluate(t, hour(2*24)))
	if ev.Status != ScenarioNone || ev.State.Last == nil || *ev.State.Last != 300 {
		t.Fatalf("history: %+v", ev)
	}
	// A small growth, another table, a model of another name: nothing.
	publish("data_landed", map[string]any{"table": "catalog", "date": "d1", "rows": 350})
	publish("data_landed", map[string]any{"table": "interactions", "date": "d1", "rows": 5000})
	publish("model_trained", map[string]any{"model": "rec"})
	ev = scenarioOf(t, e.evaluate(t, hour(2*24+1)))
	if ev.Status != ScenarioNone {
		t.Fatalf("no change yet: %+v", ev)
	}
	// The expansion: +500 over the last (350).
	publish("data_landed", map[string]any{"table": "catalog", "date": "d2", "rows": 850})
	publish("model_trained", map[string]any{"model": "other"})
	ev = scenarioOf(t, e.evaluate(t, hour(2*24+2)))
	if ev.Status != ScenarioPending || len(ev.Cases) != 1 || !strings.Contains(ev.Cases[0].Subject, "350 → 850") {
		t.Fatalf("a change waiting for its response: %+v", ev)
	}
	if !ev.Cases[0].Stimulus.Equal(hour(2*24 + 2)) {
		t.Fatalf("the change counts from the evaluation that saw it: %s", ev.Cases[0].Stimulus)
	}
	// Engagement after: a day with as many plays per impression.
	publish("model_trained", map[string]any{"model": "rec"})
	r := e.evaluate(t, hour(3*24+5))
	ev = scenarioOf(t, r)
	c := ev.Cases[0]
	if c.Response == nil || !c.Response.Equal(hour(3*24+5)) {
		t.Fatalf("response: %+v", c)
	}
	if ev.Status != ScenarioPass || ev.Measured == nil || *ev.Measured < 0.99 || *ev.Measured > 1.01 {
		t.Fatalf("retrained, engagement kept: %+v", ev)
	}
}

// With no response by the deadline the scenario fails.
func TestScenarioRetrainAfterMissed(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := catalog.Apply(ctx, e.st, []catalog.Document{{Path: "signals.yaml", Data: []byte(retrainSignals)}}); err != nil {
		t.Fatal(err)
	}
	e.apply(t, retrainYAML)
	pub := func(id string, rows int) {
		p := map[string]json.RawMessage{"table": json.RawMessage(`"catalog"`), "date": json.RawMessage(`"d"`), "rows": json.RawMessage(fmt.Sprint(rows))}
		if _, _, err := e.st.PublishSignal(ctx, store.Signal{ID: id, Name: "data_landed", Params: p, Source: store.SignalSource{Kind: "api"}}); err != nil {
			t.Fatal(err)
		}
	}
	pub("a", 100)
	e.evaluate(t, t0)
	pub("b", 1000)
	e.evaluate(t, t0.Add(time.Hour))
	r := e.evaluate(t, t0.Add(6*24*time.Hour))
	ev := scenarioOf(t, r)
	if ev.Status != ScenarioFail || !r.Breached || !strings.Contains(ev.Detail, "no model_trained within 5d") {
		t.Fatalf("missed deadline: %+v", ev)
	}
}

// A treatment whose errors rise is breached from the first time its mean
// per exposed unit exceeds control's by more than the tolerance, with 20
// units a side (units without a metric event yet count as 0, as in the
// guardrail's analysis): here at 1:00, when the second hour's units come.
// A pause seen at 2:00 answers within the hour's target; one seen at 2:30
// does not, and before it the scenario is pending, then failed at 2:00.
func TestScenarioGuardrailPause(t *testing.T) {
	hour := func(h float64) time.Time { return t0.Add(time.Duration(h * float64(time.Hour))) }
	setup := func(t *testing.T) *env {
		e := newEnv(t)
		ctx := context.Background()
		e.apply(t, `monitors:
  - name: qs-03
    kind: scenario
    every: 30m
    scenario: {id: QS-03, measure: guardrail_pause, within: 1h}
`)
		spec := experiment.Spec{Name: "x", Metrics: []string{"plays"},
			Variants:   []experiment.Variant{{Name: "control", Weight: 0.5}, {Name: "treatment", Weight: 0.5}},
			Guardrails: []experiment.Guardrail{{Metric: "errors", Direction: "increase"}}}
		if _, err := experiment.Apply(ctx, e.st, []experiment.Spec{spec}); err != nil {
			t.Fatal(err)
		}
		var ex []store.Exposure
		var ms []store.MetricEvent
		for i := range 30 {
			for _, v := range []string{"control", "treatment"} {
				u := fmt.Sprintf("%s-%d", v, i)
				at := hour(0)
				if i >= 15 {
					at = hour(1) // half the units come in the second hour
				}
				ex = append(ex, store.Exposure{Experiment: "x", Version: 1, Unit: u, Variant: v, At: at})
				bad := 0.0
				if v == "treatment" && i%3 == 0 {
					bad = 1
				}
				ms = append(ms, store.MetricEvent{Experiment: "x", Unit: u, Metric: "errors", Value: bad, At: at.Add(10 * time.Minute)})
			}
		}
		if _, err := e.st.AddExposures(ctx, ex); err != nil {
			t.Fatal(err)
		}
		if err := e.st.AddMetricEvents(ctx, ms); err != nil {
			t.Fatal(err)
		}
		ev := scenarioOf(t, e.evaluate(t, hour(1.5)))
		if ev.Status != ScenarioPending || len(ev.Cases) != 1 || !ev.Cases[0].Stimulus.Equal(hour(1)) || *ev.Measured != 0.5 {
			t.Fatalf("breached, not paused yet: %+v", ev)
		}
		return e
	}
	pause := func(t *testing.T, e *env) {
		if _, err := e.st.SetExperimentStatus(context.Background(), "x", []store.ExperimentStatus{store.ExperimentRunning}, store.ExperimentPaused, "guardrail errors"); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("in time", func(t *testing.T) {
		e := setup(t)
		pause(t, e)
		r := e.evaluate(t, hour(2))
		ev := scenarioOf(t, r)
		if ev.Status != ScenarioPass || *ev.Measured != 1 || r.Breached || !r.Checks[0].Judged {
			t.Fatalf("paused an hour after the breach: %+v", ev)
		}
		// Later data cannot move the breach: it is kept.
		ev = scenarioOf(t, e.evaluate(t, hour(3)))
		if ev.Status != ScenarioPass || *ev.Measured != 1 {
			t.Fatalf("an hour on: %+v", ev)
		}
	})
	t.Run("late", func(t *testing.T) {
		e := setup(t)
		r := e.evaluate(t, hour(2))
		if ev := scenarioOf(t, r); ev.Status != ScenarioFail || !r.Breached || !strings.Contains(ev.Detail, "not paused after 1.00 h") {
			t.Fatalf("deadline passed without a pause: %+v", ev)
		}
		pause(t, e)
		r = e.evaluate(t, hour(2.5))
		ev := scenarioOf(t, r)
		if ev.Status != ScenarioFail || *ev.Measured != 1.5 || !r.Breached {
			t.Fatalf("paused 1.5 h after the breach: %+v", ev)
		}
	})
}

// A small excess on one guardrail is a real breach only at the alpha its
// experiment's guardrails share: 9 cancellations in 700 treated units
// against 3 in 700 (one-sided z about 1.8) is one with a single
// guardrail, and chance with three (Bonferroni: z above 2.13 needed).
func TestScenarioGuardrailBreachSharesAlpha(t *testing.T) {
	for _, c := range []struct {
		guardrails []string
		want       int
	}{{[]string{"cancellations"}, 1}, {[]string{"cancellations", "errors", "contacts"}, 0}} {
		e := newEnv(t)
		ctx := context.Background()
		e.apply(t, `monitors:
  - name: qs-03
    kind: scenario
    every: 1h
    scenario: {id: QS-03, measure: guardrail_pause, within: 1h}
`)
		spec := experiment.Spec{Name: "x", Metrics: []string{"plays"},
			Variants: []experiment.Variant{{Name: "control", Weight: 0.5}, {Name: "treatment", Weight: 0.5}}}
		for _, g := range c.guardrails {
			spec.Guardrails = append(spec.Guardrails, experiment.Guardrail{Metric: g, Direction: "increase"})
		}
		if _, err := experiment.Apply(ctx, e.st, []experiment.Spec{spec}); err != nil {
			t.Fatal(err)
		}
		var ex []store.Exposure
		var ms []store.MetricEvent
		for i := range 700 {
			for v, bad := range map[string]int{"control": 3, "treatment": 9} {
				u := fmt.Sprintf("%s-%d", v, i)
				ex = append(ex, store.Exposure{Experiment: "x", Version: 1, Unit: u, Variant: v, At: t0})
				if i < bad {
					ms = append(ms, store.MetricEvent{Experiment: "x", Unit: u, Metric: "cancellations", Value: 1, At: t0.Add(time.Minute)})
				}
			}
		}
		if _, err := e.st.AddExposures(ctx, ex); err != nil {
			t.Fatal(err)
		}
		if err := e.st.AddMetricEvents(ctx, ms); err != nil {
			t.Fatal(err)
		}
		if _, err := e.st.SetExperimentStatus(ctx, "x", []store.ExperimentStatus{store.ExperimentRunning}, store.ExperimentStopped, "done"); err != nil {
			t.Fatal(err)
		}
		ev := scenarioOf(t, e.evaluate(t, t0.Add(time.Hour)))
		if len(ev.Cases) != c.want {
			t.Fatalf("%d guardrails: %d cases, want %d: %+v", len(c.guardrails), len(ev.Cases), c.want, ev)
		}
	}
}
