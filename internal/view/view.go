// Package view builds the shapes that the CLI's -o json and the HTTP API
// show for runs and task logs, from the store, so both say the same.
package view

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/baton-ml/baton/internal/artifact"
	"github.com/baton-ml/baton/internal/engine"
	"github.com/baton-ml/baton/internal/fault"
	"github.com/baton-ml/baton/internal/store"
)

// Run is a run with its steps and tasks (`baton show -o json`).
type Run struct {
	store.Run
	// Code and CodeSize are the flow version's code snapshot, the code
	// its shell steps ran; empty when it has none.
	Code     string `json:"code,omitempty"`
	CodeSize int64  `json:"code_size,omitempty"`
	Steps    []Step `json:"steps"`
}

// Step is a step of a run: its tasks counted by status (in the store, so a
// step of a million tasks costs a few rows) and one page of its tasks.
type Step struct {
	store.Step
	// Counts holds the number of tasks in each status, and Reused those
	// whose result came from an earlier run.
	Counts map[store.TaskStatus]int `json:"counts"`
	Reused int                      `json:"reused"`
	// TaskMeanSeconds and TaskMaxSeconds are over the tasks that ran.
	TaskMeanSeconds float64 `json:"task_mean_seconds,omitempty"`
	TaskMaxSeconds  float64 `json:"task_max_seconds,omitempty"`
	// TasksTotal is how many tasks the step has; Tasks holds those
	// selected, from TasksOffset on, and TasksTruncated says that more
	// were selected than the page holds (ask again with a higher offset).
	TasksTotal     int    `json:"tasks_total"`
	TasksOffset    int    `json:"tasks_offset,omitempty"`
	TasksTruncated bool   `json:"tasks_truncated"`
	Tasks          []Task `json:"tasks"`
}

// Task is one task as shown.
type Task struct {
	Index int `json:"index"`
	// Path is the task's index at each foreach level its step sits in
	// (its address: RUN/STEP/I/J); absent outside any foreach.
	Path       []int            `json:"path,omitempty"`
	Status     store.TaskStatus `json:"status"`
	Attempts   int              `json:"attempts"`
	Reused     bool             `json:"reused"`
	ReusedFrom string           `json:"reused_from,omitempty"`
	StartedAt  time.Time        `json:"started_at,omitzero"`
	FinishedAt time.Time        `json:"finished_at,omitzero"`
	ExitCode   *int             `json:"exit_code,omitempty"`
	Error      string           `json:"error,omitempty"`
}

// Label names the task within its step: its index, or for a task of a
// nested foreach its path (2/0).
func (t Task) Label() string {
	if len(t.Path) > 1 {
		return store.FormatPath(t.Path)
	}
	return strconv.Itoa(t.Index)
}

// Reader is what the views read: flows and runs, never a change.
type Reader interface {
	store.FlowReader
	store.RunReader
}

// DefaultLimit is how many tasks of a step LoadRun lists when not told:
// every task of an ordinary run, a bounded page of a huge one.
const DefaultLimit = 1000

// Options choose which tasks LoadRunWith lists; the counts cover every
// task whatever they say.
type Options struct {
	// Step, if set, lists only that step's tasks (the others are counted).
	Step string
	// Status keeps tasks with that status; Unsucceeded those that did not
	// succeed, failed ones first.
	Status      store.TaskStatus
	Unsucceeded bool
	// Offset skips that many selected tasks of each step; Limit caps how
	// many are listed per step (0: DefaultLimit; negative: none).
	Offset, Limit int
	// Single lists the task of every one-task step even when it is not
	// selected (the text view shows them).
	Single bool
}

// LoadRun reads run id with every step (in the flow's order, including
// those that never started), each with its counts and up to DefaultLimit
// tasks.
func LoadRun(ctx context.Context, st Reader, id int64) (Run, error) {
	return LoadRunWith(ctx, st, id, Options{})
}

