package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/artifact"
	"github.com/baton-ml/baton/internal/engine"
	"github.com/baton-ml/baton/internal/fault"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/store/sqlite"
	"github.com/baton-ml/baton/internal/testwait"
)

type env struct {
	st    store.Store
	blobs *artifact.Store
	eng   *engine.Engine
	dir   string
}

func newEnv(t testing.TB, opt engine.Options) *env {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "baton.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := artifact.Open(ctx, "file://"+filepath.Join(dir, "artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	opt.TempDir = filepath.Join(dir, "tmp")
	eng, err := engine.New(st, blobs, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close(); blobs.Close(); st.Close() })
	return &env{st: st, blobs: blobs, eng: eng, dir: dir}
}

// start registers f and creates a run of it with params.
func (e *env) start(t testing.TB, f *flow.Flow, params map[string]string) store.Run {
	t.Helper()
	ctx := context.Background()
	if err := f.Validate(); err != nil {
		t.Fatalf("invalid test flow: %v", err)
	}
	spec, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	v, _, err := e.st.PutFlowVersion(ctx, store.FlowVersion{Flow: f.Name, Digest: f.Digest(), Spec: spec, Dir: e.dir})
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.ResolveParams(params)
	if err != nil {
		t.Fatal(err)
	}
	r, err := e.st.CreateRun(ctx, store.NewRun{Flow: f.Name, FlowVersion: v.Version, Params: p, Trigger: store.TriggerManual})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (e *env) run(t *testing.T, f *flow.Flow, params map[string]string, opt engine.ExecOptions) store.Run {
	t.Helper()
	r := e.start(t, f, params)
	got, err := e.eng.Execute(context.Background(), r.ID, opt)
	if err != nil {
		t.Fatalf("Execute: %v", err)
	}
	return got
}

func (e *env) artifact(t *testing.T, k store.TaskKey, name string) string {
	t.Helper()
	a, err := e.st.Artifact(context.Background(), k, name)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.blobs.Read(context.Background(), a.Digest)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (e *env) tasks(t testing.TB, run int64, step string) []store.Task {
	t.Helper()
	ts, err := e.st.Tasks(context.Background(), run, step)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func (e *env) steps(t *testing.T, run int64) map[string]store.Step {
	t.Helper()
	ss, err := e.st.Steps(context.Background(), run)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]store.Step{}
	for _, s := range ss {
		out[s.Name] = s
	}
	return out
}

func str(s string) json.RawMessage { b, _ := json.Marshal(s); return b }

func pipeline() *flow.Flow {
	return &flow.Flow{
		Name:   "pipe",
		Params: []flow.Param{{Name: "who", Type: flow.String, Default: str("world")}, {Name: "n", Type: flow.Int, Default: json.RawMessage("2")}},
		Steps: []flow.Step{
			{Name: "start", Run: `printf 'hello %s' "$BATON_PARAM_WHO" > "$BATON_OUTPUT_DIR/greeting.txt"; printf '["a","b","c"]' > "$BATON_OUTPUT_DIR/letters.json"; mkdir "$BATON_OUTPUT_DIR/sub"; echo "$BATON_PARAM_N" > "$BATON_OUTPUT_DIR/sub/n.txt"; echo to-stdout; echo to-stderr >&2`},
			{Name: "upper", Needs: []string{"start"}, Foreach: &flow.Foreach{Artifact: "letters.json"},
				Run: `printf '%s' "$BATON_FOREACH_ITEM" | tr a-z A-Z > "$BATON_OUTPUT_DIR/u.txt"; printf '%s %s %s' "$BATON_FOREACH_INDEX" "$BATON_TASK_ID" "$(cat "$BATON_INPUT_DIR/start/greeting.txt")" > "$BATON_OUTPUT_DIR/meta.txt"`},
			{Name: "join", Needs: []string{"upper"}, Run: `cat "$BATON_INPUT_DIR"/upper/*/u.txt | tr -d '\n' > "$BATON_OUTPUT_DIR/all.txt"`},
		},
	}
}

func TestShellPipeline(t *testing.T) {
	t.Parallel()
	e := newEnv(t, engine.Options{})
	r := e.run(t, pipeline(), map[string]string{"who": "x y; $(rm -rf /)"}, engine.ExecOptions{})
	if r.Status != store.RunSucceeded {
		t.Fatalf("run %s: %s", r.Status, r.Error)
	}
	k := func(step string, i int) store.TaskKey { return store.TaskKey{RunID: r.ID, Step: step, Index: i} }
	// The param reached the task verbatim, not through the shell's parser.
	if got := e.artifact(t, k("start", 0), "greeting.txt"); got != "hello x y; $(rm -rf /)" {
		t.Errorf("greeting = %q", got)
	}
	if got := e.artifact(t, k("start", 0), "sub/n.txt"); got != "2\n" {
		t.Errorf("nested artifact = %q", got)
	}
	if got := e.artifact(t, k("upper", 1), "meta.txt"); got != fmt.Sprintf("1 %d/upper/1 hello x y; $(rm -rf /)", r.ID) {
		t.Errorf("foreach task env = %q", got)
	}
	if got := e.artifact(t, k("join", 0), "all.txt"); got != "ABC" {
		t.Errorf("join = %q", got)
	}
	steps := e.steps(t, r.ID)
	if s := steps["upper"]; s.Status != store.TaskSucceeded || !s.Foreach || s.NumTasks != 3 {
		t.Errorf("upper step = %+v", s)
	}
	for _, tk := range e.tasks(t, r.ID, "upper") {
		if tk.Status != store.TaskSucceeded || tk.Attempts != 1 || *tk.ExitCode != 0 || tk.StartedAt.IsZero() || tk.FinishedAt.Before(tk.StartedAt) {
			t.Errorf("task %+v", tk)
		}
	}
	atts, _ := e.st.Attempts(context.Background(), k("start", 0))
	if len(atts) != 1 || atts[0].StdoutSize == 0 || atts[0].StderrSize == 0 {
		t.Fatalf("attempts of start: %+v", atts)
	}
	if b, _ := e.blobs.Read(context.Background(), atts[0].StderrDigest); string(b) != "to-stderr\n" {
		t.Errorf("stderr log = %q", b)
	}
	left, _ := filepath.Glob(filepath.Join(e.dir, "tmp", "slots", "*", "run-"+strconv.FormatInt(r.ID, 10)))
	if len(left) != 0 {
		t.Errorf("run scratch folder left behind: %v", left)
	}
	if all, _ := filepath.Glob(filepath.Join(e.dir, "tmp", "slots", "*")); len(all) != 1 {
		t.Errorf("the engine's scratch folder is not where the test looks: %v", all)
	}
}

func TestInlineForeachAndEnv(t *testing.T) {
	e := newEnv(t, engine.Options{})
	f := &flow.Flow{Name: "inline", Steps: []flow.Step{{
		Name: "each", Foreach: &flow.Foreach{Items: []json.RawMessage{json.RawMessage(`{"a":1}`), str("plain"), json.RawMessage("3")}},
		Env: map[string]string{"GREETING": "hi"},
		Run: `printf '%s|%s' "$BATON_FOREACH_ITEM" "$GREETING" > "$BATON_OUTPUT_DIR/item"`,
	}}}
	t.Setenv("BATON_PARAM_LEAK", "outer") // an enclosing run's variables must not leak in
	r := e.run(t, f, nil, engine.ExecOptions{})
	if r.Status != store.RunSucceeded {
		t.Fatalf("run %s: %s", r.Status, r.Error)
	}
	want := []string{`{"a":1}|hi`, `plain|hi`, `3|hi`}
	for i, w := range want {
		if got := e.artifact(t, store.TaskKey{RunID: r.ID, Step: "each", Index: i}, "item"); got != w {
			t.Errorf("item %d = %q, want %q", i, got, w)
		}
	}
}

func TestRetryWithBackoff(t *testing.T) {
	t.Parallel()
	e := newEnv(t, engine.Options{})
	f := &flow.Flow{Name: "flaky", Steps: []flow.Step{{
		Name:  "flaky",
		Retry: flow.Retry{Attempts: 3, Backoff: flow.Duration(150 * time.Millisecond)},
		Run:   `echo "try $BATON_ATTEMPT" >&2; [ "$BATON_ATTEMPT" -ge 3 ] || exit 7; echo ok > "$BATON_OUTPUT_DIR/ok"`,
	}}}
	r := e.run(t, f, nil, engine.ExecOptions{})
	if r.Status != store.RunSucceeded {
		t.Fatalf("run %s: %s", r.Status, r.Error)
	}
	k := store.TaskKey{RunID: r.ID, Step: "flaky"}
	tk, _ := e.st.Task(context.Background(), k)
	if tk.Attempts != 3 || tk.Status != store.TaskSucceeded || tk.Error != "" {
		t.Fatalf("task: %+v", tk)
	}
	atts, _ := e.st.Attempts(context.Background(), k)
	if len(atts) != 3 || atts[0].Status != store.TaskFailed || *atts[0].ExitCode != 7 || atts[0].Error != "exit status 7" {
		t.Fatalf("attempts: %+v", atts)
	}
	// Backoff doubles: >= 150ms before try 2, >= 300ms before try 3.
	if gap := atts[1].StartedAt.Sub(atts[0].FinishedAt); gap < 150*time.Millisecond {
		t.Errorf("wait before try 2 = %s, want >= 150ms", gap)
	}
	if gap := atts[2].StartedAt.Sub(atts[1].FinishedAt); gap < 300*time.Millisecond {
		t.Errorf("wait before try 3 = %s, want >= 300ms", gap)
	}
	if b, _ := e.blobs.Read(context.Background(), atts[1].StderrDigest); string(b) != "try 2\n" {
		t.Errorf("log of try 2 = %q", b)
	}
}

func TestFailureSkipsDownstream(t *testing.T) {
	t.Parallel()
	e := newEnv(t, engine.Options{Workers: 1})
	f := &flow.Flow{Name: "fails", Steps: []flow.Step{
		{Name: "each", Foreach: &flow.Foreach{Items: []json.RawMessage{json.RawMessage("0"), json.RawMessage("1"), json.RawMessage("2"), json.RawMessage("3")}},
			Run: `[ "$BATON_FOREACH_INDEX" != 1 ] || exit 3`},
		{Name: "after", Needs: []string{"each"}, Run: "true"},
	}}
	r := e.run(t, f, nil, engine.ExecOptions{})
	if r.Status != store.RunFailed || !strings.Contains(r.Error, "step each task 1") || !strings.Contains(r.Error, "exit status 3") {
		t.Fatalf("run %s: %q", r.Status, r.Error)
	}
	steps := e.steps(t, r.ID)
	if steps["each"].Status != store.TaskFailed || steps["after"].Status != store.TaskSkipped {
		t.Fatalf("steps: %+v", steps)
	}
	ts := e.tasks(t, r.ID, "each")
	// One worker: task 0 succeeded, 1 failed, and nothing new started after.
	if ts[0].Status != store.TaskSucceeded || ts[1].Status != store.TaskFailed || ts[2].Status != store.TaskSkipped || ts[3].Status != store.TaskSkipped {
		t.Fatalf("tasks: %v %v %v %v", ts[0].Status, ts[1].Status, ts[2].Status, ts[3].Status)
	}
	if len(e.tasks(t, r.ID, "after")) != 0 {
		t.Fatal("a skipped step has tasks")
	}
}

func TestTimeoutKillsProcessGroup(t *testing.T) {
	t.Parallel()
	e := newEnv(t, engine.Options{KillGrace: 200 * time.Millisecond})
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	f := &flow.Flow{Name: "slow", Steps: []flow.Step{{
		Name: "slow", Timeout: flow.Duration(300 * time.Millisecond),
		// A background grandchild that ignores SIGTERM, and a foreground sleep.
		Run: `sh -c 'trap "" TERM; sleep 30' & echo $! > "` + pidFile + `"; sleep 30`,
	}}}
	start := time.Now()
	r := e.run(t, f, nil, engine.ExecOptions{})
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("timed-out run took %s", took)
	}
	if r.Status != store.RunFailed || !strings.Contains(r.Error, "timed out after 300ms") {
		t.Fatalf("run %s: %q", r.Status, r.Error)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	testwait.For(t, 5*time.Second, func() bool { return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) || isZombie(pid) },
		"the background process %d to be gone after the timeout", pid)
}

// isZombie reports whether pid has exited but is not yet reaped (it was
// re-parented to init, which reaps it shortly).
func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	fields := strings.Fields(string(b))
	return len(fields) > 2 && fields[2] == "Z"
}

