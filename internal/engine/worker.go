package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/signal"
	"github.com/baton-ml/baton/internal/store"
)

// worker runs queued tasks (see Work).
type worker struct {
	e   *Engine
	log *slog.Logger
	// funcs are the Go steps this worker can run, by flow and step, and
	// runners their names in the queue.
	funcs   map[string]map[string]GoFunc
	runners []string

	fin *finisher

	mu     sync.Mutex
	views  map[int64]*runner // what running a run's tasks needs, by run
	active map[store.TaskKey]context.CancelCauseFunc
	// holding counts, per task, why this worker still holds its lease:
	// claimed and waiting for a slot, running, or its end not yet
	// committed. The lease of a task held for none of these is released.
	holding map[store.TaskKey]int
	// free is what the worker has not given to tasks it holds (needs),
	// of capacity.
	free     store.Capacity
	capacity store.Capacity
	needs    map[store.TaskKey]store.Need
	wg       sync.WaitGroup
}

func (w *worker) hold(k store.TaskKey) {
	w.mu.Lock()
	w.holding[k]++
	w.mu.Unlock()
}

func (w *worker) unhold(k store.TaskKey) {
	w.mu.Lock()
	if w.holding[k]--; w.holding[k] <= 0 {
		delete(w.holding, k)
		if n, ok := w.needs[k]; ok {
			w.free.Give(n)
			delete(w.needs, k)
		}
	}
	w.mu.Unlock()
}

// errLeaseLost stops a task whose lease was taken over.
var errLeaseLost = errors.New("the task's lease was lost (another worker may run it now)")

// errRunStopped stops a task whose run ended or was asked to cancel.
var errRunStopped = errors.New("its run was cancelled or ended")

// WorkOptions configure Work.
type WorkOptions struct {
	Log *slog.Logger
	// Funcs are the Go steps this process can run, by flow and step: it
	// claims their tasks besides shell tasks.
	Funcs map[string]map[string]GoFunc
	// Capacity is what the worker offers tasks (CPU in thousandths of a
	// core, memory in MiB) and its labels; nil: this machine's cores and
	// memory, no GPU, no labels. It never holds tasks that need more.
	Capacity *store.Capacity
}

// MachineCapacity is this machine's cores and memory.
func MachineCapacity() store.Capacity {
	c := store.Capacity{CPU: int64(runtime.NumCPU()) * 1000, Mem: 1 << 40}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				if kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64); err == nil {
					c.Mem = kb >> 10
				}
			}
		}
	}
	return c
}

// Work runs queued tasks until ctx ends: whenever it has free worker slots
// it claims that many tasks, runs them, and finishes each fenced by its
// lease. Any number of processes may work one store. When ctx ends, the
// tasks running finish (or, after DrainTasks, are handed back untried).
func (e *Engine) Work(ctx context.Context, opt WorkOptions) error {
	log := opt.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &worker{e: e, log: log, views: map[int64]*runner{}, active: map[store.TaskKey]context.CancelCauseFunc{},
		holding: map[store.TaskKey]int{}, funcs: opt.Funcs, needs: map[store.TaskKey]store.Need{}}
	if opt.Capacity != nil {
		w.free = *opt.Capacity
	} else {
		w.free = MachineCapacity()
	}
	w.capacity = w.free
	for flowName := range opt.Funcs {
		w.runners = append(w.runners, GoRunner(flowName))
	}
	e.mu.Lock()
	e.worker = w
	e.mu.Unlock()
	notes, err := e.st.Listen(ctx)
	if err != nil {
		return err
	}
	// Tasks run under a context that outlives ctx by the drain: running
	// tasks finish when the worker is asked to stop.
	taskCtx, stopTasks := context.WithCancelCause(context.WithoutCancel(ctx))
	defer stopTasks(nil)
	renewDone := make(chan struct{})
	go func() { defer close(renewDone); w.renew(taskCtx) }()
	fin := newFinisher(e.st, log, w.unhold)
	w.fin = fin
	poll := time.NewTicker(e.opt.QueuePoll)
	defer poll.Stop()
	// backlog holds claimed tasks waiting for a slot: when the queue is
	// deep, each claim takes a few tasks more than there are free slots,
	// so a slot freed finds its next task without a round trip.
	var backlog []store.Claim
	full := false
	for ctx.Err() == nil {
		var sl *slot
		select {
		case sl = <-e.slots:
		case <-ctx.Done():
			continue
		}
		slots := []*slot{sl}
	more:
		for {
			select {
			case extra := <-e.slots:
				slots = append(slots, extra)
			default:
				break more
			}
		}
		if len(backlog) < len(slots) {
			want := len(slots) - len(backlog)
			if full {
				want += 4 * e.opt.Workers
			}
			w.mu.Lock()
			free := w.free
			w.mu.Unlock()
			claims, err := e.st.ClaimTasks(ctx, e.owner, want, e.opt.TaskLeaseTTL, w.runners, &free)
			if err != nil && ctx.Err() == nil {
				log.Warn("claim tasks", "err", err)
			}
			full = len(claims) == want
			for _, c := range claims {
				w.hold(c.TaskKey) // until its end is committed
				w.mu.Lock()
				w.free.Take(c.Need) // until then too
				w.needs[c.TaskKey] = c.Need
				w.mu.Unlock()
			}
			backlog = append(backlog, claims...)
		}
		n := min(len(slots), len(backlog))
		for i := range n {
			w.start(taskCtx, slots[i], backlog[i])
		}
		backlog = backlog[n:]
		for _, sl := range slots[n:] {
			e.slots <- sl
		}
		if n > 0 {
			continue
		}
		select {
		case <-ctx.Done():
		case <-poll.C:
		case <-notes:
		}
	}
	// Claimed tasks that never started go back untried.
	for _, c := range backlog {
		if err := e.st.ReleaseTask(context.Background(), c, e.owner); err != nil {
			log.Warn("hand back task", "task", c.TaskKey, "err", err)
		}
		w.unhold(c.TaskKey)
	}
	// Stopping: let running tasks finish for a while, then hand back.
	done := make(chan struct{})
	go func() { w.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(e.opt.DrainTasks):
		stopTasks(errHandBack)
		<-done
	}
	fin.close()
	stopTasks(nil)
	<-renewDone
	return nil
}

