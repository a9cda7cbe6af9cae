package serve

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/dur"
	"github.com/baton-ml/baton/internal/flow"
)

func writeTemp(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// wantProblems checks that err is flow.Errors holding every want, in
// order, each a substring of one problem's text.
func wantProblems(t *testing.T, err error, want ...string) flow.Errors {
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
	return fe
}

// TestFileProblemsAllAtOnce: decoding problems (an unknown key, a bad
// duration, a number that is a string) and rule problems are all
// reported together, each as file:line:column: field.
func TestFileProblemsAllAtOnce(t *testing.T) {
	t.Parallel()
	p := writeTemp(t, "endpoints.yaml", `endpoints:
  - name: churn
    model: churn
    timout: 50ms
    timeout: soon
    min_confidence: high
    fallback: {static: 0.1}
  - name: Bad
    model: churn
    fallback: {}
`)
	_, err := ReadFile(p)
	wantProblems(t, err,
		p+`:4:5: endpoints[0].timout: unknown field "timout"`,
		p+`:5:14: endpoints[0].timeout: not a duration such as 500ms, 90s, 5m, 1h or 7d (got "soon")`,
		p+`:6:21: endpoints[0].min_confidence: want a number, not the string "high"`,
		p+`:8:11: endpoints[1].name: "Bad"`,
		p+`:10:5: endpoints[1].fallback: an endpoint needs a deterministic fallback`)
}

// TestReferencesCheckedAtApply: an unknown model, a misspelled feature
// and a fallback version that does not exist are refused when the file is
// applied, with their positions, and nothing is stored.
func TestReferencesCheckedAtApply(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.version(t, "churn", logistic(0))
	p := writeTemp(t, "endpoints.yaml", `endpoints:
  - name: ok
    model: churn
    fallback: {static: 0}
  - name: churn
    model: chrun
    features: [x, xx]
    fallback:
      model: churn
      version: "9"
`)
	doc, err := ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	_, err = doc.Apply(ctx, f.st)
	wantProblems(t, err,
		p+`:6:12: endpoints[1].model: model "chrun" is not in the registry (registered: churn); did you mean "churn"?`,
		p+`:7:19: endpoints[1].features[1]: feature "xx" is not in the feature catalog (features: x); did you mean "x"?`,
		p+`:10:16: endpoints[1].fallback.version: model churn has no version "9" (versions: 1;`)
	if eps, err := f.st.Endpoints(ctx); err != nil || len(eps) != 0 {
		t.Fatalf("a refused file stored %d endpoints (%v)", len(eps), err)
	}
	// States and aliases are fine; a state no version holds yet too.
	for _, v := range []string{"production", "1"} {
		e := Endpoint{Name: "fb", Model: "churn", Fallback: Fallback{Model: "churn", Version: v}}
		if _, err := Apply(ctx, f.st, []Endpoint{e}); err != nil {
			t.Fatalf("fallback version %s: %v", v, err)
		}
	}
}

// TestJSONBodyProblemsNameFields: an API body's problems name the JSON
// field path, and every one is reported.
func TestJSONBodyProblemsNameFields(t *testing.T) {
	t.Parallel()
	_, err := ParseJSON([]byte(`[{"name": "a", "model": "m", "fallback": {"static": 1}},
 {"name": "b", "model": "m", "timeout": 1000000000, "extra": 1, "fallback": {"static": 1}}]`))
	wantProblems(t, err,
		`body:2:41: [1].timeout: not a duration`,
		`body:2:53: [1].extra: unknown field "extra"`)
	ctx := context.Background()
	f := newFixture(t)
	doc, err := ParseJSON([]byte(`[{"name": "a", "model": "nope", "fallback": {"static": 1}}]`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = doc.Apply(ctx, f.st)
	wantProblems(t, err, `[0].model: model "nope" is not in the registry`)
}

// TestDurationsReadable: every duration form reads in an endpoints file
// ("1d" too), and the API writes them back as the same short strings,
// which read back.
func TestDurationsReadable(t *testing.T) {
	t.Parallel()
	p := writeTemp(t, "endpoints.yaml", `endpoints:
  - name: churn
    model: churn
    timeout: 50ms
    fallback: {static: 0}
    rollout: {interval: 1d}
`)
	eps, err := ParseFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if eps[0].Timeout.D() != 50*time.Millisecond || eps[0].Rollout.Interval.D() != dur.Day {
		t.Fatalf("parsed %+v", eps[0])
	}
	b, _ := json.Marshal(eps[0].withDefaults())
	for _, w := range []string{`"timeout":"50ms"`, `"interval":"1d"`} {
		if !strings.Contains(string(b), w) {
			t.Errorf("%s lacks %s", b, w)
		}
	}
	doc, err := ParseJSON([]byte("[" + string(b) + "]"))
	if err != nil || doc.Items[0].Rollout.Interval.D() != dur.Day {
		t.Fatalf("what the API writes does not read back: %v", err)
	}
}

// FuzzParseJSON: any API body is answered with endpoints or problems,
// never a panic.
func FuzzParseJSON(f *testing.F) {
	f.Add([]byte(`[{"name": "a", "model": "m", "timeout": "50ms", "fallback": {"static": [1, {"k": null}]},
  "rollout": {"stages": [5, 100], "interval": "1d", "judge": {"metrics": {"error": {"direction": "increase", "critical": true}}}}}]`))
	f.Add([]byte(`[{"name": 1, "shadow": "yes", "features": {"a": 1}}]`))
	f.Add([]byte("endpoints:\n  - &a {name: x}\n  - *a\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		doc, err := ParseJSON(b)
		if err == nil && doc == nil {
			t.Fatal("no doc and no error")
		}
		var fe flow.Errors
		if err != nil && !errors.As(err, &fe) {
			t.Fatalf("untyped error %T %v", err, err)
		}
	})
}

// TestOwnAndReferenceProblemsTogether: a file with problems of its own is
// still checked against the store, so one apply reports both kinds.
func TestOwnAndReferenceProblemsTogether(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := writeTemp(t, "endpoints.yaml", `endpoints:
  - name: churn
    model: chrun
    features: [xx]
    timeout: soon
    fallback: {static: 0}
`)
	doc, err := ReadFile(p)
	if doc == nil {
		t.Fatalf("no document: %v", err)
	}
	wantProblems(t, err, p+`:5:14: endpoints[0].timeout: not a duration`)
	_, err = doc.Apply(context.Background(), f.st)
	wantProblems(t, err,
		p+`:3:12: endpoints[0].model: model "chrun" is not in the registry`,
		p+`:4:16: endpoints[0].features[0]: feature "xx" is not in the feature catalog`,
		p+`:5:14: endpoints[0].timeout: not a duration`)
	if eps, _ := f.st.Endpoints(context.Background()); len(eps) != 0 {
		t.Fatalf("stored %d endpoints", len(eps))
	}
}
