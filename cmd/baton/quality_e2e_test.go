package main_test

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

// TestQualityFlow runs examples/quality/score.yaml: synthetic signals and
// ratings, a fitted model, a foreach over shards, a join that reports the
// flagged titles with their reasons, and the model registered with its
// held-out metrics and lineage.
func TestQualityFlow(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	must(t, baton(t, home, "run", "../../examples/quality/score.yaml", "--param", "titles=1500", "--param", "shards=3"), 0)
	r := must(t, baton(t, home, "show", "1", "-o", "json"), 0)
	var run struct {
		Steps []struct {
			Name  string
			Tasks []struct{ Status string }
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &run); err != nil {
		t.Fatal(err)
	}
	tasks := map[string]int{}
	for _, s := range run.Steps {
		tasks[s.Name] = len(s.Tasks)
	}
	if tasks["score"] != 3 || tasks["report"] != 1 {
		t.Fatalf("tasks per step %v", tasks)
	}
	r = must(t, baton(t, home, "artifact", "get", "1/report/flagged.json"), 0)
	var rep struct {
		Titles  int `json:"titles"`
		Flagged []struct {
			Title   string   `json:"title"`
			Score   float64  `json:"score"`
			Reasons []string `json:"reasons"`
		} `json:"flagged"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	// One synthetic title in twenty has a signal broken badly: most of
	// them, and some others, are flagged; far from all titles are.
	if rep.Titles != 1500 || len(rep.Flagged) < 40 || len(rep.Flagged) > 500 {
		t.Fatalf("%d titles, %d flagged", rep.Titles, len(rep.Flagged))
	}
	for _, f := range rep.Flagged {
		if len(f.Reasons) == 0 || f.Score >= 3 {
			t.Fatalf("flagged without a reason or above the threshold: %+v", f)
		}
	}
	m := must(t, baton(t, home, "artifact", "get", "1/train/metrics.json"), 0).stdout
	if !strings.Contains(m, `"rmse_baseline"`) {
		t.Fatalf("metrics: %s", m)
	}
	// The model is registered with its held-out metrics and the run as
	// lineage, and the metrics say it learned: its RMSE well below that
	// of predicting the mean rating, R² well above 0.
	r = must(t, baton(t, home, "model", "show", "quality", "1", "-o", "json"), 0)
	var shown struct {
		Version struct {
			State    string
			Artifact string
			Metrics  map[string]float64
			Lineage  struct {
				RunID       int64  `json:"run_id"`
				TrainingSet string `json:"training_set"`
			}
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &shown); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	v := shown.Version
	if v.State != "registered" || v.Artifact != "1/train/model.json" || v.Lineage.RunID != 1 || v.Lineage.TrainingSet != "1/start/ratings.csv" {
		t.Fatalf("version: %s", r.stdout)
	}
	for _, name := range []string{"rmse", "r2", "mae", "rmse_baseline", "test"} {
		if x, ok := v.Metrics[name]; !ok || math.IsNaN(x) || math.IsInf(x, 0) {
			t.Fatalf("metric %s: %v (present %v): %v", name, x, ok, v.Metrics)
		}
	}
	if rmse, base, r2 := v.Metrics["rmse"], v.Metrics["rmse_baseline"], v.Metrics["r2"]; !(rmse < 0.8*base) || !(r2 > 0.3) || v.Metrics["test"] < 20 {
		t.Fatalf("held-out RMSE %g against the mean's %g, R² %g on %g titles: the model learned nothing", rmse, base, r2, v.Metrics["test"])
	}
}