func TestCancel(t *testing.T) {
	t.Parallel()
	e := newEnv(t, engine.Options{Workers: 2, KillGrace: 100 * time.Millisecond})
	f := &flow.Flow{Name: "cancel", Steps: []flow.Step{
		{Name: "each", Foreach: &flow.Foreach{Items: []json.RawMessage{json.RawMessage("0"), json.RawMessage("1"), json.RawMessage("2"), json.RawMessage("3")}},
			Run: `sleep 30`},
	}}
	r := e.start(t, f, nil)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		testwait.For(t, 10*time.Second, func() bool {
			ts, _ := e.st.Tasks(context.Background(), r.ID, "each")
			return len(ts) == 4 && ts[0].Status == store.TaskRunning && ts[1].Status == store.TaskRunning
		}, "the first two tasks to run")
		cancel()
	}()
	got, err := e.eng.Execute(ctx, r.ID, engine.ExecOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != store.RunCancelled {
		t.Fatalf("run %s: %s", got.Status, got.Error)
	}
	for _, tk := range e.tasks(t, r.ID, "each") {
		if tk.Status != store.TaskCancelled {
			t.Errorf("task %d: %s, want cancelled", tk.Index, tk.Status)
		}
	}
	if s := e.steps(t, r.ID)["each"]; s.Status != store.TaskCancelled {
		t.Errorf("step: %s", s.Status)
	}
}

