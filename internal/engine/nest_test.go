package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/engine"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/testwait"
)

// nested is a foreach inside a foreach, joined at each level: three
// outer items fan out to 2, 0 and 3 inner ones.
func nested() *flow.Flow {
	joins := true
	return &flow.Flow{Name: "nested", Steps: []flow.Step{
		{Name: "start", Run: `echo '["a","b","c"]' > "$BATON_OUTPUT_DIR/xs.json"`},
		{Name: "outer", Needs: []string{"start"}, Foreach: &flow.Foreach{Artifact: "start/xs.json"},
			Run: `case $BATON_FOREACH_INDEX in 0) n=2;; 1) n=0;; *) n=3;; esac
i=0; sep=""; printf '[' > "$BATON_OUTPUT_DIR/ys.json"
while [ $i -lt $n ]; do printf '%s"%s%d"' "$sep" "$BATON_FOREACH_ITEM" $i >> "$BATON_OUTPUT_DIR/ys.json"; sep=,; i=$((i+1)); done
printf ']' >> "$BATON_OUTPUT_DIR/ys.json"`},
		{Name: "inner", Needs: []string{"outer", "start"}, Foreach: &flow.Foreach{Artifact: "outer/ys.json"},
			Run: `{ printf '%s %s %s %s ' "$BATON_FOREACH_PATH" "$BATON_FOREACH_INDEX" "$BATON_FOREACH_ITEM" "$BATON_TASK_ID"
cat "$BATON_INPUT_DIR/outer/ys.json" "$BATON_INPUT_DIR/start/xs.json"; } > "$BATON_OUTPUT_DIR/out.txt"`},
		{Name: "join-inner", Needs: []string{"inner", "outer"},
			Run: `{ echo "$BATON_FOREACH_PATH $BATON_TASK_ID $(ls "$BATON_INPUT_DIR" | tr '\n' ' ')"; for d in $(ls "$BATON_INPUT_DIR/inner" | sort -n); do cat "$BATON_INPUT_DIR/inner/$d/out.txt"; done; } > "$BATON_OUTPUT_DIR/joined.txt"`},
		{Name: "join-outer", Needs: []string{"join-inner"}, Join: &joins,
			Run: `for d in $(ls "$BATON_INPUT_DIR/join-inner" | sort -n); do echo "== $d"; cat "$BATON_INPUT_DIR/join-inner/$d/joined.txt"; done > "$BATON_OUTPUT_DIR/all.txt"`},
	}}
}

const nestedWant = `== 0
0 1/join-inner/0 inner outer 
0/0 0 a0 1/inner/0/0 ["a0","a1"]["a","b","c"]
0/1 1 a1 1/inner/0/1 ["a0","a1"]["a","b","c"]
== 1
1 1/join-inner/1 outer 
== 2
2 1/join-inner/2 inner outer 
2/0 0 c0 1/inner/2/0 ["c0","c1","c2"]["a","b","c"]
2/1 1 c1 1/inner/2/1 ["c0","c1","c2"]["a","b","c"]
2/2 2 c2 1/inner/2/2 ["c0","c1","c2"]["a","b","c"]
`

func checkNested(t *testing.T, e *env, r store.Run) {
	t.Helper()
	if r.Status != store.RunSucceeded {
		t.Fatalf("run %s: %s", r.Status, r.Error)
	}
	got := e.artifact(t, store.TaskKey{RunID: r.ID, Step: "join-outer"}, "all.txt")
	if want := strings.ReplaceAll(nestedWant, "1/", strconv.FormatInt(r.ID, 10)+"/"); got != want {
		t.Fatalf("all.txt:\n%s\nwant:\n%s", got, want)
	}
	steps := e.steps(t, r.ID)
	if s := steps["inner"]; s.NumTasks != 5 || len(s.Shape) != 2 || s.Shape[1][1] != 0 || s.Shape[1][2] != 3 {
		t.Fatalf("inner: %+v", s)
	}
	if s := steps["join-inner"]; s.NumTasks != 3 || len(s.Shape) != 1 {
		t.Fatalf("join-inner: %+v", s)
	}
}

