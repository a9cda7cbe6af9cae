package orchestrate

import (
	"context"
	"time"

	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/testsignal"
)

// What the tests of package orchestrate_test reach inside.

func (o *Orchestrator) EvalSignals(ctx context.Context) error { return o.evalSignals(ctx) }

func (o *Orchestrator) CronTick(ctx context.Context) (time.Time, error) { return o.cronTick(ctx) }

// SetClock replaces the cron clock and the moment the lead began (before
// Start, or on an orchestrator driven by hand).
func (o *Orchestrator) SetClock(now func() time.Time, upSince time.Time) {
	o.opt.Now = now
	o.upSince = upSince
}

// HasFlow reports whether the loaded definitions hold flow name.
func (o *Orchestrator) HasFlow(name string) bool {
	d := o.defs.Load()
	return d != nil && d.flows[name] != nil
}

// Scheduled is the test signal of scheduling passes (Init it before Start).
func (o *Orchestrator) Scheduled() *testsignal.Signal[[]store.Run] { return &o.testSignals.scheduled }

// CronCursors names the cursors of the loaded cron triggers.
func (o *Orchestrator) CronCursors() []string {
	var keys []string
	for _, cs := range o.defs.Load().crons {
		keys = append(keys, cs.key)
	}
	return keys
}
