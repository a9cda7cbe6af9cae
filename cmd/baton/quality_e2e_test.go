package main_test

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestQualityFlow runs examples/quality/score.yaml: synthetic signals and
// ratings, a fitted model, a foreach over shards, a join that reports the
// flagged titles with their reasons.
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
}