func TestNestedForeach(t *testing.T) {
	t.Parallel()
	e := newEnv(t, engine.Options{})
	checkNested(t, e, e.run(t, nested(), nil, engine.ExecOptions{}))
}

func TestQueuedNestedForeach(t *testing.T) {
	t.Parallel()
	e := queueEnv(t, engine.Options{})
	checkNested(t, e, e.run(t, nested(), nil, engine.ExecOptions{}))
}

// A Go step sees its place and reads what its level sees.
func TestNestedForeachGoSteps(t *testing.T) {
	t.Parallel()
	e := newEnv(t, engine.Options{})
	f := nested()
	f.Steps[3].Run = ""
	funcs := map[string]engine.GoFunc{"join-inner": func(ctx context.Context, tk *engine.Task) error {
		arts, err := tk.Inputs(ctx, "inner")
		if err != nil {
			return err
		}
		ys, err := tk.Input(ctx, "outer", "ys.json")
		if err != nil {
			return err
		}
		var b strings.Builder
		b.WriteString(strings.TrimSpace(string(ys)))
		for i := range arts {
			x, err := tk.InputAt(ctx, "inner", i, "out.txt")
			if err != nil {
				return err
			}
			b.WriteString("|" + strings.Fields(string(x))[2])
		}
		if _, err := tk.InputAt(ctx, "inner", len(arts), "out.txt"); err == nil {
			return errors.New("InputAt past the level's last task read something")
		}
		return tk.Output(ctx, "joined.txt", []byte(b.String()+"\n"))
	}}
	r := e.run(t, f, nil, engine.ExecOptions{Funcs: funcs})
	if r.Status != store.RunSucceeded {
		t.Fatalf("run %s: %s", r.Status, r.Error)
	}
	got := e.artifact(t, store.TaskKey{RunID: r.ID, Step: "join-outer"}, "all.txt")
	want := "== 0\n[\"a0\",\"a1\"]|a0|a1\n== 1\n[]\n== 2\n[\"c0\",\"c1\",\"c2\"]|c0|c1|c2\n"
	if got != want {
		t.Fatalf("all.txt:\n%s\nwant:\n%s", got, want)
	}
}

// Steps after a foreach step can run in its level, once per task, each
// seeing the task of its own item, until a step joins (Metaflow's
// foreach body of several steps).
func TestForeachBody(t *testing.T) {
	t.Parallel()
	no, yes := false, true
	f := &flow.Flow{Name: "body", Steps: []flow.Step{
		{Name: "each", Foreach: &flow.Foreach{Items: []json.RawMessage{str("p"), str("q"), str("r")}},
			Run: `echo "$BATON_FOREACH_ITEM" > "$BATON_OUTPUT_DIR/item"`},
		{Name: "twice", Needs: []string{"each"}, Join: &no,
			Run: `x=$(cat "$BATON_INPUT_DIR/each/item"); echo "$x$x $BATON_FOREACH_PATH $BATON_TASK_ID ${BATON_FOREACH_INDEX:-none}" > "$BATON_OUTPUT_DIR/item"`},
		{Name: "upper", Needs: []string{"twice", "each"},
			Run: `{ cat "$BATON_INPUT_DIR/each/item"; tr a-z A-Z < "$BATON_INPUT_DIR/twice/item"; } | tr '\n' ' ' > "$BATON_OUTPUT_DIR/item"`},
		{Name: "join", Needs: []string{"upper"}, Join: &yes,
			Run: `for i in 0 1 2; do cat "$BATON_INPUT_DIR/upper/$i/item"; echo; done > "$BATON_OUTPUT_DIR/all"`},
	}}
	for _, q := range []bool{false, true} {
		e := envFor(t, q, engine.Options{})
		r := e.run(t, f, nil, engine.ExecOptions{})
		if r.Status != store.RunSucceeded {
			t.Fatalf("queued %v: run %s: %s", q, r.Status, r.Error)
		}
		want := "p PP 0 1/TWICE/0 NONE \nq QQ 1 1/TWICE/1 NONE \nr RR 2 1/TWICE/2 NONE \n"
		if got := e.artifact(t, store.TaskKey{RunID: r.ID, Step: "join"}, "all"); got != want {
			t.Fatalf("queued %v: all:\n%s\nwant:\n%s", q, got, want)
		}
	}
}

