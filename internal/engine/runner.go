package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/baton-ml/baton/internal/fault"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/signal"
	"github.com/baton-ml/baton/internal/store"
)

// runner coordinates one run. Its loop is the only goroutine that touches
// the run's scheduling state; task goroutines report back through events.
type runner struct {
	e     *Engine
	run   store.Run
	fl    *flow.Flow
	dir   string
	funcs map[string]GoFunc
	obs   Observer

	ctx    context.Context
	cancel context.CancelCauseFunc
	quit   chan struct{} // closed when the loop has ended

	steps  []*stepRun // topological order
	byName map[string]*stepRun
	events chan event
	queue  []*stepRun // steps with tasks to launch
	// inflight counts launched tasks that have not reported back.
	inflight int
	// ending is set once the run stops taking new work: failed or cancelled.
	ending  store.RunStatus
	failure string
	// origin is the run a resumed run reuses, and rerun the steps it must
	// execute again (resume --from).
	origin  int64
	rerun   map[string]bool
	baseEnv []string
	tmp     string
	// scratch is tmp, open (a pointer, as dropping).
	scratch *scratchDir
	// dropping counts the removals of finished steps' inputs under way
	// (a pointer: a worker runs each task with a copy of its runner).
	dropping *sync.WaitGroup
	// params writes the files of params too large for the environment,
	// once, before the first shell task.
	params func() error
	// contracts check the signals the run's steps publish.
	contracts signal.Contracts
	// draining: the engine is handing runs back; launch nothing new.
	draining bool
	// shapeMu guards the steps' shapes (a pointer, as dropping).
	shapeMu *sync.Mutex
}

type stepRun struct {
	def        *flow.Step
	status     store.TaskStatus
	needs      []*stepRun
	dependents []*stepRun
	needsLeft  int
	foreach    bool
	// scope is the foreach steps the step's tasks sit in (flow.Scopes);
	// shape, once known, places its tasks in those levels (nest.go).
	scope      []string
	shape      store.Shape
	shapeKnown bool
	// base is the flat index of the first task of the iteration the step
	// runs (0 outside a loop). loop is the switch step whose loop the
	// step is in (nil: none); a loop switch's heads map its cases that
	// lead back to the step each leads to.
	base     int
	loop     *stepRun
	heads    map[string]*stepRun
	items    []json.RawMessage // foreach items; read by task goroutines, never changed after start
	n        int
	next     int   // lowest index never launched
	retry    []int // indexes whose next attempt is due
	attempt  map[int]int
	reused   []bool // per index, when some tasks were reused
	finished int
	failed   int
	// fullyReused: every task came from the origin run, so steps below
	// may reuse theirs too.
	fullyReused bool
	// inputs holds the materialized inputs of each context its tasks
	// run in (one for a step outside any foreach), by inputKey.
	// skipped marks the tasks a switch upstream skipped (nil: none),
	// known once the step started here or was read (skippedOf); choices
	// caches a switch step's cases by task; allSkipped: every task.
	skipped    []bool
	skipKnown  bool
	mayskip    bool // a switch comes before it (mayBeSkipped)
	choices    map[int]string
	allSkipped bool
	inMu       sync.Mutex
	inputs     map[string]*inputDir
	inputsGone bool // removed: the step has ended
	// signal is what a waiting step received; waiting says a waiter is out.
	signal  *store.Signal
	waiting bool
	// sigOnce loads signal in a worker that did not see it arrive.
	sigOnce sync.Once
	sigErr  error
}

type eventKind int

const (
	taskDone eventKind = iota
	retryDue
	signalCame // a waiting step's signal arrived
	waitFailed // a waiting step timed out, or its condition failed
)

type event struct {
	kind    eventKind
	step    *stepRun
	idx     int
	attempt int
	status  store.TaskStatus
	retry   time.Duration // >= 0 when the task will be tried again after this wait
	err     string
	took    time.Duration
	signal  *store.Signal
}

