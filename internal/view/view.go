// Package view builds the shapes that the CLI's -o json and the HTTP API
// show for runs and task logs, from the store, so both say the same.
package view

import (
	"context"
	"errors"
	"time"

	"github.com/baton-ml/baton/internal/artifact"
	"github.com/baton-ml/baton/internal/engine"
	"github.com/baton-ml/baton/internal/fault"
	"github.com/baton-ml/baton/internal/store"
)

// Run is a run with its steps and tasks (`baton show -o json`).
type Run struct {
	store.Run
	Steps []Step `json:"steps"`
}

// Step is a step of a run with its tasks.
type Step struct {
	store.Step
	Tasks []Task `json:"tasks"`
}

// Task is one task as shown.
type Task struct {
	Index      int              `json:"index"`
	Status     store.TaskStatus `json:"status"`
	Attempts   int              `json:"attempts"`
	Reused     bool             `json:"reused"`
	ReusedFrom string           `json:"reused_from,omitempty"`
	StartedAt  time.Time        `json:"started_at,omitzero"`
	FinishedAt time.Time        `json:"finished_at,omitzero"`
	ExitCode   *int             `json:"exit_code,omitempty"`
	Error      string           `json:"error,omitempty"`
}

// LoadRun reads run id with every step (in the flow's order, including
// those that never started) and task.
func LoadRun(ctx context.Context, st store.Store, id int64) (Run, error) {
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
	fl, _, err := engine.Load(ctx, st, r)
	if err != nil {
		return v, err
	}
	for _, fs := range fl.TopoOrder() {
		s, ok := byName[fs.Name]
		if !ok {
			s = store.Step{RunID: id, Name: fs.Name, Status: store.TaskPending, Foreach: fs.Foreach != nil}
		}
		sv := Step{Step: s, Tasks: []Task{}}
		tasks, err := st.Tasks(ctx, id, s.Name)
		if err != nil {
			return v, err
		}
		for _, t := range tasks {
			tv := Task{Index: t.Index, Status: t.Status, Attempts: t.Attempts, Reused: t.Reused(),
				StartedAt: t.StartedAt, FinishedAt: t.FinishedAt, ExitCode: t.ExitCode, Error: t.Error}
			if t.Reused() {
				tv.ReusedFrom = t.ReusedFrom.String()
			}
			sv.Tasks = append(sv.Tasks, tv)
		}
		v.Steps = append(v.Steps, sv)
	}
	return v, nil
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

// TaskLog reads the output of an attempt of t (0: the last). A task reused
// by a resumed run has the logs of the run that did the work. ok is false
// for a task that never ran.
func TaskLog(ctx context.Context, st store.Store, blobs *artifact.Store, t store.Task, attempt int) (Log, bool, error) {
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
	l := Log{Task: t.TaskKey.String(), Attempt: at.Attempt, Status: at.Status}
	if t.Reused() {
		l.ReusedFrom = k.String()
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
func Logs(ctx context.Context, st store.Store, blobs *artifact.Store, id int64, step string, index, attempt int) ([]Log, error) {
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
			l, ok, err := TaskLog(ctx, st, blobs, t, attempt)
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
