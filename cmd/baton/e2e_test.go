package main_test

// End-to-end tests: they build the baton binary and drive it as a user
// would, through its exit codes, stdout, stderr and files.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/baton-ml/baton/internal/testwait"
)

var bin string

func TestMain(m *testing.M) {
	if os.Getenv("BATON_E2E_NO_BUILD") == "1" {
		// A test re-running this binary for a test that needs no baton.
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "baton-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "baton")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build baton:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	code           int
	stdout, stderr string
}

// baton runs the binary with BATON_HOME=home.
func baton(t *testing.T, home string, args ...string) result {
	t.Helper()
	return batonIn(t, home, "", nil, args...)
}

// batonIn runs the binary with BATON_HOME=home and env, in folder cwd ("":
// the test's).
func batonIn(t *testing.T, home, cwd string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = cwd
	cmd.Env = append(append(os.Environ(), "BATON_HOME="+home), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("baton %v: %v", args, err)
	}
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

func must(t *testing.T, r result, code int) result {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.stderr)
	}
	return r
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

type showJSON struct {
	ID     int64  `json:"id"`
	Flow   string `json:"flow"`
	Status string `json:"status"`
	Error  string `json:"error"`
	Params map[string]json.RawMessage
	Steps  []struct {
		Name   string `json:"name"`
		Status string `json:"status"`
		Tasks  []struct {
			Index      int    `json:"index"`
			Status     string `json:"status"`
			Attempts   int    `json:"attempts"`
			Reused     bool   `json:"reused"`
			ReusedFrom string `json:"reused_from"`
		} `json:"tasks"`
	} `json:"steps"`
}

func show(t *testing.T, home string, id int64) showJSON {
	t.Helper()
	r := must(t, baton(t, home, "show", strconv.FormatInt(id, 10), "-o", "json"), 0)
	var v showJSON
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("show -o json: %v\n%s", err, r.stdout)
	}
	return v
}

func TestHelloExample(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	r := must(t, baton(t, home, "run", "../../examples/hello/hello.yaml", "--param", `names=["Ada","Bob"]`, "--tag", "demo"), 0)
	if !strings.Contains(r.stdout, "run 1 succeeded") || !strings.Contains(r.stderr, "step greet: started (2 tasks)") {
		t.Fatalf("stdout: %s\nstderr: %s", r.stdout, r.stderr)
	}
	got := must(t, baton(t, home, "artifact", "get", "1/join/greetings.txt"), 0).stdout
	if got != "Hello, Ada!\nHello, Bob!\n" {
		t.Fatalf("greetings = %q", got)
	}
	if got := must(t, baton(t, home, "artifact", "get", "1/greet/1/greeting.txt"), 0).stdout; got != "Hello, Bob!\n" {
		t.Fatalf("foreach artifact = %q", got)
	}
	v := show(t, home, 1)
	var names []string
	json.Unmarshal(v.Params["names"], &names)
	if v.Status != "succeeded" || strings.Join(names, ",") != "Ada,Bob" || len(v.Steps) != 3 || len(v.Steps[1].Tasks) != 2 {
		t.Fatalf("show: %+v", v)
	}
	logs := must(t, baton(t, home, "logs", "1/join"), 0).stdout
	if !strings.Contains(logs, "joined 2 greetings:") {
		t.Fatalf("logs: %s", logs)
	}
	var runs []map[string]any
	json.Unmarshal([]byte(must(t, baton(t, home, "runs", "--tag", "demo", "-o", "json"), 0).stdout), &runs)
	if len(runs) != 1 || runs[0]["trigger"] != "manual" {
		t.Fatalf("runs --tag demo: %v", runs)
	}
	ls := must(t, baton(t, home, "artifact", "ls", "1/greet", "-o", "json"), 0).stdout
	if !strings.Contains(ls, `"path": "1/greet/0/greeting.txt"`) {
		t.Fatalf("artifact ls: %s", ls)
	}
}

