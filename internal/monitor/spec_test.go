package monitor

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/catalog"
	"github.com/baton-ml/baton/internal/fault"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/store"
)

func wantProblems(t *testing.T, err error, want ...string) {
	t.Helper()
	var fe flow.Errors
	if !errors.As(err, &fe) {
		t.Fatalf("want flow.Errors, got %T %v", err, err)
	}
	if !errors.Is(err, fault.Invalid) {
		t.Fatalf("not an invalid input: %v", err)
	}
	if len(fe) != len(want) {
		t.Fatalf("want %d problems, got %d:\n%v", len(want), len(fe), err)
	}
	for i, w := range want {
		if !strings.Contains(fe[i].Error(), w) {
			t.Errorf("problem %d: %q does not contain %q", i, fe[i].Error(), w)
		}
	}
}

func writeFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "monitors.yaml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// A file's own problems, all at once, each as file:line:column: field.
func TestFileProblemsNameLineAndField(t *testing.T) {
	t.Parallel()
	p := writeFile(t, `monitors:
  - name: a
    kind: feature_drift
    features: [minutes_24h, minutes_24h]
    reference: {model: m, artifact: 1/a/b}
    psi_max: -1
    endpoint: home
    evry: 1d
  - name: b
    kind: drift
  - name: c
    kind: online_quality
    numerator: {source: plays}
    min_relative: 0.9
    every: soon
  - name: d
    kind: responsible_ai
    endpoint: home
    window: 30d
    diversity: {min: 1.5}
  - name: a
    kind: prediction_drift
    endpoint: home
    publish: Drift!
`)
	doc, err := ReadFile(p)
	if doc == nil {
		t.Fatalf("no document: %v", err)
	}
	wantProblems(t, err,
		p+":4:29: monitors[0].features[1]: feature \"minutes_24h\" is listed twice",
		p+":5:5: monitors[0].reference: give either model (and optionally version) or artifact",
		p+":6:14: monitors[0].psi_max: -1: must be positive",
		p+":7:15: monitors[0].endpoint: is a field of prediction_drift and responsible_ai monitors, not of feature_drift",
		p+":8:5: monitors[0].evry: unknown field \"evry\"",
		p+":10:11: monitors[1].kind: \"drift\": one of feature_drift, prediction_drift, online_quality, responsible_ai, scenario",
		p+":11:5: monitors[2].denominator: say what the numerator is divided by",
		p+":11:5: monitors[2].by: a relative threshold compares groups",
		p+":15:12: monitors[2].every: not a duration",
		p+":19:13: monitors[3].window: 30d: the served pages are kept in hourly slots for a week",
		p+":20:22: monitors[3].diversity.min: 1.5: a share in [0, 1]",
		p+":21:11: monitors[4].name: monitor \"a\" is declared twice",
		p+":24:14: monitors[4].publish: \"Drift!\" is not a signal name",
	)
}

// A scenario monitor's problems name the field under scenario.
func TestScenarioProblems(t *testing.T) {
	t.Parallel()
	p := writeFile(t, `monitors:
  - name: a
    kind: scenario
    scenario:
      id: "QS 01"
      measure: retrain_after
      window: 7d
      change: {signal: data_landed, when: 'params.table ==', param: rows}
      response: {signal: model_trained, param: x}
      engagement: {numerator: {source: plays}, denominator: {source: impressions}}
  - name: b
    kind: scenario
    scenario: {id: QS-03, measure: guardrail_pause, within: 1h, window: 1d}
  - name: c
    kind: scenario
    scenario: {id: QS-01, measure: new_group_quality, within: 30d, quality: {numerator: {source: plays}, denominator: {source: plays}, min_relative: 0.9}}
  - name: d
    kind: scenario
    publish: drift_detected
    psi_max: 0.2
    scenario: {id: QS-04, measure: magic, within: 1d}
`)
	_, err := ReadFile(p)
	wantProblems(t, err,
		p+`:4:5: monitors[0].scenario.within: give the response's deadline`,
		p+`:5:11: monitors[0].scenario.id: "QS 01": a short name such as QS-01`,
		p+`:8:7: monitors[0].scenario.change.min_increase: 0: how much the param must grow`,
		p+`:8:43: monitors[0].scenario.change.when: CEL "params.table ==" does not compile`,
		p+`:9:7: monitors[0].scenario.response: a response is a signal and its when`,
		p+`:10:7: monitors[0].scenario.engagement.min_relative: give the share to reach (0.95 of the window before the change)`,
		p+`:13:73: monitors[1].scenario.window: is not a field of the guardrail_pause measure`,
		p+`:16:68: monitors[2].scenario.quality.by: a relative threshold compares groups`,
		p+`:20:14: monitors[3].psi_max: is a field of feature_drift and prediction_drift monitors, not of scenario`,
		p+`:21:36: monitors[3].scenario.measure: "magic": one of new_group_quality, retrain_after, guardrail_pause`,
	)
}

