package engine_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/engine"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/testwait"
)

// queueEnv is an engine that queues tasks, with a worker working the queue.
func queueEnv(t *testing.T, opt engine.Options) *env {
	t.Helper()
	opt.Dispatch = engine.Queue
	if opt.QueuePoll == 0 {
		opt.QueuePoll = 50 * time.Millisecond
	}
	e := newEnv(t, opt)
	e.work(t, e.eng)
	return e
}

// work runs eng's worker until the test ends.
func (e *env) work(t *testing.T, eng *engine.Engine) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); eng.Work(ctx, engine.WorkOptions{}) }()
	t.Cleanup(func() { cancel(); <-done })
}

func TestQueuedPipeline(t *testing.T) {
	t.Parallel()
	e := queueEnv(t, engine.Options{})
	r := e.run(t, pipeline(), map[string]string{"who": "queue"}, engine.ExecOptions{})
	if r.Status != store.RunSucceeded {
		t.Fatalf("run %s: %s", r.Status, r.Error)
	}
	if got := e.artifact(t, store.TaskKey{RunID: r.ID, Step: "join"}, "all.txt"); got != "ABC" {
		t.Fatalf("join = %q", got)
	}
	if got := e.artifact(t, store.TaskKey{RunID: r.ID, Step: "upper", Index: 2}, "meta.txt"); !strings.HasPrefix(got, "2 ") {
		t.Fatalf("foreach env through the queue = %q", got)
	}
	for _, tk := range e.tasks(t, r.ID, "upper") {
		if tk.Status != store.TaskSucceeded || tk.Attempts != 1 {
			t.Fatalf("task %+v", tk)
		}
	}
}

func TestQueuedRetryAndFailure(t *testing.T) {
	t.Parallel()
	e := queueEnv(t, engine.Options{Workers: 1})
	f := &flow.Flow{Name: "q-flaky", Steps: []flow.Step{
		{Name: "flaky", Retry: flow.Retry{Attempts: 3, Backoff: flow.Duration(100 * time.Millisecond)},
			Run: `[ "$BATON_ATTEMPT" -ge 2 ] || exit 4; echo ok > "$BATON_OUTPUT_DIR/ok"`},
		{Name: "each", Needs: []string{"flaky"}, Foreach: &flow.Foreach{Items: items(4)}, Run: `[ "$BATON_FOREACH_INDEX" != 1 ] || exit 3`},
		{Name: "after", Needs: []string{"each"}, Run: "true"},
	}}
	r := e.run(t, f, nil, engine.ExecOptions{})
	if r.Status != store.RunFailed || !strings.Contains(r.Error, "step each task 1") || !strings.Contains(r.Error, "exit status 3") {
		t.Fatalf("run %s: %q", r.Status, r.Error)
	}
	atts, _ := e.st.Attempts(context.Background(), store.TaskKey{RunID: r.ID, Step: "flaky"})
	if len(atts) != 2 || atts[0].Status != store.TaskFailed || atts[1].Status != store.TaskSucceeded ||
		atts[1].StartedAt.Sub(atts[0].FinishedAt) < 100*time.Millisecond {
		t.Fatalf("attempts of the flaky task: %+v", atts)
	}
	steps := e.steps(t, r.ID)
	if steps["each"].Status != store.TaskFailed || steps["after"].Status != store.TaskSkipped {
		t.Fatalf("steps: %+v", steps)
	}
}

