// Package orchestrate is baton's orchestration core: it evaluates triggers
// (signals, joins, on_finish, cron with catch-up), schedules the runs they
// create under each flow's concurrency strategy, starts them on an Engine,
// and, on a shared store, leads (one process at a time) and takes over the
// runs of processes that are gone.
//
// It knows nothing of HTTP: `baton server` wires an Orchestrator next to
// its API, and a test drives one with a store and an engine alone. It is a
// startstop.Service: Start loads the definitions and starts the loops; Stop
// stops them and drains (running runs finish, or are handed back).
package orchestrate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-ml/baton/internal/signal"
	"github.com/baton-ml/baton/internal/startstop"
	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/testsignal"
)

// Store is what the orchestrator reads and writes: signals and their
// contracts, triggers' state (firings, joins, cursors, blocks), the flows
// it compiles and the runs it schedules, the queue's reaper and the notes
// that wake it.
type Store interface {
	store.SignalStore
	store.TriggerStore
	Flows(ctx context.Context) ([]store.FlowSummary, error)
	FlowVersion(ctx context.Context, flow string, version int) (store.FlowVersion, error)
	Run(ctx context.Context, id int64) (store.Run, error)
	Runs(ctx context.Context, f store.RunFilter) ([]store.Run, error)
	AcquireRuns(ctx context.Context, ids []int64, owner string, ttl time.Duration) ([]store.Run, error)
	RequestCancel(ctx context.Context, id int64, reason string) error
	ReapTasks(ctx context.Context) (int, error)
	Listen(ctx context.Context) (<-chan string, error)
}

// Engine executes the runs the orchestrator starts. *engine.Engine is one,
// through package onengine; the interface keeps the engine's blob store
// (and the HTTP clients it links) out of this package.
type Engine interface {
	// Execute carries run id to its end (or until the engine drains: then
	// it returns an error matching ErrHandedBack). Without Exec.Adopt the
	// run was acquired for Owner() with AcquireRuns.
	Execute(ctx context.Context, id int64, x Exec) (store.Run, error)
	// Resume makes a new run of id's flow that reuses what id completed.
	Resume(ctx context.Context, id int64) (store.Run, error)
	// Fail ends a run this engine holds but could not start.
	Fail(ctx context.Context, id int64, reason string) error
	// Owner names this engine as a lease holder (host:pid:nonce).
	Owner() string
	LeaseTTL() time.Duration
	TaskLeaseTTL() time.Duration
	// OwnerGone reports whether owner is a process on this host that has
	// ended.
	OwnerGone(owner string) bool
	// NotifySignals wakes the steps waiting for a signal.
	NotifySignals()
	// Drain makes every run launch nothing new and hand itself back once
	// its running tasks end.
	Drain()
	Running() []int64
	Cancel(id int64) bool
	// Work runs tasks from the store's queue until ctx ends.
	Work(ctx context.Context) error
}

// Exec says how to execute a run.
type Exec struct {
	// Adopt takes over in place a running run whose coordinator is gone
	// (queued tasks only).
	Adopt bool
	// RunStarted and TaskFinished, when set, hear of the run's start and
	// of each task attempt's end.
	RunStarted   func(store.Run)
	TaskFinished func(store.TaskStatus)
}

// ErrHandedBack is what Engine.Execute returns for a run it gave back
// unfinished because it drains.
var ErrHandedBack = errors.New("run handed back")

// ErrNotLoaded is returned by Publish before the definitions are loaded.
var ErrNotLoaded = errors.New("definitions not loaded")

// Elector is a campaign to lead among the processes of one store.
type Elector interface {
	// Campaign blocks until this process leads (or ctx ends) and returns
	// a channel closed when it stops leading.
	Campaign(ctx context.Context) (<-chan struct{}, error)
}

// Metrics hear what the orchestrator counts. The server turns them into
// Prometheus series; this package links no metrics client.
type Metrics interface {
	// Fired counts a trigger firing that created a run, by kind (signal,
	// join, on_finish, cron).
	Fired(kind string)
	// CronLag is how late a cron tick fired.
	CronLag(d time.Duration)
	// RunStarted counts a run started here, by trigger; latency is from
	// what triggered it (ok false when unknown).
	RunStarted(trigger string, latency time.Duration, ok bool)
	// RunFinished counts a run that ended (in any process).
	RunFinished(status store.RunStatus)
	// TaskAttempt counts a task attempt run here, by outcome.
	TaskAttempt(status store.TaskStatus)
	// Running moves the number of runs executing here by delta.
	Running(delta int)
	// Pending is the number of runs waiting to be started.
	Pending(n int)
}