func TestExamplesValidate(t *testing.T) {
	t.Parallel()
	// The reference platform is a project of its own (it declares some
	// of examples/signals' signals differently): a home of its own; the
	// other examples share examples/signals' contracts, and one home.
	byDir := map[string][]string{}
	for _, f := range exampleFlows(t) {
		group := "examples"
		if filepath.Base(filepath.Dir(f)) == "platform" {
			group = "platform"
		}
		byDir[group] = append(byDir[group], f)
	}
	for dir, files := range byDir {
		home := t.TempDir()
		r := must(t, baton(t, home, append([]string{"flow", "apply", "-o", "json"}, files...)...), 0)
		var applied []map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &applied); err != nil || len(applied) != len(files) {
			t.Fatalf("%s: apply: %v %s", dir, err, r.stdout)
		}
		// Applying again changes nothing.
		r = must(t, baton(t, home, append([]string{"flow", "apply"}, files...)...), 0)
		if strings.Contains(r.stdout, "registered") {
			t.Fatalf("%s: second apply registered again: %s", dir, r.stdout)
		}
	}
}

// exampleFlows lists the example flow files: not feature, endpoint, experiment or monitor files.
func exampleFlows(t *testing.T) []string {
	t.Helper()
	all, _ := filepath.Glob("../../examples/*/*.yaml")
	var files []string
	for _, p := range all {
		if b, err := os.ReadFile(p); err == nil && !regexp.MustCompile(`(?m)^(entities|sources|features|endpoints|experiments|monitors):`).Match(b) {
			files = append(files, p)
		}
	}
	if len(files) < 3 {
		t.Fatalf("examples: %v", files)
	}
	return files
}

