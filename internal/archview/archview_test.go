package archview

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/catalog"
	"github.com/baton-ml/baton/internal/experiment"
	"github.com/baton-ml/baton/internal/feature"
	"github.com/baton-ml/baton/internal/monitor"
	"github.com/baton-ml/baton/internal/serve"
	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/store/sqlite"
)

const contractsYAML = `
signals:
  - name: data_landed
    params:
      table: {type: string, required: true}
      rows: {type: int}
  - name: model_trained
    params:
      model: {type: string, required: true}
  - name: orphan
`

const ingestYAML = `
name: ingest
steps:
  - name: extract
    run: echo extract
  - name: load
    needs: [extract]
    run: echo load
    retry: {attempts: 3, backoff: 1s}
    timeout: 5m
    publish: [data_landed]
`

const trainYAML = `
name: train
triggers:
  - signal: data_landed
    when: 'params.rows > 0'
steps:
  - name: build
    training_set: {labels: labels.csv, features: [plays_1h], out: train.csv}
  - name: fit
    needs: [build]
    run: echo fit
`

const reportYAML = `
name: report
triggers:
  - on_finish: {flow: train}
steps:
  - name: render
    run: echo report
`

const featuresYAML = `
entities:
  - {name: member, key: member_id}
sources:
  - name: plays
    entity: member
    timestamp: ts
    fields: {minutes: float}
features:
  - name: plays_1h
    source: plays
    aggregate: count
    window: 1h
    freshness_sla: 90s
  - name: minutes_24h
    source: plays
    aggregate: sum
    field: minutes
    window: 24h
    quality:
      - {check: not_null_rate, min: 0.5, action: block}
`