// errHandBack stops a task so it can be handed back untried.
var errHandBack = errors.New("the worker is shutting down")

func (w *worker) start(ctx context.Context, sl *slot, c store.Claim) {
	tctx, cancel := context.WithCancelCause(ctx)
	w.mu.Lock()
	w.active[c.TaskKey] = cancel
	w.mu.Unlock()
	w.wg.Go(func() {
		released := false
		defer func() {
			w.mu.Lock()
			delete(w.active, c.TaskKey)
			w.mu.Unlock()
			cancel(nil)
			if !released {
				w.e.slots <- sl
			}
		}()
		w.run(tctx, sl, c, func() { released = true; w.e.slots <- sl })
	})
}

// run executes one claimed attempt and finishes it. A subflow's task gives
// its slot back (release) while it waits for its child run.
func (w *worker) run(ctx context.Context, sl *slot, c store.Claim, release func()) {
	start := time.Now()
	fin := store.Finish{Claim: c, Worker: w.e.owner, StartedAt: start}
	rv, s, err := w.view(context.WithoutCancel(ctx), c)
	if err == nil && s.def.Subflow != nil {
		release()
		sl = nil
	}
	var out outcome
	var published []store.Signal
	if err != nil {
		out = outcome{status: store.TaskFailed, err: err.Error()}
		if cause := context.Cause(ctx); cause != nil {
			out = outcome{status: store.TaskCancelled, err: "cancelled: " + cause.Error()}
		}
	} else {
		rt := *rv
		rt.ctx, rt.cancel = ctx, func(error) {}
		out, published = rt.attempt(sl, s, c.TaskKey, c.Attempt, c.Item)
	}
	if context.Cause(ctx) == errHandBack {
		if err := w.e.st.ReleaseTask(context.Background(), c, w.e.owner); err != nil {
			w.log.Warn("hand back task", "task", c.TaskKey, "err", err)
		}
		w.unhold(c.TaskKey)
		return
	}
	if context.Cause(ctx) == errLeaseLost {
		w.unhold(c.TaskKey)
		return // someone else has it now; nothing of ours may be written
	}
	fin.Status, fin.At, fin.ExitCode, fin.Error = out.status, time.Now(), out.exit, out.err
	fin.Stdout = store.Attempt{StdoutDigest: out.stdout.digest, StdoutSize: out.stdout.size,
		StderrDigest: out.stderr.digest, StderrSize: out.stderr.size}
	if out.status == store.TaskSucceeded {
		fin.Artifacts, fin.Signals = out.arts, published
	}
	if out.status == store.TaskFailed && s != nil && c.Attempt < c.MaxAttempts {
		fin.RetryAt = fin.At.Add(s.def.Retry.Delay(c.Attempt + 1))
	}
	w.fin.send(fin)
}

// finisher records finished attempts in groups: one transaction (and one
// WAL flush) for every attempt that ended while the last was committing.
type finisher struct {
	st   store.Store
	log  *slog.Logger
	ch   chan store.Finish
	done chan struct{}
	// recorded is told of each finish once it is committed (or given up).
	recorded func(store.TaskKey)
}

func newFinisher(st store.Store, log *slog.Logger, recorded func(store.TaskKey)) *finisher {
	f := &finisher{st: st, log: log, ch: make(chan store.Finish, 4096), done: make(chan struct{}), recorded: recorded}
	go f.loop()
	return f
}

