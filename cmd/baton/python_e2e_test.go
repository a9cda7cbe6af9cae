package main_test

// The Python API (python/, issue 19): its unit tests, and example flows in
// examples/python run end to end through the binary, their results read
// back with `baton artifact get` and `baton show -o json`.

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// python3 is the interpreter the Python tests use: skipped where there is
// none, except in CI, where a missing python3 is a failure.
func python3(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("python3 is not on PATH: the Python API tests need it (CI=true)")
		}
		t.Skip("python3 is not on PATH: skipping the Python API tests")
	}
	return p
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func TestPythonUnit(t *testing.T) {
	py := python3(t)
	cmd := exec.Command(py, "-m", "unittest", "discover", "-s", "python/tests")
	cmd.Dir = repoRoot(t)
	// With the binary, the client's tests run real flows instead of skipping.
	cmd.Env = append(os.Environ(), "BATON_BIN="+bin, "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python3 -m unittest: %v\n%s", err, out)
	}
}

type pyEnv struct {
	py, home, dir string
	env           []string
}

func newPyEnv(t *testing.T) *pyEnv {
	py := python3(t)
	home := t.TempDir()
	return &pyEnv{py: py, home: home, dir: t.TempDir(), env: []string{
		"BATON_HOME=" + home, "BATON_BIN=" + bin,
		"PYTHONPATH=" + filepath.Join(repoRoot(t), "python"), "PYTHONDONTWRITEBYTECODE=1",
	}}
}

// flow runs python3 FILE ARGS... in the env's folder.
func (p *pyEnv) flow(t *testing.T, file string, args ...string) result {
	t.Helper()
	if !filepath.IsAbs(file) {
		file = filepath.Join(repoRoot(t), "examples", "python", file)
	}
	cmd := exec.Command(p.py, append([]string{file}, args...)...)
	cmd.Dir = p.dir
	cmd.Env = append(os.Environ(), p.env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("python3 %s %v: %v", file, args, err)
	}
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

var runLine = regexp.MustCompile(`run (\d+) (succeeded|failed)`)

func runID(t *testing.T, r result) string {
	t.Helper()
	m := runLine.FindStringSubmatch(r.stderr + r.stdout)
	if m == nil {
		t.Fatalf("no run line in\nstdout: %s\nstderr: %s", r.stdout, r.stderr)
	}
	return m[1]
}

// artifact is repr() of the pickled artifact ADDR (RUN/STEP/NAME.pkl).
func (p *pyEnv) artifact(t *testing.T, addr string) string {
	t.Helper()
	raw := must(t, batonEnv(t, p.home, nil, "artifact", "get", addr), 0).stdout
	cmd := exec.Command(p.py, "-c", "import pickle,sys; print(repr(pickle.load(sys.stdin.buffer)))")
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdin = strings.NewReader(raw)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("unpickle %s: %v\n%s", addr, err, out)
	}
	return strings.TrimSpace(string(out))
}

type shownRun struct {
	Status string `json:"status"`
	Flow   string `json:"flow"`
	Steps  []struct {
		Name   string `json:"name"`
		Status string `json:"status"`
		Reused int    `json:"reused"`
		Tasks  []struct {
			Status string `json:"status"`
		} `json:"tasks"`
	} `json:"steps"`
}

