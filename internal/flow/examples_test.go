package flow

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// runLocally runs a flow's shell steps one task at a time, giving each task
// the environment the contract describes (docs: spec "What a task sees"). It
// is a stand-in for the engine, there to prove the example scripts work with
// a plain /bin/sh. It returns the folder holding every task's outputs as
// <step>/<name> or <step>/<index>/<name>.
func runLocally(t *testing.T, file string, given map[string]string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	f, err := ParseFile(file)
	if err != nil {
		t.Fatal(err)
	}
	params, err := f.ResolveParams(given)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	out := filepath.Join(root, "out")
	dir, err := filepath.Abs(filepath.Dir(file))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range f.TopoOrder() {
		in := filepath.Join(root, "in", s.Name)
		if err := os.MkdirAll(in, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, n := range s.Needs {
			if err := os.Symlink(filepath.Join(out, n), filepath.Join(in, n)); err != nil {
				t.Fatal(err)
			}
		}
		items := []json.RawMessage{nil}
		if fe := s.Foreach; fe != nil {
			items = fe.Items
			if fe.Artifact != "" {
				name := fe.Artifact
				if !strings.Contains(name, "/") {
					name = s.Needs[0] + "/" + name
				}
				b, err := os.ReadFile(filepath.Join(out, name))
				if err != nil {
					return out, fmt.Errorf("step %s: %w", s.Name, err)
				}
				if err := json.Unmarshal(b, &items); err != nil {
					return out, fmt.Errorf("step %s: %s is not a JSON array: %w", s.Name, name, err)
				}
			}
		}
		for i, item := range items {
			env := append(os.Environ(),
				"BATON_RUN_ID=local", "BATON_FLOW="+f.Name, "BATON_STEP="+s.Name,
				fmt.Sprintf("BATON_TASK_ID=%s-%d", s.Name, i), "BATON_INPUT_DIR="+in)
			for k, v := range params {
				env = append(env, "BATON_PARAM_"+strings.ToUpper(k)+"="+ParamEnv(v))
			}
			for k, v := range s.Env {
				env = append(env, k+"="+v)
			}
			taskOut := filepath.Join(out, s.Name)
			if s.Foreach != nil {
				taskOut = filepath.Join(taskOut, strconv.Itoa(i))
				env = append(env, "BATON_FOREACH_INDEX="+strconv.Itoa(i), "BATON_FOREACH_ITEM="+ParamEnv(item))
			}
			env = append(env, "BATON_OUTPUT_DIR="+taskOut)
			if err := runTask(s, dir, taskOut, env); err != nil {
				return out, fmt.Errorf("step %s task %d: %w", s.Name, i, err)
			}
		}
	}
	return out, nil
}

func runTask(s *Step, dir, outDir string, env []string) error {
	var err error
	for attempt := 1; attempt <= s.Retry.MaxAttempts(); attempt++ {
		time.Sleep(s.Retry.Delay(attempt))
		if err = os.RemoveAll(outDir); err != nil {
			return err
		}
		if err = os.MkdirAll(outDir, 0o755); err != nil {
			return err
		}
		ctx, cancel := context.WithCancel(context.Background())
		if s.Timeout > 0 {
			ctx, cancel = context.WithTimeout(context.Background(), time.Duration(s.Timeout))
		}
		cmd := exec.CommandContext(ctx, "/bin/sh", "-c", s.Run)
		cmd.Dir = dir
		cmd.Env = append(env, "BATON_ATTEMPT="+strconv.Itoa(attempt))
		var outb []byte
		outb, err = cmd.CombinedOutput()
		cancel()
		if err == nil {
			return nil
		}
		err = fmt.Errorf("attempt %d: %w: %s", attempt, err, outb)
	}
	return err
}

func readOut(t *testing.T, out, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(out, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestExampleHello(t *testing.T) {
	out, err := runLocally(t, "../../examples/hello/hello.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := readOut(t, out, "join/greetings.txt"), "Hello, Ada!\nHello, Grace!\nHello, Linus!\nHello, Margaret!\n"; got != want {
		t.Errorf("greetings = %q, want %q", got, want)
	}
	// More than ten items, so a lexical order of indexes would show.
	names := `["n0","n1","n2","n3","n4","n5","n6","n7","n8","n9","n10","n11"]`
	out, err = runLocally(t, "../../examples/hello/hello.yaml", map[string]string{"greeting": "Hi", "names": names})
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for i := range 12 {
		fmt.Fprintf(&want, "Hi, n%d!\n", i)
	}
	if got := readOut(t, out, "join/greetings.txt"); got != want.String() {
		t.Errorf("greetings = %q, want %q", got, want.String())
	}
}

func TestExampleFlaky(t *testing.T) {
	out, err := runLocally(t, "../../examples/retry/flaky.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := readOut(t, out, "flaky/result.txt"); got != "succeeded on attempt 2\n" {
		t.Errorf("result = %q", got)
	}
	if _, err := runLocally(t, "../../examples/retry/flaky.yaml", map[string]string{"failures": "5"}); err == nil {
		t.Errorf("flaky with failures=5 succeeded; its 3 attempts should all fail")
	}
}

func TestExampleBench(t *testing.T) {
	f, err := ParseFile("../../examples/bench/foreach.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := string(f.Param("n").Default); got != "2000" {
		t.Errorf("n defaults to %s, want 2000", got)
	}
	out, err := runLocally(t, "../../examples/bench/foreach.yaml", map[string]string{"n": "25"})
	if err != nil {
		t.Fatal(err)
	}
	if got := readOut(t, out, "check/count.txt"); got != "25\n" {
		t.Errorf("count = %q", got)
	}
	if got := readOut(t, out, "work/24/out.txt"); got != "item-24" {
		t.Errorf("work/24/out.txt = %q", got)
	}
}

func TestSpecSmokePipeline(t *testing.T) {
	p := filepath.Join(specDir, "pipeline.yaml")
	if !fileExists(p) {
		t.Skip("no shared spec")
	}
	out, err := runLocally(t, p, map[string]string{"who": "smoke"})
	if err != nil {
		t.Fatal(err)
	}
	if got := readOut(t, out, "join/all.txt"); got != "ABC" {
		t.Errorf("all.txt = %q", got)
	}
	if _, err := ParseFile(filepath.Join(specDir, "broken.yaml")); err == nil || !strings.Contains(err.Error(), `unknown step "missing"`) {
		t.Errorf("broken.yaml: %v", err)
	}
}
