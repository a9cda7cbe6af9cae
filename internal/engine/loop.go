package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/baton-ml/baton/internal/store"
)

// A loop is a switch case that leads back (flow.Flow.LoopBody): when the
// switch step's task of an iteration takes it, the loop's steps are set
// pending again and run once more, each iteration's task after the last
// (a step in a loop has a task per iteration, its index the iteration's).
// The steps after the switch start only once a case leads on. The loop's
// head sees the switch step's last iteration, as <switch>/<name>, so the
// loop can carry state.

// wireLoops marks the steps of each loop with their switch step.
func (r *runner) wireLoops() {
	for _, w := range r.steps {
		sw := w.def.Switch
		if sw == nil {
			continue
		}
		for c, t := range sw.Cases {
			body := r.fl.LoopBody(w.def.Name, t)
			if body == nil {
				continue
			}
			if w.heads == nil {
				w.heads = map[string]*stepRun{}
			}
			w.heads[c] = r.byName[t]
			for _, b := range body {
				r.byName[b].loop = w
			}
		}
	}
}

// leadsBack reports whether a case of loop switch w leads back to s.
func (r *runner) leadsBack(w, s *stepRun) bool {
	for _, h := range w.heads {
		if h == s {
			return true
		}
	}
	return false
}

// loopBack returns the step the last iteration of loop switch w leads back
// to, or nil when its case leads on. Going round once more than
// max_iterations allows is an error.
func (r *runner) loopBack(w *stepRun) (*stepRun, error) {
	if w.n == 0 {
		return nil, nil
	}
	c, err := r.choice(r.ctx, w, w.n-1)
	if err != nil {
		return nil, err
	}
	head := w.heads[c]
	if head == nil {
		return nil, nil
	}
	if max := w.def.Switch.MaxIterations; w.n >= max {
		return nil, fmt.Errorf("case %q leads back to %s after %d iterations, and max_iterations is %d", c, head.def.Name, w.n, max)
	}
	return head, nil
}

// body returns the steps of w's loop back to head, in run order.
func (r *runner) body(w, head *stepRun) []*stepRun {
	var out []*stepRun
	for _, name := range r.fl.LoopBody(w.def.Name, head.def.Name) {
		out = append(out, r.byName[name])
	}
	return out
}

// iterate sets the steps of w's loop back to head pending (stored, so a
// coordinator taking over goes round too) and, in process, starts head.
func (r *runner) iterate(w, head *stepRun) {
	body := r.body(w, head)
	now := time.Now()
	var b store.Batch
	in := map[*stepRun]bool{}
	for _, s := range body {
		in[s] = true
	}
	for _, s := range body {
		s.status = store.TaskPending
		s.needsLeft = 0
		for _, up := range s.needs {
			if in[up] {
				s.needsLeft++
			}
		}
		s.inMu.Lock()
		s.inputs, s.inputsGone = nil, false
		s.inMu.Unlock()
		b.Steps = append(b.Steps, store.StepChange{RunID: r.run.ID, Name: s.def.Name, Status: store.TaskPending,
			Foreach: s.foreach, NumTasks: s.n, At: now})
	}
	if err := r.e.com.commit(r.ctx, &b); err != nil {
		r.cancel(err)
		return
	}
	if !r.e.queued(r.fl) {
		r.startStep(head)
	}
}

// goRound, for a coordinator of queued tasks, sends each loop switch that
// has succeeded with a case leading back round again; it is what makes a
// coordinator that took the run over finish what the last one began.
func (r *runner) goRound() error {
	for _, w := range r.steps {
		if len(w.heads) == 0 || w.status != store.TaskSucceeded {
			continue
		}
		head, err := r.loopBack(w)
		if err != nil {
			r.fail(fmt.Sprintf("step %s: %v", w.def.Name, err))
			return nil
		}
		if head != nil {
			r.iterate(w, head)
			if r.ctx.Err() != nil {
				return context.Cause(r.ctx) // iterate's commit failed
			}
		}
	}
	return nil
}

// iteration is the iteration (from 1) a task of a step in a loop runs.
func iteration(s *stepRun, base int) int {
	if s.loop == nil {
		return 0
	}
	return base + 1
}