func TestGoSteps(t *testing.T) {
	t.Parallel()
	e := newEnv(t, engine.Options{})
	f := &flow.Flow{Name: "gosteps", Params: []flow.Param{{Name: "k", Type: flow.Int, Default: json.RawMessage("10")}}, Steps: []flow.Step{
		{Name: "start"},
		{Name: "each", Needs: []string{"start"}, Foreach: &flow.Foreach{Artifact: "items.json"}},
		{Name: "join", Needs: []string{"each"}},
	}}
	funcs := map[string]engine.GoFunc{
		"start": func(ctx context.Context, t *engine.Task) error {
			fmt.Fprintln(&t.Stdout, "starting")
			return t.Output(ctx, "items.json", []byte(`[1,2,3,4]`))
		},
		"each": func(ctx context.Context, t *engine.Task) error {
			var k, x int
			json.Unmarshal(t.Params["k"], &k)
			json.Unmarshal(t.Item, &x)
			return t.Output(ctx, "x", []byte(strconv.Itoa(x*k)))
		},
		"join": func(ctx context.Context, t *engine.Task) error {
			arts, err := t.Inputs(ctx, "each")
			if err != nil {
				return err
			}
			sum := 0
			for _, a := range arts {
				b, err := t.Read(ctx, a)
				if err != nil {
					return err
				}
				n, _ := strconv.Atoi(string(b))
				sum += n
			}
			if _, err := t.Input(ctx, "start", "items.json"); err == nil {
				return errors.New("read an artifact of a step that is not a need")
			}
			return t.Output(ctx, "sum", []byte(strconv.Itoa(sum)))
		},
	}
	r := e.run(t, f, map[string]string{"k": "3"}, engine.ExecOptions{Funcs: funcs})
	if r.Status != store.RunSucceeded {
		t.Fatalf("run %s: %s", r.Status, r.Error)
	}
	if got := e.artifact(t, store.TaskKey{RunID: r.ID, Step: "join"}, "sum"); got != "30" {
		t.Fatalf("sum = %s, want 30", got)
	}
}

