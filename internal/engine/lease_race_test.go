package engine_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/artifact"
	"github.com/baton-ml/baton/internal/engine"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/store/sqlite"
)

// endRace is a store in which a heartbeat that beats while the run's end
// is being committed waits for that commit, as an UPDATE waits for the
// row lock on PostgreSQL, and so finds the run no longer running.
type endRace struct {
	store.Store
	mu    sync.Mutex
	ended chan struct{}
}

func (s *endRace) Apply(ctx context.Context, owner string, b *store.Batch) error {
	err := s.Store.Apply(ctx, owner, b)
	for _, rc := range b.Runs {
		if rc.Status.Final() {
			s.mu.Lock()
			close(s.ended)
			s.mu.Unlock()
			// The heartbeat hears of the end before the coordinator.
			time.Sleep(50 * time.Millisecond)
		}
	}
	return err
}

func (s *endRace) RenewLease(ctx context.Context, id int64, owner string, ttl time.Duration) (bool, error) {
	s.mu.Lock()
	ended := s.ended
	s.mu.Unlock()
	<-ended
	return s.Store.RenewLease(ctx, id, owner, ttl)
}

// A heartbeat that beats as the run's end is committed finds the run no
// longer running: that is no lease lost, and the run that just succeeded
// is no error (a subflow's task took it for its child failing).
func TestHeartbeatAtTheEndIsNoLostLease(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	inner, err := sqlite.Open(ctx, filepath.Join(dir, "baton.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := artifact.Open(ctx, "file://"+filepath.Join(dir, "artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	st := &endRace{Store: inner, ended: make(chan struct{})}
	eng, err := engine.New(st, blobs, engine.Options{TempDir: filepath.Join(dir, "tmp"), LeaseTTL: 30 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close(); blobs.Close(); inner.Close() })
	e := &env{st: st, blobs: blobs, eng: eng, dir: dir}
	f := &flow.Flow{Name: "quick", Steps: []flow.Step{{Name: "a"}}}
	funcs := map[string]engine.GoFunc{"a": func(context.Context, *engine.Task) error {
		time.Sleep(50 * time.Millisecond) // a heartbeat is waiting when the run ends
		return nil
	}}
	r := e.start(t, f, nil)
	got, err := eng.Execute(ctx, r.ID, engine.ExecOptions{Funcs: funcs})
	if err != nil || got.Status != store.RunSucceeded {
		t.Fatalf("run %s, Execute error %v; want succeeded and no error", got.Status, err)
	}
}
