package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// expVectors holds the SciPy reference cases shared by the whole project
// beside the repository.
var expVectors = filepath.Join("..", "..", "..", "shared", "testdata", "stats")

func expFile(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(expVectors, "exp", name)
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") != "true" {
			t.Skipf("reference vectors missing (they live in ../shared beside the repository; under CI=true this fails): %v", err)
		}
		t.Fatalf("reference vectors missing (they live in ../shared beside the repository): %v", err)
	}
	return p
}

// runExp runs `baton exp ARGS` with stdin: through Main once the command
// is registered in root, and until then through the command itself with
// Main's exit-code mapping.
func runExp(t *testing.T, stdin string, jsonOut bool, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	for _, c := range (&app{}).root().Commands() {
		if c.Name() == "exp" {
			full := append([]string{"exp"}, args...)
			if jsonOut {
				full = append(full, "-o", "json")
			}
			code = Main(full, strings.NewReader(stdin), &out, &errb)
			return code, out.String(), errb.String()
		}
	}
	a := &app{in: strings.NewReader(stdin), out: &out, err: &errb, output: "table"}
	if jsonOut {
		a.output = "json"
	}
	cmd := a.expCmd()
	wrapArgs(cmd)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	if err := cmd.Execute(); err != nil {
		var ee *exitError
		var ue *usageError
		switch {
		case errors.As(err, &ee):
			code = ee.code
		case errors.As(err, &ue), isCobraUsage(err):
			code = exitUsage
		default:
			t.Fatalf("error without an exit code: %v", err)
		}
		return code, out.String(), "baton: " + err.Error()
	}
	return 0, out.String(), errb.String()
}

