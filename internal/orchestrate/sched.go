package orchestrate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/store"
)

func (o *Orchestrator) schedLoop(ctx context.Context) {
	o.every(ctx, o.wakeSched, o.schedule, "schedule runs")
}

// schedule starts the pending runs that no engine has claimed, as each
// flow's concurrency strategy allows, and cancels those it says to drop.
func (o *Orchestrator) schedule(ctx context.Context) error {
	if o.stopping.Load() {
		return nil
	}
	pending, err := o.st.Runs(ctx, store.RunFilter{Status: store.RunPending, Unclaimed: true, Oldest: true, Limit: 5000})
	if err != nil {
		return err
	}
	o.m.Pending(len(pending))
	// A test learns which runs this pass looked at, once it has.
	defer o.testSignals.scheduled.Signal(pending)
	byFlow := map[string][]store.Run{}
	var order []string
	for _, r := range pending {
		if o.isStarting(r.ID) {
			continue
		}
		if _, ok := byFlow[r.Flow]; !ok {
			order = append(order, r.Flow)
		}
		byFlow[r.Flow] = append(byFlow[r.Flow], r)
	}
	d := o.defs.Load()
	var toStart []store.Run
	for _, name := range order {
		var conc *flow.Concurrency
		if fd := d.flows[name]; fd != nil {
			conc = fd.fl.Concurrency
		}
		start, drop, err := o.admit(ctx, name, conc, byFlow[name])
		if err != nil {
			return err
		}
		for _, r := range drop {
			o.takeCause(r.id)
			if err := o.st.RequestCancel(ctx, r.id, r.reason); err != nil && !errors.Is(err, store.ErrConflict) {
				return err
			}
		}
		toStart = append(toStart, start...)
	}
	if len(toStart) == 0 {
		return nil
	}
	// Acquire them all in one transaction, then hand each to the engine.
	ids := make([]int64, len(toStart))
	for i, r := range toStart {
		ids[i] = r.ID
	}
	acquired, err := o.st.AcquireRuns(ctx, ids, o.eng.Owner(), o.eng.LeaseTTL())
	if err != nil {
		return err
	}
	for _, r := range acquired {
		o.launch(r, false)
	}
	return nil
}

type dropped struct {
	id     int64
	reason string
}

// admit applies a flow's strategy to its pending runs (oldest first):
//   - parallel (no concurrency setting): up to max_runs at once, or all;
//   - sequential: one at a time (or max_runs), in order;
//   - strict_sequential: sequential, but after a failure nothing starts
//     until a run succeeds (a resume of the failed run may run);
//   - first_only: while a run is in progress, new runs are dropped;
//   - last_only: only the newest waiting run is kept.
func (o *Orchestrator) admit(ctx context.Context, name string, conc *flow.Concurrency, pending []store.Run) ([]store.Run, []dropped, error) {
	strategy, limit := "parallel", 0
	if conc != nil {
		strategy = conc.Strategy
		if strategy == "" {
			strategy = "sequential"
		}
		limit = conc.MaxRuns
		if limit <= 0 && strategy != "parallel" {
			limit = 1
		}
	}
	running := 0
	if limit > 0 || strategy == "first_only" {
		rs, err := o.st.Runs(ctx, store.RunFilter{Flow: name, Status: store.RunRunning, Limit: 10000})
		if err != nil {
			return nil, nil, err
		}
		// A run handed to the engine but not yet marked running counts.
		ids := o.startingOf(name)
		for _, r := range rs {
			ids[r.ID] = true
		}
		running = len(ids)
	}
	free := len(pending)
	if limit > 0 {
		free = max(limit-running, 0)
	}
	var start []store.Run
	var drop []dropped
	switch strategy {
	case "first_only":
		for i, r := range pending {
			if i < free {
				start = append(start, r)
			} else {
				drop = append(drop, dropped{r.ID, "first_only: another run of " + name + " was in progress"})
			}
		}
	case "last_only":
		newest := len(pending) - 1
		for _, r := range pending[:newest] {
			drop = append(drop, dropped{r.ID, fmt.Sprintf("last_only: superseded by run %d", pending[newest].ID)})
		}
		if free > 0 {
			start = append(start, pending[newest])
		}
	case "strict_sequential":
		blocker, blocked, err := o.st.Blocked(ctx, name)
		if err != nil {
			return nil, nil, err
		}
		for _, r := range pending {
			if len(start) >= free {
				break
			}
			if blocked && !(r.Trigger == store.TriggerResume && r.OriginRunID != 0) {
				o.log.Debug("flow blocked", "flow", name, "by", blocker)
				continue
			}
			start = append(start, r)
		}
	default: // sequential, parallel
		if free > len(pending) {
			free = len(pending)
		}
		start = pending[:free]
	}
	return start, drop, nil
}

