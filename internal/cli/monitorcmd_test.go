package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// baton monitor: a file with problems is refused whole (exit 2, each
// problem at its line); a good one is stored, then unchanged; list and
// results read the store; evaluate needs the running server and says so.
func TestMonitorCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	feats := write("features.yaml", `entities: [{name: member, key: member_id}]
sources: [{name: plays, entity: member, timestamp: ts, fields: {market: string, completed: float}}]
features: [{name: plays_1h, source: plays, aggregate: count, window: 1h}]
`)
	if code, _, errs := runCLI(t, "--home", home, "feature", "apply", feats); code != 0 {
		t.Fatalf("feature apply: %d %s", code, errs)
	}
	bad := write("bad.yaml", `monitors:
  - name: q
    kind: online_quality
    numerator: {source: plays, field: completed}
    denominator: {source: play}
    min: 0.5
    psi_max: 0.2
`)
	code, _, errs := runCLI(t, "--home", home, "monitor", "apply", bad)
	if code != 2 || !strings.Contains(errs, bad+":5:27: monitors[0].denominator.source: source \"play\" is not in the feature catalog") ||
		!strings.Contains(errs, bad+":7:14: monitors[0].psi_max: is a field of feature_drift and prediction_drift monitors, not of online_quality") {
		t.Fatalf("bad file: %d %s", code, errs)
	}
	good := write("good.yaml", `monitors:
  - name: completion
    kind: online_quality
    numerator: {source: plays, field: completed}
    denominator: {source: plays}
    by: market
    min_relative: 0.9
    every: 1h
`)
	if code, out, errs := runCLI(t, "--home", home, "monitor", "apply", good); code != 0 || out != "monitor completion (online_quality) stored\n" {
		t.Fatalf("apply: %d %q %s", code, out, errs)
	}
	if code, out, _ := runCLI(t, "--home", home, "monitor", "apply", good); code != 0 || out != "monitor completion (online_quality) unchanged\n" {
		t.Fatalf("apply again: %d %q", code, out)
	}
	code, out, errs := runCLI(t, "--home", home, "monitor", "list", "-o", "json")
	var list []monitorStatus
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 || list[0].Spec.MinEvents != 30 || list[0].Spec.Window.String() != "1h" || list[0].Last != nil {
		t.Fatalf("list: %d %s %s", code, out, errs)
	}
	if code, out, _ := runCLI(t, "--home", home, "monitor", "list"); code != 0 || !strings.Contains(out, "completion  online_quality  1h     -        never") {
		t.Fatalf("list table: %d %q", code, out)
	}
	if code, out, _ := runCLI(t, "--home", home, "monitor", "results", "completion", "-o", "json"); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("results: %d %q", code, out)
	}
	if code, _, errs := runCLI(t, "--home", home, "monitor", "results", "completon"); code != 1 || !strings.Contains(errs, `did you mean "completion"`) {
		t.Fatalf("unknown monitor: %d %s", code, errs)
	}
	if code, _, errs := runCLI(t, "--home", home, "monitor", "evaluate", "completion"); code != 2 || !strings.Contains(errs, "no baton server is running on this home") {
		t.Fatalf("evaluate without a server: %d %s", code, errs)
	}
}
