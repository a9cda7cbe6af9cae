// Package engine executes runs: it walks a flow's DAG, fans foreach steps
// out into tasks, runs them (shell commands or in-process Go functions)
// under a worker limit, retries and times them out, stores their outputs as
// artifacts and records every state change durably, so a run killed at any
// moment can be resumed without redoing what completed.
package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/baton-ml/baton/internal/artifact"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/snapshot"
	"github.com/baton-ml/baton/internal/store"
)

// Options configure an Engine.
type Options struct {
	// Workers caps the tasks running at once across all runs; default the
	// number of CPUs.
	Workers int
	// TempDir holds task output folders and step input folders while a run
	// executes; required.
	TempDir string
	// LeaseTTL is how long a run's lease lasts without a heartbeat; the
	// engine renews it every third of that. Default 15s.
	LeaseTTL time.Duration
	// KillGrace is how long a timed-out or cancelled shell task gets
	// between SIGTERM and SIGKILL of its process group. Default 5s.
	KillGrace time.Duration
	// Env is added to every shell task's environment (e.g. BATON_HOME, so
	// a task can call baton on the same home).
	Env []string
	// Dispatch is how a run's shell tasks reach a process: Local (the
	// coordinating process runs them, the default) or Queue (they are
	// queued in the store and any process working it runs them: see Work).
	Dispatch Dispatch
	// TaskLeaseTTL is how long a worker's claim on a queued task lasts
	// without renewal: the bound on how soon a dead worker's tasks run
	// elsewhere. Default 30s.
	TaskLeaseTTL time.Duration
	// QueuePoll is how often a worker or coordinator looks at the queue
	// when no note woke it. Default 500ms.
	QueuePoll time.Duration
	// DrainTasks is how long a stopping worker lets its tasks run before
	// handing them back. Default 30s.
	DrainTasks time.Duration
	// Log receives warnings (a store briefly away); default discards.
	Log *slog.Logger
	// TrainingSet runs the steps that build a training set (the features'
	// batch path, which this package does not know); nil refuses them.
	TrainingSet TrainingSetFunc
	// CodeDir is where flow versions' code snapshots are extracted, once
	// per digest, for their tasks to run in; default TempDir/code.
	CodeDir string
}

// TrainingSetFunc builds the training set of step s (its TrainingSet set)
// as a task of a run whose flow lives in dir.
type TrainingSetFunc func(ctx context.Context, t *Task, dir string, s *flow.Step) error

// Dispatch says how tasks reach processes.
type Dispatch int

// Dispatch modes.
const (
	Local Dispatch = iota
	Queue
)

// Engine runs runs. It is safe for concurrent use; all runs share one pool
// of worker slots and one group committer.
type Engine struct {
	st    store.Store
	blobs *artifact.Store
	opt   Options
	// code extracts the code snapshots tasks run in (see codeDir).
	code  *snapshot.Cache
	log   *slog.Logger
	owner string
	slots chan *slot
	// slotDir holds the slots' folders and the runs' scratch folders;
	// slotFd is it open, what they are made and removed from.
	slotDir string
	slotFd  int
	com     *committer

	mu   sync.Mutex
	runs map[int64]*runner // runs executing here
	// drainCh closes when the engine starts handing runs back.
	drainCh  chan struct{}
	draining bool
	// wake closes (and is replaced) when signals may have arrived.
	wake chan struct{}
	// worker is this process's queue worker, once Work runs.
	worker *worker

	// live are the log files of the shell tasks running here (LiveLog).
	liveMu sync.Mutex
	live   map[store.TaskKey]liveLog
}

// New returns an engine over st and blobs.
func New(st store.Store, blobs *artifact.Store, opt Options) (*Engine, error) {
	if opt.TempDir == "" {
		return nil, errors.New("engine: TempDir is required")
	}
	if opt.Workers <= 0 {
		opt.Workers = runtime.NumCPU()
	}
	if opt.LeaseTTL <= 0 {
		opt.LeaseTTL = 15 * time.Second
	}
	if opt.KillGrace <= 0 {
		opt.KillGrace = 5 * time.Second
	}
	if opt.TaskLeaseTTL <= 0 {
		opt.TaskLeaseTTL = 30 * time.Second
	}
	if opt.QueuePoll <= 0 {
		opt.QueuePoll = 500 * time.Millisecond
	}
	if opt.DrainTasks <= 0 {
		opt.DrainTasks = 30 * time.Second
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.CodeDir == "" {
		opt.CodeDir = filepath.Join(opt.TempDir, "code")
	}
	owner, err := newOwner()
	if err != nil {
		return nil, err
	}
	slots, slotDir, slotFd, err := newSlots(opt.TempDir, owner, opt.Workers)
	if err != nil {
		return nil, err
	}
	return &Engine{
		st: st, blobs: blobs, opt: opt, owner: owner, log: opt.Log, code: snapshot.NewCache(opt.CodeDir, blobs),
		slots: slots, slotDir: slotDir, slotFd: slotFd,
		com:  newCommitter(st, owner),
		runs: map[int64]*runner{}, drainCh: make(chan struct{}), wake: make(chan struct{}),
	}, nil
}

// queued reports whether runs dispatch through the queue (Queue mode):
// shell tasks to any worker, Go tasks to the workers with their functions.
func (e *Engine) queued(*flow.Flow) bool { return e.opt.Dispatch == Queue }

// ErrHandedBack is returned by Execute for a run the engine gave back
// unfinished because it is draining (Drain): completed work is recorded
// and the run's lease released, for a later process to take over.
var ErrHandedBack = errors.New("run handed back: the engine is shutting down")

// Drain stops the engine taking new work: runs launch no new tasks, and
// each run returns ErrHandedBack once its running tasks have finished.
func (e *Engine) Drain() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.draining {
		e.draining = true
		close(e.drainCh)
	}
}

