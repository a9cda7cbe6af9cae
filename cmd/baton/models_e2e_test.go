package main_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// TestModelsEndToEnd: a flow builds a training set, fits and registers a
// model (publishing features_ready and model_trained); the version carries
// its lineage; the lifecycle refuses illegal moves; the canary judge runs
// on CSV files.
func TestModelsEndToEnd(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	must(t, baton(t, home, "flow", "apply", "../../examples/signals/signals.yaml"), 0)
	must(t, baton(t, home, "feature", "apply", "../../examples/features/features.yaml"), 0)
	must(t, baton(t, home, "feature", "ingest", "plays", "../../examples/features/plays.jsonl"), 1)
	must(t, baton(t, home, "run", "../../examples/models/train.yaml"), 0)
	r := must(t, baton(t, home, "model", "show", "churn", "1", "-o", "json"), 0)
	var shown struct {
		Version struct {
			State   string
			Lineage struct {
				RunID           int64    `json:"run_id"`
				TrainingSet     string   `json:"training_set"`
				FeatureVersions []string `json:"feature_versions"`
			}
		}
		Transitions []struct{ To, Reason string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &shown); err != nil {
		t.Fatalf("show: %v %s", err, r.stdout)
	}
	if shown.Version.State != "registered" || shown.Version.Lineage.TrainingSet != "1/build/train.csv" ||
		strings.Join(shown.Version.Lineage.FeatureVersions, ",") != "minutes_24h@1,plays_1h@1" {
		t.Fatalf("version: %s", r.stdout)
	}
	// The table shows the metrics the flow registered (they were in -o
	// json only).
	if r := must(t, baton(t, home, "model", "show", "churn", "1"), 0); !strings.Contains(r.stdout, "\nmetrics auc=0.74\n") {
		t.Fatalf("show: %s", r.stdout)
	}
	sigs := must(t, baton(t, home, "signal", "list", "-o", "json"), 0).stdout
	if !strings.Contains(sigs, `"model_trained"`) || !strings.Contains(sigs, `"features_ready"`) {
		t.Fatalf("signals: %s", sigs)
	}
	// Illegal: registered straight to production (exit 2, naming the legal moves).
	r = must(t, baton(t, home, "model", "transition", "churn", "1", "production", "--reason", "yolo"), 2)
	if !strings.Contains(r.stderr, "cannot go to production (from registered: shadow, canary, archived)") {
		t.Fatalf("illegal: %s", r.stderr)
	}
	must(t, baton(t, home, "model", "transition", "churn", "1", "canary", "--reason", "judge it"), 0)
	must(t, baton(t, home, "model", "register", "churn", "--artifact", "1/fit/nope.json"), 1)
	applyChecksReferences(t, home)
	// The judge on the shared vectors (beside the repository).
	v := "../../../shared/testdata/stats/canary/"
	if _, err := os.Stat(v); err != nil && os.Getenv("CI") != "true" {
		t.Skipf("shared vectors missing: %v", err)
	}
	r = must(t, baton(t, home, "canary", "judge", "--baseline", v+"errors_high_critical_baseline.csv", "--canary", v+"errors_high_critical_canary.csv",
		"--config", v+"config.yaml", "-o", "json"), 0)
	if !strings.Contains(r.stdout, `"result": "fail"`) {
		t.Fatalf("judge: %s", r.stdout)
	}
}

// applyChecksReferences: endpoint and experiment files are checked against
// the registry, the feature catalog and the stored endpoints when applied
// (exit 2, every problem with file:line:column: field, nothing stored),
// and endpoint list reads the store with no server running.
func applyChecksReferences(t *testing.T, home string) {
	t.Helper()
	dir := t.TempDir()
	bad := writeFile(t, dir, "endpoints.yaml", `endpoints:
  - name: churn
    model: chrun
    features: [plays_1hh, minutes_24h]
    timeout: 5 minutes
    fallback: {static: 0.1}
`)
	r := must(t, baton(t, home, "endpoint", "apply", bad), 2)
	for _, w := range []string{
		bad + `:3:12: endpoints[0].model: model "chrun" is not in the registry (registered: churn); did you mean "churn"?`,
		bad + `:4:16: endpoints[0].features[0]: feature "plays_1hh" is not in the feature catalog (features: avg_minutes_24h, last_market, minutes_24h, plays_1h, titles_7d); did you mean "plays_1h"?`,
		bad + `:5:14: endpoints[0].timeout: not a duration such as 500ms, 90s, 5m, 1h or 7d (got "5 minutes")`,
	} {
		if !strings.Contains(r.stderr, w) {
			t.Fatalf("bad endpoints: want %q in\n%s", w, r.stderr)
		}
	}
	r = must(t, baton(t, home, "endpoint", "list", "-o", "json"), 0)
	if strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("a refused file stored endpoints: %s", r.stdout)
	}
	must(t, baton(t, home, "endpoint", "apply", "../../examples/models/endpoints.yaml"), 0)
	r = must(t, baton(t, home, "endpoint", "list", "-o", "json"), 0)
	var st []struct {
		Endpoint, Model, Fallback string
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || len(st) != 1 || st[0].Model != "churn" || st[0].Fallback != "static 0.4" {
		t.Fatalf("endpoint list without a server: %v %s", err, r.stdout)
	}
	exp := writeFile(t, dir, "experiments.yaml", `experiments:
  - name: v2
    endpoint: churn
    variants:
      - {name: control, weight: 0.5, model_version: 1}
      - {name: treatment, weight: 0.5, model_version: 2}
`)
	r = must(t, baton(t, home, "exp", "apply", exp), 2)
	if w := exp + `:6:55: experiments[0].variants[1].model_version: model churn (of endpoint churn) has no version 2 (versions: 1)`; !strings.Contains(r.stderr, w) {
		t.Fatalf("bad experiment: want %q in\n%s", w, r.stderr)
	}
}