func TestFlowVersions(t *testing.T) {
	t.Parallel()
	home, dir := t.TempDir(), t.TempDir()
	p := writeFile(t, dir, "v.yaml", "name: versioned\nsteps:\n  - name: a\n    run: echo one\n")
	must(t, baton(t, home, "flow", "apply", p), 0)
	writeFile(t, dir, "v.yaml", "# a comment changes nothing\nname: versioned\nsteps:\n  - name: a\n    run: echo one\n")
	if r := must(t, baton(t, home, "flow", "apply", p), 0); !strings.Contains(r.stdout, "v1 unchanged") {
		t.Fatalf("comment-only change: %s", r.stdout)
	}
	writeFile(t, dir, "v.yaml", "name: versioned\nsteps:\n  - name: a\n    run: echo two\n")
	if r := must(t, baton(t, home, "flow", "apply", p), 0); !strings.Contains(r.stdout, "v2 registered") {
		t.Fatalf("changed flow: %s", r.stdout)
	}
	must(t, baton(t, home, "run", "versioned"), 0)
	if v := show(t, home, 1); v.Flow != "versioned" {
		t.Fatalf("run by name: %+v", v)
	}
	r := must(t, baton(t, home, "flow", "show", "versioned", "--versions", "-o", "json"), 0)
	var vs []map[string]any
	json.Unmarshal([]byte(r.stdout), &vs)
	if len(vs) != 2 || vs[0]["version"].(float64) != 2 {
		t.Fatalf("versions: %s", r.stdout)
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	home, dir := t.TempDir(), t.TempDir()
	good := writeFile(t, dir, "good.yaml", "name: good\nparams:\n  n: {type: int, default: 1}\nsteps:\n  - name: a\n    run: 'true'\n")
	cases := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"malformed yaml", []string{"run", writeFile(t, dir, "bad1.yaml", "name: x\nsteps:\n  - name: a\n    run: [unclosed\n")}, 2, []string{"bad1.yaml:"}},
		{"unknown field", []string{"run", writeFile(t, dir, "bad2.yaml", "name: x\nsteps:\n  - name: a\n    runn: true\n")}, 2, []string{"bad2.yaml:4:", "runn"}},
		{"cycle", []string{"flow", "apply", writeFile(t, dir, "bad3.yaml", "name: x\nsteps:\n  - {name: a, needs: [b], run: 'true'}\n  - {name: b, needs: [a], run: 'true'}\n")}, 2, []string{"cycle", "a -> b -> a"}},
		{"one bad file registers nothing", []string{"flow", "apply", good, filepath.Join(dir, "bad3.yaml")}, 2, []string{"bad3.yaml"}},
		{"undeclared param", []string{"run", good, "--param", "m=2"}, 2, []string{`"m"`}},
		{"param type", []string{"run", good, "--param", "n=two"}, 2, []string{`"two" is not an int`}},
		{"param without =", []string{"run", good, "--param", "n"}, 2, []string{"NAME=VALUE"}},
		{"no such file", []string{"run", filepath.Join(dir, "nope.yaml")}, 2, []string{"no such flow file"}},
		{"unknown command", []string{"frobnicate"}, 2, []string{"unknown command"}},
		{"unknown flag", []string{"runs", "--bogus"}, 2, []string{"unknown flag"}},
		{"bad output format", []string{"runs", "-o", "xml"}, 2, []string{"-o"}},
		{"artifact path with ..", []string{"artifact", "get", "1/a/../../etc/passwd"}, 2, []string{`".."`}},
		{"absolute artifact name", []string{"artifact", "get", "1/a//etc/passwd"}, 2, []string{"1/a//etc/passwd"}},
		{"bad run id", []string{"show", "abc"}, 2, []string{"run id"}},
		{"missing run", []string{"show", "42"}, 1, []string{"run 42", "not found"}},
		{"missing run to resume", []string{"resume", "42"}, 1, []string{"run 42"}},
		{"postgres unreachable", []string{"runs", "--db", "postgres://u:secret@127.0.0.1:1/db?connect_timeout=1"}, 2, []string{"PostgreSQL is unreachable", "u:***@"}},
	}
	for _, c := range cases {
		r := baton(t, home, c.args...)
		if r.code != c.code {
			t.Errorf("%s: exit %d, want %d\nstderr: %s", c.name, r.code, c.code, r.stderr)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%s: stderr does not mention %q:\n%s", c.name, w, r.stderr)
			}
		}
		if strings.Contains(r.stderr, "secret") {
			t.Errorf("%s: a password reached the message: %s", c.name, r.stderr)
		}
	}
	// Nothing was stored by any of it.
	if r := must(t, baton(t, home, "runs", "-o", "json"), 0); strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("bad input stored runs: %s", r.stdout)
	}
	if r := must(t, baton(t, home, "flow", "list", "-o", "json"), 0); strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("bad input registered flows: %s", r.stdout)
	}
	// And with a run in place, missing artifacts are clear errors.
	must(t, baton(t, home, "run", good), 0)
	r := must(t, baton(t, home, "artifact", "get", "1/a/nothing.txt"), 1)
	if !strings.Contains(r.stderr, `no artifact "nothing.txt"`) {
		t.Fatalf("missing artifact: %s", r.stderr)
	}
	r = must(t, baton(t, home, "artifact", "get", "1/zz/x"), 1)
	if !strings.Contains(r.stderr, `no step "zz"`) {
		t.Fatalf("missing step: %s", r.stderr)
	}
}

// killFlow fans out over n tasks that each take a little while, leave an
// output and append their index and run id to a ledger.
func killFlow(t *testing.T, dir string, n int) (flowFile, ledger string) {
	ledger = filepath.Join(dir, "ledger")
	flowFile = writeFile(t, dir, "kill.yaml", fmt.Sprintf(`name: killme
params:
  ledger: {default: %q}
steps:
  - name: start
    run: |
      awk 'BEGIN { printf "["; for (i = 0; i < %d; i++) printf "%%s%%d", (i ? "," : ""), i; print "]" }' > "$BATON_OUTPUT_DIR/items.json"
  - name: work
    needs: [start]
    foreach: items.json
    run: |
      sleep 0.05
      echo "$BATON_FOREACH_ITEM" > "$BATON_OUTPUT_DIR/out.txt"
      echo "$BATON_FOREACH_ITEM $BATON_RUN_ID" >> "$BATON_PARAM_LEDGER"
  - name: join
    needs: [work]
    run: cat "$BATON_INPUT_DIR"/work/*/out.txt | wc -l | tr -d ' ' > "$BATON_OUTPUT_DIR/count"
`, ledger, n))
	return flowFile, ledger
}