// Cancel cancels run id if it executes here, and reports whether it did.
func (e *Engine) Cancel(id int64) bool {
	e.mu.Lock()
	r := e.runs[id]
	e.mu.Unlock()
	if r != nil {
		r.cancel(context.Canceled)
	}
	return r != nil
}

// stopLocal stops this process's queued tasks of run id at once (workers
// elsewhere learn it when they renew their leases).
func (e *Engine) stopLocal(id int64) {
	e.mu.Lock()
	w := e.worker
	e.mu.Unlock()
	if w != nil {
		w.stopRun(id)
	}
}

// Running lists the ids of the runs executing here.
func (e *Engine) Running() []int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	ids := make([]int64, 0, len(e.runs))
	for id := range e.runs {
		ids = append(ids, id)
	}
	return ids
}

// NotifySignals wakes the steps waiting for signals, so they look now
// rather than at their next poll.
func (e *Engine) NotifySignals() {
	e.mu.Lock()
	close(e.wake)
	e.wake = make(chan struct{})
	e.mu.Unlock()
}

func (e *Engine) wakeup() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.wake
}

func (e *Engine) register(r *runner) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.draining {
		return false
	}
	e.runs[r.run.ID] = r
	return true
}

func (e *Engine) unregister(id int64) {
	e.mu.Lock()
	delete(e.runs, id)
	e.mu.Unlock()
}

func (e *Engine) release(id int64) error {
	if err := e.st.ReleaseRun(context.Background(), id, e.owner); err != nil {
		return err
	}
	return ErrHandedBack
}

// Close stops the engine's committer and removes its scratch folders. Runs
// must have returned first.
func (e *Engine) Close() {
	e.com.close()
	// The slots of tasks still running (there should be none) are left
	// open: their descriptors are in use.
drain:
	for {
		select {
		case s := <-e.slots:
			s.close()
		default:
			break drain
		}
	}
	unix.Close(e.slotFd)
	os.RemoveAll(e.slotDir)
}

// Owner is the lease holder name of this engine: host:pid:nonce.
func (e *Engine) Owner() string { return e.owner }

func newOwner() (string, error) {
	host, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("engine: hostname: %w", err)
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("engine: nonce: %w", err)
	}
	return fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b[:])), nil
}

// ExecOptions are per-run settings.
type ExecOptions struct {
	// Funcs holds the in-process functions of Go SDK steps, by step name.
	Funcs map[string]GoFunc
	// Observer receives progress events; may be nil.
	Observer Observer
	// Acquired says the caller already holds the run for this engine
	// (store.AcquireRuns with Owner()): Execute skips acquiring it.
	Acquired bool
	// Adopt takes over a running run whose coordinator is gone (its lease
	// expired, or it was handed back) and carries it on in place from
	// what the store holds. Queue dispatch only.
	Adopt bool
}

// LeaseTTL is how long the engine's run leases last without renewal.
func (e *Engine) LeaseTTL() time.Duration { return e.opt.LeaseTTL }

// TaskLeaseTTL is how long a queued task's lease lasts without renewal.
func (e *Engine) TaskLeaseTTL() time.Duration { return e.opt.TaskLeaseTTL }

// Fail ends a run this engine holds but could not start, as failed.
func (e *Engine) Fail(ctx context.Context, id int64, reason string) error {
	return e.st.Apply(ctx, e.owner, &store.Batch{Runs: []store.RunChange{{RunID: id, Status: store.RunFailed,
		Error: reason, At: time.Now()}}})
}

// Observer receives a run's progress. Calls come from one goroutine, in
// order, so implementations need no locking of their own.
type Observer interface {
	RunStarted(r store.Run, f *flow.Flow)
	StepStarted(step string, tasks, reused int)
	StepWaiting(step, signal string)
	TaskStarted(k store.TaskKey, attempt int)
	TaskFinished(k store.TaskKey, attempt int, status store.TaskStatus, err string, took time.Duration)
	StepFinished(step string, status store.TaskStatus)
	RunFinished(r store.Run)
}

// Counter is an Observer that also takes a step's task counts. A run
// dispatched through the queue reports them (read from the store at each
// look) instead of TaskFinished, since its tasks end in workers that may be
// other processes.
type Counter interface {
	StepCounts(step string, done, total int)
}

// Noter is an Observer that also hears notes on a step, such as why its
// tasks wait.
type Noter interface {
	StepNote(step, note string)
}

// Load returns the flow version a run executes.
func Load(ctx context.Context, st store.FlowReader, r store.Run) (*flow.Flow, store.FlowVersion, error) {
	v, err := st.FlowVersion(ctx, r.Flow, r.FlowVersion)
	if err != nil {
		return nil, v, err
	}
	f, err := flow.Stored(r.Flow, r.FlowVersion, v.Spec)
	return f, v, err
}
