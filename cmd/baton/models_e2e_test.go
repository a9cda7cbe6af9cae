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