func (o *Orchestrator) isStarting(id int64) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, ok := o.starting[id]
	return ok
}

func (o *Orchestrator) startingOf(flow string) map[int64]bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[int64]bool{}
	for id, f := range o.starting {
		if f == flow {
			out[id] = true
		}
	}
	return out
}

// launch hands run r to the engine in a goroutine of its own: a run the
// scheduler acquired, or (adopt) a running run whose coordinator is gone,
// taken over in place. It is the one place a run starts here.
func (o *Orchestrator) launch(r store.Run, adopt bool) {
	o.mu.Lock()
	if _, ok := o.starting[r.ID]; ok {
		o.mu.Unlock()
		return
	}
	o.starting[r.ID] = r.Flow
	o.mu.Unlock()
	o.runs.Go(func() {
		defer func() {
			o.mu.Lock()
			delete(o.starting, r.ID)
			o.mu.Unlock()
			wake(o.wakeSched)
			wake(o.wakeFinish)
		}()
		// The run outlives the loops: Stop drains it through the engine.
		ctx := context.Background()
		if adopt {
			o.log.Info("taking over a run whose coordinator is gone", "run", r.ID, "flow", r.Flow)
		}
		o.m.Running(1)
		defer o.m.Running(-1)
		final, err := o.eng.Execute(ctx, r.ID, Exec{Adopt: adopt, RunStarted: o.runStarted,
			TaskFinished: o.m.TaskAttempt})
		switch {
		case errors.Is(err, ErrHandedBack):
			o.log.Info("run handed back", "run", r.ID)
		case errors.Is(err, store.ErrConflict):
			// Another process took it first.
		case err != nil && final.Status == store.RunRunning && final.Owner == o.eng.Owner():
			// It could not start (a Go SDK step, a broken version): say so
			// on the run rather than retrying it forever.
			o.log.Error("run cannot start", "run", r.ID, "err", err)
			if ferr := o.eng.Fail(ctx, r.ID, err.Error()); ferr != nil {
				o.log.Error("record failure", "run", r.ID, "err", ferr)
			}
		case err != nil:
			o.log.Error("run", "run", r.ID, "err", err)
		default:
			o.log.Info("run finished", "run", r.ID, "flow", final.Flow, "status", final.Status)
			// A strict_sequential flow blocks before the scheduler looks
			// again (finishLoop would, but later).
			if err := o.strictBlock(ctx, final.Flow, final.ID, final.Status); err != nil {
				o.log.Error("block flow", "flow", final.Flow, "err", err)
			}
		}
	})
}

// adopt takes over, when this process starts to lead, the triggered runs
// that a previous process left unfinished (handed back, or its process died): each is
// resumed as a new run that reuses what completed.
func (o *Orchestrator) adopt(ctx context.Context) error {
	running, err := o.st.Runs(ctx, store.RunFilter{Status: store.RunRunning, Limit: 10000})
	if err != nil {
		return err
	}
	now := time.Now()
	for _, r := range running {
		if r.Trigger == store.TriggerManual {
			continue // a foreground run: its user resumes it
		}
		orphan := r.Owner == "" || r.LeaseExpires.Before(now) || o.eng.OwnerGone(r.Owner)
		if !orphan {
			continue
		}
		nr, err := o.eng.Resume(ctx, r.ID)
		if err != nil {
			o.log.Error("take over run", "run", r.ID, "err", err)
			continue
		}
		o.log.Info("took over an unfinished run", "run", r.ID, "as", nr.ID)
	}
	return nil
}

// noteCause remembers when what started a run happened, to measure the
// trigger latency when the run starts.
func (o *Orchestrator) noteCause(id int64, at time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.causes[id] = at
}

func (o *Orchestrator) takeCause(id int64) (time.Time, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	at, ok := o.causes[id]
	delete(o.causes, id)
	return at, ok
}

// runStarted measures a run started here: counted by trigger, with the
// latency from what triggered it when known.
func (o *Orchestrator) runStarted(r store.Run) {
	at, ok := o.takeCause(r.ID)
	var lat time.Duration
	if ok {
		lat = r.StartedAt.Sub(at)
	}
	o.m.RunStarted(r.Trigger, lat, ok)
}

// strictBlock blocks a strict_sequential flow on a failed run and unblocks
// it on a success.
func (o *Orchestrator) strictBlock(ctx context.Context, flowName string, runID int64, status store.RunStatus) error {
	fd := o.defs.Load().flows[flowName]
	if fd == nil || fd.fl.Concurrency == nil || fd.fl.Concurrency.Strategy != "strict_sequential" {
		return nil
	}
	switch status {
	case store.RunFailed:
		return o.st.Block(ctx, flowName, runID)
	case store.RunSucceeded:
		return o.st.Unblock(ctx, flowName)
	}
	return nil
}
