package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/baton-ml/baton/internal/engine"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/store"
)

func (s *Server) schedLoop(ctx context.Context) {
	s.every(ctx, s.wakeSched, s.schedule, "schedule runs")
}

// schedule starts the pending runs that no engine has claimed, as each
// flow's concurrency strategy allows, and cancels those it says to drop.
func (s *Server) schedule(ctx context.Context) error {
	if s.stopping.Load() {
		return nil
	}
	pending, err := s.st.Runs(ctx, store.RunFilter{Status: store.RunPending, Unclaimed: true, Oldest: true, Limit: 5000})
	if err != nil {
		return err
	}
	s.m.pending.Set(float64(len(pending)))
	byFlow := map[string][]store.Run{}
	var order []string
	for _, r := range pending {
		if s.isStarting(r.ID) {
			continue
		}
		if _, ok := byFlow[r.Flow]; !ok {
			order = append(order, r.Flow)
		}
		byFlow[r.Flow] = append(byFlow[r.Flow], r)
	}
	d := s.defs.Load()
	var toStart []store.Run
	for _, name := range order {
		var conc *flow.Concurrency
		if fd := d.flows[name]; fd != nil {
			conc = fd.fl.Concurrency
		}
		start, drop, err := s.admit(ctx, name, conc, byFlow[name])
		if err != nil {
			return err
		}
		for _, r := range drop {
			s.takeCause(r.id)
			if err := s.st.RequestCancel(ctx, r.id, r.reason); err != nil && !errors.Is(err, store.ErrConflict) {
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
	acquired, err := s.st.AcquireRuns(ctx, ids, s.eng.Owner(), s.eng.LeaseTTL())
	if err != nil {
		return err
	}
	for _, r := range acquired {
		s.start(r)
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
func (s *Server) admit(ctx context.Context, name string, conc *flow.Concurrency, pending []store.Run) ([]store.Run, []dropped, error) {
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
		rs, err := s.st.Runs(ctx, store.RunFilter{Flow: name, Status: store.RunRunning, Limit: 10000})
		if err != nil {
			return nil, nil, err
		}
		// A run handed to the engine but not yet marked running counts.
		ids := s.startingOf(name)
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
		blocker, blocked, err := s.st.Blocked(ctx, name)
		if err != nil {
			return nil, nil, err
		}
		for _, r := range pending {
			if len(start) >= free {
				break
			}
			if blocked && !(r.Trigger == store.TriggerResume && r.OriginRunID != 0) {
				s.log.Debug("flow blocked", "flow", name, "by", blocker)
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

func (s *Server) isStarting(id int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.starting[id]
	return ok
}

func (s *Server) startingOf(flow string) map[int64]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[int64]bool{}
	for id, f := range s.starting {
		if f == flow {
			out[id] = true
		}
	}
	return out
}

// start executes run r in its own goroutine.
func (s *Server) start(r store.Run) {
	s.mu.Lock()
	if _, ok := s.starting[r.ID]; ok {
		s.mu.Unlock()
		return
	}
	s.starting[r.ID] = r.Flow
	s.mu.Unlock()
	s.wg.Go(func() {
		defer func() {
			s.mu.Lock()
			delete(s.starting, r.ID)
			s.mu.Unlock()
			wake(s.wakeSched)
		}()
		ctx := context.Background()
		s.m.running.Inc()
		defer s.m.running.Dec()
		final, err := s.eng.Execute(ctx, r.ID, engine.ExecOptions{Observer: &observer{s: s}, Acquired: true})
		switch {
		case errors.Is(err, engine.ErrHandedBack):
			s.log.Info("run handed back", "run", r.ID)
		case errors.Is(err, store.ErrConflict):
			// Another process took it first.
		case err != nil && final.Status == store.RunRunning && final.Owner == s.eng.Owner():
			// It could not start (a Go SDK step, a broken version): say so
			// on the run rather than retrying it forever.
			s.log.Error("run cannot start", "run", r.ID, "err", err)
			if ferr := s.eng.Fail(ctx, r.ID, err.Error()); ferr != nil {
				s.log.Error("record failure", "run", r.ID, "err", ferr)
			}
		case err != nil:
			s.log.Error("run", "run", r.ID, "err", err)
		default:
			s.log.Info("run finished", "run", r.ID, "flow", final.Flow, "status", final.Status)
			// A strict_sequential flow blocks before the scheduler looks
			// again (finishLoop would, but later).
			if err := s.strictBlock(ctx, final.Flow, final.ID, final.Status); err != nil {
				s.log.Error("block flow", "flow", final.Flow, "err", err)
			}
		}
		wake(s.wakeFinish)
	})
}

// adopt takes over, at start, the server-started runs that a previous
// server left unfinished (handed back, or its process died): each is
// resumed as a new run that reuses what completed.
func (s *Server) adopt(ctx context.Context) error {
	running, err := s.st.Runs(ctx, store.RunFilter{Status: store.RunRunning, Limit: 10000})
	if err != nil {
		return err
	}
	now := time.Now()
	for _, r := range running {
		if r.Trigger == store.TriggerManual {
			continue // a foreground run: its user resumes it
		}
		orphan := r.Owner == "" || r.LeaseExpires.Before(now) || engine.OwnerGone(r.Owner)
		if !orphan {
			continue
		}
		nr, err := s.eng.Resume(ctx, r.ID, "", false)
		if err != nil {
			s.log.Error("take over run", "run", r.ID, "err", err)
			continue
		}
		s.log.Info("took over an unfinished run", "run", r.ID, "as", nr.ID)
	}
	return nil
}

// noteCause remembers when what started a run happened, to measure the
// trigger latency when the run starts.
func (s *Server) noteCause(id int64, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.causes == nil {
		s.causes = map[int64]time.Time{}
	}
	s.causes[id] = at
}

func (s *Server) takeCause(id int64) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.causes[id]
	delete(s.causes, id)
	return at, ok
}

// observer feeds metrics from the runs the server executes.
type observer struct {
	s *Server
}

func (o *observer) RunStarted(r store.Run, _ *flow.Flow) {
	o.s.m.started.WithLabelValues(r.Trigger).Inc()
	if at, ok := o.s.takeCause(r.ID); ok {
		o.s.m.latency.WithLabelValues(r.Trigger).Observe(r.StartedAt.Sub(at).Seconds())
	}
}
func (o *observer) StepStarted(string, int, int)   {}
func (o *observer) StepWaiting(string, string)     {}
func (o *observer) TaskStarted(store.TaskKey, int) {}
func (o *observer) TaskFinished(_ store.TaskKey, _ int, st store.TaskStatus, _ string, took time.Duration) {
	o.s.m.tasks.WithLabelValues(string(st)).Inc()
}
func (o *observer) StepFinished(string, store.TaskStatus) {}
func (o *observer) RunFinished(store.Run)                 {}

// strictBlock blocks a strict_sequential flow on a failed run and unblocks
// it on a success.
func (s *Server) strictBlock(ctx context.Context, flowName string, runID int64, status store.RunStatus) error {
	fd := s.defs.Load().flows[flowName]
	if fd == nil || fd.fl.Concurrency == nil || fd.fl.Concurrency.Strategy != "strict_sequential" {
		return nil
	}
	switch status {
	case store.RunFailed:
		return s.st.Block(ctx, flowName, runID)
	case store.RunSucceeded:
		return s.st.Unblock(ctx, flowName)
	}
	return nil
}
