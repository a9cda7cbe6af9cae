package engine

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/store"
)

// throttle is the least time between two looks at a run's progress when
// its tasks end in quick succession.
const throttle = 20 * time.Millisecond

// reconcile coordinates a run whose tasks go through the queue. Unlike the
// local loop it keeps no state the store does not: each pass reads the
// steps and their task counts and moves the run on, so another process can
// take the run over in place (Adopt) after this one dies.
func (r *runner) reconcile() error {
	defer close(r.quit)
	notes, err := r.e.st.Listen(r.ctx)
	if err != nil {
		return r.abort(err)
	}
	mine := store.NoteRunPref + strconv.FormatInt(r.run.ID, 10)
	if err := r.restore(); err != nil {
		return r.abort(err)
	}
	poll := time.NewTicker(r.e.opt.QueuePoll)
	defer poll.Stop()
	done := r.ctx.Done()
	stopped := false // pending tasks ended after a failure or cancel
	for {
		if r.draining && r.ending == "" {
			// Our tasks run on in workers; the next coordinator takes
			// the run over where we leave it.
			return r.handBack()
		}
		began := time.Now()
		err := r.advance()
		// Looking costs the store a count per running step: as steps
		// grow, look less often (at most a fifth of the time).
		pause := max(throttle, 4*time.Since(began))
		if err != nil {
			if r.ctx.Err() != nil && r.ending == "" {
				r.cancelled()
				continue
			}
			if fatal(err) {
				return r.abort(err)
			}
			// The store is away for a moment: look again at the next tick.
			r.e.log.Warn("coordinate run", "run", r.run.ID, "err", err)
		} else if r.ending != "" {
			if !stopped {
				if err := r.stopQueued(); err != nil {
					if fatal(err) {
						return r.abort(err)
					}
				} else {
					stopped = true
				}
			}
			busy, err := r.running()
			if err != nil && fatal(err) {
				return r.abort(err)
			}
			if err == nil && stopped && !busy {
				return r.finish()
			}
		} else if r.allSucceeded() {
			return r.finish()
		}
		select {
		case <-done:
			done = nil
			if r.ending == "" {
				r.cancelled()
			}
		case ev := <-r.events:
			r.handle(ev)
		case n := <-notes:
			if n != mine {
				continue
			}
			// Many tasks end at once: look once for all of them.
			time.Sleep(pause)
		case <-poll.C:
		case <-r.e.drainCh:
			r.draining = true
		}
	}
}

func (r *runner) cancelled() {
	r.ending = store.RunCancelled
	r.failure = "cancelled"
	if cause := context.Cause(r.ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		r.failure = cause.Error()
	}
}

func (r *runner) allSucceeded() bool {
	for _, s := range r.steps {
		if !stepDone(s.status) {
			return false
		}
	}
	return true
}

// restore reads what the store holds of the run: nothing for a new run
// (its steps are then written pending), or the progress of a run taken
// over.
func (r *runner) restore() error {
	stored, err := r.e.st.Steps(r.ctx, r.run.ID)
	if err != nil {
		return err
	}
	if len(stored) == 0 {
		var b store.Batch
		now := time.Now()
		for _, s := range r.steps {
			b.Steps = append(b.Steps, store.StepChange{RunID: r.run.ID, Name: s.def.Name, Status: store.TaskPending, At: now})
		}
		return r.e.com.commit(r.ctx, &b)
	}
	for _, st := range stored {
		s := r.byName[st.Name]
		if s == nil {
			continue
		}
		s.status, s.n = st.Status, st.NumTasks
		if st.Status != store.TaskPending && st.Status != store.TaskWaiting {
			r.setShape(s, st.TaskShape(), st.NumTasks-st.TaskShape().Count())
		}
		switch st.Status {
		case store.TaskSucceeded:
			if r.origin != 0 {
				s.fullyReused = r.wholeReused(s)
			}
		case store.TaskFailed:
			r.fail(fmt.Sprintf("step %s failed", s.def.Name))
		case store.TaskCancelled:
			r.ending, r.failure = store.RunCancelled, "cancelled"
		case store.TaskWaiting:
			// Wait again: the signal may have come while no one watched.
			s.status = store.TaskPending
		}
	}
	return nil
}

// wholeReused reports whether every task of a succeeded step came from the
// origin run (so steps below it may reuse theirs).
func (r *runner) wholeReused(s *stepRun) bool {
	tasks, err := r.e.st.Tasks(r.ctx, r.run.ID, s.def.Name)
	if err != nil {
		return false
	}
	for _, t := range tasks {
		if !t.Reused() {
			return false
		}
	}
	return true
}

