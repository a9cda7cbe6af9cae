package server

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/store"
)

// duringWriteStore refuses exposure writes while fail is set, and calls
// during (if set) inside each refused write: requests that arrive while a
// flush waits on the store.
type duringWriteStore struct {
	store.Store
	fail   atomic.Bool
	during func()
}

func (f *duringWriteStore) AddExposures(ctx context.Context, es []store.Exposure) (int, error) {
	if f.fail.Load() {
		if f.during != nil {
			f.during()
		}
		return 0, errWriteRefused
	}
	return f.Store.AddExposures(ctx, es)
}

// TestFailedBatchKeptWhenSpillFails: a flush whose batch the store refuses
// and the spill log cannot take keeps the batch in memory, and the flush
// after the store recovers writes all of it. Only what does not fit back
// under the bound (the queue refilled while the write failed) is lost, and
// that is counted in /metrics. Before this test, dropping the failed batch
// outright passed every exposure, spill and experiment test.
func TestFailedBatchKeptWhenSpillFails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	raw := homeStore(t, dir)
	st := &duringWriteStore{Store: raw}
	st.fail.Store(true)
	s := bareServer(t, st, dir)
	s.exps.spill.Close() // every append to the spill log fails from here on
	expose := func(unit string) {
		t.Helper()
		if err := s.exps.expose(store.Exposure{Experiment: "e", Version: 1, Unit: unit, Variant: "a", At: time.Now()}); err != nil {
			t.Fatalf("exposure %s: %v", unit, err)
		}
	}
	pending := func() int {
		s.exps.mu.Lock()
		defer s.exps.mu.Unlock()
		return len(s.exps.pending)
	}
	stored := func() map[string]bool {
		t.Helper()
		ex, err := raw.Exposures(ctx, "e", 1)
		if err != nil {
			t.Fatal(err)
		}
		units := make(map[string]bool, len(ex))
		for _, e := range ex {
			units[e.Unit] = true
		}
		return units
	}
	lost := s.exps.refused.WithLabelValues("exposure", "store_and_spill_failed")

	const n = 500
	for i := range n {
		expose(fmt.Sprint("k", i))
	}
	s.exps.flush(ctx)
	if got := pending(); got != n {
		t.Fatalf("after a flush the store and the spill log failed: %d of %d exposures still pending", got, n)
	}
	if got := counterValue(lost); got != 0 {
		t.Fatalf("%g exposures counted lost within the bound", got)
	}
	st.fail.Store(false)
	s.exps.flush(ctx)
	if got := stored(); len(got) != n || pending() != 0 {
		t.Fatalf("after the store recovered: %d of %d stored, %d pending", len(got), n, pending())
	}

	// Past the bound: the queue is full when the flush takes it, and
	// exposures that arrive while its write fails fill the room its batch
	// would go back to. As many of the batch as arrived are lost: counted.
	st.fail.Store(true)
	for i := range maxPending {
		expose(fmt.Sprint("f", i))
	}
	const arrived = 7
	st.during = func() {
		st.during = nil
		for i := range arrived {
			expose(fmt.Sprint("d", i))
		}
	}
	s.exps.flush(ctx)
	if got := pending(); got != maxPending {
		t.Fatalf("past the bound: %d pending, want %d", got, maxPending)
	}
	if got := counterValue(lost); got != arrived {
		t.Fatalf("lost counter %g, want %d", got, arrived)
	}
	req := httptest.NewRequest("GET", "http://127.0.0.1/metrics", nil)
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, req)
	if want := fmt.Sprintf(`baton_experiment_events_refused_total{kind="exposure",reason="store_and_spill_failed"} %d`, arrived); w.Code != 200 || !strings.Contains(w.Body.String(), want) {
		t.Fatalf("/metrics (%d) lacks %s", w.Code, want)
	}
	// What was kept is written once the store works, the late arrivals
	// included.
	st.fail.Store(false)
	s.exps.flush(ctx)
	got := stored()
	if len(got) != n+maxPending || pending() != 0 {
		t.Fatalf("after the store recovered: %d stored, want %d; %d pending", len(got), n+maxPending, pending())
	}
	for i := range arrived {
		if !got[fmt.Sprint("d", i)] {
			t.Fatalf("late exposure d%d not stored", i)
		}
	}
	// The journals of what was written are retired: only the live one,
	// empty, is left.
	left, _ := filepath.Glob(filepath.Join(dir, "spill", journalName+"*"))
	if len(left) != 1 || filepath.Base(left[0]) != journalName || s.exps.journal.Len() != 0 {
		t.Fatalf("journals left: %v (live one holds %d)", left, s.exps.journal.Len())
	}
}