// Against the store: every name that is not there is a problem naming
// what is, and nothing is stored.
func TestApplyChecksWhatMonitorsName(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.model(t, "rec-home", "x\n1\n")
	e.endpoint(t, "churn", "rec-home", false)
	p := writeFile(t, `monitors:
  - name: a
    kind: feature_drift
    features: [minutes_24, plays_24h]
    reference: {model: rec-hom}
  - name: b
    kind: responsible_ai
    endpoint: churn
    diversity: {min: 0.5}
    market_quality:
      numerator: {source: plays, field: market}
      denominator: {source: impression}
      by: country
      min_relative: 0.9
  - name: c
    kind: prediction_drift
    endpoint: hom
    publish: model_trained
  - name: d
    kind: feature_drift
    features: [minutes_24h]
    reference: {artifact: 9/build/train.csv}
`)
	doc, err := ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	_, err = doc.Apply(context.Background(), e.st)
	wantProblems(t, err,
		p+`:4:16: monitors[0].features[0]: feature "minutes_24" is not in the feature catalog (features: last_title, minutes_24h, plays_24h); did you mean "minutes_24h"?`,
		p+`:5:24: monitors[0].reference.model: model "rec-hom" is not in the registry (registered: rec-home); did you mean "rec-home"?`,
		p+`:8:15: monitors[1].endpoint: endpoint churn is of kind predict: this monitor reads the pages of a recommend endpoint`,
		p+`:11:41: monitors[1].market_quality.numerator.field: field market of source plays is a string: a sum needs numbers`,
		p+`:12:29: monitors[1].market_quality.denominator.source: source "impression" is not in the feature catalog`,
		p+`:13:11: monitors[1].market_quality.by: source plays (the numerator) has no field "country" to group by`,
		p+`:17:15: monitors[2].endpoint: endpoint "hom" is not applied (endpoints: churn)`,
		p+`:18:14: monitors[2].publish: signal model_trained: no contract declares it`,
		p+`:22:27: monitors[3].reference.artifact: 9/build/train.csv:`,
	)
	if ms, _ := e.st.Monitors(context.Background()); len(ms) != 0 {
		t.Fatalf("a refused file stored %d monitors", len(ms))
	}
}

// A contract the breach's params would break is refused at apply, not
// discovered at the first breach.
func TestApplyRefusesAContractTheSignalWouldBreak(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if _, err := catalog.Apply(context.Background(), e.st, []catalog.Document{{Path: "s.yaml", Data: []byte(`signals:
  - name: drift_small
    params:
      monitor: {type: string, required: true}
      value: {type: int}
`)}}); err != nil {
		t.Fatal(err)
	}
	p := writeFile(t, "monitors:\n  - {name: q, kind: online_quality, numerator: {source: plays}, denominator: {source: plays}, min: 1, publish: drift_small}\n")
	doc, _ := ReadFile(p)
	_, err := doc.Apply(context.Background(), e.st)
	if err == nil || !strings.Contains(err.Error(), "monitors[0].publish: signal drift_small: param check: is not in the contract") ||
		!strings.Contains(err.Error(), "param evidence: is not in the contract") {
		t.Fatalf("%v", err)
	}
}

