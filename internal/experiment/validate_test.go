package experiment

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/baton-ml/baton/internal/flow"
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
