package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/baton-ml/baton/internal/artifact"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/store"
)

// outcome is what one attempt produced.
type outcome struct {
	status store.TaskStatus // succeeded, failed or cancelled
	exit   *int
	err    string
	arts   []store.Artifact
	stdout blobRef
	stderr blobRef
}

type blobRef struct {
	digest string
	size   int64
}

// attempt runs one try of task k of step s in slot sl and says how it went:
// the command or function, its outputs, the signals it publishes, and
// timeouts and cancellation told apart.
func (r *runner) attempt(sl *slot, s *stepRun, k store.TaskKey, n int, item json.RawMessage) (outcome, []store.Signal) {
	actx, cancel := r.ctx, context.CancelFunc(func() {})
	if s.def.Timeout > 0 {
		actx, cancel = context.WithTimeout(r.ctx, time.Duration(s.def.Timeout))
	}
	var out outcome
	path, err := r.taskPath(r.ctx, s, k.Index)
	switch {
	case err != nil:
		out = failed("the task's place in its foreach levels: %v", err)
	case s.def.Subflow != nil:
		out = r.execSubflow(actx, s, k, path, item)
	case s.def.Run != "":
		out = r.execShell(actx, sl, s, k, path, n, item)
	default:
		out = r.execGo(actx, s, k, path, n, item)
	}
	cancel()
	if out.status == store.TaskSucceeded && s.def.Switch != nil {
		if err := r.checkCase(r.ctx, s, k.Index, out.arts); err != nil {
			out.status, out.err = store.TaskFailed, err.Error()
		}
	}
	var published []store.Signal
	if out.status == store.TaskSucceeded && len(s.def.Publish) > 0 {
		var err error
		if published, err = r.signalsOf(r.ctx, s, k, out.arts); err != nil {
			out.status, out.err = store.TaskFailed, err.Error()
		}
	}
	if out.status != store.TaskSucceeded && r.ctx.Err() != nil {
		out.status = store.TaskCancelled
		out.err = "cancelled"
		if cause := context.Cause(r.ctx); cause != nil && !errors.Is(cause, context.Canceled) {
			out.err = "cancelled: " + cause.Error()
		}
	} else if out.status == store.TaskFailed && actx.Err() == context.DeadlineExceeded {
		out.err = fmt.Sprintf("timed out after %s", time.Duration(s.def.Timeout))
	}
	return out, published
}

// runTask runs one attempt of a task in its own goroutine, records the
// result durably, frees the worker slot and reports to the coordinator.
func (r *runner) runTask(sl *slot, s *stepRun, idx, attempt int) {
	k := store.TaskKey{RunID: r.run.ID, Step: s.def.Name, Index: idx}
	start := time.Now()
	// The attempt's own row is written once, when it ends: the task row
	// already says it is running, since when, and which attempt.
	r.e.com.send(&store.Batch{
		Tasks: []store.TaskChange{{TaskKey: k, Status: store.TaskRunning, Attempts: attempt, StartedAt: start}},
	})
	var item json.RawMessage
	if s.foreach {
		item = s.items[idx]
	}
	if s.def.Subflow != nil {
		// It waits for a child run, whose tasks need the slots.
		r.e.slots <- sl
		sl = nil
	}
	out, published := r.attempt(sl, s, k, attempt, item)
	end := time.Now()
	ev := event{kind: taskDone, step: s, idx: idx, attempt: attempt, status: out.status, err: out.err,
		took: end.Sub(start), retry: -1}
	taskStatus := out.status
	var finished time.Time
	if out.status == store.TaskFailed && attempt < s.def.Retry.MaxAttempts() {
		taskStatus = store.TaskPending
		ev.status = store.TaskPending
		ev.retry = s.def.Retry.Delay(attempt + 1)
	} else {
		finished = end
	}
	b := &store.Batch{
		// The start time rides along so a coalesced "started" loses nothing.
		Tasks: []store.TaskChange{{TaskKey: k, Status: taskStatus, Attempts: attempt, StartedAt: start, FinishedAt: finished,
			ExitCode: out.exit, Error: out.err}},
		Attempts: []store.Attempt{{TaskKey: k, Attempt: attempt, Status: out.status, StartedAt: start, FinishedAt: end,
			ExitCode: out.exit, Error: out.err, StdoutDigest: out.stdout.digest, StdoutSize: out.stdout.size,
			StderrDigest: out.stderr.digest, StderrSize: out.stderr.size}},
	}
	if out.status == store.TaskSucceeded {
		// The signals land in the transaction that records the success:
		// a task that succeeded has published, exactly once.
		b.Artifacts, b.Signals = out.arts, published
	}
	wait, _ := r.e.com.queue(context.Background(), b)
	// A task that succeeded frees its slot while its result is committed,
	// so the next task runs meanwhile and commits group up. One that did
	// not keeps the slot until the coordinator has heard, so a failure
	// stops new launches at once.
	if out.status == store.TaskSucceeded && sl != nil {
		r.e.slots <- sl
		sl = nil
	}
	if err := wait(); err != nil {
		r.cancel(err)
		ev.status, ev.err, ev.retry = store.TaskFailed, err.Error(), -1
	}
	r.events <- ev
	if sl != nil {
		r.e.slots <- sl
	}
}