// A switch task that names no case, or one that is not a case, fails and
// says which cases there are; nothing after it runs.
func TestSwitchRefusesAnUnknownCase(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ run, msg string }{
		{`echo sideways > "$BATON_OUTPUT_DIR/case"`, `the task wrote case "sideways" to case, which is none of the cases: left, right`},
		{`true`, `the task wrote no case: write the case to take (one of: left, right)`},
	} {
		for _, q := range []bool{false, true} {
			e := envFor(t, q, engine.Options{})
			f := &flow.Flow{Name: "sw", Steps: []flow.Step{
				{Name: "decide", Run: c.run, Switch: &flow.Switch{Cases: map[string]string{"left": "a", "right": "b"}}},
				{Name: "a", Needs: []string{"decide"}, Run: "true"},
				{Name: "b", Needs: []string{"decide"}, Run: "true"},
			}}
			r := e.run(t, f, nil, engine.ExecOptions{})
			if r.Status != store.RunFailed || !strings.Contains(r.Error, c.msg) {
				t.Fatalf("queued %v: run %s: %q, want %q", q, r.Status, r.Error, c.msg)
			}
			if steps := e.steps(t, r.ID); steps["a"].Status == store.TaskSucceeded || steps["b"].Status == store.TaskSucceeded {
				t.Fatalf("queued %v: a case ran after a failed switch: %+v", q, steps)
			}
		}
	}
}

// A loop: a switch whose case leads back runs its steps again, each
// iteration kept, the head seeing the switch's last iteration, until a
// case leads on; what comes after waits for the loop's end.
func TestLoop(t *testing.T) {
	t.Parallel()
	f := &flow.Flow{Name: "loop", Steps: []flow.Step{
		{Name: "start", Run: `echo 0 > "$BATON_OUTPUT_DIR/n"`},
		{Name: "head", Needs: []string{"start"},
			Run: `if [ -f "$BATON_INPUT_DIR/decide/n" ]; then cat "$BATON_INPUT_DIR/decide/n"; else cat "$BATON_INPUT_DIR/start/n"; fi > "$BATON_OUTPUT_DIR/n"`},
		{Name: "add", Needs: []string{"head"},
			Run: `echo $(( $(cat "$BATON_INPUT_DIR/head/n") + 1 )) > "$BATON_OUTPUT_DIR/n"; echo "$BATON_ITERATION $BATON_TASK_ID" > "$BATON_OUTPUT_DIR/where"`},
		{Name: "decide", Needs: []string{"add"}, Switch: &flow.Switch{Cases: map[string]string{"again": "head", "done": "end"}, MaxIterations: 10},
			Run: `n=$(cat "$BATON_INPUT_DIR/add/n"); echo $n > "$BATON_OUTPUT_DIR/n"; [ $n -lt 4 ] && echo again > "$BATON_OUTPUT_DIR/case" || echo done > "$BATON_OUTPUT_DIR/case"`},
		{Name: "end", Needs: []string{"decide"}, Run: `cat "$BATON_INPUT_DIR/decide/n" > "$BATON_OUTPUT_DIR/n"`},
		{Name: "after-add", Needs: []string{"add", "start"}, Run: `cat "$BATON_INPUT_DIR/add/n" > "$BATON_OUTPUT_DIR/n"`},
	}}
	for _, q := range []bool{false, true} {
		e := envFor(t, q, engine.Options{})
		r := e.run(t, f, nil, engine.ExecOptions{})
		if r.Status != store.RunSucceeded {
			t.Fatalf("queued %v: run %s: %s", q, r.Status, r.Error)
		}
		if got := e.artifact(t, store.TaskKey{RunID: r.ID, Step: "end"}, "n"); got != "4\n" {
			t.Fatalf("queued %v: end saw %q, want 4", q, got)
		}
		if got := e.artifact(t, store.TaskKey{RunID: r.ID, Step: "after-add"}, "n"); got != "4\n" {
			t.Fatalf("queued %v: a step after the loop saw %q of its last iteration, want 4", q, got)
		}
		for i := range 4 {
			want := strconv.Itoa(i+1) + " " + strconv.FormatInt(r.ID, 10) + "/add/" + strconv.Itoa(i) + "\n"
			if got := e.artifact(t, store.TaskKey{RunID: r.ID, Step: "add", Index: i}, "where"); got != want {
				t.Fatalf("queued %v: iteration %d of add: %q, want %q", q, i, got, want)
			}
		}
		steps := e.steps(t, r.ID)
		if steps["head"].NumTasks != 4 || steps["decide"].NumTasks != 4 || steps["end"].NumTasks != 1 || steps["end"].Status != store.TaskSucceeded {
			t.Fatalf("queued %v: steps %+v", q, steps)
		}
	}
}