func TestGoStepFailures(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		fn   engine.GoFunc
		want string
	}{
		"panic":         {func(context.Context, *engine.Task) error { panic("boom") }, "panic: boom"},
		"error":         {func(context.Context, *engine.Task) error { return errors.New("bad data") }, "bad data"},
		"dotdot name":   {func(ctx context.Context, t *engine.Task) error { t.Output(ctx, "../x", nil); return nil }, `contains ".."`},
		"absolute name": {func(ctx context.Context, t *engine.Task) error { t.Output(ctx, "/etc/x", nil); return nil }, "absolute"},
		"written twice": {func(ctx context.Context, t *engine.Task) error {
			t.Output(ctx, "a", nil)
			t.Output(ctx, "a", nil)
			return nil
		}, "written twice"},
		"missing input": {func(ctx context.Context, t *engine.Task) error { _, err := t.Input(ctx, "nope", "x"); return err }, "not among the needs"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, engine.Options{})
			f := &flow.Flow{Name: "gofail", Steps: []flow.Step{{Name: "only"}}}
			r := e.run(t, f, nil, engine.ExecOptions{Funcs: map[string]engine.GoFunc{"only": c.fn}})
			if r.Status != store.RunFailed || !strings.Contains(r.Error, c.want) {
				t.Fatalf("run %s: %q, want failed mentioning %q", r.Status, r.Error, c.want)
			}
		})
	}
}

func TestSymlinkOutputRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, engine.Options{})
	f := &flow.Flow{Name: "link", Steps: []flow.Step{{Name: "a", Run: `ln -s /etc/passwd "$BATON_OUTPUT_DIR/pw"`}}}
	r := e.run(t, f, nil, engine.ExecOptions{})
	if r.Status != store.RunFailed || !strings.Contains(r.Error, "not a regular file") {
		t.Fatalf("run %s: %q", r.Status, r.Error)
	}
}

func TestMissingForeachSource(t *testing.T) {
	t.Parallel()
	e := newEnv(t, engine.Options{})
	f := &flow.Flow{Name: "nosrc", Steps: []flow.Step{
		{Name: "a", Run: `printf '{"not":"array"}' > "$BATON_OUTPUT_DIR/obj.json"`},
		{Name: "b", Needs: []string{"a"}, Foreach: &flow.Foreach{Artifact: "items.json"}, Run: "true"},
		{Name: "c", Needs: []string{"a"}, Foreach: &flow.Foreach{Artifact: "obj.json"}, Run: "true"},
	}}
	r := e.run(t, f, nil, engine.ExecOptions{})
	if r.Status != store.RunFailed || !strings.Contains(r.Error, `foreach source "items.json"`) {
		t.Fatalf("run %s: %q", r.Status, r.Error)
	}
}

