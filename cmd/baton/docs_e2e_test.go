package main_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDocsExample applies the shipped signals and model-training flow, then
// writes the architecture views and checks they describe them.
func TestDocsExample(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	must(t, baton(t, home, "flow", "apply", "../../examples/signals/signals.yaml"), 0)
	must(t, baton(t, home, "flow", "apply", "../../examples/models/train.yaml"), 0)
	out := filepath.Join(t.TempDir(), "docs", "generated")
	must(t, baton(t, home, "docs", "--out", out), 0)
	for _, name := range []string{"README.md", "pipeline.md", "signals.md", "lineage.md", "models.md", "boundary.md", "debt.md", "quality.md"} {
		if _, err := os.Stat(filepath.Join(out, name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	b, err := os.ReadFile(filepath.Join(out, "pipeline.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "## train-churn-model (version 1)") || !strings.Contains(string(b), "s_build --> s_fit") {
		t.Fatalf("pipeline.md:\n%s", b)
	}
	b, err = os.ReadFile(filepath.Join(out, "signals.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "| `features_ready` | declared |") || !strings.Contains(string(b), "`train-churn-model` / build") {
		t.Fatalf("signals.md:\n%s", b)
	}
	ents, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 8 {
		t.Fatalf("%d entries in %s, want 8 (no temporary files)", len(ents), out)
	}

	r := must(t, baton(t, home, "docs", "--view", "debt"), 0)
	if !strings.HasPrefix(r.stdout, "# AI debt register") || strings.Contains(r.stdout, "# Pipeline view") {
		t.Fatalf("docs --view debt printed:\n%s", r.stdout)
	}

	r = must(t, baton(t, home, "docs", "--view", "pipelines"), 2)
	if !strings.Contains(r.stderr, `unknown view "pipelines"`) || !strings.Contains(r.stderr, "pipeline, signals, lineage, models, boundary, debt, quality") {
		t.Fatalf("stderr: %s", r.stderr)
	}
}
