package main_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExperimentsCLI drives experiments through the binary: apply (bad
// weights refused), assign, ingest (bad rows rejected, exit 1), report
// with HTML, promotion refused without a win and done with one, and the
// analysis contract on the shared vectors.
func TestExperimentsCLI(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	dir := t.TempDir()
	bad := writeFile(t, dir, "bad.yaml", "experiments:\n  - name: x\n    variants:\n      - {name: a, weight: 0.7}\n      - {name: b, weight: 0.7}\n")
	r := must(t, baton(t, home, "exp", "apply", bad), 2)
	if !strings.Contains(r.stderr, "experiments[0].variants: the weights sum to 1.4, not 1") {
		t.Fatalf("bad weights: %s", r.stderr)
	}
	spec := writeFile(t, dir, "exp.yaml", `experiments:
  - name: ranker
    variants:
      - {name: control, weight: 0.5}
      - {name: treatment, weight: 0.5}
    metrics: [minutes]
`)
	must(t, baton(t, home, "exp", "apply", spec), 0)
	r = must(t, baton(t, home, "exp", "assign", "ranker", "member-1"), 0)
	var as struct {
		In      bool
		Variant string
	}
	if err := json.Unmarshal([]byte(r.stdout), &as); err != nil || !as.In {
		t.Fatalf("assign: %v %s", err, r.stdout)
	}
	// Exposures and events: treatment watches 10% more.
	var ex, ev strings.Builder
	ex.WriteString("unit,variant\n")
	ev.WriteString("unit,metric,value\n")
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 400 {
		v := "control"
		m := 60.0
		if i%2 == 1 {
			v, m = "treatment", 66
		}
		fmt.Fprintf(&ex, "u%d,%s\n", i, v)
		fmt.Fprintf(&ev, "u%d,minutes,%.3f\n", i, m+5*rng.NormFloat64())
	}
	ex.WriteString("u999,nope\n")
	ev.WriteString("u1,unknown_metric,1\n")
	r = must(t, baton(t, home, "exp", "ingest", "ranker", "--exposures", writeFile(t, dir, "ex.csv", ex.String()),
		"--metrics", writeFile(t, dir, "ev.csv", ev.String()), "-o", "json"), 1)
	if !strings.Contains(r.stdout, `"rejected": 1`) {
		t.Fatalf("ingest: %s", r.stdout)
	}
	html := filepath.Join(dir, "report.html")
	r = must(t, baton(t, home, "exp", "report", "ranker", "--html", html), 0)
	if !strings.Contains(r.stdout, "welch") || !strings.Contains(r.stdout, "significant") {
		t.Fatalf("report: %s", r.stdout)
	}
	if b, err := os.ReadFile(html); err != nil || !strings.Contains(string(b), "<svg") {
		t.Fatalf("html: %v", err)
	}
	// No model versions on these variants: promotion is refused clearly.
	r = must(t, baton(t, home, "exp", "promote", "ranker", "--variant", "treatment"), 2)
	if !strings.Contains(r.stderr, "names no model_version") {
		t.Fatalf("promote: %s", r.stderr)
	}
	must(t, baton(t, home, "exp", "pause", "ranker", "--reason", "checking"), 0)
	must(t, baton(t, home, "exp", "pause", "ranker", "--reason", "again"), 1)
	must(t, baton(t, home, "exp", "resume", "ranker", "--reason", "fine"), 0)
	// The analysis contract on the shared vectors (beside the repository).
	if _, err := os.Stat("../../../shared/testdata/stats/exp"); err != nil && os.Getenv("CI") != "true" {
		t.Skipf("shared vectors missing: %v", err)
	}
	r = must(t, baton(t, home, "exp", "analyze", "../../../shared/testdata/stats/exp/case0.csv", "--control", "control", "-o", "json"), 0)
	if !strings.Contains(r.stdout, `"srm"`) || !strings.Contains(r.stdout, `"welch"`) {
		t.Fatalf("analyze: %s", r.stdout)
	}
	must(t, baton(t, home, "exp", "analyze", "../../../shared/testdata/stats/exp/case0.csv", "--control", "nope"), 2)
}