// Options configure an Orchestrator.
type Options struct {
	// Poll is how often the loops look for work nothing announced;
	// default 250ms.
	Poll time.Duration
	// Reload is how often applied flows and contracts are looked for;
	// default 1s.
	Reload time.Duration
	// Drain bounds how long Stop waits for running runs before it
	// cancels them; default 30s.
	Drain time.Duration
	// Queue says tasks go through the store's queue (engine.Queue): the
	// leader reaps dead workers' tasks and takes runs over in place, and
	// this process works the queue. Otherwise the leader takes over a
	// dead process's runs by resuming them when it starts to lead.
	Queue bool
	// Elector decides who leads; default: this process leads alone.
	Elector Elector
	Logger  *slog.Logger
	// Now is the cron clock (tests); default time.Now.
	Now func() time.Time
	// Metrics hear the counts; default: nobody.
	Metrics Metrics
}

// Orchestrator evaluates triggers and schedules and starts runs. Make one
// with New; it runs between Start and Stop, once.
type Orchestrator struct {
	st  Store
	eng Engine
	opt Options
	log *slog.Logger
	m   Metrics

	defs     atomic.Pointer[defs]
	reloadMu sync.Mutex

	wakeSignals chan struct{}
	wakeFinish  chan struct{}
	wakeSched   chan struct{}
	wakeReload  chan struct{}
	wakeCron    chan struct{}
	wakeAdopt   chan struct{}

	mu       sync.Mutex
	starting map[int64]string    // runs handed to the engine (by flow), not yet returned
	causes   map[int64]time.Time // when what triggered a run happened
	runs     sync.WaitGroup      // the runs handed to the engine

	// upSince is when this process started to lead: cron ticks before it
	// were missed.
	upSince  time.Time
	leading  atomic.Bool
	stopping atomic.Bool

	// services are the loops Start started, for Stop.
	started  bool
	services []startstop.Service
	worker   *startstop.Loop

	testSignals testSignals
}

// testSignals announce to tests what happened (testsignal: inert unless a
// test initialises them).
type testSignals struct {
	// scheduled carries the pending runs each scheduling pass looked at
	// (sent when the pass is over).
	scheduled testsignal.Signal[[]store.Run]
}

// The defaults of Options, which the server's options share.
const (
	DefaultPoll   = 250 * time.Millisecond
	DefaultReload = time.Second
	DefaultDrain  = 30 * time.Second
)