func TestResumeReusesSucceededTasks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, engine.Options{Workers: 1}) // deterministic: task 4 never starts in the first run
	var runs [3]atomic.Int32                   // executions of start, each, join
	var broken atomic.Bool
	broken.Store(true)
	f := &flow.Flow{Name: "resumable", Steps: []flow.Step{
		{Name: "start"},
		{Name: "each", Needs: []string{"start"}, Foreach: &flow.Foreach{Artifact: "items.json"}},
		{Name: "join", Needs: []string{"each"}},
	}}
	funcs := map[string]engine.GoFunc{
		"start": func(ctx context.Context, t *engine.Task) error {
			runs[0].Add(1)
			return t.Output(ctx, "items.json", []byte(`[0,1,2,3,4]`))
		},
		"each": func(ctx context.Context, t *engine.Task) error {
			runs[1].Add(1)
			if t.Key.Index == 3 && broken.Load() {
				return errors.New("item 3 is broken")
			}
			return t.Output(ctx, "v", t.Item)
		},
		"join": func(ctx context.Context, t *engine.Task) error {
			runs[2].Add(1)
			arts, err := t.Inputs(ctx, "each")
			if err != nil {
				return err
			}
			return t.Output(ctx, "n", []byte(strconv.Itoa(len(arts))))
		},
	}
	opt := engine.ExecOptions{Funcs: funcs}
	first := e.run(t, f, nil, opt)
	if first.Status != store.RunFailed {
		t.Fatalf("first run: %s", first.Status)
	}
	if runs[0].Load() != 1 || runs[1].Load() != 4 || runs[2].Load() != 0 {
		t.Fatalf("first run executions: %d %d %d", runs[0].Load(), runs[1].Load(), runs[2].Load())
	}
	broken.Store(false)
	second, err := e.eng.Resume(context.Background(), first.ID, "", true)
	if err != nil {
		t.Fatal(err)
	}
	if second.Trigger != store.TriggerResume || second.OriginRunID != first.ID {
		t.Fatalf("resumed run: %+v", second)
	}
	second, err = e.eng.Execute(context.Background(), second.ID, opt)
	if err != nil || second.Status != store.RunSucceeded {
		t.Fatalf("resumed run: %s %v (%s)", second.Status, err, second.Error)
	}
	// Only the failed task, the one never started, and the join ran.
	if runs[0].Load() != 1 || runs[1].Load() != 6 || runs[2].Load() != 1 {
		t.Fatalf("executions after resume: start %d each %d join %d, want 1 6 1", runs[0].Load(), runs[1].Load(), runs[2].Load())
	}
	if got := e.artifact(t, store.TaskKey{RunID: second.ID, Step: "join"}, "n"); got != "5" {
		t.Fatalf("join saw %s artifacts, want 5", got)
	}
	for _, tk := range e.tasks(t, second.ID, "each") {
		wantReused := tk.Index < 3
		if tk.Reused() != wantReused || (wantReused && tk.ReusedFrom.RunID != first.ID) || tk.Status != store.TaskSucceeded {
			t.Errorf("task %d: reused=%v from %d status %s", tk.Index, tk.Reused(), tk.ReusedFrom.RunID, tk.Status)
		}
	}
	// Resume from a step re-runs it and everything below, and reuses above.
	third, err := e.eng.Resume(context.Background(), second.ID, "each", true)
	if err != nil {
		t.Fatal(err)
	}
	third, err = e.eng.Execute(context.Background(), third.ID, opt)
	if err != nil || third.Status != store.RunSucceeded {
		t.Fatalf("resume --from: %s %v", third.Status, err)
	}
	if runs[0].Load() != 1 || runs[1].Load() != 11 || runs[2].Load() != 2 {
		t.Fatalf("executions after resume --from each: %d %d %d, want 1 11 2", runs[0].Load(), runs[1].Load(), runs[2].Load())
	}
	if st := e.tasks(t, third.ID, "start"); !st[0].Reused() || st[0].ReusedFrom.RunID != first.ID {
		t.Fatalf("start in third run: %+v", st[0])
	}
	if _, err := e.eng.Resume(context.Background(), second.ID, "nope", true); !errors.Is(err, fault.Invalid) || !strings.Contains(err.Error(), "no step") {
		t.Fatalf("resume from an unknown step: %v", err)
	}
}

func TestResumeRefusesLiveRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t, engine.Options{})
	r := e.start(t, &flow.Flow{Name: "live", Steps: []flow.Step{{Name: "a", Run: "true"}}}, nil)
	// Another live process on another host holds the run.
	if _, err := e.st.AcquireRun(context.Background(), r.ID, "elsewhere:1:abcd", time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := e.eng.Resume(context.Background(), r.ID, "", true); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("resume of a live run: %v, want ErrConflict", err)
	}
	// A dead process of this host: resume ends it and starts over.
	host, _ := os.Hostname()
	if _, err := e.st.RenewLease(context.Background(), r.ID, "elsewhere:1:abcd", -time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.AcquireRun(context.Background(), r.ID, host+":999999999:dead", time.Minute); err != nil {
		t.Fatal(err)
	}
	nr, err := e.eng.Resume(context.Background(), r.ID, "", true)
	if err != nil {
		t.Fatalf("resume of a run whose owner died: %v", err)
	}
	old, _ := e.st.Run(context.Background(), r.ID)
	if old.Status != store.RunFailed || !strings.Contains(old.Error, "died") {
		t.Fatalf("orphaned run: %s %q", old.Status, old.Error)
	}
	if got, err := e.eng.Execute(context.Background(), nr.ID, engine.ExecOptions{}); err != nil || got.Status != store.RunSucceeded {
		t.Fatalf("resumed: %v %v", got.Status, err)
	}
}

