// Package store defines baton's durable state: flows and their versions,
// runs, steps, tasks, attempts and artifact records. One interface, several
// drivers (SQLite embedded, PostgreSQL at scale), one conformance suite
// (package storetest) that every driver passes.
package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/baton-ml/baton/internal/fault"
)

// ErrNotFound is returned (wrapped) when a looked-up record does not exist.
var ErrNotFound = fault.New(fault.NotFound, "not found")

// ErrLeaseLost is returned when a batch names a run whose lease the writer
// no longer holds: another process took the run over, or it ended.
var ErrLeaseLost = fault.New(fault.Conflict, "run lease lost")

// ErrConflict is returned when a state change is not legal from the current
// state, e.g. acquiring a run another live process holds.
var ErrConflict = fault.New(fault.Conflict, "conflict")

// RunStatus is the state of a run.
type RunStatus string

// Run statuses. A run moves pending -> running -> one of the final three.
const (
	RunPending   RunStatus = "pending"
	RunRunning   RunStatus = "running"
	RunSucceeded RunStatus = "succeeded"
	RunFailed    RunStatus = "failed"
	RunCancelled RunStatus = "cancelled"
)

// Final reports whether no further transition can happen.
func (s RunStatus) Final() bool {
	return s == RunSucceeded || s == RunFailed || s == RunCancelled
}

// TaskStatus is the state of a step or a task.
type TaskStatus string

// Task (and step) statuses.
const (
	TaskPending   TaskStatus = "pending"
	TaskRunning   TaskStatus = "running"
	TaskSucceeded TaskStatus = "succeeded"
	TaskFailed    TaskStatus = "failed"
	TaskCancelled TaskStatus = "cancelled"
	TaskSkipped   TaskStatus = "skipped"
	// TaskWaiting is a step held until a signal arrives (steps only).
	TaskWaiting TaskStatus = "waiting"
)

// Final reports whether no further transition can happen.
func (s TaskStatus) Final() bool {
	return s == TaskSucceeded || s == TaskFailed || s == TaskCancelled || s == TaskSkipped
}