// New prepares an orchestrator over a store and an engine.
func New(st Store, eng Engine, opt Options) *Orchestrator {
	if opt.Poll <= 0 {
		opt.Poll = DefaultPoll
	}
	if opt.Reload <= 0 {
		opt.Reload = DefaultReload
	}
	if opt.Drain <= 0 {
		opt.Drain = DefaultDrain
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Elector == nil {
		opt.Elector = solo{}
	}
	if opt.Metrics == nil {
		opt.Metrics = noMetrics{}
	}
	return &Orchestrator{st: st, eng: eng, opt: opt, log: opt.Logger, m: opt.Metrics,
		wakeSignals: make(chan struct{}, 1), wakeFinish: make(chan struct{}, 1), wakeSched: make(chan struct{}, 1),
		wakeReload: make(chan struct{}, 1), wakeCron: make(chan struct{}, 1), wakeAdopt: make(chan struct{}, 1),
		starting: map[int64]string{}, causes: map[int64]time.Time{}}
}

var _ startstop.Service = (*Orchestrator)(nil)

// ErrStarted is returned by a second Start: an orchestrator runs once (its
// engine drains when it stops).
var ErrStarted = errors.New("orchestrator already started")

// Start loads the definitions and starts the loops: reload, the store's
// notes, the campaign to lead (and, while leading, the trigger, cron,
// scheduling and take-over loops), and on a queue the worker. The loops
// end with Stop (or ctx).
func (o *Orchestrator) Start(ctx context.Context) error {
	o.mu.Lock()
	if o.started {
		o.mu.Unlock()
		return ErrStarted
	}
	o.started = true
	o.mu.Unlock()
	if err := o.Reload(ctx); err != nil {
		return fmt.Errorf("load flows: %w", err)
	}
	loops := []startstop.Service{
		startstop.Func(o.reloadLoop),
		startstop.Func(o.listen),
		startstop.Func(o.lead),
	}
	if o.opt.Queue {
		// Tasks run under a context of their own inside Work: they finish
		// when it is asked to stop (see Stop).
		o.worker = startstop.Func(func(ctx context.Context) error {
			if err := o.eng.Work(ctx); err != nil {
				o.log.Error("worker", "err", err)
			}
			return nil
		})
	}
	if o.worker != nil {
		loops = append(loops, o.worker)
	}
	if err := startstop.StartAll(ctx, loops...); err != nil {
		return err
	}
	o.mu.Lock()
	o.services = loops
	o.mu.Unlock()
	return nil
}

// Stop stops taking work and drains: the loops end, the engine launches
// nothing new, the queue worker lets its running tasks finish, and Stop
// waits up to Options.Drain for the runs started here, then cancels what
// still runs. Unfinished runs are handed back for a later process.
func (o *Orchestrator) Stop() {
	o.mu.Lock()
	services, worker := o.services, o.worker
	o.services = nil
	o.mu.Unlock()
	if services == nil {
		return
	}
	o.stopping.Store(true)
	// The loops first (nothing new is fired or scheduled), then the
	// engine drains, and only then does the worker stop claiming: a task
	// claimed meanwhile still runs, as a drained run's tasks do.
	loops := services
	if worker != nil {
		loops = services[:len(services)-1]
	}
	startstop.StopAll(loops...)
	o.eng.Drain()
	if worker != nil {
		worker.Stop()
	}
	done := make(chan struct{})
	go func() { o.runs.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(o.opt.Drain):
		o.log.Warn("drain timed out: cancelling what still runs")
		for _, id := range o.eng.Running() {
			o.eng.Cancel(id)
		}
		<-done
	}
}

// Leading reports whether this process leads (its trigger, cron and
// scheduling loops run).
func (o *Orchestrator) Leading() bool { return o.leading.Load() }

// WakeSignals makes the signal loop look now (a signal was published).
func (o *Orchestrator) WakeSignals() { wake(o.wakeSignals) }

// WakeSchedule makes the scheduler look now (a run was created or a flow
// unblocked).
func (o *Orchestrator) WakeSchedule() { wake(o.wakeSched) }

// WakeReload makes the reload loop look for applied definitions now.
func (o *Orchestrator) WakeReload() { wake(o.wakeReload) }

// Contracts are the signal contracts loaded last (nil before the first
// load).
func (o *Orchestrator) Contracts() signal.Contracts {
	if d := o.defs.Load(); d != nil {
		return d.contracts
	}
	return nil
}

// CatalogVersion is the store's catalog version of the definitions loaded
// last, -1 before the first load.
func (o *Orchestrator) CatalogVersion() int64 {
	if d := o.defs.Load(); d != nil {
		return d.version
	}
	return -1
}

// Publish publishes a signal under the loaded contracts (see
// signal.Publish) and, when it is new, wakes the signal loop.
func (o *Orchestrator) Publish(ctx context.Context, name, id string, params map[string]json.RawMessage,
	src store.SignalSource) (store.Signal, bool, error) {
	d := o.defs.Load()
	if d == nil {
		return store.Signal{}, false, ErrNotLoaded
	}
	sg, created, err := signal.Publish(ctx, o.st, d.contracts, name, id, params, src)
	if err != nil {
		return sg, created, err
	}
	if created {
		o.WakeSignals()
	}
	return sg, created, nil
}

func wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// listen turns notes from other processes into wake-ups of the loops.
func (o *Orchestrator) listen(ctx context.Context) error {
	notes, err := o.st.Listen(ctx)
	if err != nil {
		o.log.Warn("listen for notes: polling only", "err", err)
		return nil
	}
	for n := range notes {
		switch n {
		case store.NoteSignals:
			wake(o.wakeSignals)
		case store.NoteRuns:
			wake(o.wakeSched)
			wake(o.wakeFinish)
			wake(o.wakeAdopt)
		}
	}
	return nil
}

// lead campaigns to lead and, while it does, runs the loops that must run
// once per store: triggers, cron, scheduling, reaping and take-overs.
func (o *Orchestrator) lead(ctx context.Context) error {
	for ctx.Err() == nil {
		lost, err := o.opt.Elector.Campaign(ctx)
		if err != nil {
			return nil
		}
		o.log.Info("leading: triggers, cron and scheduling run here")
		o.leading.Store(true)
		lctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-lost:
				o.log.Warn("lost the lead")
			case <-lctx.Done():
			}
			cancel()
		}()
		o.upSince = o.opt.Now()
		if !o.opt.Queue {
			if err := o.adopt(lctx); err != nil {
				o.log.Error("take over unfinished runs", "err", err)
			}
		}
		var lw sync.WaitGroup
		loops := []func(context.Context){o.signalLoop, o.finishLoop, o.cronLoop, o.schedLoop}
		if o.opt.Queue {
			loops = append(loops, o.reapLoop, o.adoptLoop)
		}
		for _, loop := range loops {
			lw.Go(func() { loop(lctx) })
		}
		lw.Wait()
		o.leading.Store(false)
		cancel()
	}
	return nil
}