func TestQueuedCancel(t *testing.T) {
	t.Parallel()
	e := queueEnv(t, engine.Options{Workers: 2, KillGrace: 100 * time.Millisecond})
	f := &flow.Flow{Name: "q-cancel", Steps: []flow.Step{{Name: "each", Foreach: &flow.Foreach{Items: items(4)}, Run: "sleep 30"}}}
	r := e.start(t, f, nil)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		testwait.For(t, 10*time.Second, func() bool {
			ts, _ := e.st.Tasks(context.Background(), r.ID, "each")
			return len(ts) == 4 && ts[0].Status == store.TaskRunning
		}, "the tasks to run")
		cancel()
	}()
	start := time.Now()
	got, err := e.eng.Execute(ctx, r.ID, engine.ExecOptions{})
	if err != nil || got.Status != store.RunCancelled {
		t.Fatalf("run: %v %s %q", err, got.Status, got.Error)
	}
	if time.Since(start) > 20*time.Second {
		t.Fatalf("cancelling took %s", time.Since(start))
	}
	for _, tk := range e.tasks(t, r.ID, "each") {
		if tk.Status != store.TaskCancelled {
			atts, _ := e.st.Attempts(context.Background(), tk.TaskKey)
			t.Fatalf("task %d: %s %q attempts %+v", tk.Index, tk.Status, tk.Error, atts)
		}
	}
}

func TestQueuedPublishAndWait(t *testing.T) {
	t.Parallel()
	e := queueEnv(t, engine.Options{})
	e.contract(t, featuresReady)
	f := &flow.Flow{Name: "q-sig", Steps: []flow.Step{
		{Name: "build", Publish: []string{"features_ready"},
			Run: `printf '{"date": "d", "row_count": 7}' > "$BATON_OUTPUT_DIR/features_ready.json"`},
		{Name: "use", Needs: []string{"build"}, Wait: &flow.Wait{Signal: "features_ready", Timeout: flow.Duration(20 * time.Second)},
			Run: `printf '%s' "$BATON_SIGNAL_PARAMS" > "$BATON_OUTPUT_DIR/got"`},
	}}
	r := e.run(t, f, nil, engine.ExecOptions{})
	if r.Status != store.RunSucceeded {
		t.Fatalf("run %s: %s", r.Status, r.Error)
	}
	if got := e.artifact(t, store.TaskKey{RunID: r.ID, Step: "use"}, "got"); got != `{"date":"d","row_count":7}` {
		t.Fatalf("waiting step saw %q", got)
	}
}