func TestLeaseLostStopsWriting(t *testing.T) {
	t.Parallel()
	e := newEnv(t, engine.Options{LeaseTTL: 300 * time.Millisecond})
	f := &flow.Flow{Name: "stolen", Steps: []flow.Step{{Name: "a", Run: "sleep 30"}}}
	r := e.start(t, f, nil)
	go func() {
		testwait.For(t, 10*time.Second, func() bool {
			ts, _ := e.st.Tasks(context.Background(), r.ID, "a")
			return len(ts) == 1 && ts[0].Status == store.TaskRunning
		}, "the task to run")
		// Someone else declares the owner dead and takes the run.
		e.st.AbandonRun(context.Background(), r.ID, "test", true)
	}()
	_, err := e.eng.Execute(context.Background(), r.ID, engine.ExecOptions{})
	if !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("Execute after losing the lease: %v, want ErrLeaseLost", err)
	}
	got, _ := e.st.Run(context.Background(), r.ID)
	if got.Status != store.RunFailed || !strings.Contains(got.Error, "abandoned") {
		t.Fatalf("the fenced owner overwrote the run: %s %q", got.Status, got.Error)
	}
}

func TestSDKStepNeedsFuncs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, engine.Options{})
	r := e.start(t, &flow.Flow{Name: "sdk", Steps: []flow.Step{{Name: "a"}}}, nil)
	_, err := e.eng.Execute(context.Background(), r.ID, engine.ExecOptions{})
	if err == nil || !strings.Contains(err.Error(), "Go SDK step") {
		t.Fatalf("Execute without funcs: %v", err)
	}
}

// A join's inputs are read-only copies with the documented layout, and
// they are removed with the run's scratch folder even when a task added
// files next to them.
func TestInputsAreReadOnlyCopies(t *testing.T) {
	t.Parallel()
	e := newEnv(t, engine.Options{})
	f := &flow.Flow{Name: "inputs", Steps: []flow.Step{
		{Name: "work", Foreach: &flow.Foreach{Items: []json.RawMessage{str("a"), str("b"), str("c")}},
			Run: `printf '%s' "$BATON_FOREACH_ITEM" > "$BATON_OUTPUT_DIR/out.txt"`},
		{Name: "join", Needs: []string{"work"}, Run: `for i in 0 1 2; do
  f="$BATON_INPUT_DIR/work/$i/out.txt"
  printf '%s %s\n' "$(cat "$f")" "$(ls -ln "$f" | awk '{print $2, $1}')"
done > "$BATON_OUTPUT_DIR/seen.txt"
touch "$BATON_INPUT_DIR/work/0/extra"; mkdir -p "$BATON_INPUT_DIR/new/sub"`},
	}}
	r := e.run(t, f, nil, engine.ExecOptions{})
	if r.Status != store.RunSucceeded {
		t.Fatalf("run %s: %s", r.Status, r.Error)
	}
	// Content, then link count (1: a file of its own), then mode.
	want := "a 1 -r--r--r--\nb 1 -r--r--r--\nc 1 -r--r--r--\n"
	if got := e.artifact(t, store.TaskKey{RunID: r.ID, Step: "join"}, "seen.txt"); got != want {
		t.Errorf("the join saw\n%s, want\n%s", got, want)
	}
	// What the engine made is gone, and so is what the task added.
	left, _ := filepath.Glob(filepath.Join(e.dir, "tmp", "slots", "*", "run-"+strconv.FormatInt(r.ID, 10)))
	if len(left) != 0 {
		t.Errorf("run scratch folder left behind: %v", left)
	}
}

// What a failed attempt leaves in its output folder is not collected as the
// next attempt's output (the folder is emptied when a task starts).
func TestFailedAttemptLeavesNoOutputs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, engine.Options{Workers: 1})
	f := &flow.Flow{Name: "leftovers", Steps: []flow.Step{{Name: "a", Retry: flow.Retry{Attempts: 2},
		Run: `if [ "$BATON_ATTEMPT" = 1 ]; then echo junk > "$BATON_OUTPUT_DIR/junk.txt"; mkdir "$BATON_OUTPUT_DIR/d"; exit 1; fi
echo ok > "$BATON_OUTPUT_DIR/ok.txt"`}}}
	r := e.run(t, f, nil, engine.ExecOptions{})
	if r.Status != store.RunSucceeded {
		t.Fatalf("run %s: %s", r.Status, r.Error)
	}
	arts, err := e.st.Artifacts(context.Background(), store.ArtifactFilter{RunID: r.ID, Step: "a", Index: -1})
	if err != nil {
		t.Fatal(err)
	}
	if len(arts) != 1 || arts[0].Name != "ok.txt" {
		t.Errorf("artifacts %+v, want only ok.txt", arts)
	}
}

