// Package onengine runs an orchestrator's runs on baton's engine: it makes
// an *engine.Engine an orchestrate.Engine. It lives apart from orchestrate
// so that the orchestrator does not link the engine's blob store (and the
// HTTP clients under it); whoever wires the two imports this.
package onengine

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/baton-ml/baton/internal/engine"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/orchestrate"
	"github.com/baton-ml/baton/internal/store"
)

// New adapts e; log receives the queue worker's messages.
func New(e *engine.Engine, log *slog.Logger) orchestrate.Engine {
	return &adapter{e: e, log: log}
}

type adapter struct {
	e   *engine.Engine
	log *slog.Logger
}

func (a *adapter) Execute(ctx context.Context, id int64, x orchestrate.Exec) (store.Run, error) {
	run, err := a.e.Execute(ctx, id, engine.ExecOptions{Observer: observer{x}, Acquired: !x.Adopt, Adopt: x.Adopt})
	if errors.Is(err, engine.ErrHandedBack) {
		err = orchestrate.ErrHandedBack
	}
	return run, err
}

func (a *adapter) Resume(ctx context.Context, id int64) (store.Run, error) {
	return a.e.Resume(ctx, id, "", false)
}

func (a *adapter) Fail(ctx context.Context, id int64, reason string) error {
	return a.e.Fail(ctx, id, reason)
}

func (a *adapter) Owner() string               { return a.e.Owner() }
func (a *adapter) LeaseTTL() time.Duration     { return a.e.LeaseTTL() }
func (a *adapter) TaskLeaseTTL() time.Duration { return a.e.TaskLeaseTTL() }
func (a *adapter) OwnerGone(owner string) bool { return engine.OwnerGone(owner) }
func (a *adapter) NotifySignals()              { a.e.NotifySignals() }
func (a *adapter) Drain()                      { a.e.Drain() }
func (a *adapter) Running() []int64            { return a.e.Running() }
func (a *adapter) Cancel(id int64) bool        { return a.e.Cancel(id) }
func (a *adapter) Work(ctx context.Context) error {
	return a.e.Work(ctx, engine.WorkOptions{Log: a.log})
}

// observer passes the run's start and its task attempts' ends on.
type observer struct{ x orchestrate.Exec }

func (o observer) RunStarted(r store.Run, _ *flow.Flow) {
	if o.x.RunStarted != nil {
		o.x.RunStarted(r)
	}
}

func (o observer) TaskFinished(_ store.TaskKey, _ int, st store.TaskStatus, _ string, _ time.Duration) {
	if o.x.TaskFinished != nil {
		o.x.TaskFinished(st)
	}
}

func (observer) StepStarted(string, int, int)          {}
func (observer) StepWaiting(string, string)            {}
func (observer) TaskStarted(store.TaskKey, int)        {}
func (observer) StepFinished(string, store.TaskStatus) {}
func (observer) RunFinished(store.Run)                 {}