// reloadLoop picks up flows and contracts applied while it runs.
func (o *Orchestrator) reloadLoop(ctx context.Context) error {
	t := time.NewTicker(o.opt.Reload)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-o.wakeReload:
		}
		if err := o.Reload(ctx); err != nil && ctx.Err() == nil {
			o.log.Error("reload flows", "err", err)
		}
	}
}

// Reload loads the definitions if anything was applied since the last
// load, and wakes the loops that use them.
func (o *Orchestrator) Reload(ctx context.Context) error {
	o.reloadMu.Lock()
	defer o.reloadMu.Unlock()
	version, err := o.st.CatalogVersion(ctx)
	if err != nil {
		return err
	}
	if cur := o.defs.Load(); cur != nil && cur.version == version {
		return nil
	}
	d, err := loadDefs(ctx, o.st, version)
	if err != nil {
		return err
	}
	for _, p := range d.problems {
		o.log.Warn("trigger skipped", "problem", p)
	}
	o.defs.Store(d)
	o.log.Info("flows loaded", "flows", len(d.flows), "contracts", len(d.contracts), "cron", len(d.crons))
	wake(o.wakeSignals)
	wake(o.wakeFinish)
	wake(o.wakeSched)
	wake(o.wakeCron)
	return nil
}

// current returns definitions at least as new as what the store holds now.
func (o *Orchestrator) current(ctx context.Context) (*defs, error) {
	if err := o.Reload(ctx); err != nil {
		return nil, err
	}
	return o.defs.Load(), nil
}

// every runs fn whenever woken, and every poll interval.
func (o *Orchestrator) every(ctx context.Context, ch chan struct{}, fn func(context.Context) error, what string) {
	t := time.NewTicker(o.opt.Poll)
	defer t.Stop()
	for {
		if err := fn(ctx); err != nil && ctx.Err() == nil {
			o.log.Error(what, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-ch:
		}
	}
}

type noMetrics struct{}

func (noMetrics) Fired(string)                           {}
func (noMetrics) CronLag(time.Duration)                  {}
func (noMetrics) RunStarted(string, time.Duration, bool) {}
func (noMetrics) RunFinished(store.RunStatus)            {}
func (noMetrics) TaskAttempt(store.TaskStatus)           {}
func (noMetrics) Running(int)                            {}
func (noMetrics) Pending(int)                            {}

// Idle reports whether the orchestrator has nothing left to do: every
// signal and every ended run evaluated, and no run pending or running. A
// driver that moves a simulated clock (baton demo) waits for it before
// the next step, so that what happens next does not race what is still
// under way. When not idle it wakes the loops that have work.
func (o *Orchestrator) Idle(ctx context.Context) (bool, error) {
	cur, err := o.st.Cursor(ctx, SignalsCursor)
	if err != nil {
		return false, err
	}
	sigs, err := o.st.Signals(ctx, store.SignalFilter{AfterSeq: cur, Limit: 1})
	if err != nil {
		return false, err
	}
	if len(sigs) > 0 {
		o.WakeSignals()
		return false, nil
	}
	if cur, err = o.st.Cursor(ctx, finishCursor); err != nil {
		return false, err
	}
	evs, err := o.st.RunEvents(ctx, cur, 1)
	if err != nil {
		return false, err
	}
	if len(evs) > 0 {
		wake(o.wakeFinish)
		return false, nil
	}
	for _, status := range []store.RunStatus{store.RunPending, store.RunRunning} {
		rs, err := o.st.Runs(ctx, store.RunFilter{Status: status, Limit: 1})
		if err != nil {
			return false, err
		}
		if len(rs) > 0 {
			if status == store.RunPending {
				o.WakeSchedule()
			}
			return false, nil
		}
	}
	return true, nil
}