// A second process takes over a run whose coordinator died, in place.
func TestAdoptInPlace(t *testing.T) {
	t.Parallel()
	e := queueEnv(t, engine.Options{LeaseTTL: 300 * time.Millisecond})
	f := &flow.Flow{Name: "q-adopt", Steps: []flow.Step{
		{Name: "each", Foreach: &flow.Foreach{Items: items(6)}, Run: `sleep 0.2; echo "$BATON_FOREACH_INDEX" > "$BATON_OUTPUT_DIR/i"`},
		{Name: "join", Needs: []string{"each"}, Run: `ls "$BATON_INPUT_DIR/each" | wc -l | tr -d ' ' > "$BATON_OUTPUT_DIR/n"`},
	}}
	r := e.start(t, f, nil)
	ctx, cancel := context.WithCancelCause(context.Background())
	go func() {
		testwait.For(t, 10*time.Second, func() bool {
			ts, _ := e.st.Tasks(context.Background(), r.ID, "each")
			return len(ts) == 6 && ts[0].Status == store.TaskSucceeded
		}, "the first task to succeed")
		cancel(errors.New("coordinator died"))
	}()
	// The first coordinator "dies": its context ends mid-run. It hands
	// the run back (as a SIGKILL would, by its lease expiring).
	e.eng.Drain()
	_, err := e.eng.Execute(ctx, r.ID, engine.ExecOptions{})
	if !errors.Is(err, engine.ErrHandedBack) {
		t.Fatalf("first coordinator: %v", err)
	}
	// Another engine (another process) adopts the run and finishes it.
	other, err := engine.New(e.st, e.blobs, engine.Options{Dispatch: engine.Queue, TempDir: t.TempDir(), QueuePoll: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	e.work(t, other)
	got, err := other.Execute(context.Background(), r.ID, engine.ExecOptions{Adopt: true})
	if err != nil || got.Status != store.RunSucceeded {
		t.Fatalf("adopted run: %v %s %q", err, got.Status, got.Error)
	}
	if n := e.artifact(t, store.TaskKey{RunID: r.ID, Step: "join"}, "n"); n != "6\n" {
		t.Fatalf("join saw %q", n)
	}
}

// A worker that dies mid-task loses the task to another worker once its
// lease expires, and its late finish is refused.
func TestDeadWorkerTaskRunsElsewhere(t *testing.T) {
	t.Parallel()
	e := newEnv(t, engine.Options{Dispatch: engine.Queue, QueuePoll: 50 * time.Millisecond})
	f := &flow.Flow{Name: "q-dead", Steps: []flow.Step{{Name: "a", Retry: flow.Retry{Attempts: 2},
		Run: `echo "$BATON_ATTEMPT" > "$BATON_OUTPUT_DIR/attempt"`}}}
	r := e.start(t, f, nil)
	done := make(chan store.Run, 1)
	go func() {
		got, _ := e.eng.Execute(context.Background(), r.ID, engine.ExecOptions{})
		done <- got
	}()
	// A "worker" claims the task and dies without renewing.
	var claims []store.Claim
	testwait.For(t, 10*time.Second, func() bool {
		claims, _ = e.st.ClaimTasks(context.Background(), "dead-worker", 1, -time.Second, nil, nil)
		return len(claims) == 1
	}, "a task to claim")
	if n, err := e.st.ReapTasks(context.Background()); n != 1 || err != nil {
		t.Fatalf("reap: %d %v", n, err)
	}
	e.work(t, e.eng)
	got := <-done
	if got.Status != store.RunSucceeded {
		t.Fatalf("run: %s %q", got.Status, got.Error)
	}
	if a := e.artifact(t, store.TaskKey{RunID: r.ID, Step: "a"}, "attempt"); a != "2\n" {
		t.Fatalf("the task ran as attempt %q, want 2", a)
	}
	late := store.Finish{Claim: claims[0], Worker: "dead-worker", Status: store.TaskSucceeded, At: time.Now()}
	if err := e.st.FinishTask(context.Background(), late); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("the dead worker's late finish: %v", err)
	}
}

// Go steps go through the queue to the processes that have their functions.
func TestQueuedGoStepsAcrossEngines(t *testing.T) {
	t.Parallel()
	e := newEnv(t, engine.Options{Dispatch: engine.Queue, QueuePoll: 50 * time.Millisecond})
	f := &flow.Flow{Name: "q-go", Steps: []flow.Step{
		{Name: "each", Foreach: &flow.Foreach{Items: items(50)}},
		{Name: "sum", Needs: []string{"each"}},
	}}
	var mu sync.Mutex
	ran := map[string]int{}
	funcs := func(who string) map[string]map[string]engine.GoFunc {
		return map[string]map[string]engine.GoFunc{"q-go": {
			"each": func(ctx context.Context, t *engine.Task) error {
				mu.Lock()
				ran[who]++
				mu.Unlock()
				return t.Output(ctx, "x", t.Item)
			},
			"sum": func(ctx context.Context, t *engine.Task) error {
				arts, err := t.Inputs(ctx, "each")
				if err != nil {
					return err
				}
				return t.Output(ctx, "n", []byte(strconv.Itoa(len(arts))))
			},
		}}
	}
	// A worker with no functions must leave the Go tasks alone.
	e.work(t, e.eng)
	for _, who := range []string{"a", "b"} {
		other, err := engine.New(e.st, e.blobs, engine.Options{Dispatch: engine.Queue, TempDir: t.TempDir(), QueuePoll: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(other.Close)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); other.Work(ctx, engine.WorkOptions{Funcs: funcs(who)}) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	r := e.run(t, f, nil, engine.ExecOptions{})
	if r.Status != store.RunSucceeded {
		t.Fatalf("run %s: %s", r.Status, r.Error)
	}
	if got := e.artifact(t, store.TaskKey{RunID: r.ID, Step: "sum"}, "n"); got != "50" {
		t.Fatalf("sum saw %s", got)
	}
	if ran["a"]+ran["b"] != 50 {
		t.Fatalf("tasks ran %v times, want 50 in all", ran)
	}
}
