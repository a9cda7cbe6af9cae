package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/baton-ml/baton/internal/signal"
	"github.com/baton-ml/baton/internal/store"
)

// waitPoll is how often a waiting step looks for its signal when nothing
// wakes it (a signal published by another process).
const waitPoll = 200 * time.Millisecond

// await holds step s until its signal arrives: a waiter goroutine watches
// for signals published since the run was created and reports back.
func (r *runner) await(s *stepRun) {
	s.status = store.TaskWaiting
	s.waiting = true
	if err := r.e.com.commit(r.ctx, &store.Batch{Steps: []store.StepChange{{RunID: r.run.ID, Name: s.def.Name,
		Status: store.TaskWaiting, At: time.Now()}}}); err != nil {
		r.cancel(err)
		return
	}
	w := s.def.Wait
	r.obs.StepWaiting(s.def.Name, w.Signal)
	var cond *signal.Program
	if w.When != "" {
		var err error
		if cond, err = signal.Compile(w.When, true); err != nil {
			go r.report(event{kind: waitFailed, step: s, err: err.Error()})
			return
		}
	}
	var deadline <-chan time.Time
	if w.Timeout > 0 {
		t := time.NewTimer(time.Duration(w.Timeout))
		deadline = t.C
		go func() { <-r.quit; t.Stop() }()
	}
	go func() {
		since := r.run.CreatedAt
		var after int64
		for {
			wake := r.e.wakeup()
			sg, last, err := r.findSignal(w.Signal, cond, since, after)
			if err != nil {
				r.report(event{kind: waitFailed, step: s, err: fmt.Sprintf("waiting for signal %s: %v", w.Signal, err)})
				return
			}
			if sg != nil {
				r.report(event{kind: signalCame, step: s, signal: sg})
				return
			}
			after = last
			select {
			case <-r.quit:
				return
			case <-r.ctx.Done():
				return
			case <-deadline:
				r.report(event{kind: waitFailed, step: s, err: fmt.Sprintf("no signal %s came within %s", w.Signal, time.Duration(w.Timeout))})
				return
			case <-wake:
			case <-time.After(waitPoll):
			}
		}
	}()
}

// findSignal looks at the signals named name published since since (and
// after seq after) for one that meets cond.
func (r *runner) findSignal(name string, cond *signal.Program, since time.Time, after int64) (*store.Signal, int64, error) {
	for {
		f := store.SignalFilter{Name: name, Limit: 500}
		if after > 0 {
			f.AfterSeq = after
		} else {
			f.Since = since
		}
		sigs, err := r.e.st.Signals(r.ctx, f)
		if err != nil {
			return nil, after, err
		}
		for i := range sigs {
			sg := &sigs[i]
			after = sg.Seq
			if sg.CreatedAt.Before(since) {
				continue
			}
			if cond == nil {
				return sg, after, nil
			}
			ok, err := cond.Bool(signal.Input{Signal: sg.Name, Params: sg.Params})
			if err != nil {
				return nil, after, err
			}
			if ok {
				return sg, after, nil
			}
		}
		if len(sigs) < 500 {
			return nil, after, nil
		}
	}
}

// report hands an event to the loop unless the run has ended.
func (r *runner) report(ev event) {
	select {
	case r.events <- ev:
	case <-r.quit:
	}
}

// waitReused reports whether a resumed run may skip step s's wait: the
// origin run's step succeeded and s will be reused whole.
func (r *runner) waitReused(s *stepRun) bool {
	if r.origin == 0 || r.rerun[s.def.Name] {
		return false
	}
	for _, up := range s.needs {
		if !up.fullyReused {
			return false
		}
	}
	steps, err := r.e.st.Steps(context.WithoutCancel(r.ctx), r.origin)
	if err != nil {
		return false
	}
	for _, st := range steps {
		if st.Name == s.def.Name {
			return st.Status == store.TaskSucceeded
		}
	}
	return false
}

func (s *stepRun) signalID() string {
	if s.signal == nil {
		return ""
	}
	return s.signal.ID
}
