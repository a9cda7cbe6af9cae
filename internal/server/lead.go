package server

import (
	"context"
	"errors"
	"os"
	"syscall"
	"time"

	"github.com/baton-ml/baton/internal/engine"
	"github.com/baton-ml/baton/internal/store"
)

// fileElector leads while it holds an exclusive lock on a file: the servers
// of one home on one machine (the embedded store).
type fileElector struct {
	path string
}

// Campaign implements Elector.
func (f *fileElector) Campaign(ctx context.Context) (<-chan struct{}, error) {
	for {
		fh, err := os.OpenFile(f.path, os.O_RDWR|os.O_CREATE, 0o644)
		if err == nil {
			if err = syscall.Flock(int(fh.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
				lost := make(chan struct{})
				go func() {
					<-ctx.Done()
					fh.Close() // releases the lock
					close(lost)
				}()
				return lost, nil
			}
			fh.Close()
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// reapLoop puts back the queued tasks of workers that died.
func (s *Server) reapLoop(ctx context.Context) {
	t := time.NewTicker(min(5*time.Second, s.eng.TaskLeaseTTL()/3))
	defer t.Stop()
	for {
		if n, err := s.st.ReapTasks(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("reap tasks", "err", err)
		} else if n > 0 {
			s.log.Info("tasks of dead workers put back", "tasks", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// adoptLoop takes over, in place, the runs whose coordinator is gone: a
// server that died (its lease expired) or stopped (it handed them back).
func (s *Server) adoptLoop(ctx context.Context) {
	t := time.NewTicker(min(2*time.Second, s.eng.LeaseTTL()/3))
	defer t.Stop()
	for {
		if err := s.adoptQueued(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("take over runs", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.wakeAdopt:
		}
	}
}

func (s *Server) adoptQueued(ctx context.Context) error {
	if s.stopping.Load() {
		return nil
	}
	running, err := s.st.Runs(ctx, store.RunFilter{Status: store.RunRunning, Unclaimed: true, Limit: 1000})
	if err != nil {
		return err
	}
	for _, r := range running {
		if r.Trigger == store.TriggerManual || s.isStarting(r.ID) {
			continue // foreground runs are their users'; ours are running
		}
		s.mu.Lock()
		s.starting[r.ID] = r.Flow
		s.mu.Unlock()
		s.wg.Go(func() {
			defer func() {
				s.mu.Lock()
				delete(s.starting, r.ID)
				s.mu.Unlock()
				wake(s.wakeSched)
				wake(s.wakeFinish)
			}()
			s.log.Info("taking over a run whose coordinator is gone", "run", r.ID, "flow", r.Flow)
			final, err := s.eng.Execute(context.Background(), r.ID, engine.ExecOptions{Observer: &observer{s: s}, Adopt: true})
			switch {
			case errors.Is(err, engine.ErrHandedBack), errors.Is(err, store.ErrConflict):
			case err != nil:
				s.log.Error("run", "run", r.ID, "err", err)
			default:
				s.log.Info("run finished", "run", r.ID, "flow", final.Flow, "status", final.Status)
			}
		})
	}
	return nil
}