// fixture is a real SQLite store with flows, contracts, features, a model,
// an endpoint and an experiment applied through their own packages.
func fixture(t *testing.T) store.Store {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "b.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var docs []catalog.Document
	for name, y := range map[string]string{"signals.yaml": contractsYAML, "ingest.yaml": ingestYAML, "train.yaml": trainYAML, "report.yaml": reportYAML} {
		docs = append(docs, catalog.FileDocument(filepath.Join(dir, name), []byte(y)))
	}
	if _, err := catalog.Apply(ctx, st, docs); err != nil {
		t.Fatal(err)
	}
	defs, err := feature.Parse("features.yaml", []byte(featuresYAML))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := feature.Apply(ctx, st, "features.yaml", defs); err != nil {
		t.Fatal(err)
	}
	lin, _ := json.Marshal(map[string]any{"run_id": 7, "flow": "train", "flow_version": 1, "step": "fit",
		"training_set_digest": "abc123", "feature_versions": []string{"plays_1h@1"}})
	for _, mv := range []store.ModelVersion{
		{Model: "churn", Artifact: "7/fit/model.json", RunID: 7, Flow: "train", FlowVersion: 1, Lineage: lin, Metrics: map[string]float64{"auc": 0.74}},
		{Model: "churn", Artifact: "8/fit/model.json", RunID: 8},
		// churn-raw falls back to it: an endpoint's models must be registered.
		{Model: "popular", Artifact: "9/fit/model.json", RunID: 9},
	} {
		if _, err := st.CreateModelVersion(ctx, mv, "ci", "test"); err != nil {
			t.Fatal(err)
		}
	}
	// v1 reaches production without a decision record: a debt finding.
	for _, to := range []store.ModelState{store.ModelCanary, store.ModelProduction} {
		v, err := st.ModelVersion(ctx, "churn", 1)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.TransitionModel(ctx, store.ModelTransition{Model: "churn", Version: 1, From: v.State, To: to, Actor: "ada", Reason: "better auc"}, true); err != nil {
			t.Fatal(err)
		}
	}
	eps := []serve.Endpoint{
		{Name: "churn", Model: "churn", Timeout: serve.Duration(50 * time.Millisecond), MinConfidence: 0.6,
			Fallback: serve.Fallback{Static: 0.1}, Rollout: &serve.RolloutConfig{Stages: []float64{5, 100}}},
		{Name: "churn-raw", Model: "churn", Fallback: serve.Fallback{Model: "popular"}},
	}
	if _, err := serve.Apply(ctx, st, eps); err != nil {
		t.Fatal(err)
	}
	exps := []experiment.Spec{
		{Name: "guarded", Endpoint: "churn", Variants: []experiment.Variant{{Name: "a", Weight: 0.5}, {Name: "b", Weight: 0.5}},
			Guardrails: []experiment.Guardrail{{Metric: "errors", Direction: "increase", MaxDegradation: 0.01}}},
		{Name: "unguarded", Endpoint: "churn-raw", Variants: []experiment.Variant{{Name: "a", Weight: 0.5}, {Name: "b", Weight: 0.5}}},
	}
	if _, err := experiment.Apply(ctx, st, exps); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateRun(ctx, store.NewRun{Flow: "ingest", FlowVersion: 1, Trigger: store.TriggerManual}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.PublishSignal(ctx, store.Signal{ID: "s1", Name: "data_landed",
		Params: map[string]json.RawMessage{"table": json.RawMessage(`"events"`)}, Source: store.SignalSource{Kind: store.SourceExternal}}); err != nil {
		t.Fatal(err)
	}
	return st
}

func generate(t *testing.T, st store.Store) map[string]string {
	t.Helper()
	files, err := Generate(context.Background(), st, Options{}, nil, true, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, f := range files {
		out[f.Name] = f.Content
	}
	return out
}

func wantIn(t *testing.T, file, content string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(content, s) {
			t.Errorf("%s lacks %q:\n%s", file, s, content)
		}
	}
}

func TestArchviewFromStore(t *testing.T) {
	t.Parallel()
	st := fixture(t)
	got := generate(t, st)
	if len(got) != len(Views())+1 {
		t.Fatalf("got %d files, want %d", len(got), len(Views())+1)
	}
	wantIn(t, "README.md", got["README.md"], "[Pipeline view](pipeline.md)", "1970-01-01T00:00:00Z")
	wantIn(t, "pipeline.md", got["pipeline.md"],
		"## ingest (version 1)", "s_extract --> s_load", "| load | shell | extract | data_landed |", "3 attempts, backoff 1s", "| 5m0s |",
		"| signal | signal data_landed | params.rows > 0 |", "flow train succeeded", "plays_1h from labels labels.csv → train.csv")
	wantIn(t, "signals.md", got["signals.md"],
		"| `data_landed` | declared | table: string (required), rows: int | `ingest` / load | `train` (trigger) | 1 |")
	wantIn(t, "lineage.md", got["lineage.md"], "f_ingest --> sig_data_landed", "sig_data_landed -->|trigger| f_train",
		"f_train -.->|on_finish| f_report", "| ingest | 2 | train (depth 1), report (depth 2) | train: declared only; report: declared only |",
		"| train | 1 | report (depth 1) | no runs recorded |", "| report | 0 | — | no runs recorded |")
	wantIn(t, "models.md", got["models.md"], "## churn", "Served by: churn, churn-raw",
		"| 1 | production | run 7 of train v1 / fit | abc123 | plays_1h@1 | auc=0.74 |", "canary→production by ada: better auc | no |")
	wantIn(t, "boundary.md", got["boundary.md"],
		"| churn | churn | v1: production, kind not read | timeout 50ms, min_confidence 0.6 | static 0.1 | none (no version in state shadow) |",
		"| churn-raw | churn |", "timeout 100ms (default), no confidence gate | model popular@production |", "guarded (running)",
		"| train | build, fit | — | churn v1 |")
	debt := got["debt.md"]
	wantIn(t, "debt.md", debt,
		"| high | model churn v1 | production-without-decision |",
		"| high | experiment unguarded | experiment-without-guardrails |",
		"| medium | endpoint churn-raw | endpoint-without-rollout |",
		"| medium | model churn v2 | model-without-lineage |",
		"| medium | feature minutes_24h | feature-without-freshness-sla |",
		"| medium | flow train / step build | training-set-without-gates |",
		"| low | signal orphan | contract-without-publisher |",
		"| low | signal model_trained | contract-without-subscriber |")
	findings, _, _ := strings.Cut(debt, "## Rules")
	for _, not := range []string{"endpoint churn | endpoint-without-rollout", "experiment guarded", "feature plays_1h | feature-without-freshness-sla",
		"signal data_landed | contract-without", "trigger-without-contract"} {
		if strings.Contains(findings, not) {
			t.Errorf("debt.md has %q, which should not fire:\n%s", not, debt)
		}
	}
	wantIn(t, "quality.md", got["quality.md"],
		"| freshness | event source plays | events stop arriving or lag | online feature plays_1h | streaming ingest |", "feature age ≤ 1m30s",
		"model answer within 50ms, else fallback", "confidence ≥ 0.6 served, below it fallback",
		"degradation ≤ 0.01 vs control", "| reliability | task | an attempt fails | flow ingest / step load |", "attempt ≤ 5m0s")
}

// TestArchviewDeterministic checks two generations are equal but for the
// index's time, so the docs diff cleanly.
func TestArchviewDeterministic(t *testing.T) {
	t.Parallel()
	st := fixture(t)
	a, b := generate(t, st), generate(t, st)
	for name, content := range a {
		if b[name] != content {
			t.Errorf("%s differs between runs", name)
		}
	}
}

func TestSelectUnknownView(t *testing.T) {
	t.Parallel()
	_, err := Select([]string{"pipeline", "nope"})
	if err == nil || !strings.Contains(err.Error(), `"nope"`) || !strings.Contains(err.Error(), "pipeline, signals, lineage, models, boundary, debt, quality") {
		t.Fatalf("err = %v", err)
	}
	vs, err := Select([]string{"debt", "pipeline"})
	if err != nil || len(vs) != 2 || vs[0].Name != "pipeline" || vs[1].Name != "debt" {
		t.Fatalf("Select = %v, %v", vs, err)
	}
}

func TestWriteDir(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "docs", "generated")
	if err := WriteDir(dir, []File{{"a.md", "one"}, {"b.md", "two"}}); err != nil {
		t.Fatal(err)
	}
	if err := WriteDir(dir, []File{{"a.md", "three"}}); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 2 {
		t.Fatalf("entries %v: a temporary file was left behind", ents)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "a.md")); string(b) != "three" {
		t.Fatalf("a.md = %q", b)
	}
	// A file where the folder should be fails without leaving anything.
	blocked := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(blocked, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteDir(filepath.Join(blocked, "x"), []File{{"a.md", "x"}}); err == nil {
		t.Fatal("WriteDir under a file succeeded")
	}
}