func (r *runner) execShell(ctx context.Context, sl *slot, s *stepRun, k store.TaskKey, path []int, attempt int, item json.RawMessage) outcome {
	if err := sl.reset(); err != nil {
		return failed("empty the output folder: %v", err)
	}
	// Whatever a task leaves behind (a failure's files; a success's have
	// been moved into the blob store) is removed by the reset above when
	// the slot runs its next task: emptying it here as well cost an open,
	// a read and a close of the folder per task and caught nothing more.
	outDir := sl.out
	if err := r.params(); err != nil {
		return failed("write params: %v", err)
	}
	_, base, err := r.placeOf(ctx, s)
	if err != nil {
		return failed("prepare inputs: %v", err)
	}
	in, err := r.inputDir(ctx, s, s.context(path), base)
	if err != nil {
		return failed("prepare inputs: %v", err)
	}
	stdout, err := newLogFile(sl.fd, "stdout")
	if err != nil {
		return failed("create log: %v", err)
	}
	defer stdout.Close()
	stderr, err := newLogFile(sl.fd, "stderr")
	if err != nil {
		return failed("create log: %v", err)
	}
	defer stderr.Close()
	r.e.addLive(k, attempt, stdout, stderr)
	defer r.e.removeLive(k)

	env := make([]string, 0, len(r.baseEnv)+len(s.def.Env)+10)
	env = append(env, r.baseEnv...)
	for name, v := range s.def.Env {
		env = append(env, name+"="+v)
	}
	env = append(env,
		"BATON_STEP="+k.Step,
		"BATON_TASK_ID="+taskID(k, path),
		"BATON_ATTEMPT="+strconv.Itoa(attempt),
		"BATON_OUTPUT_DIR="+outDir,
		"BATON_INPUT_DIR="+in,
	)
	if s.foreach {
		env = append(env, "BATON_FOREACH_INDEX="+strconv.Itoa(path[len(path)-1]), "BATON_FOREACH_ITEM="+flow.ParamEnv(item))
	}
	if len(path) > 0 {
		// Every level's index, outermost first (one level: the index).
		env = append(env, "BATON_FOREACH_PATH="+store.FormatPath(path))
	}
	if it := iteration(s, base); it > 0 {
		env = append(env, "BATON_ITERATION="+strconv.Itoa(it))
	}
	if sg := s.signal; sg != nil {
		params, _ := json.Marshal(sg.Params)
		env = append(env, "BATON_SIGNAL_ID="+sg.ID, "BATON_SIGNAL_NAME="+sg.Name, "BATON_SIGNAL_PARAMS="+string(params))
	}
	// The command text goes to sh as one argument; user values reach the
	// task only through the environment, never through the shell's parser.
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", s.def.Run)
	cmd.Dir = r.dir
	cmd.Env = env
	cmd.Stdin = nil
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	cmd.SysProcAttr = sysProcAttr()
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = r.e.opt.KillGrace
	runErr := cmd.Run()
	if ctx.Err() != nil && cmd.Process != nil {
		// Whatever ignored SIGTERM, or outlived the shell, goes now.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	var out outcome
	if cmd.ProcessState != nil {
		code := cmd.ProcessState.ExitCode()
		out.exit = &code
	}
	out.stdout, err = r.putLog(ctx, stdout)
	if err == nil {
		out.stderr, err = r.putLog(ctx, stderr)
	}
	switch {
	case err != nil:
		out.status, out.err = store.TaskFailed, fmt.Sprintf("store logs: %v", err)
	case runErr != nil:
		out.status = store.TaskFailed
		out.err = exitMessage(runErr, cmd.ProcessState)
	default:
		out.status = store.TaskSucceeded
		out.arts, err = sl.collect(ctx, r.e.blobs, k)
		if err != nil {
			out.status, out.err = store.TaskFailed, err.Error()
		}
	}
	return out
}

func exitMessage(err error, ps *os.ProcessState) string {
	if ps == nil {
		return fmt.Sprintf("start: %v", err)
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "killed by signal " + ws.Signal().String()
	}
	return fmt.Sprintf("exit status %d", ps.ExitCode())
}

func failed(format string, args ...any) outcome {
	return outcome{status: store.TaskFailed, err: fmt.Sprintf(format, args...)}
}

// putLog stores a log file as a blob; an empty log stores nothing.
func (r *runner) putLog(ctx context.Context, f *os.File) (blobRef, error) {
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return blobRef{}, err
	}
	d, n, err := r.e.blobs.PutSeeker(context.WithoutCancel(ctx), f)
	return blobRef{digest: d, size: n}, err
}