// readyAfter reports whether need up lets s start: it is done, and if it
// is in a loop s is not in, the loop has ended (its switch took a case
// leading on).
func (r *runner) readyAfter(up, s *stepRun) bool {
	if !stepDone(up.status) {
		return false
	}
	if w := up.loop; w != nil && w != s.loop {
		if !stepDone(w.status) {
			return false
		}
		if head, err := r.loopBack(w); head != nil || err != nil {
			return false // goRound sends it round, or the run fails
		}
	}
	return true
}

// advance starts the steps whose needs have succeeded and records the
// steps whose tasks have all ended.
func (r *runner) advance() error {
	if err := r.goRound(); err != nil {
		return err
	}
	for _, s := range r.steps {
		if r.ending != "" {
			return nil
		}
		switch s.status {
		case store.TaskPending:
			ready := true
			for _, up := range s.needs {
				ready = ready && r.readyAfter(up, s)
			}
			if ready {
				r.startQueued(s)
			}
		case store.TaskRunning:
			p, err := r.e.st.StepProgress(r.ctx, r.run.ID, s.def.Name)
			if err != nil {
				return err
			}
			if c, ok := r.obs.(Counter); ok {
				// The tasks end in workers, maybe in other processes:
				// what the store counts is the progress.
				c.StepCounts(s.def.Name, p.Counts[store.TaskSucceeded]+p.Counts[store.TaskFailed]+
					p.Counts[store.TaskCancelled]+p.Counts[store.TaskSkipped], s.n)
			}
			if f := p.Failed; f != nil {
				s.failed = p.Counts[store.TaskFailed]
				r.fail(fmt.Sprintf("step %s task %s failed after %d attempt(s): %s", s.def.Name, r.taskName(s, f.Index), f.Attempts, f.Error))
				return nil
			}
			if p.Counts[store.TaskSucceeded]+p.Counts[store.TaskSkipped] == s.n {
				s.status = store.TaskSucceeded
				if err := r.e.com.commit(r.ctx, &store.Batch{Steps: []store.StepChange{{RunID: r.run.ID, Name: s.def.Name,
					Status: store.TaskSucceeded, Foreach: s.foreach, NumTasks: s.n, At: time.Now()}}}); err != nil {
					return err
				}
				r.obs.StepFinished(s.def.Name, store.TaskSucceeded)
			}
		}
	}
	return nil
}

// startQueued creates a ready step's tasks in the queue (or holds it for
// its signal); on a resumed run it reuses what the origin run completed.
func (r *runner) startQueued(s *stepRun) {
	if s.def.Wait != nil && s.signal == nil && !r.waitReused(s) {
		if !s.waiting {
			r.await(s)
		}
		return
	}
	now := time.Now()
	items, shape, skip, allSkipped, err := r.prepare(s)
	if err != nil {
		s.status = store.TaskFailed
		r.fail(fmt.Sprintf("step %s: %v", s.def.Name, err))
		if cerr := r.e.com.commit(r.ctx, &store.Batch{Steps: []store.StepChange{{RunID: r.run.ID, Name: s.def.Name,
			Status: store.TaskFailed, Foreach: s.foreach, At: now}}}); cerr != nil {
			r.cancel(cerr)
		}
		return
	}
	base := s.n // a step in a loop keeps its earlier iterations' tasks
	if s.loop == nil {
		base = 0
	}
	s.items, s.n = items, base+shape.Count()
	r.setShape(s, shape, base) // for reusable; a failed commit computes it again
	r.setSkipped(s, skip, base)
	reused, eligible, err := r.reusable(s)
	if err != nil {
		r.e.log.Warn("start step", "run", r.run.ID, "step", s.def.Name, "err", err)
		return // try again at the next pass
	}
	b := &store.Batch{
		Steps: []store.StepChange{{RunID: r.run.ID, Name: s.def.Name, Status: store.TaskRunning, Foreach: s.foreach,
			NumTasks: s.n, Shape: shape, SignalID: s.signalID(), At: now}},
		NewTasks: []store.NewTasks{{RunID: r.run.ID, Step: s.def.Name, From: base, Count: s.n - base, ReadyAt: now, Queued: true,
			Items: s.items, MaxAttempts: s.def.Retry.MaxAttempts(), Runner: runnerOf(r.fl.Name, s.def), Need: needOf(s.def)}},
		Tasks: skipChanges(r.run.ID, s, skip, base, now),
	}
	if allSkipped {
		// Nothing to run: the step ends here, skipped.
		b.Steps[0].Status = store.TaskSkipped
	}
	if len(reused) > 0 {
		b.Reuse = []store.ReuseTasks{{RunID: r.run.ID, From: r.origin, Step: s.def.Name, Start: base, Count: s.n, At: now}}
	}
	if err := r.e.com.commit(r.ctx, b); err != nil {
		s.n = base // computed again at the next pass
		if fatal(err) {
			r.cancel(err)
		} else {
			r.e.log.Warn("start step", "run", r.run.ID, "step", s.def.Name, "err", err)
		}
		return
	}
	s.items = nil // the queue has them now
	s.status = store.TaskRunning
	nskip := 0
	for _, sk := range skip {
		if sk {
			nskip++
		}
	}
	s.fullyReused = eligible && len(reused)+nskip == s.n-base
	r.obs.StepStarted(s.def.Name, s.n-base, len(reused)+nskip)
	r.unplaceable(s)
	if allSkipped {
		s.status = store.TaskSkipped
		r.obs.StepFinished(s.def.Name, store.TaskSkipped)
	}
}

