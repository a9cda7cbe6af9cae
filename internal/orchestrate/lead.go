package orchestrate

import (
	"context"
	"os"
	"syscall"
	"time"

	"github.com/baton-ml/baton/internal/store"
)

// FileElector leads while it holds an exclusive lock on the file at path:
// the servers of one home on one machine (the embedded store).
func FileElector(path string) Elector { return &fileElector{path: path} }

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

// solo leads at once, alone, until ctx ends: one process on its own store.
type solo struct{}

// Campaign implements Elector.
func (solo) Campaign(ctx context.Context) (<-chan struct{}, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return ctx.Done(), nil
}

// reapLoop puts back the queued tasks of workers that died.
func (o *Orchestrator) reapLoop(ctx context.Context) {
	t := time.NewTicker(min(5*time.Second, o.eng.TaskLeaseTTL()/3))
	defer t.Stop()
	for {
		if n, err := o.st.ReapTasks(ctx); err != nil && ctx.Err() == nil {
			o.log.Warn("reap tasks", "err", err)
		} else if n > 0 {
			o.log.Info("tasks of dead workers put back", "tasks", n)
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
func (o *Orchestrator) adoptLoop(ctx context.Context) {
	t := time.NewTicker(min(2*time.Second, o.eng.LeaseTTL()/3))
	defer t.Stop()
	for {
		if err := o.adoptQueued(ctx); err != nil && ctx.Err() == nil {
			o.log.Warn("take over runs", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-o.wakeAdopt:
		}
	}
}

func (o *Orchestrator) adoptQueued(ctx context.Context) error {
	if o.stopping.Load() {
		return nil
	}
	running, err := o.st.Runs(ctx, store.RunFilter{Status: store.RunRunning, Unclaimed: true, Limit: 1000})
	if err != nil {
		return err
	}
	for _, r := range running {
		if r.Trigger == store.TriggerManual || o.isStarting(r.ID) {
			continue // foreground runs are their users'; ours are running
		}
		o.launch(r, true)
	}
	return nil
}