// Applying a file again changes nothing; a change is one.
func TestApplyUnchangedIsANoOp(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.model(t, "rec-home", "x\n1\n")
	if out := e.apply(t, featureDriftYAML); len(out) != 1 || !out[0].Changed || out[0].Kind != KindFeatureDrift {
		t.Fatalf("%+v", out)
	}
	before, _ := e.st.Monitors(context.Background())
	if out := e.apply(t, featureDriftYAML); out[0].Changed {
		t.Fatalf("unchanged file: %+v", out)
	}
	after, _ := e.st.Monitors(context.Background())
	if !after[0].UpdatedAt.Equal(before[0].UpdatedAt) {
		t.Fatal("an unchanged apply wrote the monitor")
	}
	if out := e.apply(t, strings.Replace(featureDriftYAML, "psi_max: 0.2", "psi_max: 0.25", 1)); !out[0].Changed {
		t.Fatalf("changed file: %+v", out)
	}
	s, err := Find(context.Background(), e.st, "member-drift")
	if err != nil || *s.PSIMax != 0.25 || s.Reference.Version != "production" || s.MinSamples != DefaultMinSamples {
		t.Fatalf("%+v %v", s, err)
	}
	if _, err := Find(context.Background(), e.st, "member-drfit"); !errors.Is(err, fault.NotFound) || !strings.Contains(err.Error(), `did you mean "member-drift"`) {
		t.Fatalf("%v", err)
	}
}

// An API body's problems name the JSON field and where it is.
func TestParseJSONNamesTheField(t *testing.T) {
	t.Parallel()
	_, err := ParseJSON([]byte(`[{"name": "x", "kind": "online_quality", "numerator": {"source": "plays"}, "denominator": {"source": "plays"}, "min": "low"}]`))
	wantProblems(t, err, `body:1:119: [0].min: want a number, not the string "low"`)
	_, err = ParseJSON([]byte(`[]`))
	if err == nil || !strings.Contains(err.Error(), "no monitors") {
		t.Fatalf("%v", err)
	}
}

