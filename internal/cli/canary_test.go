package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// canaryVectors holds the reference cases shared by the whole project
// beside the repository.
var canaryVectors = filepath.Join("..", "..", "..", "shared", "testdata", "stats", "canary")

func canaryFile(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(canaryVectors, name)
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") != "true" {
			t.Skipf("reference vectors missing (they live in ../shared beside the repository; under CI=true this fails): %v", err)
		}
		t.Fatalf("reference vectors missing (they live in ../shared beside the repository): %v", err)
	}
	return p
}

// runCanary runs `baton canary ARGS` through Main once the command is
// registered in root, and until then through the command itself with
// Main's exit-code mapping.
func runCanary(t *testing.T, jsonOut bool, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	for _, c := range (&app{}).root().Commands() {
		if c.Name() == "canary" {
			full := append([]string{"canary"}, args...)
			if jsonOut {
				full = append(full, "-o", "json")
			}
			return runBaton(t, full...)
		}
	}
	var out, errb bytes.Buffer
	a := &app{in: strings.NewReader(""), out: &out, err: &errb, output: "table"}
	if jsonOut {
		a.output = "json"
	}
	cmd := a.canaryCmd()
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	if err := cmd.Execute(); err != nil {
		var ee *exitError
		if !errors.As(err, &ee) {
			t.Fatalf("error without an exit code: %v", err)
		}
		return ee.code, out.String(), "baton: " + err.Error()
	}
	return 0, out.String(), errb.String()
}

func TestCanaryJudgeJSON(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name     string
		config   bool
		score    float64
		result   string
		classes  map[string]string
		critical string
	}{
		{"latency_high", false, 66.67, "marginal", map[string]string{"latency": "High", "errors": "Pass", "cpu": "Pass"}, ""},
		{"errors_high_critical", true, 0, "fail", map[string]string{"latency": "Pass", "errors": "High", "cpu": "Pass"}, "errors"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			args := []string{"judge", "--baseline", canaryFile(t, c.name+"_baseline.csv"), "--canary", canaryFile(t, c.name+"_canary.csv")}
			if c.config {
				args = append(args, "--config", canaryFile(t, "config.yaml"))
			}
			code, out, stderr := runCanary(t, true, args...)
			// A failing canary still exits 0: the JSON says it failed.
			if code != 0 {
				t.Fatalf("exit %d, stderr %s", code, stderr)
			}
			// Decode into maps: the test is of the JSON's shape, not of a Go type.
			var res struct {
				Score   *float64         `json:"score"`
				Result  string           `json:"result"`
				Metrics []map[string]any `json:"metrics"`
			}
			if err := json.Unmarshal([]byte(out), &res); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, out)
			}
			if res.Score == nil || *res.Score != c.score || res.Result != c.result || len(res.Metrics) != len(c.classes) {
				t.Fatalf("report %s", out)
			}
			for _, m := range res.Metrics {
				name, _ := m["name"].(string)
				if m["classification"] != c.classes[name] || m["critical"] != (name == c.critical) {
					t.Errorf("metric %v, want %s critical=%v", m, c.classes[name], name == c.critical)
				}
			}
		})
	}
}

func TestCanaryJudgeTable(t *testing.T) {
	t.Parallel()
	code, out, stderr := runCanary(t, false, "judge",
		"--baseline", canaryFile(t, "cpu_low_baseline.csv"), "--canary", canaryFile(t, "cpu_low_canary.csv"))
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "METRIC ") ||
		!strings.HasPrefix(lines[1], "cpu ") || !strings.Contains(lines[1], " Low ") ||
		!strings.HasPrefix(lines[2], "errors ") || !strings.HasPrefix(lines[3], "latency ") ||
		lines[4] != "score 66.67: marginal" {
		t.Errorf("output\n%s", out)
	}
}

func TestCanaryJudgeBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	badCSV := write("bad.csv", "metric,value\nlatency,1\nlatency,slow\n")
	badHeader := write("header.csv", "name,value\nlatency,1\n")
	badConfig := write("bad.yaml", "metrics:\n  latency: {direction: up}\n")
	unknownKey := write("unknown.yaml", "metrics:\n  latency: {critcal: true}\n")
	heavy := write("heavy.yaml", "metrics:\n  a: {group: x}\nweights: {x: 120}\n")
	good := canaryFile(t, "all_pass_baseline.csv")
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"no canary", []string{"--baseline", good}, []string{"--canary"}},
		{"no such file", []string{"--baseline", good, "--canary", filepath.Join(dir, "none.csv")}, []string{"none.csv"}},
		{"bad value", []string{"--baseline", good, "--canary", badCSV}, []string{badCSV, "line 3", `"slow"`}},
		{"bad header", []string{"--baseline", badHeader, "--canary", good}, []string{badHeader, "line 1", "metric,value"}},
		{"bad direction", []string{"--baseline", good, "--canary", good, "--config", badConfig}, []string{badConfig, "metrics.latency.direction", `"up"`}},
		{"unknown key", []string{"--baseline", good, "--canary", good, "--config", unknownKey}, []string{unknownKey, "line 2", "critcal"}},
		{"weights over 100", []string{"--baseline", good, "--canary", good, "--config", heavy}, []string{heavy, "weights", "over 100"}},
		{"no such config", []string{"--baseline", good, "--canary", good, "--config", filepath.Join(dir, "none.yaml")}, []string{"none.yaml"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			code, out, stderr := runCanary(t, false, append([]string{"judge"}, c.args...)...)
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