func TestSIGKILLThenResume(t *testing.T) {
	t.Parallel()
	for _, after := range []int{3, 25, 60} {
		t.Run(fmt.Sprint("after", after), func(t *testing.T) {
			t.Parallel()
			home, dir := t.TempDir(), t.TempDir()
			const n = 80
			flowFile, ledger := killFlow(t, dir, n)
			cmd := exec.Command(bin, "run", flowFile, "--workers", "4")
			cmd.Env = append(os.Environ(), "BATON_HOME="+home)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			// Kill it once `after` tasks are recorded as done.
			testwait.Until(failFirst{t, func() { cmd.Process.Kill() }}, 60*time.Second, func() (bool, string) {
				select {
				case err := <-exited:
					t.Fatalf("baton exited before the kill: %v\n%s", err, stderr.String())
				default:
				}
				n := countDone(t, home)
				return n >= after, fmt.Sprintf("%d done", n)
			}, "%d tasks to be done before the kill", after)
			cmd.Process.Signal(syscall.SIGKILL)
			<-exited

			before := show(t, home, 1)
			if before.Status != "running" {
				t.Fatalf("a killed run should still read running, got %s", before.Status)
			}
			done := map[int]bool{}
			for _, s := range before.Steps {
				if s.Name != "work" {
					continue
				}
				for _, tk := range s.Tasks {
					if tk.Status == "succeeded" {
						done[tk.Index] = true
					}
				}
			}
			r := must(t, baton(t, home, "resume", "1"), 0)
			if !strings.Contains(r.stdout, "run 2 succeeded") {
				t.Fatalf("resume: %s %s", r.stdout, r.stderr)
			}
			old := show(t, home, 1)
			if old.Status != "failed" || !strings.Contains(old.Error, "died") {
				t.Fatalf("the killed run after resume: %s %q", old.Status, old.Error)
			}
			if got := strings.TrimSpace(must(t, baton(t, home, "artifact", "get", "2/join/count"), 0).stdout); got != strconv.Itoa(n) {
				t.Fatalf("join saw %s outputs, want %d", got, n)
			}
			v := show(t, home, 2)
			reused := 0
			for _, s := range v.Steps {
				for _, tk := range s.Tasks {
					if tk.Status != "succeeded" {
						t.Fatalf("task %s/%d: %s", s.Name, tk.Index, tk.Status)
					}
					if s.Name == "work" && tk.Reused {
						reused++
						if !done[tk.Index] || tk.ReusedFrom != fmt.Sprintf("1/work/%d", tk.Index) {
							t.Fatalf("task %d reused from %q but was not done in run 1", tk.Index, tk.ReusedFrom)
						}
					}
				}
			}
			if reused != len(done) {
				t.Fatalf("reused %d tasks, run 1 had completed %d", reused, len(done))
			}
			// Nothing that completed ran twice: a task recorded done in run
			// 1 has no line from run 2 in the ledger.
			b, _ := os.ReadFile(ledger)
			for line := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
				var idx, run int
				fmt.Sscan(line, &idx, &run)
				if run == 2 && done[idx] {
					t.Fatalf("task %d completed in run 1 and ran again in run 2", idx)
				}
			}
		})
	}
}