// Execute runs the pending (or orphaned and re-acquired) run id to its end
// and returns it in its final state. The run's status says how it went;
// the error is for failures of baton itself (store, lease).
func (e *Engine) Execute(ctx context.Context, id int64, opt ExecOptions) (store.Run, error) {
	run, err := e.st.Run(ctx, id)
	if err != nil {
		return run, err
	}
	fl, v, err := Load(ctx, e.st, run)
	if err != nil {
		return run, err
	}
	switch {
	case opt.Adopt:
		if run.Status != store.RunRunning || !e.queued(fl) {
			return run, fmt.Errorf("run %d is %s: only a running run of queued tasks can be taken over in place: %w",
				id, run.Status, store.ErrConflict)
		}
	case opt.Acquired && (run.Status != store.RunRunning || run.Owner != e.owner):
		return run, fmt.Errorf("run %d is %s and held by %q, not by this engine: %w", id, run.Status, run.Owner, store.ErrConflict)
	case !opt.Acquired && run.Status != store.RunPending:
		return run, fmt.Errorf("run %d is %s: only a pending run can start (resume it to run again): %w",
			id, run.Status, store.ErrConflict)
	}
	for _, s := range fl.Steps {
		if s.TrainingSet != nil && e.opt.TrainingSet == nil {
			return run, fmt.Errorf("step %s of flow %s builds a training set, which needs the feature store: run it with baton run or baton server", s.Name, fl.Name)
		}
		// Through the queue, Go steps run in workers that have them.
		if s.Run == "" && s.TrainingSet == nil && s.Subflow == nil && opt.Funcs[s.Name] == nil && !e.queued(fl) {
			return run, fmt.Errorf("step %s of flow %s has no run command and no Go function: "+
				"it is a Go SDK step, so run or resume it from the Go program that defines it", s.Name, fl.Name)
		}
	}
	if run.ResumeFrom != "" && fl.Step(run.ResumeFrom) == nil {
		return run, fault.Invalidf("from", "flow %s has no step %q", fl.Name, run.ResumeFrom)
	}
	contracts, err := signal.Load(ctx, e.st)
	if err != nil {
		return run, err
	}
	dir, err := e.codeDir(ctx, v, id)
	if err != nil {
		return run, err
	}
	if !opt.Acquired {
		if run, err = e.st.AcquireRun(ctx, id, e.owner, e.opt.LeaseTTL); err != nil {
			return run, err
		}
	}
	obs := opt.Observer
	if obs == nil {
		obs = nopObserver{}
	}
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	r := e.newRunner(run, fl, dir, opt.Funcs, obs, contracts)
	r.ctx, r.cancel = rctx, cancel
	if !e.register(r) {
		// The engine is draining: hand the run straight back.
		return run, e.release(run.ID)
	}
	defer e.unregister(run.ID)
	hbDone := make(chan struct{})
	go func() { defer close(hbDone); r.heartbeat() }()
	defer func() { cancel(nil); <-hbDone }()
	obs.RunStarted(run, fl)
	if e.queued(fl) {
		err = r.reconcile()
	} else {
		err = r.loop()
	}
	final, rerr := e.st.Run(context.WithoutCancel(ctx), id)
	if rerr != nil && err == nil {
		err = rerr
	}
	if err == nil {
		obs.RunFinished(final)
	}
	return final, err
}

// environment is what every shell task of the run inherits: the engine's
// own environment without any BATON_ variables of an enclosing run, plus the
// run's identity and parameters.
func (r *runner) environment() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BATON_") {
			env = append(env, kv)
		}
	}
	env = append(env, r.e.opt.Env...)
	env = append(env, "BATON_RUN_ID="+strconv.FormatInt(r.run.ID, 10), "BATON_FLOW="+r.fl.Name)
	inEnv := flow.EnvParams(r.run.Params)
	for name, v := range r.run.Params {
		if !inEnv[name] {
			// Too large for the environment (exec would fail with
			// "argument list too long"): the task reads a file.
			env = append(env, "BATON_PARAM_FILE_"+strings.ToUpper(name)+"="+r.paramFile(name))
			continue
		}
		env = append(env, "BATON_PARAM_"+strings.ToUpper(name)+"="+flow.ParamEnv(v))
	}
	return env
}