// A shell join's inputs are exactly the upstream's artifacts whether they
// were linked while the upstream tasks ran (fed) or when the join started
// (tasks reused by a resumed run, which never ran here).
func TestShellJoinInputsAfterResume(t *testing.T) {
	t.Parallel()
	e := newEnv(t, engine.Options{Workers: 1})
	flag := filepath.Join(t.TempDir(), "broken")
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f := &flow.Flow{Name: "shell-resume", Steps: []flow.Step{
		{Name: "each", Foreach: &flow.Foreach{Items: []json.RawMessage{str("a"), str("b"), str("c"), str("d"), str("e")}},
			Env: map[string]string{"FLAG": flag},
			Run: `if [ "$BATON_FOREACH_INDEX" = 3 ] && [ -e "$FLAG" ]; then exit 1; fi
printf '%s' "$BATON_FOREACH_ITEM" > "$BATON_OUTPUT_DIR/v"`},
		{Name: "join", Needs: []string{"each"}, Run: `cd "$BATON_INPUT_DIR/each" && for d in *; do printf '%s=%s ' "$d" "$(cat "$d/v")"; done > "$BATON_OUTPUT_DIR/all"`},
	}}
	first := e.run(t, f, nil, engine.ExecOptions{})
	if first.Status != store.RunFailed {
		t.Fatalf("first run: %s", first.Status)
	}
	os.Remove(flag)
	second, err := e.eng.Resume(context.Background(), first.ID, "", true)
	if err != nil {
		t.Fatal(err)
	}
	if second, err = e.eng.Execute(context.Background(), second.ID, engine.ExecOptions{}); err != nil || second.Status != store.RunSucceeded {
		t.Fatalf("resumed run: %s %v (%s)", second.Status, err, second.Error)
	}
	if got, want := e.artifact(t, store.TaskKey{RunID: second.ID, Step: "join"}, "all"), "0=a 1=b 2=c 3=d 4=e "; got != want {
		t.Errorf("join saw %q, want %q", got, want)
	}
	reused := 0
	for _, tk := range e.tasks(t, second.ID, "each") {
		if tk.Reused() {
			reused++
		}
	}
	if reused != 3 {
		t.Errorf("%d tasks reused, want 3 (those that succeeded before the failure)", reused)
	}
}

// A step that forces its input writable and writes into it changes its
// copy, never the stored artifact (which other runs share by content):
// for root, whom the read-only mode does not stop, and for anyone who
// owns the file and can chmod it.
func TestInputsCannotChangeArtifacts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, engine.Options{})
	f := &flow.Flow{Name: "scribble", Steps: []flow.Step{
		{Name: "work", Run: `printf original > "$BATON_OUTPUT_DIR/out.txt"`},
		{Name: "join", Needs: []string{"work"}, Run: `f="$BATON_INPUT_DIR/work/out.txt"; chmod u+w "$f"; printf ' scribbled' >> "$f"; cat "$f" > "$BATON_OUTPUT_DIR/seen.txt"`},
	}}
	r := e.run(t, f, nil, engine.ExecOptions{})
	if r.Status != store.RunSucceeded {
		t.Fatalf("run %s: %s", r.Status, r.Error)
	}
	if got := e.artifact(t, store.TaskKey{RunID: r.ID, Step: "join"}, "seen.txt"); got != "original scribbled" {
		t.Fatalf("the step's own copy reads %q", got)
	}
	if got := e.artifact(t, store.TaskKey{RunID: r.ID, Step: "work"}, "out.txt"); got != "original" {
		t.Fatalf("the stored artifact now reads %q", got)
	}
}

// A join over a wide foreach gets every input, nested names included,
// when its folders are filled from several goroutines; and its scratch
// folder is removed after.
func TestWideJoinInputs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, engine.Options{})
	items := make([]json.RawMessage, 300)
	for i := range items {
		items[i] = str(fmt.Sprint("i", i))
	}
	f := &flow.Flow{Name: "wide", Steps: []flow.Step{
		{Name: "work", Foreach: &flow.Foreach{Items: items},
			Run: `mkdir -p "$BATON_OUTPUT_DIR/sub"; printf '%s' "$BATON_FOREACH_ITEM" > "$BATON_OUTPUT_DIR/a.txt"; printf '%s' "$BATON_FOREACH_INDEX" > "$BATON_OUTPUT_DIR/sub/b.txt"`},
		{Name: "join", Needs: []string{"work"}, Run: `n=0; i=0
while [ $i -lt 300 ]; do
  [ "$(cat "$BATON_INPUT_DIR/work/$i/a.txt")" = "i$i" ] && [ "$(cat "$BATON_INPUT_DIR/work/$i/sub/b.txt")" = "$i" ] && n=$((n+1))
  i=$((i+1))
done
echo $n > "$BATON_OUTPUT_DIR/n.txt"`},
	}}
	r := e.run(t, f, nil, engine.ExecOptions{})
	if r.Status != store.RunSucceeded {
		t.Fatalf("run %s: %s", r.Status, r.Error)
	}
	if got := strings.TrimSpace(e.artifact(t, store.TaskKey{RunID: r.ID, Step: "join"}, "n.txt")); got != "300" {
		t.Fatalf("the join found %s of 300 inputs whole", got)
	}
	left, _ := filepath.Glob(filepath.Join(e.dir, "tmp", "slots", "*", "run-"+strconv.FormatInt(r.ID, 10)))
	if len(left) != 0 {
		t.Errorf("run scratch folder left behind: %v", left)
	}
}