// TestShadowOf: the boundary view says which versions get shadow copies,
// or why none do; before, it said "on" for every endpoint not switched
// off, with or without a version in state shadow.
func TestShadowOf(t *testing.T) {
	t.Parallel()
	off := false
	live := []VersionDef{{ModelVersion: store.ModelVersion{Version: 1, State: store.ModelProduction}}, {ModelVersion: store.ModelVersion{Version: 3, State: store.ModelShadow}}}
	for _, c := range []struct {
		e    serve.Endpoint
		live []VersionDef
		want string
	}{
		{serve.Endpoint{}, live[:1], "none (no version in state shadow)"},
		{serve.Endpoint{}, live, "copies to v3"},
		{serve.Endpoint{Shadow: &off}, live, "off (v3 in state shadow get no copies)"},
		{serve.Endpoint{Shadow: &off}, live[:1], "off"},
	} {
		if got := shadowOf(c.e, c.live); got != c.want {
			t.Errorf("%+v: %q, want %q", c.live, got, c.want)
		}
	}
}

// A declared quality scenario shows in quality.md as the server last
// measured it: before any evaluation, and after one.
func TestQualityScenariosMeasured(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := fixture(t)
	doc, err := monitor.ParseJSON([]byte(`[{"name": "qs-03", "kind": "scenario", "every": "1h",
		"scenario": {"id": "QS-03", "target": "a breach pauses within an hour", "measure": "guardrail_pause", "within": "1h"}}]`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := doc.Apply(ctx, st); err != nil {
		t.Fatal(err)
	}
	wantIn(t, "quality.md", generate(t, st)["quality.md"],
		"### Measured by the server", "| QS-03 | a breach pauses within an hour | - | not evaluated yet | - | - | qs-03 |")
	r := monitor.NewRunner(monitor.Deps{Store: st})
	at := time.Date(2027, 1, 4, 5, 0, 0, 0, time.UTC)
	if _, err := r.EvaluateDue(ctx, at); err != nil {
		t.Fatal(err)
	}
	got := generate(t, st)["quality.md"]
	wantIn(t, "quality.md", got, "| QS-03 | a breach pauses within an hour | - | none | 2027-01-04 05:00:00 |")
}

// The quality view shows what the newest result measured: the value
// (rounded) with its unit, the status, the detail and an error.
func TestQualityViewMeasuredValues(t *testing.T) {
	t.Parallel()
	m := 1.23456789
	s := &Snapshot{Scenarios: []MeasuredScenario{{Monitor: "qs-03", Spec: monitor.Scenario{ID: "QS-03", Measure: monitor.MeasureGuardrailPause, Within: monitor.Duration(time.Hour)},
		Evaluated: true, EvaluatedAt: time.Date(2027, 1, 4, 5, 0, 0, 0, time.UTC), Error: "read exposures: boom",
		Evidence: monitor.ScenarioEvidence{Status: monitor.ScenarioFail, Measured: &m, Unit: "hours", Detail: "experiment x@1: paused late"}}}}
	got := qualityView(s)
	wantIn(t, "quality.md", got, "| QS-03 | guardrail_pause within 1h | 1.235 hours | fail | 2027-01-04 05:00:00 | experiment x@1: paused late (error: read exposures: boom) | qs-03 |")
}