// heartbeat renews the run's lease for as long as the coordinator works on
// it, ending included (a cancelled run still waits for its tasks): only
// the coordinator's return (quit) stops it.
func (r *runner) heartbeat() {
	t := time.NewTicker(r.e.opt.LeaseTTL / 3)
	defer t.Stop()
	ctx := context.WithoutCancel(r.ctx)
	told := false // cancel requested and passed on
	for {
		select {
		case <-r.quit:
			return
		case <-t.C:
			cancel, err := r.e.st.RenewLease(ctx, r.run.ID, r.e.owner, r.e.opt.LeaseTTL)
			if errors.Is(err, store.ErrLeaseLost) {
				r.cancel(fmt.Errorf("run %d: another process took it over: %w", r.run.ID, err))
				return
			}
			if cancel && !told {
				told = true
				r.cancel(context.Canceled)
			}
			// Other errors are transient (a busy or briefly unreachable
			// database): the next beat retries well within the TTL.
		}
	}
}

func (r *runner) loop() error {
	defer close(r.quit)
	stepsAt := time.Now()
	var b store.Batch
	for _, s := range r.steps {
		b.Steps = append(b.Steps, store.StepChange{RunID: r.run.ID, Name: s.def.Name, Status: store.TaskPending, At: stepsAt})
	}
	if err := r.e.com.commit(r.ctx, &b); err != nil {
		return r.abort(err)
	}
	for _, s := range r.steps {
		if len(s.needs) == 0 {
			r.startStep(s)
		}
	}
	done := r.ctx.Done()
	for !r.over() {
		if r.draining && r.inflight == 0 && r.ending == "" {
			return r.handBack()
		}
		var slots chan *slot
		if r.ending == "" && !r.draining && len(r.queue) > 0 {
			slots = r.e.slots
		}
		select {
		case sl := <-slots:
			// A task that just finished may have stopped the run: its
			// event is queued before its slot frees, so look first.
			r.drain()
			if r.ending == "" && !r.draining && len(r.queue) > 0 {
				r.launch(sl)
			} else {
				r.e.slots <- sl
			}
		case ev := <-r.events:
			r.handle(ev)
		case <-r.e.drainCh:
			r.draining = true
			if r.inflight == 0 {
				return r.handBack()
			}
		case <-done:
			done = nil
			if r.ending == "" {
				r.ending = store.RunCancelled
				r.failure = "cancelled"
				if cause := context.Cause(r.ctx); cause != nil && !errors.Is(cause, context.Canceled) {
					r.failure = cause.Error()
				}
			}
		}
	}
	return r.finish()
}

// drain handles the events already queued.
func (r *runner) drain() {
	for {
		select {
		case ev := <-r.events:
			r.handle(ev)
		default:
			return
		}
	}
}

// over reports whether the loop may stop: nothing in flight and either
// every step succeeded or the run is ending.
func (r *runner) over() bool {
	if r.inflight > 0 {
		return false
	}
	if r.ending != "" {
		return true
	}
	for _, s := range r.steps {
		if !stepDone(s.status) {
			return false
		}
	}
	return true
}

// scratchDir is a run's scratch folder, made and opened on first need
// and reached from then on from its descriptor (see dirfd.go).
type scratchDir struct {
	mu      sync.Mutex
	fd      int // -1 until made, and once removed
	st      unix.Stat_t
	removed bool
}