func TestExpAnalyzeJSON(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(expVectors, "exp.json"))
	if err != nil {
		if os.Getenv("CI") != "true" {
			t.Skipf("reference vectors missing (they live in ../shared beside the repository; under CI=true this fails): %v", err)
		}
		t.Fatalf("reference vectors missing (they live in ../shared beside the repository): %v", err)
	}
	var vec struct {
		Cases []struct {
			File    string                               `json:"file"`
			Control string                               `json:"control"`
			SRM     map[string]any                       `json:"srm"`
			Metrics map[string]map[string]map[string]any `json:"metrics"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(b, &vec); err != nil {
		t.Fatal(err)
	}
	for _, c := range vec.Cases {
		t.Run(c.File, func(t *testing.T) {
			t.Parallel()
			code, out, stderr := runExp(t, "", true, "analyze", expFile(t, filepath.Base(c.File)),
				"--control", c.Control, "--covariate", "minutes=minutes_pre", "--sequential")
			if code != 0 {
				t.Fatalf("exit %d, stderr %s", code, stderr)
			}
			// Decode into maps: the test is of the JSON's shape, not of a
			// Go type.
			var rep struct {
				SRM     map[string]any `json:"srm"`
				Metrics []struct {
					Name        string           `json:"name"`
					Variants    []map[string]any `json:"variants"`
					Comparisons []map[string]any `json:"comparisons"`
				} `json:"metrics"`
			}
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, out)
			}
			expMatch(t, "srm", rep.SRM, c.SRM)
			if len(rep.Metrics) != len(c.Metrics) {
				t.Fatalf("metrics %s", out)
			}
			for _, m := range rep.Metrics {
				for method, want := range c.Metrics[m.Name] {
					found := false
					for _, got := range m.Comparisons {
						if got["method"] == method {
							found = true
							expMatch(t, m.Name+" "+method, got, want)
						}
					}
					if !found {
						t.Errorf("%s: no %s comparison in %s", m.Name, method, out)
					}
				}
				if len(m.Variants) != 2 || m.Variants[0]["name"] != c.Control {
					t.Errorf("%s: variants %v", m.Name, m.Variants)
				}
			}
		})
	}
}

// expMatch checks every key of want in got, numbers to 1e-9 relative.
func expMatch(t *testing.T, what string, got, want map[string]any) {
	t.Helper()
	for k, wv := range want {
		switch wv := wv.(type) {
		case float64:
			gv, ok := got[k].(float64)
			if !ok || math.Abs(gv-wv) > 1e-9*math.Abs(wv) {
				t.Errorf("%s %s = %v, want %v", what, k, got[k], wv)
			}
		default:
			if got[k] != wv {
				t.Errorf("%s %s = %v, want %v", what, k, got[k], wv)
			}
		}
	}
}

func TestExpAnalyzeTable(t *testing.T) {
	t.Parallel()
	code, out, stderr := runExp(t, "", false, "analyze", expFile(t, "case1.csv"), "--control", "control",
		"--metric", "minutes", "--covariate", "minutes=minutes_pre", "--sequential")
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := []string{
		`10000 units, control "control"; sample ratio: chi2 0, p 1, ok`,
		"",
		"METRIC ",
		"minutes  control ",
		"minutes  treatment ",
		"",
		"METRIC ",
		"minutes  treatment  welch ",
		"minutes  treatment  cuped (theta 0.7933) ",
		"minutes  treatment  sequential ",
	}
	if len(lines) != len(want) {
		t.Fatalf("output\n%s", out)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) || (w == "" && lines[i] != "") {
			t.Errorf("line %d %q, want it to start %q\n%s", i+1, lines[i], w, out)
		}
	}
	if !strings.HasSuffix(lines[7], " yes") || !strings.Contains(lines[7], "0.5975") || !strings.Contains(lines[7], "3.31%") {
		t.Errorf("welch line %q", lines[7])
	}
}

func TestExpAnalyzeBreakdownAndWeights(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "exp.csv")
	csv := "unit,variant,m,market\n" +
		"1,A,1,DE\n2,B,2,DE\n3,A,2,FR\n4,B,4,FR\n5,A,3,DE\n6,B,3,DE\n7,A,1,FR\n8,B,5,FR\n9,B,3,DE\n"
	if err := os.WriteFile(p, []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runExp(t, "", true, "analyze", p, "--control", "A", "--breakdown", "market", "--weights", "A=4, B=5")
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
	var rep struct {
		SRM     map[string]any `json:"srm"`
		Metrics []struct {
			Name      string `json:"name"`
			Breakdown struct {
				Column   string `json:"column"`
				Segments []struct {
					Value       string           `json:"value"`
					Units       int              `json:"units"`
					Comparisons []map[string]any `json:"comparisons"`
				} `json:"segments"`
			} `json:"breakdown"`
		} `json:"metrics"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if rep.SRM["chi2"] != 0.0 || rep.SRM["p_value"] != 1.0 {
		t.Errorf("4:5 against weights 4:5: %v", rep.SRM)
	}
	if len(rep.Metrics) != 1 || rep.Metrics[0].Name != "m" {
		t.Fatalf("metrics (market is the breakdown, not a metric) %s", out)
	}
	bd := rep.Metrics[0].Breakdown
	if bd.Column != "market" || len(bd.Segments) != 2 || bd.Segments[0].Value != "DE" || bd.Segments[0].Units != 5 ||
		bd.Segments[1].Value != "FR" || bd.Segments[1].Units != 4 || len(bd.Segments[1].Comparisons) != 1 {
		t.Errorf("breakdown %s", out)
	}
	// The same as a table, and from standard input.
	code, out, stderr = runExp(t, csv, false, "analyze", "-", "--control", "A", "--breakdown", "market")
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
	if !strings.Contains(out, "m by market:") || !strings.Contains(out, "\nDE ") || !strings.Contains(out, "\nFR ") {
		t.Errorf("output\n%s", out)
	}
}

func TestExpAnalyzeBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ragged := write("ragged.csv", "unit,variant,m,n\n1,A,1,2\n2,B,3\n")
	text := write("text.csv", "unit,variant,m\n1,A,1\n2,B,lots\n")
	noVariant := write("novariant.csv", "unit,variant,m\n1,A,1\n2,,3\n")
	good := expFile(t, "case0.csv")
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"no control", []string{good}, []string{"--control"}},
		{"no file", []string{"--control", "control"}, []string{"arg"}},
		{"two files", []string{good, good, "--control", "control"}, []string{"arg"}},
		{"no such file", []string{filepath.Join(dir, "none.csv"), "--control", "A"}, []string{"none.csv"}},
		{"unknown control", []string{good, "--control", "ctrl"}, []string{good, `"ctrl"`, `"control"`, `"treatment"`}},
		{"unknown metric", []string{good, "--control", "control", "--metric", "revenue"}, []string{`"revenue"`, `"minutes"`}},
		{"unknown covariate", []string{good, "--control", "control", "--covariate", "minutes=pre"}, []string{`"pre"`}},
		{"bad covariate flag", []string{good, "--control", "control", "--covariate", "minutes"}, []string{"--covariate", "METRIC=PRECOL"}},
		{"bad weights", []string{good, "--control", "control", "--weights", "control=0.5,treatment=x"}, []string{"--weights", "treatment"}},
		{"unweighted variant", []string{good, "--control", "control", "--weights", "control=1"}, []string{`"treatment"`, "weight"}},
		{"bad alpha", []string{good, "--control", "control", "--alpha", "1"}, []string{"--alpha"}},
		{"bad tuning", []string{good, "--control", "control", "--tuning", "0"}, []string{"--tuning"}},
		{"unknown flag", []string{good, "--control", "control", "--cuped"}, []string{"--cuped"}},
		{"unknown breakdown", []string{good, "--control", "control", "--breakdown", "market"}, []string{`"market"`}},
		{"ragged row", []string{ragged, "--control", "A"}, []string{ragged, "line 3", `"n"`}},
		{"text metric", []string{text, "--control", "A", "--metric", "m"}, []string{text, "line 3", `"m"`, `"lots"`}},
		{"missing variant", []string{noVariant, "--control", "A"}, []string{noVariant, "line 3", `"variant"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			code, out, stderr := runExp(t, "", false, append([]string{"analyze"}, c.args...)...)
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

// TestExpAssignWhy: `exp assign` of an experiment alone in its layer never
// says other_experiment (it used to for every unit outside the range); a
// unit in another experiment's range is told which.
func TestExpAssignWhy(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "e.yaml")
	spec := `experiments:
  - name: alone
    traffic: 0.3
    variants: [{name: a, weight: 0.5}, {name: b, weight: 0.5}]
  - name: first
    layer: shared
    traffic: 0.5
    variants: [{name: a, weight: 0.5}, {name: b, weight: 0.5}]
  - name: second
    layer: shared
    traffic: 0.5
    variants: [{name: a, weight: 0.5}, {name: b, weight: 0.5}]
`
	if err := os.WriteFile(file, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(dir, "home")
	if code, out, errs := runExp(t, "", false, "apply", file, "--home", home); code != 0 {
		t.Fatalf("apply: %d %s %s", code, out, errs)
	}
	whys := map[string]int{}
	for i := range 40 {
		for _, name := range []string{"alone", "first"} {
			code, out, errs := runExp(t, "", true, "assign", name, "u"+string(rune('a'+i%26))+string(rune('a'+i/26)), "--home", home)
			var as struct {
				In         bool
				Why, Other string
			}
			if code != 0 || json.Unmarshal([]byte(out), &as) != nil {
				t.Fatalf("assign: %d %s %s", code, out, errs)
			}
			whys[name+"/"+as.Why+"/"+as.Other]++
		}
	}
	if whys["alone/other_experiment/"] > 0 || whys["alone/not_in_traffic/"] == 0 || whys["first/other_experiment/second"] == 0 {
		t.Fatalf("reasons: %v", whys)
	}
}