func (f *finisher) send(fin store.Finish) { f.ch <- fin }

// close records what is queued and stops.
func (f *finisher) close() {
	close(f.ch)
	<-f.done
}

func (f *finisher) loop() {
	defer close(f.done)
	for first := range f.ch {
		group := []store.Finish{first}
	drain:
		for len(group) < 256 {
			select {
			case next, ok := <-f.ch:
				if !ok {
					break drain
				}
				group = append(group, next)
			default:
				break drain
			}
		}
		var errs []error
		err := retry(context.Background(), func() error {
			var err error
			errs, err = f.st.FinishTasks(context.Background(), group)
			return err
		})
		if err != nil {
			// The store stayed away: the leases expire and the tasks run
			// again elsewhere.
			f.log.Error("record finished tasks", "tasks", len(group), "err", err)
		}
		for i, e := range errs {
			if e != nil {
				f.log.Info("task finished after losing its lease; its result is dropped", "task", group[i].TaskKey)
			}
		}
		for _, g := range group {
			f.recorded(g.TaskKey)
		}
	}
}

// retry retries fn with backoff for a minute while the store is unreachable;
// a lost lease or other refusal is final.
func retry(ctx context.Context, fn func() error) error {
	backoff := 100 * time.Millisecond
	deadline := time.Now().Add(time.Minute)
	for {
		err := fn()
		if err == nil || errors.Is(err, store.ErrLeaseLost) || errors.Is(err, store.ErrNotFound) ||
			errors.Is(err, store.ErrConflict) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// renew keeps the leases of running tasks alive and stops the tasks whose
// lease was lost or whose run ended or was cancelled.
func (w *worker) renew(ctx context.Context) {
	t := time.NewTicker(w.e.opt.TaskLeaseTTL / 3)
	defer t.Stop()
	janitor := time.NewTicker(30 * time.Second)
	defer janitor.Stop()
	suspects := map[store.TaskKey]bool{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-janitor.C:
			w.forgetEnded(ctx)
			continue
		case <-t.C:
		}
		// Judge only the tasks held before asking: one claimed meanwhile
		// is not in the answer yet, and is not lost.
		w.mu.Lock()
		before := make(map[store.TaskKey]bool, len(w.holding))
		for k := range w.holding {
			before[k] = true
		}
		w.mu.Unlock()
		held, stop, err := w.e.st.RenewTaskLeases(ctx, w.e.owner, w.e.opt.TaskLeaseTTL)
		if err != nil {
			// Transient, we hope: if it lasts past the TTL the reaper hands
			// the tasks to others and our finishes are fenced off.
			w.log.Warn("renew task leases", "err", err)
			continue
		}
		keep := map[store.TaskKey]bool{}
		for _, k := range held {
			keep[k] = true
		}
		halt := map[store.TaskKey]bool{}
		for _, k := range stop {
			halt[k] = true
		}
		var orphans []store.TaskKey
		w.mu.Lock()
		for k, cancel := range w.active {
			switch {
			case halt[k]:
				cancel(errRunStopped)
			case before[k] && !keep[k]:
				cancel(errLeaseLost)
			}
		}
		// A lease we hold for no task we know of (a claim whose answer
		// was lost with the connection) would be renewed forever: let it
		// go, once it has been unknown for two rounds (a claim answered
		// just now is not known for a moment).
		unknown := map[store.TaskKey]bool{}
		for _, k := range held {
			if w.holding[k] == 0 {
				if suspects[k] {
					orphans = append(orphans, k)
				} else {
					unknown[k] = true
				}
			}
		}
		suspects = unknown
		w.mu.Unlock()
		if len(orphans) > 0 {
			if err := w.e.st.ExpireTaskLeases(ctx, w.e.owner, orphans); err != nil {
				w.log.Warn("let go of unknown task leases", "err", err)
			}
		}
	}
}

// GoRunner names, in the queue, the runner of a flow's Go steps.
func GoRunner(flowName string) string { return "go:" + flowName }

// stopRun stops this process's running tasks of run id at once.
func (w *worker) stopRun(id int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, cancel := range w.active {
		if k.RunID == id {
			cancel(errRunStopped)
		}
	}
}

// view returns what running tasks of c's run needs: its flow, folder,
// environment and contracts, loaded once per run and process.
func (w *worker) view(ctx context.Context, c store.Claim) (*runner, *stepRun, error) {
	w.mu.Lock()
	rv := w.views[c.RunID]
	w.mu.Unlock()
	if rv == nil {
		run, err := w.e.st.Run(ctx, c.RunID)
		if err != nil {
			return nil, nil, err
		}
		fl, v, err := Load(ctx, w.e.st, run)
		if err != nil {
			return nil, nil, err
		}
		contracts, err := signal.Load(ctx, w.e.st)
		if err != nil {
			return nil, nil, err
		}
		dir, err := w.e.codeDir(ctx, v, c.RunID)
		if err != nil {
			return nil, nil, err
		}
		rv = w.e.newRunner(run, fl, dir, w.funcs[fl.Name], nil, contracts)
		w.mu.Lock()
		if prev := w.views[c.RunID]; prev != nil {
			rv = prev
		} else {
			w.views[c.RunID] = rv
		}
		w.mu.Unlock()
	}
	s := rv.byName[c.Step]
	if s == nil {
		return rv, nil, fmt.Errorf("flow %s has no step %q", rv.fl.Name, c.Step)
	}
	if s.def.Run == "" && s.def.Subflow == nil && rv.funcs[s.def.Name] == nil {
		return rv, s, fmt.Errorf("step %s is a Go step this worker has no function for", c.Step)
	}
	if s.def.Wait != nil {
		s.sigOnce.Do(func() { s.sigErr = w.loadSignal(ctx, rv, s) })
		if s.sigErr != nil {
			return rv, s, s.sigErr
		}
	}
	return rv, s, nil
}

// loadSignal reads the signal a waiting step received (once per step and
// process: see view).
func (w *worker) loadSignal(ctx context.Context, rv *runner, s *stepRun) error {
	steps, err := w.e.st.Steps(ctx, rv.run.ID)
	if err != nil {
		return err
	}
	for _, st := range steps {
		if st.Name == s.def.Name && st.SignalID != "" {
			sg, err := w.e.st.Signal(ctx, st.SignalID)
			if err != nil {
				return err
			}
			s.signal = &sg
		}
	}
	return nil
}

// forgetEnded drops the views (and scratch folders) of runs that ended.
func (w *worker) forgetEnded(ctx context.Context) {
	w.mu.Lock()
	ids := make([]int64, 0, len(w.views))
	for id := range w.views {
		ids = append(ids, id)
	}
	w.mu.Unlock()
	for _, id := range ids {
		r, err := w.e.st.Run(ctx, id)
		if err != nil || !r.Status.Final() {
			continue
		}
		w.mu.Lock()
		rv := w.views[id]
		delete(w.views, id)
		w.mu.Unlock()
		if rv != nil {
			rv.removeTemp()
		} else {
			w.e.removeRunTemp(id)
		}
	}
}

// newRunner builds a run's runner: its steps in order with their needs and
// dependents, and the environment its tasks inherit.
func (e *Engine) newRunner(run store.Run, fl *flow.Flow, dir string, funcs map[string]GoFunc, obs Observer,
	contracts signal.Contracts) *runner {
	if obs == nil {
		obs = nopObserver{}
	}
	// Training-set steps run in process, as Go steps do.
	for i := range fl.Steps {
		st := &fl.Steps[i]
		if st.TrainingSet == nil || e.opt.TrainingSet == nil || funcs[st.Name] != nil {
			continue
		}
		if len(funcs) == 0 || funcs == nil {
			funcs = map[string]GoFunc{}
		} else {
			funcs = maps.Clone(funcs)
		}
		build := e.opt.TrainingSet
		funcs[st.Name] = func(ctx context.Context, t *Task) error { return build(ctx, t, dir, st) }
	}
	r := &runner{
		e: e, run: run, fl: fl, dir: dir, funcs: funcs, obs: obs,
		quit: make(chan struct{}), byName: map[string]*stepRun{}, events: make(chan event, 1024),
		origin: run.OriginRunID, tmp: e.runTemp(run.ID), scratch: &scratchDir{fd: -1}, contracts: contracts, dropping: &sync.WaitGroup{},
		shapeMu: &sync.Mutex{},
	}
	if run.ResumeFrom != "" {
		r.rerun = map[string]bool{run.ResumeFrom: true}
		for _, d := range fl.Downstream(run.ResumeFrom) {
			r.rerun[d] = true
		}
	}
	r.baseEnv = r.environment()
	r.params = sync.OnceValue(r.writeParams)
	scopes := fl.Scopes()
	for _, s := range fl.TopoOrder() {
		sr := &stepRun{def: s, status: store.TaskPending, needsLeft: len(s.Needs), foreach: s.Foreach != nil, scope: scopes[s.Name]}
		r.steps = append(r.steps, sr)
		r.byName[s.Name] = sr
	}
	for _, sr := range r.steps {
		for _, n := range sr.def.Needs {
			up := r.byName[n]
			sr.needs = append(sr.needs, up)
			up.dependents = append(up.dependents, sr)
			// In topological order, each need's is known.
			sr.mayskip = sr.mayskip || up.def.Switch != nil || up.mayskip
		}
	}
	r.wireLoops()
	return r
}