// FuzzMonitorsFile: any document is monitors or problems, never a panic;
// what parses without problems writes JSON that parses back the same.
func FuzzMonitorsFile(f *testing.F) {
	f.Add([]byte(featureDriftYAML))
	f.Add([]byte(qualityYAML))
	f.Add([]byte(responsibleYAML))
	f.Add([]byte(predictionDriftYAML))
	f.Add([]byte("monitors:\n  - &a {name: x, kind: responsible_ai}\n  - *a\n"))
	f.Add([]byte(`[{"name": "x", "kind": "online_quality", "numerator": {"source": "p"}, "denominator": {"source": "p"}, "min": 1e400}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, parse := range []func([]byte) (*Doc, error){ParseJSON, func(b []byte) (*Doc, error) {
			a, err := flow.ParseApplied[Spec](b, "monitor", "monitors")
			if a == nil {
				return nil, err
			}
			return &Doc{a}, err
		}} {
			doc, err := parse(b)
			if err == nil && doc == nil {
				t.Fatal("no document and no error")
			}
			var fe flow.Errors
			if err != nil && !errors.As(err, &fe) {
				t.Fatalf("untyped error %T %v", err, err)
			}
			if err != nil {
				continue
			}
			for _, s := range doc.Items {
				_, js, err := s.Digest()
				if err != nil {
					t.Fatal(err)
				}
				back, err := ParseJSON([]byte("[" + string(js) + "]"))
				if err != nil {
					t.Fatalf("%s does not parse back: %v", js, err)
				}
				if _, js2, _ := back.Items[0].Digest(); string(js2) != string(js) {
					t.Fatalf("%s came back as %s", js, js2)
				}
			}
		}
	})
}

// One result per slot of every, whoever asks: a second pass in the same
// day, a restarted runner or another leader evaluates nothing; the next
// day's slot is due; a manual evaluation takes no slot.
func TestEvaluateDueOncePerSlot(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.apply(t, qualityYAML)
	ctx := context.Background()
	e.ingest(t, "plays", completion("US", 60, 30, t0.Add(time.Hour), 0))
	first, err := e.r.EvaluateDue(ctx, t0.Add(90*time.Minute))
	if err != nil || len(first) != 3 || !first[0].DueAt.Equal(t0) {
		t.Fatalf("%+v %v", first, err)
	}
	for _, r := range []*Runner{e.r, e.runner()} {
		if again, err := r.EvaluateDue(ctx, t0.Add(23*time.Hour)); err != nil || len(again) != 0 {
			t.Fatalf("the same day again: %+v %v", again, err)
		}
	}
	manual, err := e.r.Evaluate(ctx, "click-through", t0.Add(2*time.Hour))
	if err != nil || manual.Trigger != store.MonitorManual || !manual.DueAt.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("manual: %+v %v", manual, err)
	}
	next, err := e.runner().EvaluateDue(ctx, t0.Add(24*time.Hour))
	if err != nil || len(next) != 3 || !next[0].DueAt.Equal(t0.Add(24*time.Hour)) || next[0].Monitor != "click-through" {
		t.Fatalf("next day: %+v %v", next, err)
	}
	rs, err := Results(ctx, e.st, "click-through", 0)
	if err != nil || len(rs) != 3 || rs[0].ID != next[0].ID || rs[1].Trigger != store.MonitorManual || rs[2].ID != first[0].ID {
		t.Fatalf("results: %+v %v", rs, err)
	}
	if _, err := e.r.Evaluate(ctx, "nope", t0); !errors.Is(err, fault.NotFound) {
		t.Fatalf("unknown monitor: %v", err)
	}
}

// A breach whose signal the contract refuses (it changed since the apply)
// is stored with the error and counted, never dropped; the breach is
// counted too.
func TestRefusedSignalIsStoredAndCounted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rng := rand.New(rand.NewPCG(5, 5))
	e.model(t, "rec-home", trainingSet(rng, 500))
	e.apply(t, featureDriftYAML)
	if _, err := catalog.Apply(context.Background(), e.st, []catalog.Document{{Path: "s.yaml", Data: []byte(
		strings.Replace(docsContract(t), "      evidence: {type: json}\n", "", 1))}}); err != nil {
		t.Fatal(err)
	}
	e.ingest(t, "plays", plays(rng, 300, t0.Add(time.Hour), 200, 50))
	r := e.evaluate(t, t0.Add(2*time.Hour))
	if !r.Breached || r.Signal != "" || !strings.Contains(r.Error, "publish drift_detected: signal drift_detected: param evidence: is not in the contract") {
		t.Fatalf("%+v", r)
	}
	stored, _ := Results(context.Background(), e.st, "member-drift", 1)
	if stored[0].Error != r.Error || !stored[0].Breached {
		t.Fatalf("stored: %+v", stored[0])
	}
	if n := e.metric(t, "baton_monitor_errors_total", "member-drift", "publish"); n != 1 {
		t.Fatalf("publish errors counted %g", n)
	}
	if n := e.metric(t, "baton_monitor_breaches_total", "member-drift"); n != 1 {
		t.Fatalf("breaches counted %g", n)
	}
	if v := e.metric(t, "baton_monitor_value", "member-drift", "psi/minutes_24h"); v <= 0.2 {
		t.Fatalf("gauge %g", v)
	}
	if len(e.pub.sigs) != 0 {
		t.Fatalf("published: %+v", e.pub.sigs)
	}
	// The contract is mended: the breach that goes on was never said, so
	// the next slot says it; the slot after only repeats it (stored so).
	if _, err := catalog.Apply(context.Background(), e.st, []catalog.Document{{Path: "s.yaml", Data: []byte(docsContract(t))}}); err != nil {
		t.Fatal(err)
	}
	e.ingest(t, "plays", plays(rng, 300, t0.Add(25*time.Hour), 200, 50))
	r = e.evaluate(t, t0.Add(26*time.Hour))
	if !r.Breached || r.Repeated || r.Signal != "monitor/member-drift/2026-11-29T00:00:00Z" || r.Error != "" || len(e.pub.sigs) != 1 {
		t.Fatalf("the mended contract: %+v", r)
	}
	e.ingest(t, "plays", plays(rng, 300, t0.Add(49*time.Hour), 200, 50))
	r = e.evaluate(t, t0.Add(50*time.Hour))
	if !r.Breached || !r.Repeated || r.Signal != "" || len(e.pub.sigs) != 1 {
		t.Fatalf("a lasting breach: %+v", r)
	}
	if stored, _ := Results(context.Background(), e.st, "member-drift", 1); !stored[0].Repeated {
		t.Fatalf("stored: %+v", stored[0])
	}
}
