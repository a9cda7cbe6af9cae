package cli

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// driftVectors holds the SciPy reference files, shared by the whole project
// beside the repository.
var driftVectors = filepath.Join("..", "..", "..", "shared", "testdata", "stats", "drift")

func runBaton(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func driftFile(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(driftVectors, name)
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") != "true" {
			t.Skipf("reference vectors missing (they live in ../shared beside the repository; under CI=true this fails): %v", err)
		}
		t.Fatalf("reference vectors missing (they live in ../shared beside the repository): %v", err)
	}
	return p
}

func TestDriftJSON(t *testing.T) {
	t.Parallel()
	code, out, stderr := runBaton(t, "drift",
		"--reference", driftFile(t, "case2_ref.csv"), "--current", driftFile(t, "case2_cur.csv"), "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
	// Decode into maps: the test is of the JSON's shape, not of a Go type.
	var rep struct {
		Columns      []map[string]any `json:"columns"`
		DriftedShare *float64         `json:"drifted_share"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if len(rep.Columns) != 2 || rep.DriftedShare == nil || *rep.DriftedShare != 1 {
		t.Fatalf("report %s", out)
	}
	// SciPy's values, from drift.json case 2.
	want := []map[string]any{
		{"name": "score", "type": "numeric", "psi": 0.2987404368289034, "ks_statistic": 0.22775, "p_value": 1.2779421313049383e-78, "drifted": true},
		{"name": "market", "type": "string", "psi": 0.24752386543408522, "p_value": 1.0444930217856012e-89, "drifted": true},
	}
	for i, w := range want {
		got := rep.Columns[i]
		if len(got) != len(w) {
			t.Errorf("column %d has keys %v, want those of %v", i, got, w)
		}
		for k, wv := range w {
			switch wv := wv.(type) {
			case float64:
				gv, ok := got[k].(float64)
				if !ok || math.Abs(gv-wv) > 1e-9*math.Abs(wv) {
					t.Errorf("column %d %s = %v, want %v", i, k, got[k], wv)
				}
			default:
				if got[k] != wv {
					t.Errorf("column %d %s = %v, want %v", i, k, got[k], wv)
				}
			}
		}
	}
}

func TestDriftTable(t *testing.T) {
	t.Parallel()
	// No drift here, and still exit 0; with drift, exit 0 as well.
	for _, c := range []struct {
		n    string
		last string
	}{{"0", "0 of 2 columns drifted (0%)"}, {"1", "1 of 2 columns drifted (50%)"}} {
		code, out, stderr := runBaton(t, "drift",
			"--reference", driftFile(t, "case"+c.n+"_ref.csv"), "--current", driftFile(t, "case"+c.n+"_cur.csv"))
		if code != 0 {
			t.Fatalf("case %s: exit %d, stderr %s", c.n, code, stderr)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 4 || !strings.HasPrefix(lines[1], "score ") || !strings.HasPrefix(lines[2], "market ") || lines[3] != c.last {
			t.Errorf("case %s: output\n%s", c.n, out)
		}
	}
}

func TestDriftBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ragged := filepath.Join(dir, "ragged.csv")
	if err := os.WriteFile(ragged, []byte("score,market\n0.5,DE\n0.7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	renamed := filepath.Join(dir, "renamed.csv")
	if err := os.WriteFile(renamed, []byte("score,country\n0.5,DE\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ref := driftFile(t, "case0_ref.csv")
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"ragged row", []string{"--reference", ref, "--current", ragged}, []string{ragged, "line 3", `"market"`}},
		{"other header", []string{"--reference", ref, "--current", renamed}, []string{renamed, "line 1", `"country"`, ref}},
		{"no such file", []string{"--reference", ref, "--current", filepath.Join(dir, "none.csv")}, []string{"none.csv"}},
		{"no current", []string{"--reference", ref}, []string{"--current"}},
		{"bad alpha", []string{"--reference", ref, "--current", ref, "--alpha", "0"}, []string{"--alpha"}},
		{"bad threshold", []string{"--reference", ref, "--current", ref, "--psi-threshold", "-1"}, []string{"--psi-threshold"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			code, out, stderr := runBaton(t, append([]string{"drift"}, c.args...)...)
			if code != 2 {
				t.Errorf("exit %d, want 2 (stdout %q, stderr %q)", code, out, stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q does not name %s", stderr, w)
				}
			}
		})
	}
}