// countDone reads how many work tasks the store records as succeeded.
func countDone(t *testing.T, home string) int {
	cmd := exec.Command(bin, "show", "1", "-o", "json")
	cmd.Env = append(os.Environ(), "BATON_HOME="+home)
	out, err := cmd.Output()
	if err != nil {
		return 0
	}
	var v showJSON
	if json.Unmarshal(out, &v) != nil {
		return 0
	}
	n := 0
	for _, s := range v.Steps {
		if s.Name == "work" {
			for _, tk := range s.Tasks {
				if tk.Status == "succeeded" {
					n++
				}
			}
		}
	}
	return n
}

func TestCtrlCCancels(t *testing.T) {
	t.Parallel()
	home, dir := t.TempDir(), t.TempDir()
	p := writeFile(t, dir, "slow.yaml", "name: slow\nsteps:\n  - name: a\n    foreach: [1, 2, 3]\n    run: sleep 30\n  - name: b\n    needs: [a]\n    run: 'true'\n")
	cmd := exec.Command(bin, "run", p)
	cmd.Env = append(os.Environ(), "BATON_HOME="+home)
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Each check runs `baton show`: every 20 ms is often enough.
	testwait.UntilEvery(failFirst{t, func() { cmd.Process.Kill() }}, 30*time.Second, 20*time.Millisecond, func() (bool, string) {
		c := exec.Command(bin, "show", "1", "-o", "json")
		c.Env = cmd.Env
		b, _ := c.Output()
		return bytes.Contains(b, []byte(`"status": "running"`)) && bytes.Contains(b, []byte(`"attempts": 1`)), string(b)
	}, "the run to be running a first attempt")
	start := time.Now()
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit after Ctrl-C: %v", err)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Fatalf("cancelling took %s", took)
	}
	v := show(t, home, 1)
	if v.Status != "cancelled" || v.Steps[0].Status != "cancelled" || v.Steps[1].Status != "cancelled" {
		t.Fatalf("after Ctrl-C: %+v", v)
	}
	for _, tk := range v.Steps[0].Tasks {
		if tk.Status != "cancelled" {
			t.Fatalf("task %d: %s", tk.Index, tk.Status)
		}
	}
	if !strings.Contains(out.String(), "run 1 cancelled") {
		t.Fatalf("stdout: %s", out.String())
	}
}

// TestSmokeContract runs the shared spec's smoke script against the binary.
// Without the spec beside the repository (or python3, which the script
// uses) it is skipped, except under CI=true, where a missing piece fails
// the test: CI must check the contract, not quietly pass.
func TestSmokeContract(t *testing.T) {
	t.Parallel()
	smoke := "../../../shared/spec/smoke/smoke.sh"
	if p := os.Getenv("BATON_SMOKE_SCRIPT"); p != "" {
		smoke = p
	}
	if err := smokeReady(smoke); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the smoke contract cannot run under CI=true: %v", err)
		}
		t.Skipf("%v (under CI=true this fails)", err)
	}
	out, err := exec.Command(smoke, bin).CombinedOutput()
	if err != nil {
		t.Fatalf("smoke: %v\n%s", err, out)
	}
}

// smokeReady says what is missing for the smoke script at path to run.
func smokeReady(path string) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("the shared spec is not beside the repository (%s): %w", path, err)
	}
	for _, tool := range []string{"bash", "python3"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("the smoke script needs %s: %w", tool, err)
		}
	}
	return nil
}