// Removing a join's inputs never follows a link a task put in place of one
// of its folders: what the link points at keeps its files, and the run's
// scratch folder still goes.
func TestInputRemovalFollowsNoLink(t *testing.T) {
	t.Parallel()
	e := newEnv(t, engine.Options{})
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "out.txt"), []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := &flow.Flow{Name: "swap", Steps: []flow.Step{
		{Name: "work", Foreach: &flow.Foreach{Items: []json.RawMessage{str("a"), str("b")}},
			Run: `printf '%s' "$BATON_FOREACH_ITEM" > "$BATON_OUTPUT_DIR/out.txt"`},
		{Name: "join", Needs: []string{"work"}, Env: map[string]string{"OUTSIDE": outside},
			Run: `w="$BATON_INPUT_DIR/work"; chmod -R u+w "$w/0" && rm -r "$w/0" && ln -s "$OUTSIDE" "$w/0" && ln -s "$OUTSIDE" "$BATON_INPUT_DIR/extra"`},
	}}
	r := e.run(t, f, nil, engine.ExecOptions{})
	if r.Status != store.RunSucceeded {
		t.Fatalf("run %s: %s", r.Status, r.Error)
	}
	if b, err := os.ReadFile(filepath.Join(outside, "out.txt")); err != nil || string(b) != "keep me" {
		t.Fatalf("the file a task's link pointed at: %q, %v", b, err)
	}
	left, _ := filepath.Glob(filepath.Join(e.dir, "tmp", "slots", "*", "run-"+strconv.FormatInt(r.ID, 10)))
	if len(left) != 0 {
		t.Errorf("run scratch folder left behind: %v", left)
	}
}

// A step's inputs go as soon as the step has succeeded, not when the run
// ends: a long flow does not keep every join's copies on the disk.
func TestInputsGoWhenTheStepEnds(t *testing.T) {
	t.Parallel()
	e := newEnv(t, engine.Options{})
	f := &flow.Flow{Name: "early", Steps: []flow.Step{
		{Name: "work", Foreach: &flow.Foreach{Items: []json.RawMessage{str("a"), str("b"), str("c")}},
			Run: `printf '%s' "$BATON_FOREACH_ITEM" > "$BATON_OUTPUT_DIR/out.txt"`},
		{Name: "join", Needs: []string{"work"}, Run: `cat "$BATON_INPUT_DIR"/work/*/out.txt > "$BATON_OUTPUT_DIR/all.txt"`},
		// The join's inputs are removed while this step starts: wait for
		// it (up to 10 s), then say whether they went.
		{Name: "after", Needs: []string{"join"}, Run: `i=0
while [ -e "$BATON_INPUT_DIR/../join" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
if [ -e "$BATON_INPUT_DIR/../join" ]; then echo kept; else echo gone; fi > "$BATON_OUTPUT_DIR/inputs.txt"`},
	}}
	r := e.run(t, f, nil, engine.ExecOptions{})
	if r.Status != store.RunSucceeded {
		t.Fatalf("run %s: %s", r.Status, r.Error)
	}
	if got := e.artifact(t, store.TaskKey{RunID: r.ID, Step: "join"}, "all.txt"); got != "abc" {
		t.Fatalf("the join read %q", got)
	}
	if got := strings.TrimSpace(e.artifact(t, store.TaskKey{RunID: r.ID, Step: "after"}, "inputs.txt")); got != "gone" {
		t.Fatalf("the join's inputs while the next step ran: %s", got)
	}
}

// An input that cannot be made fails the task with the input's path under
// BATON_INPUT_DIR and the reason.
func TestInputThatCannotBeMadeIsNamed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, engine.Options{})
	blobs := filepath.Join(e.dir, "artifacts")
	f := &flow.Flow{Name: "lost", Steps: []flow.Step{
		{Name: "work", Foreach: &flow.Foreach{Items: []json.RawMessage{str("a"), str("lost")}},
			Run: `printf '%s' "$BATON_FOREACH_ITEM" > "$BATON_OUTPUT_DIR/out.txt"`},
		// Loses the blob of work/1's output (sha256 of "lost").
		{Name: "gap", Needs: []string{"work"}, Env: map[string]string{"BLOBS": blobs},
			Run: `d=$(printf lost | sha256sum | cut -c1-64); rm -f "$BLOBS/sha256/$(printf %s "$d" | cut -c1-2)/$d"`},
		{Name: "join", Needs: []string{"work", "gap"}, Run: `cat "$BATON_INPUT_DIR"/work/*/out.txt`},
	}}
	r := e.run(t, f, nil, engine.ExecOptions{})
	if r.Status != store.RunFailed {
		t.Fatalf("run %s, want failed", r.Status)
	}
	join := e.tasks(t, r.ID, "join")
	if len(join) != 1 || !strings.Contains(join[0].Error, "input work/1/out.txt") || !strings.Contains(join[0].Error, "not found") {
		t.Fatalf("join task: %+v, want an error naming input work/1/out.txt and that its blob was not found", join)
	}
	left, _ := filepath.Glob(filepath.Join(e.dir, "tmp", "slots", "*", "run-"+strconv.FormatInt(r.ID, 10)))
	if len(left) != 0 {
		t.Errorf("run scratch folder left behind: %v", left)
	}
}