// stopQueued ends what has not started once the run is ending: the pending
// tasks of every step, and (on cancel) the tasks running in workers.
func (r *runner) stopQueued() error {
	leftover := store.TaskSkipped
	if r.ending == store.RunCancelled {
		leftover = store.TaskCancelled
	}
	var b store.Batch
	now := time.Now()
	for _, s := range r.steps {
		if s.status == store.TaskRunning {
			b.EndPending = append(b.EndPending, store.EndPending{RunID: r.run.ID, Step: s.def.Name, Status: leftover, At: now})
		}
	}
	if err := r.e.com.commit(context.WithoutCancel(r.ctx), &b); err != nil {
		return err
	}
	if r.ending == store.RunCancelled {
		r.e.stopLocal(r.run.ID)
		// Workers elsewhere see it when they renew their leases.
		if err := r.e.st.RequestCancel(context.WithoutCancel(r.ctx), r.run.ID, r.failure); err != nil &&
			!errors.Is(err, store.ErrConflict) {
			return err
		}
	}
	return nil
}

// running reports whether any task of the run is still running somewhere.
func (r *runner) running() (bool, error) {
	for _, s := range r.steps {
		if s.status != store.TaskRunning && s.status != store.TaskFailed {
			continue
		}
		p, err := r.e.st.StepProgress(context.WithoutCancel(r.ctx), r.run.ID, s.def.Name)
		if err != nil {
			return false, err
		}
		if p.Counts[store.TaskRunning] > 0 {
			return true, nil
		}
	}
	return false, nil
}

// unplaceable says so when the tasks of s need more than this process's
// worker offers, or labels it lacks: they wait for another worker, and
// without a word a run would seem to hang.
func (r *runner) unplaceable(s *stepRun) {
	need := needOf(s.def)
	r.e.mu.Lock()
	w := r.e.worker
	r.e.mu.Unlock()
	if w == nil || w.capacity.Fits(need) {
		return
	}
	c := w.capacity
	note := fmt.Sprintf("each task needs cpu %g, memory %d MiB, gpu %d, labels {%s}; this process's worker offers cpu %g, memory %d MiB, gpu %d, labels {%s}: the tasks wait for a baton worker that fits (baton worker --cpu --memory --gpu --label)",
		float64(need.CPU)/1000, need.Mem, need.GPU, strings.ReplaceAll(store.LabelText(need.Labels), "\n", ", "),
		float64(c.CPU)/1000, c.Mem, c.GPU, strings.ReplaceAll(store.LabelText(c.Labels), "\n", ", "))
	r.e.log.Warn("tasks no local worker fits", "run", r.run.ID, "step", s.def.Name, "note", note)
	if n, ok := r.obs.(Noter); ok {
		n.StepNote(s.def.Name, note)
	}
}

// needOf is what each task of step s needs of its worker.
func needOf(s *flow.Step) store.Need {
	n := store.Need{Labels: s.Labels}
	if r := s.Resources; r != nil {
		n.CPU, n.Mem, n.GPU = r.Milli(), r.MiB(), r.GPU
	}
	return n
}

// runnerOf names who can run a step's queued tasks.
func runnerOf(flowName string, s *flow.Step) string {
	if s.Run == "" && s.Subflow == nil {
		return GoRunner(flowName)
	}
	return ""
}

// fatal reports whether a store error ends the coordination: the lease is
// lost or something was refused. Anything else is taken as the store being
// briefly away.
func fatal(err error) bool {
	return errors.Is(err, store.ErrLeaseLost) || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) ||
		errors.Is(err, context.Canceled)
}