// LoadRunWith reads run id with every step, its counts and the tasks o
// selects. Memory is bounded by the steps and the page, never by the
// number of tasks.
func LoadRunWith(ctx context.Context, st Reader, id int64, o Options) (Run, error) {
	r, err := st.Run(ctx, id)
	if err != nil {
		return Run{}, err
	}
	v := Run{Run: r, Steps: []Step{}}
	steps, err := st.Steps(ctx, id)
	if err != nil {
		return v, err
	}
	byName := map[string]store.Step{}
	for _, s := range steps {
		byName[s.Name] = s
	}
	fl, fv, err := engine.Load(ctx, st, r)
	if err != nil {
		return v, err
	}
	v.Code, v.CodeSize = fv.Code, fv.CodeSize
	counts, err := st.TaskCounts(ctx, id)
	if err != nil {
		return v, err
	}
	if o.Step != "" && fl.Step(o.Step) == nil {
		return v, fmt.Errorf("step %q: run %d of flow %s has no such step: %w", o.Step, id, r.Flow, store.ErrNotFound)
	}
	limit := o.Limit
	if limit == 0 {
		limit = DefaultLimit
	}
	for _, fs := range fl.TopoOrder() {
		s, ok := byName[fs.Name]
		if !ok {
			s = store.Step{RunID: id, Name: fs.Name, Status: store.TaskPending, Foreach: fs.Foreach != nil}
		}
		sv := Step{Step: s, Counts: map[store.TaskStatus]int{}, Tasks: []Task{}, TasksOffset: max(o.Offset, 0)}
		var took, most time.Duration
		var timed int
		for _, c := range counts {
			if c.Step != s.Name {
				continue
			}
			sv.Counts[c.Status] += c.Tasks
			sv.TasksTotal += c.Tasks
			sv.Reused += c.Reused
			took += c.SumTook
			timed += c.Timed
			most = max(most, c.MaxTook)
		}
		if timed > 0 {
			sv.TaskMeanSeconds = (took / time.Duration(timed)).Seconds()
			sv.TaskMaxSeconds = most.Seconds()
		}
		selected := sv.TasksTotal
		switch {
		case o.Status != "":
			selected = sv.Counts[o.Status]
		case o.Unsucceeded:
			selected -= sv.Counts[store.TaskSucceeded]
		}
		q := store.TaskQuery{RunID: id, Step: s.Name, Status: o.Status, Unsucceeded: o.Unsucceeded, Offset: sv.TasksOffset, Limit: limit}
		if o.Single && sv.TasksTotal == 1 && o.Status == "" {
			q.Unsucceeded, q.Offset, selected = false, 0, 1
		}
		skip := (o.Step != "" && o.Step != s.Name) || limit < 0
		if skip || selected <= q.Offset {
			sv.TasksTruncated = skip && selected > 0
			v.Steps = append(v.Steps, sv)
			continue
		}
		tasks, err := st.TaskPage(ctx, q)
		if err != nil {
			return v, err
		}
		sv.TasksTruncated = q.Offset+len(tasks) < selected
		for _, t := range tasks {
			tv := Task{Index: t.Index, Status: t.Status, Attempts: t.Attempts, Reused: t.Reused(),
				StartedAt: t.StartedAt, FinishedAt: t.FinishedAt, ExitCode: t.ExitCode, Error: t.Error}
			if shape := s.TaskShape(); shape.Level() > 0 {
				tv.Path, _ = shape.Path(t.Index)
			}
			if t.Reused() {
				// A resumed run reuses a nested step's tasks only where
				// its levels fanned out alike: the same shape.
				tv.ReusedFrom = TaskAddr(t.ReusedFrom, s.TaskShape())
			}
			sv.Tasks = append(sv.Tasks, tv)
		}
		v.Steps = append(v.Steps, sv)
	}
	return v, nil
}

// TaskAddr is how a task is named to people: RUN/STEP/INDEX as it is
// stored, or RUN/STEP/I/J for a task of a nested foreach (shape its step's).
func TaskAddr(k store.TaskKey, shape store.Shape) string {
	if shape.Level() < 2 {
		return k.String()
	}
	if p, ok := shape.Path(k.Index); ok {
		return fmt.Sprintf("%d/%s/%s", k.RunID, k.Step, store.FormatPath(p))
	}
	return k.String()
}

// Log is one task attempt's output (`baton logs -o json`).
type Log struct {
	Task       string           `json:"task"`
	Attempt    int              `json:"attempt"`
	Status     store.TaskStatus `json:"status"`
	ReusedFrom string           `json:"reused_from,omitempty"`
	Stdout     string           `json:"stdout"`
	Stderr     string           `json:"stderr"`
}

// ErrNoAttempt is returned by TaskLog for an attempt that does not exist.
var ErrNoAttempt = fault.New(fault.NotFound, "no such attempt")

// TaskLog reads the output of an attempt of t (0: the last), shape its
// step's (which names a nested task RUN/STEP/I/J). A task reused by a
// resumed run has the logs of the run that did the work. ok is false for a
// task that never ran.
func TaskLog(ctx context.Context, st store.RunReader, blobs *artifact.Store, t store.Task, shape store.Shape, attempt int) (Log, bool, error) {
	k := t.TaskKey
	if t.Reused() {
		k = t.ReusedFrom
	}
	atts, err := st.Attempts(ctx, k)
	if err != nil || len(atts) == 0 {
		return Log{}, false, err
	}
	at := atts[len(atts)-1]
	if attempt > 0 {
		if attempt > len(atts) {
			return Log{}, false, ErrNoAttempt
		}
		at = atts[attempt-1]
	}
	l := Log{Task: TaskAddr(t.TaskKey, shape), Attempt: at.Attempt, Status: at.Status}
	if t.Reused() {
		l.ReusedFrom = TaskAddr(k, shape)
	}
	for _, x := range []struct {
		digest string
		dst    *string
	}{{at.StdoutDigest, &l.Stdout}, {at.StderrDigest, &l.Stderr}} {
		if x.digest == "" {
			continue
		}
		b, err := blobs.Read(ctx, x.digest)
		if err != nil {
			return l, false, err
		}
		*x.dst = string(b)
	}
	return l, true, nil
}

// Logs reads the logs of the tasks of run id, narrowed to step (if set) and
// index (if >= 0).
func Logs(ctx context.Context, st store.RunReader, blobs *artifact.Store, id int64, step string, index, attempt int) ([]Log, error) {
	steps, err := st.Steps(ctx, id)
	if err != nil {
		return nil, err
	}
	out := []Log{}
	for _, s := range steps {
		if step != "" && s.Name != step {
			continue
		}
		tasks, err := st.Tasks(ctx, id, s.Name)
		if err != nil {
			return nil, err
		}
		for _, t := range tasks {
			if index >= 0 && t.Index != index {
				continue
			}
			l, ok, err := TaskLog(ctx, st, blobs, t, s.TaskShape(), attempt)
			if errors.Is(err, ErrNoAttempt) {
				continue
			}
			if err != nil {
				return nil, err
			}
			if ok {
				out = append(out, l)
			}
		}
	}
	return out, nil
}