// ---- in-process Go steps

// GoFunc is the body of an in-process step.
type GoFunc func(ctx context.Context, t *Task) error

func (r *runner) execGo(ctx context.Context, s *stepRun, k store.TaskKey, path []int, attempt int, item json.RawMessage) (out outcome) {
	_, base, _ := r.placeOf(ctx, s)
	t := &Task{Key: k, Path: path, Attempt: attempt, Params: r.run.Params, Signal: s.signal, Iteration: iteration(s, base), r: r, s: s}
	if s.foreach {
		t.Item = item
	}
	err := func() (err error) {
		defer func() {
			if p := recover(); p != nil {
				fmt.Fprintf(&t.Stderr, "panic: %v\n\n%s", p, debug.Stack())
				err = fmt.Errorf("panic: %v", p)
			}
		}()
		return r.funcs[s.def.Name](ctx, t)
	}()
	var lerr error
	if t.Stdout.Len() > 0 {
		out.stdout.digest, out.stdout.size, lerr = r.e.blobs.PutBytes(context.WithoutCancel(ctx), t.Stdout.Bytes())
	}
	if t.Stderr.Len() > 0 && lerr == nil {
		out.stderr.digest, out.stderr.size, lerr = r.e.blobs.PutBytes(context.WithoutCancel(ctx), t.Stderr.Bytes())
	}
	switch {
	case err != nil:
		out.status, out.err = store.TaskFailed, err.Error()
	case t.err != nil:
		out.status, out.err = store.TaskFailed, t.err.Error()
	case lerr != nil:
		out.status, out.err = store.TaskFailed, fmt.Sprintf("store logs: %v", lerr)
	default:
		out.status, out.arts = store.TaskSucceeded, t.outs
	}
	return out
}

// Task is what an in-process step sees: its identity, the run's params, its
// foreach item, its inputs and a place for its outputs. A Task is used by
// the one goroutine running the step.
type Task struct {
	Key store.TaskKey
	// Path is the task's index at each foreach level its step sits in,
	// outermost first: empty outside any foreach, [Key.Index] in one.
	Path    []int
	Attempt int
	// Iteration is the loop iteration (from 1) of a step in a loop; 0
	// outside one.
	Iteration int
	Params    map[string]json.RawMessage
	// Item is the foreach item as JSON; nil outside a foreach step.
	Item json.RawMessage
	// Signal is the signal a waiting step received; nil otherwise.
	Signal *store.Signal
	// Stdout and Stderr are kept as the task's logs.
	Stdout, Stderr bytes.Buffer

	r    *runner
	s    *stepRun
	outs []store.Artifact
	err  error // a failed Output, reported even if the step ignores it
}

// Output stores data as the artifact name of this task. Names are relative
// slash-separated paths; each may be written once.
func (t *Task) Output(ctx context.Context, name string, data []byte) error {
	if err := artifact.ValidName(name); err != nil {
		return t.fail(err)
	}
	for _, a := range t.outs {
		if a.Name == name {
			return t.fail(fmt.Errorf("artifact %q written twice", name))
		}
	}
	d, n, err := t.r.e.blobs.PutBytes(ctx, data)
	if err != nil {
		return t.fail(fmt.Errorf("store artifact %s: %w", name, err))
	}
	t.outs = append(t.outs, store.Artifact{TaskKey: t.Key, Name: name, Digest: d, Size: n, CreatedAt: time.Now()})
	return nil
}

func (t *Task) fail(err error) error {
	if t.err == nil {
		t.err = err
	}
	return err
}

// Input reads artifact name of the upstream step (which must be one of this
// step's needs), as this task sees it: the one task of that step in this
// task's foreach level or above. For a step this one joins use InputAt.
func (t *Task) Input(ctx context.Context, step, name string) ([]byte, error) {
	return t.InputAt(ctx, step, 0, name)
}