// A loop that would go round more often than max_iterations fails the run
// and says so.
func TestLoopMaxIterations(t *testing.T) {
	t.Parallel()
	f := &flow.Flow{Name: "forever", Steps: []flow.Step{
		{Name: "spin", Run: `echo again > "$BATON_OUTPUT_DIR/case"`, Switch: &flow.Switch{Cases: map[string]string{"again": "spin", "out": "end"}, MaxIterations: 3}},
		{Name: "end", Needs: []string{"spin"}, Run: "true"},
	}}
	for _, q := range []bool{false, true} {
		e := envFor(t, q, engine.Options{})
		r := e.run(t, f, nil, engine.ExecOptions{})
		if r.Status != store.RunFailed || !strings.Contains(r.Error, `case "again" leads back to spin after 3 iterations, and max_iterations is 3`) {
			t.Fatalf("queued %v: run %s: %q", q, r.Status, r.Error)
		}
		if n := len(e.tasks(t, r.ID, "spin")); n != 3 {
			t.Fatalf("queued %v: spin ran %d times, want 3", q, n)
		}
		if st := e.steps(t, r.ID)["end"].Status; st == store.TaskSucceeded {
			t.Fatalf("queued %v: end %s", q, st)
		}
	}
}

// register stores f as a flow version without running it.
func (e *env) register(t *testing.T, f *flow.Flow) {
	t.Helper()
	if err := f.Validate(); err != nil {
		t.Fatalf("invalid test flow: %v", err)
	}
	spec, _ := json.Marshal(f)
	if _, _, err := e.st.PutFlowVersion(context.Background(), store.FlowVersion{Flow: f.Name, Digest: f.Digest(), Spec: spec, Dir: e.dir}); err != nil {
		t.Fatal(err)
	}
}