func TestSmokeReady(t *testing.T) {
	t.Parallel()
	if err := smokeReady(filepath.Join(t.TempDir(), "smoke.sh")); err == nil || !strings.Contains(err.Error(), "not beside the repository") {
		t.Fatalf("a missing script: %v", err)
	}
	// The guard itself: CI=true turns a missing piece into a failure.
	for _, env := range [][]string{
		{"BATON_SMOKE_SCRIPT=" + filepath.Join(t.TempDir(), "smoke.sh")},
		{"PATH=/nonexistent"},
	} {
		run := func(ci string) (string, error) {
			cmd := exec.Command(os.Args[0], "-test.run", "^TestSmokeContract$", "-test.v")
			cmd.Env = append(append(os.Environ(), "BATON_E2E_NO_BUILD=1", "CI="+ci), env...)
			out, err := cmd.CombinedOutput()
			return string(out), err
		}
		if out, err := run("true"); err == nil || !strings.Contains(out, "the smoke contract cannot run under CI=true") {
			t.Fatalf("%v under CI=true: %v\n%s", env, err, out)
		}
		if out, err := run(""); err != nil || !strings.Contains(out, "--- SKIP: TestSmokeContract") {
			t.Fatalf("%v without CI: %v\n%s", env, err, out)
		}
	}
}

// The shipped examples run through the real binary and do what their
// comments say.
func TestExamplesRun(t *testing.T) {
	t.Parallel()
	t.Run("hello with more than ten names", func(t *testing.T) {
		t.Parallel()
		home := t.TempDir()
		names := `["n0","n1","n2","n3","n4","n5","n6","n7","n8","n9","n10","n11"]`
		must(t, baton(t, home, "run", "../../examples/hello/hello.yaml", "--param", "greeting=Hi", "--param", "names="+names), 0)
		var want strings.Builder
		for i := range 12 {
			fmt.Fprintf(&want, "Hi, n%d!\n", i)
		}
		if got := must(t, baton(t, home, "artifact", "get", "1/join/greetings.txt"), 0).stdout; got != want.String() {
			t.Fatalf("greetings = %q", got)
		}
	})
	t.Run("flaky retries", func(t *testing.T) {
		t.Parallel()
		home := t.TempDir()
		must(t, baton(t, home, "run", "../../examples/retry/flaky.yaml"), 0)
		if got := must(t, baton(t, home, "artifact", "get", "1/flaky/result.txt"), 0).stdout; got != "succeeded on attempt 2\n" {
			t.Fatalf("result = %q", got)
		}
		if v := show(t, home, 1); v.Steps[0].Tasks[0].Attempts != 2 {
			t.Fatalf("attempts = %d", v.Steps[0].Tasks[0].Attempts)
		}
		r := must(t, baton(t, home, "run", "../../examples/retry/flaky.yaml", "--param", "failures=5"), 1)
		if !strings.Contains(r.stdout, "failed after 3 attempt(s)") {
			t.Fatalf("stdout: %s", r.stdout)
		}
		if logs := must(t, baton(t, home, "logs", "2/flaky/0", "--attempt", "2", "--stream", "stderr"), 0).stdout; logs != "failing attempt 2 on purpose\n" {
			t.Fatalf("logs of attempt 2: %q", logs)
		}
	})
	t.Run("bench foreach", func(t *testing.T) {
		t.Parallel()
		home := t.TempDir()
		must(t, baton(t, home, "run", "../../examples/bench/foreach.yaml", "--param", "n=25"), 0)
		if got := must(t, baton(t, home, "artifact", "get", "1/check/count.txt"), 0).stdout; got != "25\n" {
			t.Fatalf("count = %q", got)
		}
		if got := must(t, baton(t, home, "artifact", "get", "1/work/24/out.txt"), 0).stdout; got != "item-24" {
			t.Fatalf("out = %q", got)
		}
	})
}

// The example Kubernetes manifests are well-formed YAML with the kinds the
// deployment docs describe.
func TestDeployManifests(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob("../../deploy/kubernetes/*.yaml")
	kinds := map[string]int{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range strings.Split(string(b), "\n---\n") {
			var m struct {
				Kind string `yaml:"kind"`
			}
			if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			kinds[m.Kind]++
		}
	}
	if kinds["Deployment"] != 2 || kinds["Secret"] != 1 || kinds["Service"] != 1 || kinds["HorizontalPodAutoscaler"] != 1 {
		t.Fatalf("manifests: %v", kinds)
	}
}
