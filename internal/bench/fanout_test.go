package bench

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/store"
)

// failingRuns fires n runs but cannot list runs.
type failingRuns struct {
	store.Store
	n int
}

var errDown = errors.New("database is down")

func (f failingRuns) Fires(context.Context, store.FireFilter) ([]store.Fire, error) {
	return make([]store.Fire, f.n), nil
}

func (f failingRuns) Runs(context.Context, store.RunFilter) ([]store.Run, error) {
	return nil, errDown
}

// The fan-out figure used to ignore the errors of its run queries: a failed
// query read as "nothing pending, nothing running", so the wait ended at
// once with a figure that measured nothing.
func TestFanoutChecksQueryErrors(t *testing.T) {
	t.Parallel()
	_, _, err := awaitFanout(context.Background(), failingRuns{n: 3}, "fan", 3, time.Now(), time.Second)
	if !errors.Is(err, errDown) {
		t.Fatalf("awaitFanout = %v, want the query's error", err)
	}
}