// openScratch returns a descriptor of the run's scratch folder, for the
// caller to close, making and opening the folder on the first call. It
// fails if the folder's path no longer leads to it: tasks are told paths
// in it, and what a task reads there must be what baton put there.
func (r *runner) openScratch() (int, error) {
	sc := r.scratch
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.removed {
		return -1, errors.New("the run's scratch folder was removed: the run has ended")
	}
	if sc.fd < 0 {
		name := filepath.Base(r.tmp)
		if err := unix.Mkdirat(r.e.slotFd, name, 0o755); err != nil && err != unix.EEXIST {
			return -1, &fs.PathError{Op: "mkdir", Path: r.tmp, Err: err}
		}
		fd, err := openDir(r.e.slotFd, name)
		if err != nil {
			return -1, &fs.PathError{Op: "open", Path: r.tmp, Err: errors.Unwrap(err)}
		}
		if err := unix.Fstat(fd, &sc.st); err != nil {
			unix.Close(fd)
			return -1, &fs.PathError{Op: "stat", Path: r.tmp, Err: err}
		}
		sc.fd = fd
	}
	if !sameDir(r.tmp, &sc.st) {
		return -1, fmt.Errorf("%w: %s is no longer the run's scratch folder baton made (it, or a folder above it, was replaced)",
			errLinkInPlace, r.tmp)
	}
	fd, err := unix.FcntlInt(uintptr(sc.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, &fs.PathError{Op: "dup", Path: r.tmp, Err: err}
	}
	return fd, nil
}

// removeTemp deletes the run's scratch folder: the step input folders by
// what they are known to hold, then whatever else is there, from the
// engine's folder's descriptor: a link a task put in place of the scratch
// folder, or above it, is not followed.
func (r *runner) removeTemp() {
	r.dropping.Wait()
	for _, s := range r.steps {
		s.removeInputs()
	}
	sc := r.scratch
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.removed {
		return
	}
	sc.removed = true
	if sc.fd >= 0 {
		unix.Close(sc.fd)
		sc.fd = -1
	}
	r.e.removeRunTemp(r.run.ID)
}

// handBack gives the run up without ending it: the engine is stopping.
// What completed is recorded; the run's lease is released so a server
// starting later can take it over.
func (r *runner) handBack() error {
	r.removeTemp()
	return r.e.release(r.run.ID)
}

// abort ends the run after baton itself failed (the store refused a write).
func (r *runner) abort(err error) error {
	r.cancel(err)
	for r.inflight > 0 {
		ev := <-r.events
		if ev.kind == taskDone {
			r.inflight--
		}
	}
	if errors.Is(err, store.ErrLeaseLost) {
		return err
	}
	now := time.Now()
	ferr := r.e.com.commit(context.Background(), &store.Batch{Runs: []store.RunChange{{
		RunID: r.run.ID, Status: store.RunFailed, Error: "baton: " + err.Error(), At: now}}})
	return errors.Join(err, ferr)
}

func (r *runner) fail(msg string) {
	if r.failure == "" {
		r.failure = msg
	}
	if r.ending == "" {
		r.ending = store.RunFailed
	}
}

// startStep resolves a step's tasks once everything it needs has succeeded.
func (r *runner) startStep(s *stepRun) {
	if r.ending != "" {
		return
	}
	if s.def.Wait != nil && s.signal == nil && !r.waitReused(s) {
		r.await(s)
		return
	}
	now := time.Now()
	items, shape, skip, allSkipped, err := r.prepare(s)
	if err != nil {
		s.status = store.TaskFailed
		r.fail(fmt.Sprintf("step %s: %v", s.def.Name, err))
		if cerr := r.e.com.commit(r.ctx, &store.Batch{Steps: []store.StepChange{{RunID: r.run.ID, Name: s.def.Name,
			Status: store.TaskFailed, Foreach: s.foreach, At: now}}}); cerr != nil {
			r.cancel(cerr)
		}
		r.obs.StepFinished(s.def.Name, store.TaskFailed)
		return
	}
	// A step in a loop keeps its earlier iterations' tasks: this one's
	// come after them.
	base := s.n
	if s.loop == nil {
		base = 0
	}
	s.items, s.n = items, base+shape.Count()
	s.next, s.finished, s.failed, s.retry, s.attempt = base, base, 0, nil, nil
	r.setShape(s, shape, base)
	r.setSkipped(s, skip, base)
	s.allSkipped = allSkipped
	s.status = store.TaskRunning
	b := &store.Batch{
		Steps: []store.StepChange{{RunID: r.run.ID, Name: s.def.Name, Status: store.TaskRunning, Foreach: s.foreach,
			NumTasks: s.n, Shape: shape, SignalID: s.signalID(), At: now}},
		NewTasks: []store.NewTasks{{RunID: r.run.ID, Step: s.def.Name, From: base, Count: s.n - base, ReadyAt: now}},
		Tasks:    skipChanges(r.run.ID, s, skip, base, now),
	}
	reused, eligible, err := r.reusable(s)
	if err != nil {
		r.cancel(err)
		return
	}
	if len(reused) > 0 {
		b.Reuse = []store.ReuseTasks{{RunID: r.run.ID, From: r.origin, Step: s.def.Name, Start: base, Count: s.n, At: now}}
	}
	if err := r.e.com.commit(r.ctx, b); err != nil {
		r.cancel(err)
		return
	}
	nskip := 0
	for _, sk := range skip {
		if sk {
			nskip++
		}
	}
	s.reused = nil
	if len(reused) > 0 || nskip > 0 {
		s.reused = make([]bool, s.n)
		copy(s.reused[base:], skip)
		for _, i := range reused {
			s.reused[i] = true
		}
	}
	s.finished = base + len(reused) + nskip
	r.obs.StepStarted(s.def.Name, s.n-base, s.finished-base)
	s.fullyReused = eligible && s.finished == s.n
	if s.finished == s.n {
		r.finishStep(s)
		return
	}
	r.skipReused(s)
	r.queue = append(r.queue, s)
}

// reusable returns the indexes of the origin run's succeeded tasks that a
// resumed run may take over for s, and whether s may reuse at all: it is
// not being rerun and everything upstream was reused whole (a step whose
// inputs were recomputed must run again).
func (r *runner) reusable(s *stepRun) ([]int, bool, error) {
	if r.origin == 0 || r.rerun[s.def.Name] {
		return nil, false, nil
	}
	for _, up := range s.needs {
		if !up.fullyReused {
			return nil, false, nil
		}
	}
	if w := s.loop; w != nil && s.base > 0 && r.leadsBack(w, s) && !w.fullyReused {
		// A loop's head sees the switch's last iteration: it must have
		// been reused too.
		return nil, false, nil
	}
	if shape, _ := r.shapeOf(r.ctx, s); shape.Level() > 1 {
		// A nested step's flat indexes name the same tasks only if the
		// levels above fanned out alike.
		steps, err := r.e.st.Steps(r.ctx, r.origin)
		if err != nil {
			return nil, false, fmt.Errorf("read steps of origin run %d: %w", r.origin, err)
		}
		same := false
		for _, st := range steps {
			if st.Name == s.def.Name {
				same = slices.EqualFunc(st.TaskShape(), shape, slices.Equal[[]int])
			}
		}
		if !same {
			return nil, false, nil
		}
	}
	tasks, err := r.e.st.Tasks(r.ctx, r.origin, s.def.Name)
	if err != nil {
		return nil, false, fmt.Errorf("read tasks of origin run %d: %w", r.origin, err)
	}
	_, base, _ := r.placeOf(r.ctx, s)
	var out []int
	for _, t := range tasks {
		if t.Status == store.TaskSucceeded && t.Index >= base && t.Index < s.n {
			out = append(out, t.Index)
		}
	}
	return out, true, nil
}

func (r *runner) skipReused(s *stepRun) {
	for s.next < s.n && s.reused != nil && s.reused[s.next] {
		s.next++
	}
}

// launch starts the next task of the first queued step in slot sl.
func (r *runner) launch(sl *slot) {
	s := r.queue[0]
	var idx int
	if len(s.retry) > 0 {
		idx = s.retry[0]
		s.retry = s.retry[1:]
	} else {
		idx = s.next
		s.next++
		r.skipReused(s)
	}
	if len(s.retry) == 0 && s.next >= s.n {
		r.queue = r.queue[1:]
	}
	attempt := 1
	if a, ok := s.attempt[idx]; ok {
		attempt = a
	}
	r.inflight++
	r.obs.TaskStarted(store.TaskKey{RunID: r.run.ID, Step: s.def.Name, Index: idx}, attempt)
	go r.runTask(sl, s, idx, attempt)
}

func (r *runner) handle(ev event) {
	s := ev.step
	k := store.TaskKey{RunID: r.run.ID, Step: s.def.Name, Index: ev.idx}
	switch ev.kind {
	case signalCame:
		s.waiting = false
		if r.ending != "" || s.status != store.TaskWaiting {
			return
		}
		s.signal = ev.signal
		if r.e.queued(r.fl) {
			s.status = store.TaskPending // advance starts it
			return
		}
		r.startStep(s)
		return
	case waitFailed:
		s.waiting = false
		if s.status != store.TaskWaiting {
			return
		}
		s.status = store.TaskFailed
		r.fail(fmt.Sprintf("step %s: %s", s.def.Name, ev.err))
		if err := r.e.com.commit(r.ctx, &store.Batch{Steps: []store.StepChange{{RunID: r.run.ID, Name: s.def.Name,
			Status: store.TaskFailed, At: time.Now()}}}); err != nil {
			r.cancel(err)
		}
		r.obs.StepFinished(s.def.Name, store.TaskFailed)
		return
	case retryDue:
		if r.ending != "" {
			return
		}
		if len(s.retry) == 0 && s.next >= s.n {
			r.queue = append(r.queue, s)
		}
		s.retry = append(s.retry, ev.idx)
		return
	case taskDone:
	}
	r.inflight--
	r.obs.TaskFinished(k, ev.attempt, ev.status, ev.err, ev.took)
	if ev.retry >= 0 && ev.status == store.TaskPending {
		if s.attempt == nil {
			s.attempt = map[int]int{}
		}
		s.attempt[ev.idx] = ev.attempt + 1
		time.AfterFunc(ev.retry, func() {
			select {
			case r.events <- event{kind: retryDue, step: s, idx: ev.idx}:
			case <-r.quit:
			}
		})
		return
	}
	s.finished++
	switch ev.status {
	case store.TaskFailed:
		s.failed++
		r.fail(fmt.Sprintf("step %s task %s failed after %d attempt(s): %s", s.def.Name, r.taskName(s, ev.idx), ev.attempt, ev.err))
	case store.TaskCancelled:
		if r.ending == "" {
			r.ending = store.RunCancelled
			r.failure = "cancelled"
		}
	}
	if s.finished == s.n && s.failed == 0 && s.status == store.TaskRunning && r.ending == "" {
		r.finishStep(s)
	}
}

// finishStep records a step that succeeded (or whose every task was
// skipped) and starts what waited on it.
func (r *runner) finishStep(s *stepRun) {
	s.status = store.TaskSucceeded
	if s.allSkipped {
		s.status = store.TaskSkipped
	}
	// No task of s runs any more: its inputs go while the step's end is
	// committed and the steps below start (or the run ends).
	ins := s.takeInputs()
	r.dropping.Go(func() { removeAll(ins) })
	if err := r.e.com.commit(r.ctx, &store.Batch{Steps: []store.StepChange{{RunID: r.run.ID, Name: s.def.Name,
		Status: s.status, Foreach: s.foreach, NumTasks: s.n, At: time.Now()}}}); err != nil {
		r.cancel(err)
		return
	}
	r.obs.StepFinished(s.def.Name, s.status)
	if len(s.heads) > 0 {
		head, err := r.loopBack(s)
		if err != nil {
			r.fail(fmt.Sprintf("step %s: %v", s.def.Name, err))
			return
		}
		if head != nil {
			// Round again: the cases after the switch wait.
			r.iterate(s, head)
			return
		}
	}
	for _, d := range s.dependents {
		if s.loop != nil && s.loop != s && d.loop != s.loop {
			continue // a step after the loop waits for its end (below)
		}
		r.needDone(d)
	}
	if len(s.heads) > 0 {
		// The loop has ended: what comes after its steps may start.
		for _, b := range r.steps {
			if b.loop != s || b == s {
				continue
			}
			for _, d := range b.dependents {
				if d.loop != s {
					r.needDone(d)
				}
			}
		}
	}
}

// needDone tells d that one of its needs is done, and starts it when it
// was the last.
func (r *runner) needDone(d *stepRun) {
	d.needsLeft--
	if d.needsLeft == 0 {
		r.startStep(d)
	}
}

// finish records the end of the run in one transaction: the steps that
// never ran or were cut short, and the run's final status.
func (r *runner) finish() error {
	now := time.Now()
	status := store.RunSucceeded
	if r.ending != "" {
		status = r.ending
	}
	leftover := store.TaskSkipped
	if status == store.RunCancelled {
		leftover = store.TaskCancelled
	}
	var b store.Batch
	for _, s := range r.steps {
		switch s.status {
		case store.TaskSucceeded, store.TaskFailed, store.TaskSkipped:
			continue
		case store.TaskPending, store.TaskWaiting:
			s.status = leftover
		case store.TaskRunning:
			b.EndPending = append(b.EndPending, store.EndPending{RunID: r.run.ID, Step: s.def.Name, Status: leftover, At: now})
			s.status = leftover
			if s.failed > 0 {
				s.status = store.TaskFailed
			}
		}
		b.Steps = append(b.Steps, store.StepChange{RunID: r.run.ID, Name: s.def.Name, Status: s.status,
			Foreach: s.foreach, NumTasks: s.n, At: now})
		r.obs.StepFinished(s.def.Name, s.status)
	}
	msg := ""
	if status != store.RunSucceeded {
		msg = r.failure
	}
	b.Runs = []store.RunChange{{RunID: r.run.ID, Status: status, Error: msg, At: now}}
	// What failed under the run is known before its end is committed: a
	// heartbeat that beats meanwhile (on PostgreSQL, waiting for the
	// row the commit holds) finds the run ended, which is no lost lease.
	// A lease lost before then also fences the commit.
	cause := context.Cause(r.ctx)
	err := r.e.com.commit(context.Background(), &b)
	if cause != nil && !errors.Is(cause, context.Canceled) {
		// The store or the lease failed under the run.
		err = errors.Join(cause, err)
	}
	r.removeTemp()
	return err
}

// foreachItems reads the array a foreach step fans out over.
func (r *runner) foreachItems(s *stepRun) ([]json.RawMessage, error) {
	fe := s.def.Foreach
	if fe.Artifact == "" {
		return fe.Items, nil
	}
	stepName, name := "", fe.Artifact
	if i := strings.IndexByte(fe.Artifact, '/'); i > 0 && r.byName[fe.Artifact[:i]] != nil {
		stepName, name = fe.Artifact[:i], fe.Artifact[i+1:]
	}
	var found []store.Artifact
	var from []string
	for _, up := range s.needs {
		if stepName != "" && up.def.Name != stepName {
			continue
		}
		if up.foreach {
			continue
		}
		a, err := r.e.st.Artifact(r.ctx, store.TaskKey{RunID: r.run.ID, Step: up.def.Name}, name)
		if errors.Is(err, store.ErrNotFound) {
			from = append(from, up.def.Name)
			continue
		}
		if err != nil {
			return nil, err
		}
		found = append(found, a)
	}
	switch {
	case len(found) == 0:
		return nil, fmt.Errorf("foreach source %q: no artifact of that name in upstream step(s) %s "+
			"(a foreach step's own outputs cannot be a source: join them first)", fe.Artifact, strings.Join(from, ", "))
	case len(found) > 1:
		return nil, fmt.Errorf("foreach source %q: steps %s and %s both have it; write foreach: STEP/%s",
			fe.Artifact, found[0].Step, found[1].Step, name)
	}
	data, err := r.e.blobs.Read(r.ctx, found[0].Digest)
	if err != nil {
		return nil, fmt.Errorf("foreach source %s/%s: %w", found[0].Step, name, err)
	}
	var items []json.RawMessage
	if err := json.Unmarshal(data, &items); err != nil {
		return nil, fmt.Errorf("foreach source %s/%s must hold a JSON array: %v", found[0].Step, name, err)
	}
	return items, nil
}

type nopObserver struct{}

func (nopObserver) RunStarted(store.Run, *flow.Flow)                                         {}
func (nopObserver) StepStarted(string, int, int)                                             {}
func (nopObserver) StepWaiting(string, string)                                               {}
func (nopObserver) TaskStarted(store.TaskKey, int)                                           {}
func (nopObserver) TaskFinished(store.TaskKey, int, store.TaskStatus, string, time.Duration) {}
func (nopObserver) StepFinished(string, store.TaskStatus)                                    {}
func (nopObserver) RunFinished(store.Run)                                                    {}