// A subflow step runs another flow per task, with params from its item,
// the run's params and its inputs, and sees the child's artifacts; a child
// that fails fails the task.
func TestSubflow(t *testing.T) {
	t.Parallel()
	child := &flow.Flow{Name: "child", Params: []flow.Param{{Name: "x", Type: flow.String}, {Name: "n", Type: flow.Int}, {Name: "tag", Type: flow.String}},
		Steps: []flow.Step{
			{Name: "double", Run: `[ "$BATON_PARAM_X" != boom ] || exit 7; echo "$BATON_PARAM_X$BATON_PARAM_X $BATON_PARAM_N $BATON_PARAM_TAG" > "$BATON_OUTPUT_DIR/out"`},
			{Name: "fan", Needs: []string{"double"}, Foreach: &flow.Foreach{Items: []json.RawMessage{str("a"), str("b")}},
				Run: `echo "$BATON_FOREACH_ITEM" > "$BATON_OUTPUT_DIR/f"`},
		}}
	parent := func(items ...string) *flow.Flow {
		var raw []json.RawMessage
		for _, it := range items {
			raw = append(raw, str(it))
		}
		return &flow.Flow{Name: "parent", Params: []flow.Param{{Name: "n", Type: flow.Int, Default: json.RawMessage("5")}},
			Steps: []flow.Step{
				{Name: "start", Run: `echo v1 > "$BATON_OUTPUT_DIR/tag"`},
				{Name: "each", Needs: []string{"start"}, Foreach: &flow.Foreach{Items: raw},
					Subflow: &flow.Subflow{Flow: "child", Params: map[string]string{"x": "${item}", "n": "${param.n}", "tag": "${input.start/tag}"}}},
				{Name: "join", Needs: []string{"each"},
					Run: `for i in 0 1; do cat "$BATON_INPUT_DIR/each/$i/double/out" "$BATON_INPUT_DIR/each/$i/fan/1/f"; done > "$BATON_OUTPUT_DIR/all"`},
			}}
	}
	for _, q := range []bool{false, true} {
		e := envFor(t, q, engine.Options{Workers: 1})
		e.register(t, child)
		r := e.run(t, parent("p", "q"), nil, engine.ExecOptions{})
		if r.Status != store.RunSucceeded {
			t.Fatalf("queued %v: run %s: %s", q, r.Status, r.Error)
		}
		if got, want := e.artifact(t, store.TaskKey{RunID: r.ID, Step: "join"}, "all"), "pp 5 v1\nb\nqq 5 v1\nb\n"; got != want {
			t.Fatalf("queued %v: all = %q, want %q", q, got, want)
		}
		var meta struct {
			Run    int64  `json:"run"`
			Flow   string `json:"flow"`
			Status string `json:"status"`
		}
		json.Unmarshal([]byte(e.artifact(t, store.TaskKey{RunID: r.ID, Step: "each", Index: 1}, "subflow.json")), &meta)
		cr, err := e.st.Run(context.Background(), meta.Run)
		if err != nil || cr.Flow != "child" || cr.Trigger != engine.TriggerSubflow || cr.TriggerDetail != strconv.FormatInt(r.ID, 10)+"/each/1" {
			t.Fatalf("queued %v: child run %+v (%+v) %v", q, cr, meta, err)
		}
		// A child that fails fails its task and the run, naming it.
		r = e.run(t, parent("ok", "boom"), nil, engine.ExecOptions{})
		if r.Status != store.RunFailed || !strings.Contains(r.Error, "subflow child: run ") || !strings.Contains(r.Error, "exit status 7") {
			t.Fatalf("queued %v: run %s: %q", q, r.Status, r.Error)
		}
	}
}