func (p *pyEnv) show(t *testing.T, id string) shownRun {
	t.Helper()
	var s shownRun
	if err := json.Unmarshal([]byte(must(t, batonEnv(t, p.home, nil, "show", id, "-o", "json"), 0).stdout), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s shownRun) tasks(step string) int {
	for _, st := range s.Steps {
		if st.Name == step {
			return len(st.Tasks)
		}
	}
	return -1
}

func TestPythonFlows(t *testing.T) {
	p := newPyEnv(t)
	cases := []struct {
		file  string
		args  []string
		flow  string
		check map[string]string // artifact address (after RUN/) -> repr
		tasks map[string]int
	}{
		{file: "hello.py", flow: "hello_flow", check: map[string]string{"end/message.pkl": "'baton says hi'"}},
		{file: "squares.py", args: []string{"--n", "5"}, flow: "squares",
			check: map[string]string{"join/total.pkl": "30", "square/3/sq.pkl": "9"}, tasks: map[string]int{"square": 5}},
		{file: "branches.py", flow: "branch_flow",
			check: map[string]string{"end/result.pkl": "'30 [10, 20]'", "end/shared.pkl": "{'seed': 7}"}},
		{file: "nested.py", flow: "nested_flow",
			check: map[string]string{"end/all.pkl": "{'BR': ['BR/RIO#0'], 'US': ['US/NYC#0', 'US/SF#1']}", "city/1/1/label.pkl": "'US/sf'"},
			tasks: map[string]int{"city": 3, "check": 3, "per_market": 2, "report": 1}},
		{file: "switch.py", flow: "switch_flow", check: map[string]string{"end/message.pkl": "'hold: held at 0.50'"}},
		{file: "switch.py", args: []string{"--score", "0.95"}, flow: "switch_flow",
			check: map[string]string{"end/message.pkl": "'promote: deployed'"}},
		{file: "loop.py", args: []string{"--target", "4"}, flow: "loop_flow",
			check: map[string]string{"end/count.pkl": "4", "end/seen.pkl": "[1, 2, 3, 4]", "improve/1/count.pkl": "2"}},
		{file: "decorators.py", flow: "decorator_flow",
			check: map[string]string{"end/summary.pkl": "'attempt=1 failure=always'"}},
	}
	for _, c := range cases {
		t.Run(strings.TrimSuffix(c.file, ".py")+strings.Join(c.args, ""), func(t *testing.T) {
			r := p.flow(t, c.file, append([]string{"run"}, c.args...)...)
			if r.code != 0 {
				t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
			}
			id := runID(t, r)
			s := p.show(t, id)
			if s.Status != "succeeded" || s.Flow != c.flow {
				t.Fatalf("run %s: %+v", id, s)
			}
			for addr, want := range c.check {
				if got := p.artifact(t, id+"/"+addr); got != want {
					t.Errorf("%s/%s = %s, want %s", id, addr, got, want)
				}
			}
			for step, n := range c.tasks {
				if got := s.tasks(step); got != n {
					t.Errorf("step %s: %d tasks, want %d", step, got, n)
				}
			}
		})
	}
	// The runs are baton runs like any other.
	out := must(t, batonEnv(t, p.home, nil, "runs", "--flow", "squares"), 0).stdout
	if !strings.Contains(out, "squares") {
		t.Errorf("baton runs --flow squares:\n%s", out)
	}
}

func TestPythonResume(t *testing.T) {
	p := newPyEnv(t)
	src, err := os.ReadFile(filepath.Join(repoRoot(t), "examples", "python", "resume.py"))
	if err != nil {
		t.Fatal(err)
	}
	file := writeFile(t, p.dir, "resume.py", string(src))
	r := p.flow(t, file, "run")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	origin := runID(t, r)
	writeFile(t, p.dir, "ok", "")
	r = p.flow(t, file, "resume")
	if r.code != 0 {
		t.Fatalf("resume: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	id := runID(t, r)
	if id == origin {
		t.Fatalf("resume made no new run")
	}
	s := p.show(t, id)
	if s.Steps[0].Name != "start" || s.Steps[0].Reused != 1 {
		t.Errorf("start was not reused: %+v", s.Steps[0])
	}
	if got := p.artifact(t, id+"/end/model.pkl"); got != "3" {
		t.Errorf("model = %s, want 3", got)
	}
	// resume STEP re-runs that step and after, from the run given.
	r = p.flow(t, file, "resume", "train", "--origin-run-id", id)
	if r.code != 0 {
		t.Fatalf("resume train: exit %d\n%s", r.code, r.stderr)
	}
	s = p.show(t, runID(t, r))
	if s.Steps[1].Reused != 0 || s.Steps[0].Reused != 1 {
		t.Errorf("resume train: %+v", s.Steps)
	}
}

func TestPythonBadFlow(t *testing.T) {
	p := newPyEnv(t)
	bad := writeFile(t, p.dir, "bad.py", `from baton import FlowSpec, step
class Bad(FlowSpec):
    @step
    def start(self):
        self.next(self.nowhere)
    @step
    def end(self):
        pass
if __name__ == "__main__":
    Bad()
`)
	r := p.flow(t, bad, "run")
	if r.code != 2 || !strings.Contains(r.stderr, "Step *start*") || !strings.Contains(r.stderr, "*nowhere*") {
		t.Fatalf("bad flow: exit %d, stderr %s", r.code, r.stderr)
	}
	for _, args := range [][]string{{"run", "--m", "3"}, {"run", "--n", "abc"}} {
		r = p.flow(t, "squares.py", args...)
		if r.code != 2 || !strings.Contains(r.stderr, strings.TrimPrefix(args[1], "--")) {
			t.Errorf("%v: exit %d, stderr %s", args, r.code, r.stderr)
		}
	}
	r = p.flow(t, "squares.py", "show")
	if r.code != 0 || !strings.Contains(r.stdout, "=> square (foreach items)") {
		t.Errorf("show: exit %d\n%s", r.code, r.stdout)
	}
}

// TestPythonClient runs a flow, then reads it back with the client (Flow,
// Run, Step, Task) in a python3 subprocess on the same home.
func TestPythonClient(t *testing.T) {
	p := newPyEnv(t)
	r := p.flow(t, "squares.py", "run", "--n", "4")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	id := runID(t, r)
	script := `
from baton import Flow, Run, namespace
namespace(None)
run = Flow("Squares").latest_run
print(run.pathspec, run.successful, run.finished, run.data.total)
print([t.data.sq for t in Run(run.pathspec)["square"].tasks()])
task = Run(run.pathspec)["join"].task
print(task.data.total, task["total"].data, repr(run["end"].task.stdout))
print([r.id for r in Flow("Squares")], Flow("Squares").latest_successful_run.id)
`
	cmd := exec.Command(p.py, "-c", script)
	cmd.Dir = p.dir
	cmd.Env = append(os.Environ(), p.env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("client: %v\n%s", err, out)
	}
	want := "Squares/" + id + " True True 14\n" +
		"[0, 1, 4, 9]\n" +
		"14 14 'Squares " + id + " 14\\n'\n" +
		"['" + id + "'] " + id + "\n"
	if string(out) != want {
		t.Errorf("client read back\n%s\nwant\n%s", out, want)
	}
}