// InputAt reads artifact name of task index of an upstream step this one
// joins (the index within this task's level); index 0 for any other need.
func (t *Task) InputAt(ctx context.Context, step string, index int, name string) ([]byte, error) {
	up, lo, hi, err := t.upstream(ctx, step)
	if err != nil {
		return nil, err
	}
	if index < 0 || lo+index >= hi {
		if hi-lo == 1 {
			return nil, fmt.Errorf("step %s has one task for this one to read, index 0", step)
		}
		return nil, fmt.Errorf("step %s has %d tasks under this one's level: index %d is out of range", step, hi-lo, index)
	}
	a, err := t.r.e.st.Artifact(ctx, store.TaskKey{RunID: t.Key.RunID, Step: up.def.Name, Index: lo + index}, name)
	if err != nil {
		return nil, err
	}
	return t.r.e.blobs.Read(ctx, a.Digest)
}

// Inputs lists the artifacts of an upstream step as this task sees them
// (every task it joins).
func (t *Task) Inputs(ctx context.Context, step string) ([]store.Artifact, error) {
	up, lo, hi, err := t.upstream(ctx, step)
	if err != nil {
		return nil, err
	}
	if hi == lo {
		return nil, nil
	}
	return t.r.e.st.Artifacts(ctx, store.ArtifactFilter{RunID: t.Key.RunID, Step: up.def.Name, Index: lo, Until: hi})
}

// upstream returns need step and the flat index range of its tasks this
// task sees.
func (t *Task) upstream(ctx context.Context, step string) (*stepRun, int, int, error) {
	up, err := t.need(step)
	if err != nil {
		return nil, 0, 0, err
	}
	shape, base, err := t.r.placeOf(ctx, up)
	if err != nil {
		return nil, 0, 0, err
	}
	c := t.s.context(t.Path)
	if len(up.scope) > len(c) {
		lo, hi, ok := shape.Children(c)
		if !ok {
			return nil, 0, 0, fmt.Errorf("step %s has no tasks under %s", step, store.FormatPath(c))
		}
		return up, base + lo, base + hi, nil
	}
	idx, ok := shape.Index(c[:len(up.scope)])
	if !ok {
		return nil, 0, 0, fmt.Errorf("step %s has no task %s", step, store.FormatPath(c[:len(up.scope)]))
	}
	return up, base + idx, base + idx + 1, nil
}

// Read returns the content of an artifact listed by Inputs.
func (t *Task) Read(ctx context.Context, a store.Artifact) ([]byte, error) {
	return t.r.e.blobs.Read(ctx, a.Digest)
}

func (t *Task) need(step string) (*stepRun, error) {
	for _, up := range t.s.needs {
		if up.def.Name == step {
			return up, nil
		}
	}
	names := make([]string, len(t.s.needs))
	for i, up := range t.s.needs {
		names[i] = up.def.Name
	}
	return nil, fmt.Errorf("step %s is not among the needs of step %s (%s)", step, t.s.def.Name, strings.Join(names, ", "))
}

// signalsOf builds the signals a succeeded task publishes: for each signal
// S of the step's publish list, params come from the task's S.json artifact
// (an object; no file means no params) and must keep S's contract. The id
// is the task's, so a signal is published once per task however often the
// result is written.
func (r *runner) signalsOf(ctx context.Context, s *stepRun, k store.TaskKey, arts []store.Artifact) ([]store.Signal, error) {
	out := make([]store.Signal, 0, len(s.def.Publish))
	for _, name := range s.def.Publish {
		params := map[string]json.RawMessage{}
		for _, a := range arts {
			if a.Name != name+".json" {
				continue
			}
			b, err := r.e.blobs.Read(ctx, a.Digest)
			if err != nil {
				return nil, fmt.Errorf("publish %s: read %s: %w", name, a.Name, err)
			}
			if err := json.Unmarshal(b, &params); err != nil {
				return nil, fmt.Errorf("publish %s: %s must hold a JSON object of the signal's params: %v", name, a.Name, err)
			}
		}
		checked, err := r.contracts.Check(name, params)
		if err != nil {
			return nil, fmt.Errorf("publish %s: %w", name, err)
		}
		out = append(out, store.Signal{
			ID: fmt.Sprintf("%s/%s", k, name), Name: name, Params: checked,
			Source: store.SignalSource{Kind: store.SourceFlow, Flow: r.fl.Name, RunID: k.RunID, Step: k.Step},
		})
	}
	return out, nil
}