// Cancelling a run cancels the child run its subflow task waits for.
func TestSubflowCancelledWithParent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, engine.Options{Workers: 2, KillGrace: 100 * time.Millisecond})
	e.register(t, &flow.Flow{Name: "slow", Steps: []flow.Step{{Name: "nap", Run: "sleep 30"}}})
	r := e.start(t, &flow.Flow{Name: "caller", Steps: []flow.Step{{Name: "call", Subflow: &flow.Subflow{Flow: "slow"}}}}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	var child int64
	go func() {
		testwait.For(t, 10*time.Second, func() bool {
			runs, _ := e.st.Runs(context.Background(), store.RunFilter{Flow: "slow"})
			if len(runs) == 1 {
				ts, _ := e.st.Tasks(context.Background(), runs[0].ID, "nap")
				if len(ts) == 1 && ts[0].Status == store.TaskRunning {
					child = runs[0].ID
					return true
				}
			}
			return false
		}, "the child's task to run")
		cancel()
	}()
	got, err := e.eng.Execute(ctx, r.ID, engine.ExecOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != store.RunCancelled {
		t.Fatalf("parent %s: %s", got.Status, got.Error)
	}
	c, err := e.st.Run(context.Background(), child)
	if err != nil || c.Status != store.RunCancelled {
		t.Fatalf("child %+v %v", c, err)
	}
}

// Tasks go only to workers that fit them: with labels, only to a worker
// that carries them; with resources, never more at once on a worker than
// its capacity holds.
func TestPlacement(t *testing.T) {
	t.Parallel()
	e := newEnv(t, engine.Options{Dispatch: engine.Queue, QueuePoll: 20 * time.Millisecond})
	ledger := filepath.Join(t.TempDir(), "ledger")
	worker := func(who string, c store.Capacity) {
		eng, err := engine.New(e.st, e.blobs, engine.Options{Dispatch: engine.Queue, TempDir: t.TempDir(), Workers: 4,
			QueuePoll: 20 * time.Millisecond, Env: []string{"WHO=" + who, "LEDGER=" + ledger}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(eng.Close)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); eng.Work(ctx, engine.WorkOptions{Capacity: &c}) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	// a: two cores, no GPU; b: one core, an A100 label.
	worker("a", store.Capacity{CPU: 2000, Mem: 4096})
	worker("b", store.Capacity{CPU: 1000, Mem: 4096, GPU: 1, Labels: map[string]string{"accel": "a100"}})
	rec := `echo "start $WHO $BATON_STEP $(date +%s%N)" >> "$LEDGER"; sleep 0.3; echo "end $WHO $BATON_STEP $(date +%s%N)" >> "$LEDGER"`
	f := &flow.Flow{Name: "place", Steps: []flow.Step{
		{Name: "cpu", Foreach: &flow.Foreach{Items: items(6)}, Resources: &flow.Resources{CPU: 1}, Run: rec},
		{Name: "gpu", Foreach: &flow.Foreach{Items: items(3)}, Resources: &flow.Resources{CPU: 1, GPU: 1}, Labels: map[string]string{"accel": "a100"}, Run: rec},
	}}
	r := e.run(t, f, nil, engine.ExecOptions{})
	if r.Status != store.RunSucceeded {
		t.Fatalf("run %s: %s", r.Status, r.Error)
	}
	b, _ := os.ReadFile(ledger)
	running := map[string]int{}
	most := map[string]int{}
	var lines [][]string
	for line := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
		lines = append(lines, strings.Fields(line))
	}
	slices.SortStableFunc(lines, func(x, y []string) int { return strings.Compare(x[3], y[3]) })
	for _, l := range lines {
		who, step := l[1], l[2]
		if step == "gpu" && who != "b" {
			t.Fatalf("a gpu task ran on %s, which has no a100 label", who)
		}
		if l[0] == "start" {
			running[who]++
			most[who] = max(most[who], running[who])
		} else {
			running[who]--
		}
	}
	if most["a"] > 2 || most["b"] > 1 {
		t.Fatalf("most tasks at once: %v; a has 2 cores, b 1 (each cpu task needs 1, each gpu task b's one GPU)", most)
	}
	if most["a"] < 2 {
		t.Fatalf("a never ran two tasks at once (%v): the test shows nothing", most)
	}
}

// A foreach case inside a switch inside a foreach: where a task of the
// switch chose the other case, the foreach case fans out nothing and the
// step joining it is skipped there, not run on nothing; an empty foreach
// that was chosen is still joined.
func TestForeachCaseJoinSkippedWhereNotChosen(t *testing.T) {
	t.Parallel()
	yes := true
	f := &flow.Flow{Name: "fcj", Steps: []flow.Step{
		// items 0..3: 0 and 2 fan out (2 holds no items), 1 and 3 take one.
		{Name: "each", Foreach: &flow.Foreach{Items: items(4)}, Switch: &flow.Switch{Cases: map[string]string{"fan": "fan", "one": "one"}},
			Run: `case $BATON_FOREACH_INDEX in 0) echo '["x","y"]';; *) echo '[]';; esac > "$BATON_OUTPUT_DIR/xs.json"
[ $((BATON_FOREACH_INDEX % 2)) = 0 ] && echo fan > "$BATON_OUTPUT_DIR/case" || echo one > "$BATON_OUTPUT_DIR/case"`},
		{Name: "fan", Needs: []string{"each"}, Foreach: &flow.Foreach{Artifact: "each/xs.json"}, Run: `echo "$BATON_FOREACH_ITEM" > "$BATON_OUTPUT_DIR/f"`},
		{Name: "fanjoin", Needs: []string{"fan"}, Run: `echo "fanjoin $BATON_FOREACH_PATH" > "$BATON_OUTPUT_DIR/r"`},
		{Name: "one", Needs: []string{"each"}, Run: `echo "one $BATON_FOREACH_PATH" > "$BATON_OUTPUT_DIR/r"`},
		{Name: "merge", Needs: []string{"fanjoin", "one"}, Run: `cat "$BATON_INPUT_DIR"/*/r > "$BATON_OUTPUT_DIR/r"`},
		{Name: "all", Needs: []string{"merge"}, Join: &yes, Run: `for i in 0 1 2 3; do cat "$BATON_INPUT_DIR/merge/$i/r"; done > "$BATON_OUTPUT_DIR/all"`},
	}}
	for _, q := range []bool{false, true} {
		e := envFor(t, q, engine.Options{})
		r := e.run(t, f, nil, engine.ExecOptions{})
		if r.Status != store.RunSucceeded {
			t.Fatalf("queued %v: run %s: %s", q, r.Status, r.Error)
		}
		want := "fanjoin 0\none 1\nfanjoin 2\none 3\n"
		if got := e.artifact(t, store.TaskKey{RunID: r.ID, Step: "all"}, "all"); got != want {
			t.Fatalf("queued %v: merge saw\n%s\nwant\n%s", q, got, want)
		}
		var ran []string
		for _, tk := range e.tasks(t, r.ID, "fanjoin") {
			ran = append(ran, strconv.Itoa(tk.Index)+" "+string(tk.Status))
		}
		if want := "0 succeeded,1 skipped,2 succeeded,3 skipped"; strings.Join(ran, ",") != want {
			t.Fatalf("queued %v: fanjoin tasks %s, want %s", q, strings.Join(ran, ","), want)
		}
	}
}

// A loop whose body holds a switch with forward cases: each iteration
// runs the case its switch chose and records the other as skipped, in
// that iteration's task (not the first iteration's), so no case runs
// where it was not chosen.
func TestLoopWithSwitchInside(t *testing.T) {
	t.Parallel()
	f := &flow.Flow{Name: "loopsw", Steps: []flow.Step{
		{Name: "start", Run: `echo 0 > "$BATON_OUTPUT_DIR/n"`},
		{Name: "head", Needs: []string{"start"},
			Run: `if [ -f "$BATON_INPUT_DIR/decide/n" ]; then cat "$BATON_INPUT_DIR/decide/n"; else cat "$BATON_INPUT_DIR/start/n"; fi > "$BATON_OUTPUT_DIR/n"`},
		{Name: "pick", Needs: []string{"head"}, Switch: &flow.Switch{Cases: map[string]string{"even": "add1", "odd": "add2"}},
			Run: `n=$(cat "$BATON_INPUT_DIR/head/n"); echo $n > "$BATON_OUTPUT_DIR/n"; [ $((n % 2)) = 0 ] && echo even > "$BATON_OUTPUT_DIR/case" || echo odd > "$BATON_OUTPUT_DIR/case"`},
		{Name: "add1", Needs: []string{"pick"}, Run: `echo $(( $(cat "$BATON_INPUT_DIR/pick/n") + 1 )) > "$BATON_OUTPUT_DIR/n"`},
		{Name: "add2", Needs: []string{"pick"}, Run: `echo $(( $(cat "$BATON_INPUT_DIR/pick/n") + 2 )) > "$BATON_OUTPUT_DIR/n"`},
		{Name: "decide", Needs: []string{"add1", "add2"}, Switch: &flow.Switch{Cases: map[string]string{"again": "head", "done": "end"}, MaxIterations: 10},
			Run: `cat "$BATON_INPUT_DIR"/*/n > "$BATON_OUTPUT_DIR/n"; [ "$(cat "$BATON_OUTPUT_DIR/n")" -lt 7 ] && echo again > "$BATON_OUTPUT_DIR/case" || echo done > "$BATON_OUTPUT_DIR/case"`},
		{Name: "end", Needs: []string{"decide"}, Run: `cat "$BATON_INPUT_DIR/decide/n" > "$BATON_OUTPUT_DIR/n"`},
	}}
	for _, q := range []bool{false, true} {
		e := envFor(t, q, engine.Options{})
		r := e.run(t, f, nil, engine.ExecOptions{})
		if r.Status != store.RunSucceeded {
			t.Fatalf("queued %v: run %s: %s", q, r.Status, r.Error)
		}
		// 0 +1 = 1, +2 = 3, +2 = 5, +2 = 7: four iterations.
		if got := e.artifact(t, store.TaskKey{RunID: r.ID, Step: "end"}, "n"); got != "7\n" {
			t.Fatalf("queued %v: end saw %q, want 7", q, got)
		}
		for step, want := range map[string]string{"add1": "succeeded skipped skipped skipped", "add2": "skipped succeeded succeeded succeeded"} {
			var got []string
			for _, tk := range e.tasks(t, r.ID, step) {
				got = append(got, string(tk.Status))
			}
			if strings.Join(got, " ") != want {
				t.Fatalf("queued %v: %s's iterations %v, want %s", q, step, got, want)
			}
		}
	}
}

// A subflow task past its timeout times out like any task: it fails (and
// is tried again, with a new child) instead of cancelling its whole run.
func TestSubflowTimeout(t *testing.T) {
	t.Parallel()
	for _, q := range []bool{false, true} {
		e := envFor(t, q, engine.Options{Workers: 2, KillGrace: 100 * time.Millisecond})
		e.register(t, &flow.Flow{Name: "slow", Steps: []flow.Step{{Name: "nap", Run: "sleep 30"}}})
		r := e.run(t, &flow.Flow{Name: "caller", Steps: []flow.Step{{Name: "call", Timeout: flow.Duration(300 * time.Millisecond),
			Retry: flow.Retry{Attempts: 2}, Subflow: &flow.Subflow{Flow: "slow"}}}}, nil, engine.ExecOptions{})
		if r.Status != store.RunFailed || !strings.Contains(r.Error, "failed after 2 attempt(s): timed out after 300ms") {
			t.Fatalf("queued %v: run %s: %q, want failed: timed out after 300ms, twice", q, r.Status, r.Error)
		}
		if runs, _ := e.st.Runs(context.Background(), store.RunFilter{Flow: "slow"}); len(runs) != 2 {
			t.Fatalf("queued %v: %d child runs, want one per attempt", q, len(runs))
		}
	}
}

// The run's error names a failed task of a nested foreach by its path, as
// baton show, logs and artifact get address it.
func TestNestedFailureNamesThePath(t *testing.T) {
	t.Parallel()
	for _, q := range []bool{false, true} {
		e := envFor(t, q, engine.Options{})
		f := nested()
		f.Steps[2].Run = `[ "$BATON_FOREACH_PATH" != 2/1 ] || exit 3`
		r := e.run(t, f, nil, engine.ExecOptions{})
		if r.Status != store.RunFailed || !strings.Contains(r.Error, "step inner task 2/1 failed after 1 attempt(s)") {
			t.Fatalf("queued %v: run %s: %q, want step inner task 2/1 failed", q, r.Status, r.Error)
		}
	}
}

// A flow of 40 diamonds (two steps per stage, each needing both of the
// stage before) starts each step at once: whether a step may be skipped
// is not worked out by walking every path up the flow (2^40 of them).
func TestManyDiamondsStartAtOnce(t *testing.T) {
	t.Parallel()
	const stages = 40
	f := &flow.Flow{Name: "ladder", Steps: []flow.Step{{Name: "s0a"}, {Name: "s0b"}}}
	funcs := map[string]engine.GoFunc{}
	noop := func(context.Context, *engine.Task) error { return nil }
	for i := 1; i < stages; i++ {
		prev := []string{"s" + strconv.Itoa(i-1) + "a", "s" + strconv.Itoa(i-1) + "b"}
		for _, x := range []string{"a", "b"} {
			f.Steps = append(f.Steps, flow.Step{Name: "s" + strconv.Itoa(i) + x, Needs: prev})
		}
	}
	for _, s := range f.Steps {
		funcs[s.Name] = noop
	}
	e := newEnv(t, engine.Options{})
	r := e.start(t, f, nil)
	done := make(chan store.Run, 1)
	go func() {
		got, _ := e.eng.Execute(context.Background(), r.ID, engine.ExecOptions{Funcs: funcs})
		done <- got
	}()
	select {
	case got := <-done:
		if got.Status != store.RunSucceeded {
			t.Fatalf("run %s: %s", got.Status, got.Error)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("80 no-op steps took more than 30s: starting a step walks every path up the flow")
	}
}

// envFor is queueEnv when queued, else newEnv: a test run both ways.
func envFor(t *testing.T, queued bool, opt engine.Options) *env {
	t.Helper()
	if queued {
		return queueEnv(t, opt)
	}
	return newEnv(t, opt)
}
