package experiment

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/store"
)

func wantProblems(t *testing.T, err error, want ...string) {
	t.Helper()
	var fe flow.Errors
	if !errors.As(err, &fe) {
		t.Fatalf("want flow.Errors, got %T %v", err, err)
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

// TestFileProblemsAllAtOnce: every problem of an experiments file at
// once, each as file:line:column: field.
func TestFileProblemsAllAtOnce(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "experiments.yaml")
	if err := os.WriteFile(p, []byte(`experiments:
  - name: ranker
    trafic: 0.5
    interval: often
    variants:
      - {name: control, weight: 0.5}
      - {name: treatment, weight: 0.6}
  - name: other
    variants:
      - {name: control, weight: 0.5, model_version: two}
      - {name: treatment, weight: 0.5}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadFile(p)
	wantProblems(t, err,
		p+`:3:5: experiments[0].trafic: unknown field "trafic"`,
		p+`:4:15: experiments[0].interval: not a duration such as 500ms, 90s, 5m, 1h or 7d (got "often")`,
		p+`:5:5: experiments[0].variants: the weights sum to 1.1, not 1`,
		p+`:10:53: experiments[1].variants[0].model_version: want a whole number, not the string "two"`)
}

// TestReferencesCheckedAtApply: an experiment naming an endpoint that is
// not applied, or a version its model lacks, is refused at apply (from a
// file and from an API body, whose problems name the JSON field), and
// nothing is stored.
func TestReferencesCheckedAtApply(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openStore(t)
	putEndpoint(t, st, "churn", "churn", 2)
	p := filepath.Join(t.TempDir(), "experiments.yaml")
	if err := os.WriteFile(p, []byte(`experiments:
  - name: good
    endpoint: churn
    variants:
      - {name: a, weight: 0.5, model_version: 1}
      - {name: b, weight: 0.5, model_version: 2}
  - name: typo
    endpoint: chrun
    variants:
      - {name: a, weight: 0.5}
      - {name: b, weight: 0.5}
  - name: missing
    layer: other
    endpoint: churn
    variants:
      - {name: a, weight: 0.5, model_version: 1}
      - {name: b, weight: 0.5, model_version: 3}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	doc, err := ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	_, err = doc.Apply(ctx, st)
	wantProblems(t, err,
		p+`:8:15: experiments[1].endpoint: endpoint "chrun" is not applied (endpoints: churn); did you mean "churn"?`,
		p+`:17:47: experiments[2].variants[1].model_version: model churn (of endpoint churn) has no version 3 (versions: 1, 2)`)
	if ls, err := Load(ctx, st); err != nil || len(ls) != 0 {
		t.Fatalf("a refused file stored %d experiments (%v)", len(ls), err)
	}

	doc, err = ParseJSON([]byte(`[{"name": "x", "endpoint": "churn", "variants": [
  {"name": "a", "weight": 0.5, "model_version": 1},
  {"name": "b", "weight": 0.5, "model_version": 9}]}]`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = doc.Apply(ctx, st)
	wantProblems(t, err, `body:3:49: [0].variants[1].model_version: model churn (of endpoint churn) has no version 9`)

	_, err = ParseJSON([]byte(`[{"name": "x", "variants": [{"name": "a", "weight": "half"}, {"name": "b", "weight": 0.5}], "range": [0, 1]}]`))
	wantProblems(t, err, `[0].variants[0].weight: want a number, not the string "half"`, `[0].range: unknown field "range"`)
}

// TestIngestBodiesInUserWords: a metric or exposure body that does not
// decode is refused naming the JSON field, what was expected and what
// came, never a Go type ("cannot unmarshal string into Go value of type
// float64" before).
func TestIngestBodiesInUserWords(t *testing.T) {
	t.Parallel()
	_, err := DecodeMetricsJSON([]byte(`[{"unit": "u1", "metric": "minutes", "value": 3},
 {"unit": "u2", "metric": "minutes", "value": "abc", "at": "yesterday"},
 {"unit": "u3", "metric": "minutes", "value": 1, "valeu": 2}]`))
	wantProblems(t, err,
		`body:2:47: [1].value: want a number, not the string "abc"`,
		`body:2:60: [1].at: want a time such as "2026-11-28T10:00:00Z" (RFC 3339), not the string "yesterday"`,
		`body:3:50: [2].valeu: unknown field "valeu"`)
	if strings.Contains(err.Error(), "Go ") {
		t.Fatalf("a Go type name: %v", err)
	}
	_, err = DecodeExposuresJSON([]byte(`{"unit": "u1"}`))
	wantProblems(t, err, `body:1:1: want a list, not a mapping`)
	es, err := DecodeExposuresJSON([]byte(`[{"unit": "u1", "variant": "a", "at": "2026-11-28T10:00:00Z"}]`))
	if err != nil || len(es) != 1 || es[0].At.IsZero() {
		t.Fatalf("good body: %+v %v", es, err)
	}
}

// TestIngestRefusesNonFiniteAndBadText: a non-finite value would turn every
// mean and interval of the metric into NaN (and a NaN guardrail never
// trips); text that is not UTF-8 is not the same unit when read back. Both
// are refused, counted by reason, and the good events are stored.
func TestIngestRefusesNonFiniteAndBadText(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openStore(t)
	if _, err := Apply(ctx, st, []Spec{{Name: "e", Metrics: []string{"minutes"},
		Guardrails: []Guardrail{{Metric: "minutes", Direction: "decrease"}},
		Variants:   []Variant{{Name: "a", Weight: 0.5}, {Name: "b", Weight: 0.5}}}}); err != nil {
		t.Fatal(err)
	}
	l, err := Find(ctx, st, "e")
	if err != nil {
		t.Fatal(err)
	}
	res, err := IngestMetrics(ctx, st, l, []store.MetricEvent{
		{Unit: "u1", Metric: "minutes", Value: 3},
		{Unit: "u2", Metric: "minutes", Value: math.Inf(1)},
		{Unit: "u3", Metric: "minutes", Value: math.NaN()},
		{Unit: "u\xff", Metric: "minutes", Value: 1},
		{Unit: "u4", Metric: "nope", Value: 1},
	}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 1 || res.ByReason["not_finite"] != 2 || res.ByReason["malformed"] != 1 || res.ByReason["unknown_metric"] != 1 {
		t.Fatalf("result: %+v", res)
	}
	// A metric that is also a guardrail is listed once.
	if msg := res.Reasons[len(res.Reasons)-1]; !strings.Contains(msg, "(metrics: minutes)") {
		t.Fatalf("reason: %q", msg)
	}
	evs, err := st.MetricEvents(ctx, "e", "minutes")
	if err != nil || len(evs) != 1 || evs[0].Unit != "u1" {
		t.Fatalf("stored: %+v %v", evs, err)
	}
	res, err = IngestExposures(ctx, st, l, []store.Exposure{{Unit: "ok", Variant: "a"}, {Unit: "\xfe", Variant: "a"}}, time.Now())
	if err != nil || res.Accepted != 1 || res.ByReason["malformed"] != 1 {
		t.Fatalf("exposures: %+v %v", res, err)
	}
}