// FlowVersion is one registered version of a flow. Versions count from 1
// per flow; equal definitions (same Digest) share a version.
type FlowVersion struct {
	Flow    string `json:"flow"`
	Version int    `json:"version"`
	Digest  string `json:"digest"`
	// Spec is the canonical JSON of the parsed flow.
	Spec json.RawMessage `json:"spec"`
	// Source is the flow file as written; empty for SDK flows.
	Source string `json:"-"`
	// Path is the file the version was applied from, and Dir its folder:
	// where its shell steps run when the version has no code snapshot.
	Path string `json:"path,omitempty"`
	Dir  string `json:"dir,omitempty"`
	// Code is the artifact digest of the version's code snapshot (a
	// deterministic tar of Dir, see internal/snapshot) and CodeSize the
	// tar's size; its shell steps run in the snapshot, extracted. Empty
	// for a Go SDK flow and for versions registered before snapshots.
	Code      string    `json:"code,omitempty"`
	CodeSize  int64     `json:"code_size,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// FlowSummary is a flow with its newest version, for listings.
type FlowSummary struct {
	Name          string    `json:"name"`
	LatestVersion int       `json:"latest_version"`
	Versions      int       `json:"versions"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// Trigger kinds recorded on runs.
const (
	TriggerManual   = "manual"
	TriggerResume   = "resume"
	TriggerSignal   = "signal"
	TriggerJoin     = "join"
	TriggerFinish   = "on_finish"
	TriggerCron     = "cron"
	TriggerBackfill = "backfill"
	TriggerAPI      = "api"
	// TriggerSubflow: a subflow step's task started the run; the detail
	// is that task's id (after its own parents', joined by " > ").
	TriggerSubflow = "subflow"
)

// Run is one execution of a flow version.
type Run struct {
	ID          int64                      `json:"id"`
	Flow        string                     `json:"flow"`
	FlowVersion int                        `json:"flow_version"`
	Status      RunStatus                  `json:"status"`
	Params      map[string]json.RawMessage `json:"params"`
	Tags        []string                   `json:"tags"`
	// Trigger says what started the run: "manual", "resume", and later
	// signal, cron and on_finish triggers.
	Trigger       string `json:"trigger"`
	TriggerDetail string `json:"trigger_detail,omitempty"`
	// OriginRunID is the run a resumed run reuses tasks from.
	OriginRunID int64  `json:"origin_run_id,omitempty"`
	ResumeFrom  string `json:"resume_from,omitempty"`
	Error       string `json:"error,omitempty"`
	// Owner is the process holding the run's lease while it runs, and
	// LeaseExpires when that lease lapses unless renewed.
	Owner string `json:"owner,omitempty"`
	// CancelRequested asks the owner to cancel the run.
	CancelRequested bool      `json:"cancel_requested,omitempty"`
	LeaseExpires    time.Time `json:"lease_expires_at,omitzero"`
	CreatedAt       time.Time `json:"created_at"`
	StartedAt       time.Time `json:"started_at,omitzero"`
	FinishedAt      time.Time `json:"finished_at,omitzero"`
}

// NewRun is what CreateRun needs.
type NewRun struct {
	Flow          string
	FlowVersion   int
	Params        map[string]json.RawMessage
	Tags          []string
	Trigger       string
	TriggerDetail string
	OriginRunID   int64
	ResumeFrom    string
	// Owner, if set, claims the run for that engine at creation (for a
	// minute, until it acquires it): a server never picks it up. Runs for
	// the server to execute have none.
	Owner string
	// FailWith, if set, creates the run already failed with this error
	// (a trigger fired but its params could not be made).
	FailWith string
}

// RunFilter narrows Runs. Zero fields match everything.
type RunFilter struct {
	Flow   string
	Status RunStatus
	Tag    string
	// Limit caps the result (newest first); 0 means 100.
	Limit int
	// BeforeID keeps runs with a smaller id: the next page of a list,
	// found by the index whatever the page's depth.
	BeforeID int64
	// Oldest lists oldest first instead.
	Oldest bool
	// Unclaimed keeps runs no engine has claimed or holds (with Status
	// pending: the runs a server should start).
	Unclaimed bool
}

// Step is a step of a run.
type Step struct {
	RunID    int64      `json:"-"`
	Name     string     `json:"name"`
	Status   TaskStatus `json:"status"`
	Foreach  bool       `json:"foreach"`
	NumTasks int        `json:"num_tasks"`
	// Shape places the tasks of a step in (nested) foreach levels; nil
	// for a step outside any foreach, and on rows stored before shapes
	// (TaskShape reads those).
	Shape Shape `json:"shape,omitempty"`
	// SignalID is the signal a waiting step received.
	SignalID   string    `json:"signal_id,omitempty"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
}

// TaskShape is the step's shape: the stored one, or for a foreach step
// stored before shapes were, one level of NumTasks.
func (s Step) TaskShape() Shape {
	if s.Shape == nil && s.Foreach {
		return Shape{{s.NumTasks}}
	}
	return s.Shape
}

// TaskKey names a task: run, step and index (0 for a step without foreach).
type TaskKey struct {
	RunID int64
	Step  string
	Index int
}

// String returns RUN/STEP/INDEX, the form BATON_TASK_ID carries.
func (k TaskKey) String() string { return fmt.Sprintf("%d/%s/%d", k.RunID, k.Step, k.Index) }

// Task is one unit of work of a step.
type Task struct {
	TaskKey
	Status   TaskStatus `json:"status"`
	Attempts int        `json:"attempts"`
	// ReusedFrom is the task of an earlier run whose result this task
	// reuses (resume); zero when it ran here.
	ReusedFrom TaskKey   `json:"-"`
	ReadyAt    time.Time `json:"ready_at,omitzero"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	ExitCode   *int      `json:"exit_code,omitempty"`
	Error      string    `json:"error,omitempty"`
}

// Reused reports whether the task's result came from an earlier run.
func (t Task) Reused() bool { return t.ReusedFrom.RunID != 0 }

// Attempt is one try of a task, with where its output went.
type Attempt struct {
	TaskKey
	Attempt      int        `json:"attempt"`
	Status       TaskStatus `json:"status"`
	StartedAt    time.Time  `json:"started_at,omitzero"`
	FinishedAt   time.Time  `json:"finished_at,omitzero"`
	ExitCode     *int       `json:"exit_code,omitempty"`
	Error        string     `json:"error,omitempty"`
	StdoutDigest string     `json:"stdout_digest,omitempty"`
	StdoutSize   int64      `json:"stdout_size"`
	StderrDigest string     `json:"stderr_digest,omitempty"`
	StderrSize   int64      `json:"stderr_size"`
}

// Artifact is a named, content-addressed output of a task.
type Artifact struct {
	TaskKey
	Name      string    `json:"name"`
	Digest    string    `json:"digest"`
	Size      int64     `json:"size"`
	CreatedAt time.Time `json:"created_at"`
}

// ArtifactFilter selects artifacts of a run; Step and Index narrow it
// (Index < 0 means every task of the step).
type ArtifactFilter struct {
	RunID int64
	Step  string
	// Index picks one task (with Step; -1 for every task), or with Until
	// above it the tasks Index..Until-1.
	Index int
	Until int
}

// StepCount is the tasks of one step of a run that share a status, counted
// in the store (TaskCounts) so that a step of a million tasks costs a row,
// not a million.
type StepCount struct {
	Step   string     `json:"step"`
	Status TaskStatus `json:"status"`
	Tasks  int        `json:"tasks"`
	// Reused counts those whose result came from an earlier run.
	Reused   int `json:"reused"`
	Attempts int `json:"attempts"`
	// FirstStarted and LastFinished bound the tasks' times; MaxTook and
	// SumTook are over the tasks that have both times.
	FirstStarted time.Time     `json:"first_started,omitzero"`
	LastFinished time.Time     `json:"last_finished,omitzero"`
	MaxTook      time.Duration `json:"-"`
	SumTook      time.Duration `json:"-"`
	Timed        int           `json:"-"`
}

// TaskQuery selects a page of the tasks of a step (TaskPage).
type TaskQuery struct {
	RunID int64
	Step  string
	// Status keeps only tasks with this status; Unsucceeded keeps those
	// that did not succeed, failed ones first.
	Status      TaskStatus
	Unsucceeded bool
	// Offset skips that many; Limit caps the page (0: no cap).
	Offset, Limit int
}

// Batch is a set of state changes applied in one transaction: all of them or
// none. The engine groups the changes of many tasks into one batch (group
// commit); each change is still atomic on its own.
type Batch struct {
	Runs      []RunChange
	Steps     []StepChange
	NewTasks  []NewTasks
	Reuse     []ReuseTasks
	Tasks     []TaskChange
	Attempts  []Attempt
	Artifacts []Artifact
	// EndPending closes the tasks of a step that never started.
	EndPending []EndPending
	// Signals published by tasks; a signal whose id exists is skipped.
	Signals []Signal
}

// Empty reports whether the batch changes nothing.
func (b *Batch) Empty() bool {
	return len(b.Runs) == 0 && len(b.Steps) == 0 && len(b.NewTasks) == 0 && len(b.Reuse) == 0 &&
		len(b.Tasks) == 0 && len(b.Attempts) == 0 && len(b.Artifacts) == 0 && len(b.EndPending) == 0 &&
		len(b.Signals) == 0
}

// Append adds o's changes after b's.
func (b *Batch) Append(o *Batch) {
	b.Runs = append(b.Runs, o.Runs...)
	b.Steps = append(b.Steps, o.Steps...)
	b.NewTasks = append(b.NewTasks, o.NewTasks...)
	b.Reuse = append(b.Reuse, o.Reuse...)
	b.Tasks = append(b.Tasks, o.Tasks...)
	b.Attempts = append(b.Attempts, o.Attempts...)
	b.Artifacts = append(b.Artifacts, o.Artifacts...)
	b.EndPending = append(b.EndPending, o.EndPending...)
	b.Signals = append(b.Signals, o.Signals...)
}

// RunChange moves a run to a new status. Finishing releases the lease.
type RunChange struct {
	RunID  int64
	Status RunStatus
	Error  string
	At     time.Time
}

// StepChange creates or updates a step of a run.
type StepChange struct {
	RunID    int64
	Name     string
	Status   TaskStatus
	Foreach  bool
	NumTasks int
	// Shape, when set, is stored with the step (see Step.Shape).
	Shape    Shape
	SignalID string
	At       time.Time
}

// NewTasks creates Count pending tasks with indexes From..From+Count-1
// (From is above 0 for a step that runs again in a loop).
type NewTasks struct {
	RunID   int64
	Step    string
	From    int
	Count   int
	ReadyAt time.Time
	// Queued offers the tasks to any worker (ClaimTasks) rather than to
	// the coordinator that creates them. Items are then the foreach items
	// (one per task, or none), and MaxAttempts the tries each may take.
	Queued      bool
	Items       []json.RawMessage
	MaxAttempts int
	// Runner says who can run them: "" (shell steps: any worker) or
	// "go:FLOW" (Go steps: workers with the flow's functions).
	Runner string
	// Need is what each task needs of its worker (queued tasks).
	Need Need
}

// Need is what a queued task needs of a worker: thousandths of a core,
// MiB of memory, GPUs, and labels the worker must carry.
type Need struct {
	CPU, Mem int64
	GPU      int
	Labels   map[string]string
}

// Capacity is what a worker has free (CPU in thousandths of a core, Mem
// in MiB) and the labels it carries.
type Capacity struct {
	CPU, Mem int64
	GPU      int
	Labels   map[string]string
}

// Fits reports whether n fits in c.
func (c *Capacity) Fits(n Need) bool {
	if n.CPU > c.CPU || n.Mem > c.Mem || n.GPU > c.GPU {
		return false
	}
	for k, v := range n.Labels {
		if have, ok := c.Labels[k]; !ok || have != v {
			return false
		}
	}
	return true
}

// Take removes n from c (Give puts it back).
func (c *Capacity) Take(n Need) { c.CPU, c.Mem, c.GPU = c.CPU-n.CPU, c.Mem-n.Mem, c.GPU-n.GPU }

// Give returns n to c.
func (c *Capacity) Give(n Need) { c.CPU, c.Mem, c.GPU = c.CPU+n.CPU, c.Mem+n.Mem, c.GPU+n.GPU }

// LabelText is labels as stored: sorted "k=v" lines.
func LabelText(labels map[string]string) string {
	lines := make([]string, 0, len(labels))
	for k, v := range labels {
		lines = append(lines, k+"="+v)
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// ParseLabelText reads LabelText.
func ParseLabelText(s string) map[string]string {
	if s == "" {
		return nil
	}
	out := map[string]string{}
	for line := range strings.SplitSeq(s, "\n") {
		k, v, _ := strings.Cut(line, "=")
		out[k] = v
	}
	return out
}

// ReuseTasks copies the succeeded tasks of step Step in run From into run
// RunID, with their artifacts, marking each as reused from its origin. Only
// indexes from Start and below Count are copied (a task of the origin outside the new
// fan-out is not reused).
type ReuseTasks struct {
	RunID int64
	From  int64
	Step  string
	// Start, when above 0, copies only indexes from Start on (the
	// iteration of a loop the step runs in now).
	Start int
	Count int
	At    time.Time
}

// EndPending gives every still-pending task of a step a final Status
// (skipped after a failure elsewhere, cancelled on cancellation).
type EndPending struct {
	RunID  int64
	Step   string
	Status TaskStatus
	At     time.Time
}

// TaskChange updates a task's status. Zero times and a nil ExitCode leave
// the stored values alone.
type TaskChange struct {
	TaskKey
	Status     TaskStatus
	Attempts   int
	StartedAt  time.Time
	FinishedAt time.Time
	ExitCode   *int
	Error      string
}

// FlowReader reads registered flow versions.
type FlowReader interface {
	// FlowVersion returns a version of a flow; version 0 means the newest.
	FlowVersion(ctx context.Context, flow string, version int) (FlowVersion, error)
	FlowVersions(ctx context.Context, flow string) ([]FlowVersion, error)
	Flows(ctx context.Context) ([]FlowSummary, error)
}

// RunReader reads runs, their steps, tasks, attempts and artifacts: what
// every consumer that reports on runs (lineage, the registry, the views)
// needs, and nothing that changes a run.
type RunReader interface {
	Run(ctx context.Context, id int64) (Run, error)
	Runs(ctx context.Context, f RunFilter) ([]Run, error)
	Steps(ctx context.Context, runID int64) ([]Step, error)
	// Tasks returns the tasks of a step ordered by index.
	Tasks(ctx context.Context, runID int64, step string) ([]Task, error)
	// TaskCounts counts the tasks of every step of a run by status, in
	// the database: memory stays bounded whatever the fan-out.
	TaskCounts(ctx context.Context, runID int64) ([]StepCount, error)
	// TaskPage returns a page of a step's tasks ordered by index (failed
	// first with Unsucceeded).
	TaskPage(ctx context.Context, q TaskQuery) ([]Task, error)
	Task(ctx context.Context, k TaskKey) (Task, error)
	Attempts(ctx context.Context, k TaskKey) ([]Attempt, error)
	Artifacts(ctx context.Context, f ArtifactFilter) ([]Artifact, error)
	Artifact(ctx context.Context, k TaskKey, name string) (Artifact, error)
}

// Store is baton's durable state. Implementations are safe for concurrent
// use by many goroutines and, through the database, by many processes.
// One interface, two drivers (sqlite and postgres), one conformance suite
// (storetest). Consumers take the narrow
// interfaces they use (FlowReader, RunReader, SignalStore, ModelStore, ...).
type Store interface {
	// PutFlowVersion registers v unless a version with the same digest
	// exists; it returns the stored version and whether it was new.
	PutFlowVersion(ctx context.Context, v FlowVersion) (FlowVersion, bool, error)
	FlowReader
	RunReader

	CreateRun(ctx context.Context, r NewRun) (Run, error)
	// AcquireRun makes owner the holder of the run's lease for ttl and
	// marks a pending run running. It fails with ErrConflict if another
	// owner holds an unexpired lease or the run has ended.
	AcquireRun(ctx context.Context, id int64, owner string, ttl time.Duration) (Run, error)
	// AcquireRuns acquires, in one transaction, those of the pending runs
	// ids that nobody holds, and returns them.
	AcquireRuns(ctx context.Context, ids []int64, owner string, ttl time.Duration) ([]Run, error)
	// RenewLease extends owner's lease; ErrLeaseLost if owner lost it. It
	// reports whether someone asked for the run to be cancelled.
	RenewLease(ctx context.Context, id int64, owner string, ttl time.Duration) (cancel bool, err error)
	// RequestCancel asks the owner of a running run to cancel it; a pending
	// run is cancelled at once, with reason as its error. ErrConflict if
	// the run has ended.
	RequestCancel(ctx context.Context, id int64, reason string) error
	// FailPending ends a pending run as failed (it could not start).
	FailPending(ctx context.Context, id int64, reason string) error
	// ReleaseRun gives up owner's lease of a running run without ending it
	// (a server shutting down hands its runs back).
	ReleaseRun(ctx context.Context, id int64, owner string) error
	// AbandonRun ends a running run whose owner is gone (its lease has
	// expired, or the caller knows the owner process is dead) as failed,
	// marking its unfinished tasks failed. ErrConflict if the run is held
	// by a live lease and force is false.
	AbandonRun(ctx context.Context, id int64, reason string, force bool) error

	// Apply writes b in one transaction. Every run it changes must be held
	// by owner (ErrLeaseLost otherwise): a process that lost its lease can
	// no longer write, so a run taken over is never written twice.
	Apply(ctx context.Context, owner string, b *Batch) error

	SignalStore
	TriggerStore
	TokenStore
	QueueStore
	FeatureStore
	ModelStore
	ServeStore
	ExperimentStore
	MonitorStore

	Close() error
}

// Signal source kinds.
const (
	SourceExternal = "external"
	SourceFlow     = "flow"
)

// SignalContract is a declared signal: the params it carries (Spec holds
// the flow.Signal as JSON).
type SignalContract struct {
	Name      string          `json:"name"`
	Spec      json.RawMessage `json:"spec"`
	Digest    string          `json:"digest"`
	Path      string          `json:"path,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
}

// Signal is a published signal. Its ID makes it unique: publishing an ID
// again is the same signal.
type Signal struct {
	Seq       int64                      `json:"seq"`
	ID        string                     `json:"id"`
	Name      string                     `json:"name"`
	Params    map[string]json.RawMessage `json:"params"`
	Source    SignalSource               `json:"source"`
	CreatedAt time.Time                  `json:"created_at"`
}

// SignalSource says who published a signal.
type SignalSource struct {
	Kind  string `json:"kind"`
	Flow  string `json:"flow,omitempty"`
	RunID int64  `json:"run_id,omitempty"`
	Step  string `json:"step,omitempty"`
}

// SignalFilter narrows Signals. Zero fields match everything.
type SignalFilter struct {
	Name      string
	SourceRun int64
	// AfterSeq lists signals with a higher seq, oldest first; otherwise
	// the newest come first.
	AfterSeq int64
	// Since keeps signals published at or after it.
	Since time.Time
	Limit int // 0 means 100
}

// SignalStore keeps signals and their contracts.
type SignalStore interface {
	// PutSignalContracts registers contracts in one transaction and
	// returns, for each, whether it was new or changed.
	PutSignalContracts(ctx context.Context, cs []SignalContract) ([]bool, error)
	SignalContracts(ctx context.Context) ([]SignalContract, error)
	// PublishSignal stores s (assigning Seq and CreatedAt) unless a signal
	// with its ID exists, in which case it returns that one and false.
	PublishSignal(ctx context.Context, s Signal) (Signal, bool, error)
	Signal(ctx context.Context, id string) (Signal, error)
	Signals(ctx context.Context, f SignalFilter) ([]Signal, error)
}

// Fire records that a trigger fired and which run it started. Key is unique
// per firing: the same key never starts a second run.
type Fire struct {
	Key       string    `json:"key"`
	Kind      string    `json:"kind"`
	Flow      string    `json:"flow"`
	RunID     int64     `json:"run_id"`
	SignalID  string    `json:"signal_id,omitempty"`
	SourceRun int64     `json:"source_run,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// Firing is one trigger firing to record with the run it starts.
type Firing struct {
	Fire Fire
	Run  NewRun
	Join *JoinPart
}

// Fired is what a firing did.
type Fired struct {
	Run     Run
	Created bool
}

// FireFilter selects firings; set one field.
type FireFilter struct {
	SignalID  string
	SourceRun int64
	RunID     int64
}

// JoinPart is one signal that arrived for a join trigger, waiting for the
// others with the same join key values.
type JoinPart struct {
	Flow      string                     `json:"flow"`
	Trigger   int                        `json:"trigger"`
	JoinKey   string                     `json:"join_key"`
	Signal    string                     `json:"signal"`
	SignalID  string                     `json:"signal_id"`
	Params    map[string]json.RawMessage `json:"params"`
	CreatedAt time.Time                  `json:"created_at"`
}

// RunEvent says a run ended; the server's on_finish triggers read them in
// order.
type RunEvent struct {
	Seq       int64
	RunID     int64
	Flow      string
	Status    RunStatus
	CreatedAt time.Time
}

// TriggerStore keeps what the server needs to fire each trigger exactly
// once and to pick up where it stopped.
type TriggerStore interface {
	// FireRuns records firings and creates their runs in one transaction.
	// A firing whose key fired already creates nothing: its result holds
	// the run that firing started and Created false. A firing with Join
	// set clears those join parts in the same transaction.
	FireRuns(ctx context.Context, fs []Firing) ([]Fired, error)
	Fires(ctx context.Context, f FireFilter) ([]Fire, error)
	// AddJoinPart stores p (replacing an older part for the same signal
	// and key) and returns every part now waiting for that key.
	AddJoinPart(ctx context.Context, p JoinPart) ([]JoinPart, error)
	// Cursor returns a named progress marker (0 if unset); SetCursor
	// moves it.
	Cursor(ctx context.Context, name string) (int64, error)
	SetCursor(ctx context.Context, name string, v int64) error
	// CatalogVersion changes whenever a flow version or a contract is
	// registered: a cheap way to know definitions changed.
	CatalogVersion(ctx context.Context) (int64, error)
	RunEvents(ctx context.Context, afterSeq int64, limit int) ([]RunEvent, error)
	// Block marks a strict_sequential flow blocked by a failed run (the
	// first failure stays the reason); Blocked reports it; Unblock clears
	// it. A failure Block saw before an Unblock does not block again: only
	// a later run's.
	Block(ctx context.Context, flow string, runID int64) error
	Blocked(ctx context.Context, flow string) (int64, bool, error)
	Unblock(ctx context.Context, flow string) error
}

// Claim is a queued task a worker leased. Gen fences it: only the
// holder of this generation of the lease can finish the task.
type Claim struct {
	TaskKey
	Attempt int
	Gen     int
	// Need is what the task needs of the worker (given back when it ends).
	Need Need
	// MaxAttempts is how many tries the task may take now (attempts lost
	// with a dead worker do not count).
	MaxAttempts int
	// Item is the foreach item; nil for a task that is not a foreach task.
	Item json.RawMessage
}

// Finish is how a worker ends a claimed attempt.
type Finish struct {
	Claim
	Worker string
	// Status is succeeded, failed or cancelled. A failed attempt with
	// RetryAt set puts the task back to be claimed again from then.
	Status    TaskStatus
	RetryAt   time.Time
	StartedAt time.Time
	At        time.Time
	ExitCode  *int
	Error     string
	Stdout    Attempt // its log digests and sizes
	Artifacts []Artifact
	Signals   []Signal
}

// StepProgress counts a step's tasks by status.
type StepProgress struct {
	Counts map[TaskStatus]int
	// Failed is a task that failed for good, if any, for the message.
	Failed *Task
}

// Notes wake other processes (PostgreSQL LISTEN/NOTIFY; in one process
// for SQLite).
const (
	NoteSignals = "signals" // a signal was published
	NoteQueue   = "queue"   // tasks became claimable
	NoteRuns    = "runs"    // a run was queued or ended
	NoteRunPref = "run:"    // + run id: a task of that run ended
)

// QueueStore is the task queue that lets any process run any task: tasks
// are leased with SKIP LOCKED (PostgreSQL) or under the write lock (SQLite),
// leases are renewed while a task runs and expire when its worker dies,
// and every finish is fenced by the lease generation.
type QueueStore interface {
	// ClaimTasks leases to worker for ttl up to n claimable tasks that
	// it can run: shell tasks, and the Go tasks of the runners it names.
	// With free set, only tasks that fit in it, all of them together, and
	// whose labels the worker carries (free.Labels).
	ClaimTasks(ctx context.Context, worker string, n int, ttl time.Duration, runners []string, free *Capacity) ([]Claim, error)
	// RenewTaskLeases extends worker's leases. It returns the tasks the
	// worker still holds, and those among them it should stop: their run
	// ended or was asked to cancel.
	RenewTaskLeases(ctx context.Context, worker string, ttl time.Duration) (held, stop []TaskKey, err error)
	// FinishTask records a claimed attempt's end, with its artifacts and
	// signals, in one transaction; ErrLeaseLost if the worker no longer
	// holds that generation of the lease (or the run ended): then nothing
	// is written.
	FinishTask(ctx context.Context, f Finish) error
	// FinishTasks records many attempts' ends in one transaction (group
	// commit). Each is fenced on its own: the result holds ErrLeaseLost
	// for those refused, which write nothing, and nil for the others.
	FinishTasks(ctx context.Context, fs []Finish) ([]error, error)
	// ReapTasks puts back the tasks whose leases expired (their worker
	// died), or fails those out of attempts. It returns how many.
	ReapTasks(ctx context.Context) (int, error)
	// ReleaseTask hands a claimed task back untried (a worker shutting
	// down): pending again, the attempt not counted.
	ReleaseTask(ctx context.Context, c Claim, worker string) error
	// ExpireTaskLeases ends worker's leases on tasks it does not know it
	// holds, for the reaper to put back.
	ExpireTaskLeases(ctx context.Context, worker string, keys []TaskKey) error
	// StepProgress counts the tasks of a step by status.
	StepProgress(ctx context.Context, runID int64, step string) (StepProgress, error)
	// Listen delivers notes (the Note* names) published by any process
	// until ctx ends. Notes may be dropped or merged: they are wake-ups,
	// not data.
	Listen(ctx context.Context) (<-chan string, error)
}

// Role is what an API token allows.
type Role string

// Token roles, each allowing what the one before allows.
const (
	RoleViewer   Role = "viewer"
	RoleOperator Role = "operator"
	RoleAdmin    Role = "admin"
)

// Token is an API token; only the SHA-256 of its secret is stored.
type Token struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Role      Role      `json:"role"`
	Hash      string    `json:"-"`
	CreatedAt time.Time `json:"created_at"`
	LastUsed  time.Time `json:"last_used,omitzero"`
}

// TokenStore keeps API tokens.
type TokenStore interface {
	CreateToken(ctx context.Context, t Token) error
	// TokenByHash finds the token whose secret hashes to hash and notes
	// its use (at most once a minute, so that reads rarely write).
	TokenByHash(ctx context.Context, hash string) (Token, error)
	Tokens(ctx context.Context) ([]Token, error)
	DeleteToken(ctx context.Context, id string) error
}

// Feature definition kinds.
const (
	FeatureEntity = "entity"
	FeatureSource = "source"
	FeatureDef    = "feature"
)

// FeatureSpec is one versioned feature definition: an entity, a source or a
// feature, its spec as JSON.
type FeatureSpec struct {
	Kind      string          `json:"kind"`
	Name      string          `json:"name"`
	Version   int             `json:"version"`
	Digest    string          `json:"digest"`
	Spec      json.RawMessage `json:"spec"`
	CreatedAt time.Time       `json:"created_at"`
}

// Computation statuses: a blocked computation failed a gate and published
// nothing.
const (
	ComputationPassed  = "passed"
	ComputationWarned  = "warned"
	ComputationBlocked = "blocked"
)

// FeatureComputation is one batch computation of features.
type FeatureComputation struct {
	ID int64 `json:"id"`
	// Kind is training_set or backfill.
	Kind string `json:"kind"`
	// Features maps each computed feature to its version.
	Features map[string]int `json:"features"`
	Rows     int64          `json:"rows"`
	Status   string         `json:"status"`
	// Report is the quality report; Profiles the value profiles that the
	// next computation's drift checks compare with.
	Report    json.RawMessage `json:"report"`
	Profiles  json.RawMessage `json:"profiles,omitempty"`
	Output    string          `json:"output,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
}

// FeatureStore keeps feature definitions and batch computations.
type FeatureStore interface {
	// PutFeatureSpecs registers, in one transaction, each spec whose digest
	// differs from its name's newest version as that name's next version. It returns
	// every spec with its version, in the order given, and how many were new.
	PutFeatureSpecs(ctx context.Context, specs []FeatureSpec) ([]FeatureSpec, int, error)
	// FeatureSpecs returns the newest version of every definition.
	FeatureSpecs(ctx context.Context) ([]FeatureSpec, error)
	// FeatureSpecVersions returns every version of one definition, oldest
	// first.
	FeatureSpecVersions(ctx context.Context, kind, name string) ([]FeatureSpec, error)
	AddComputation(ctx context.Context, c FeatureComputation) (FeatureComputation, error)
	// LastComputation returns the newest computation that was not blocked
	// and computed feature; ErrNotFound if none.
	LastComputation(ctx context.Context, feature string) (FeatureComputation, error)
	// Computations lists the computations of feature, blocked ones
	// included, newest first (limit 0: 50), without their profiles.
	Computations(ctx context.Context, feature string, limit int) ([]FeatureComputation, error)
}

// ModelState is where a model version is in its lifecycle.
type ModelState string

// Model lifecycle states.
const (
	ModelRegistered ModelState = "registered"
	ModelShadow     ModelState = "shadow"
	ModelCanary     ModelState = "canary"
	ModelProduction ModelState = "production"
	ModelArchived   ModelState = "archived"
)

// ModelVersion is one registered version of a model, with its lineage.
type ModelVersion struct {
	Model   string     `json:"model"`
	Version int        `json:"version"`
	State   ModelState `json:"state"`
	// Artifact is the run artifact the version was registered from
	// (RUN/STEP[/INDEX]/NAME); Digest and Size identify its content.
	Artifact    string             `json:"artifact"`
	Digest      string             `json:"digest"`
	Size        int64              `json:"size"`
	RunID       int64              `json:"run_id"`
	Flow        string             `json:"flow,omitempty"`
	FlowVersion int                `json:"flow_version,omitempty"`
	Lineage     json.RawMessage    `json:"lineage"`
	Metrics     map[string]float64 `json:"metrics"`
	Tags        map[string]string  `json:"tags"`
	Aliases     []string           `json:"aliases,omitempty"`
	Description string             `json:"description,omitempty"`
	CreatedAt   time.Time          `json:"created_at"`
	UpdatedAt   time.Time          `json:"updated_at"`
}

// ModelTransition is one change of a version's state.
type ModelTransition struct {
	ID       int64           `json:"id"`
	Model    string          `json:"model"`
	Version  int             `json:"version"`
	From     ModelState      `json:"from"`
	To       ModelState      `json:"to"`
	Actor    string          `json:"actor"`
	Reason   string          `json:"reason"`
	Decision json.RawMessage `json:"decision,omitempty"`
	At       time.Time       `json:"at"`
}

// ModelSummary is a model with its newest version and what serves.
type ModelSummary struct {
	Name       string    `json:"name"`
	Versions   int       `json:"versions"`
	Production int       `json:"production,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
}

// ModelStore keeps the model registry. The lifecycle rules live in package
// registry; the store makes each change atomic.
type ModelStore interface {
	// CreateModelVersion registers v as its model's next version in state
	// registered, creating the model if needed, with the first transition.
	CreateModelVersion(ctx context.Context, v ModelVersion, actor, reason string) (ModelVersion, error)
	ModelVersion(ctx context.Context, model string, version int) (ModelVersion, error)
	ModelVersions(ctx context.Context, model string) ([]ModelVersion, error)
	Models(ctx context.Context) ([]ModelSummary, error)
	// TransitionModel moves a version from t.From to t.To if it is still in
	// t.From (ErrConflict otherwise). With replace, the model's other
	// versions in state t.To move to archived in the same transaction (a
	// new production version replaces the old one), each with its own
	// transition: read under the model's lock, so two concurrent
	// promotions cannot leave two versions in production.
	TransitionModel(ctx context.Context, t ModelTransition, replace bool) (ModelVersion, error)
	ModelTransitions(ctx context.Context, model string, version int) ([]ModelTransition, error)
	// UpdateModelVersion merges metrics and tags into a version.
	UpdateModelVersion(ctx context.Context, model string, version int, metrics map[string]float64, tags map[string]string) (ModelVersion, error)
	// SetModelAlias points alias at a version (version 0 deletes it).
	SetModelAlias(ctx context.Context, model, alias string, version int) error
}

// Endpoint is a serving endpoint's spec, as applied.
type Endpoint struct {
	Name      string          `json:"name"`
	Spec      json.RawMessage `json:"spec"`
	Digest    string          `json:"digest"`
	UpdatedAt time.Time       `json:"updated_at"`
}

// RolloutStatus is where a rollout is: running until it passes every stage
// (passed) or is rolled back.
type RolloutStatus string

// The rollout statuses.
const (
	RolloutRunning    RolloutStatus = "running"
	RolloutPassed     RolloutStatus = "passed"
	RolloutRolledBack RolloutStatus = "rolled_back"
)

// Rollout is a progressive rollout of a canary version of an endpoint's
// model against the baseline (production) version.
type Rollout struct {
	ID              int64           `json:"id"`
	Endpoint        string          `json:"endpoint"`
	Model           string          `json:"model"`
	CanaryVersion   int             `json:"canary_version"`
	BaselineVersion int             `json:"baseline_version"`
	Stages          []float64       `json:"stages"`
	Stage           int             `json:"stage"`
	Status          RolloutStatus   `json:"status"`
	History         json.RawMessage `json:"history"`
	StartedAt       time.Time       `json:"started_at"`
	UpdatedAt       time.Time       `json:"updated_at"`
}

// ServeStore keeps serving endpoints and rollouts.
type ServeStore interface {
	PutEndpoint(ctx context.Context, e Endpoint) (Endpoint, bool, error)
	Endpoints(ctx context.Context) ([]Endpoint, error)
	// StartRollout records a running rollout; ErrConflict if the endpoint
	// already has one.
	StartRollout(ctx context.Context, r Rollout) (Rollout, error)
	// Rollouts lists an endpoint's rollouts (all endpoints for ""), newest
	// first.
	Rollouts(ctx context.Context, endpoint string) ([]Rollout, error)
	// UpdateRollout sets stage, status and history if the rollout is still
	// running at stage fromStage (ErrConflict otherwise): two evaluators
	// never both advance it.
	UpdateRollout(ctx context.Context, id int64, fromStage, stage int, status RolloutStatus, history json.RawMessage) (Rollout, error)
}

// ExperimentStatus is whether an experiment assigns units.
type ExperimentStatus string

// Experiment statuses.
const (
	ExperimentRunning ExperimentStatus = "running"
	ExperimentPaused  ExperimentStatus = "paused"
	ExperimentStopped ExperimentStatus = "stopped"
)

// Experiment is an A/B test as stored: its spec, the allocation version
// (bumped when its allocation changes), status and the reason of a pause.
type Experiment struct {
	Name      string           `json:"name"`
	Spec      json.RawMessage  `json:"spec"`
	Digest    string           `json:"digest"`
	Alloc     string           `json:"alloc"`
	Version   int              `json:"version"`
	Status    ExperimentStatus `json:"status"`
	Reason    string           `json:"reason,omitempty"`
	UpdatedAt time.Time        `json:"updated_at"`
}

// Exposure is a unit's first exposure to an experiment's variant.
type Exposure struct {
	Experiment string    `json:"experiment"`
	Version    int       `json:"version"`
	Unit       string    `json:"unit"`
	Variant    string    `json:"variant"`
	At         time.Time `json:"at"`
}

// MetricEvent is one observation of a unit's metric.
type MetricEvent struct {
	Experiment string    `json:"experiment"`
	Unit       string    `json:"unit"`
	Metric     string    `json:"metric"`
	Value      float64   `json:"value"`
	At         time.Time `json:"at"`
}

// ExperimentStore keeps experiments, exposures and metric events.
type ExperimentStore interface {
	// PutExperiment stores a spec; a new alloc digest bumps the allocation
	// version. A new experiment starts running.
	PutExperiment(ctx context.Context, e Experiment) (Experiment, bool, error)
	Experiments(ctx context.Context) ([]Experiment, error)
	// SetExperimentStatus moves an experiment to status if it is in one
	// of from (ErrConflict otherwise).
	SetExperimentStatus(ctx context.Context, name string, from []ExperimentStatus, status ExperimentStatus, reason string) (Experiment, error)
	// AddExposures records first exposures; repeats are ignored. It
	// returns how many were new.
	AddExposures(ctx context.Context, es []Exposure) (int, error)
	AddMetricEvents(ctx context.Context, ms []MetricEvent) error
	// Exposures lists an allocation version's exposures.
	Exposures(ctx context.Context, experiment string, version int) ([]Exposure, error)
	// MetricEvents lists an experiment's events of one metric.
	MetricEvents(ctx context.Context, experiment, metric string) ([]MetricEvent, error)
}

// Monitor is a declared monitor's spec, as applied (package monitor reads
// it).
type Monitor struct {
	Name      string          `json:"name"`
	Spec      json.RawMessage `json:"spec"`
	Digest    string          `json:"digest"`
	UpdatedAt time.Time       `json:"updated_at"`
}

// What started a monitor's evaluation: its schedule (one result per due
// time) or a person (`baton monitor evaluate`, any number).
const (
	MonitorScheduled = "schedule"
	MonitorManual    = "manual"
)

// MonitorResult is one evaluation of a monitor: the value of each check
// against its threshold (Checks, JSON), whether any breached, the evidence
// (JSON), the signal a breach published and the error, if the evaluation
// or the publication failed.
type MonitorResult struct {
	ID      int64  `json:"id"`
	Monitor string `json:"monitor"`
	Kind    string `json:"kind"`
	Trigger string `json:"trigger"`
	// DueAt is the start of the schedule's slot the result answers (for a
	// manual evaluation, its own time); EvaluatedAt the clock's time of
	// the evaluation.
	DueAt       time.Time       `json:"due_at"`
	EvaluatedAt time.Time       `json:"evaluated_at"`
	Checks      json.RawMessage `json:"checks"`
	Breached    bool            `json:"breached"`
	// Repeated marks a breach that continues one whose signal went out:
	// stored, not published again.
	Repeated bool            `json:"repeated,omitempty"`
	Evidence json.RawMessage `json:"evidence"`
	Signal   string          `json:"signal,omitempty"`
	Error    string          `json:"error,omitempty"`
}

// MonitorResultFilter selects results, newest first. Zero fields match
// everything.
type MonitorResultFilter struct {
	Monitor string
	Trigger string
	// BeforeID keeps results with a smaller id (the next page).
	BeforeID int64
	// Limit caps the answer; 0 means 100.
	Limit int
}

// MonitorStore keeps monitors and their results.
type MonitorStore interface {
	// PutMonitor stores a spec unless the same digest is there, and says
	// whether it changed.
	PutMonitor(ctx context.Context, m Monitor) (Monitor, bool, error)
	Monitors(ctx context.Context) ([]Monitor, error)
	// AddMonitorResult stores a result and returns it with its id. A
	// scheduled result for a due time that already has one is refused
	// with ErrConflict (another evaluator answered that slot): one due time
	// is evaluated once, whoever leads.
	AddMonitorResult(ctx context.Context, r MonitorResult) (MonitorResult, error)
	MonitorResults(ctx context.Context, f MonitorResultFilter) ([]MonitorResult, error)
}
