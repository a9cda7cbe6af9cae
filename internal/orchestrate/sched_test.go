package orchestrate_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/orchestrate"
	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/store/pgtest"
	"github.com/baton-ml/baton/internal/testwait"
)

func strategyFlow(name, strategy string, maxRuns int, run string) string {
	return fmt.Sprintf(`name: %s
params:
  n: {type: int, default: 0}
concurrency: {strategy: %s, max_runs: %d}
steps:
  - name: a
    run: '%s'
`, name, strategy, maxRuns, run)
}

// overlap samples the most runs of flow running at once until all n end.
func (h *harness) overlap(t *testing.T, flow string, n int) int {
	most := 0
	testwait.For(t, 30*time.Second, func() bool {
		rs := h.runs(t, flow)
		running, done := 0, 0
		for _, r := range rs {
			if r.Status == store.RunRunning {
				running++
			}
			if r.Status.Final() {
				done++
			}
		}
		most = max(most, running)
		return done >= n
	}, "runs of %s to end", flow)
	return most
}

func TestStrategies(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config{Workers: 4, init: func(o *orchestrate.Orchestrator) { o.Scheduled().Init() }})
	// The first_only and last_only runs hold until the test opens their
	// gate, so the runs that arrive meanwhile find one running however
	// slow the machine.
	gates := t.TempDir()
	gate := func(name string) string { return filepath.Join(gates, name) }
	open := func(name string) {
		if err := os.WriteFile(gate(name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h.apply(t,
		strategyFlow("seq", "sequential", 1, "sleep 0.2"),
		strategyFlow("par", "parallel", 2, "sleep 0.3"),
		strategyFlow("first", "first_only", 1, "until [ -e "+gate("first")+" ]; do sleep 0.02; done"),
		strategyFlow("last", "last_only", 1, "until [ -e "+gate("last")+" ]; do sleep 0.02; done"),
		strategyFlow("strict", "strict_sequential", 1, `[ "$BATON_PARAM_N" != 1 ]`),
	)
	create := func(flow string, n int) store.Run {
		return h.createRun(t, flow, map[string]any{"n": n})
	}
	for i := range 3 {
		create("seq", i)
		create("par", i)
		create("par", i)
	}
	if most := h.overlap(t, "seq", 3); most != 1 {
		t.Errorf("sequential ran %d at once", most)
	}
	if most := h.overlap(t, "par", 6); most > 2 {
		t.Errorf("parallel max_runs 2 ran %d at once", most)
	}
	seq := h.runs(t, "seq")
	for i := 1; i < len(seq); i++ {
		if seq[i].StartedAt.Before(seq[i-1].FinishedAt) {
			t.Errorf("sequential run %d started before run %d ended", seq[i].ID, seq[i-1].ID)
		}
	}
	// first_only: runs arriving while one runs are dropped.
	create("first", 0)
	testwait.For(t, 10*time.Second, func() bool { rs := h.runs(t, "first"); return rs[0].Status == store.RunRunning }, "first to start")
	create("first", 1)
	create("first", 2)
	finished := func(flow string, n int) func() bool {
		return func() bool {
			done := 0
			for _, r := range h.runs(t, flow) {
				if r.Status.Final() {
					done++
				}
			}
			return done >= n
		}
	}
	// The scheduler drops both while the first still holds.
	testwait.For(t, 10*time.Second, finished("first", 2), "first_only to drop the runs that arrived during a run")
	open("first")
	first := h.waitRuns(t, "first", 3)
	if first[0].Status != store.RunSucceeded || first[1].Status != store.RunCancelled || !strings.Contains(first[2].Error, "first_only") {
		t.Errorf("first_only: %s %s %s %q", first[0].Status, first[1].Status, first[2].Status, first[2].Error)
	}
	// last_only: of the runs waiting, only the newest runs.
	create("last", 0)
	testwait.For(t, 10*time.Second, func() bool { rs := h.runs(t, "last"); return rs[0].Status == store.RunRunning }, "last to start")
	create("last", 1)
	create("last", 2)
	testwait.For(t, 10*time.Second, finished("last", 1), "last_only to drop the superseded run")
	open("last")
	last := h.waitRuns(t, "last", 3)
	if last[0].Status != store.RunSucceeded || last[1].Status != store.RunCancelled || !strings.Contains(last[1].Error, "superseded") || last[2].Status != store.RunSucceeded {
		t.Errorf("last_only: %s %s(%q) %s", last[0].Status, last[1].Status, last[1].Error, last[2].Status)
	}
	// strict_sequential: a failure blocks the queue until unblocked.
	create("strict", 1)
	h.waitRuns(t, "strict", 1)
	blocked := create("strict", 2)
	// The failure blocks the flow (after the run ends: wait for it, or an
	// unblock below could come first and be undone)...
	testwait.For(t, 10*time.Second, func() bool {
		_, b, err := h.st.Blocked(context.Background(), "strict")
		return b && err == nil
	}, "the failed run to block flow strict")
	// ...and once a scheduling pass has looked at the run, it has had its
	// chance to start it.
	h.scheduledSaw(t, blocked.ID)
	if rs := h.runs(t, "strict"); rs[1].Status != store.RunPending {
		t.Fatalf("strict_sequential after a failure: run %d is %s, want pending", rs[1].ID, rs[1].Status)
	}
	// As `baton flow unblock` does.
	if err := h.st.Unblock(context.Background(), "strict"); err != nil {
		t.Fatal(err)
	}
	h.o.WakeSchedule()
	if rs := h.waitRuns(t, "strict", 2); rs[1].Status != store.RunSucceeded {
		t.Fatalf("after unblock: %s", rs[1].Status)
	}
}

// scheduledSaw waits for a scheduling pass that looked at pending run id.
func (h *harness) scheduledSaw(t *testing.T, id int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		seen := h.o.Scheduled().Wait(t, time.Until(deadline))
		if slices.ContainsFunc(seen, func(r store.Run) bool { return r.ID == id }) {
			return
		}
	}
}

func TestDrainHandsBackAndNextOrchestratorFinishes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config{Workers: 1, Drain: 10 * time.Second})
	h.apply(t, `name: long
steps:
  - name: a
    foreach: [1, 2, 3, 4]
    run: sleep 0.3; echo "$BATON_FOREACH_ITEM" > "$BATON_OUTPUT_DIR/x"
  - name: b
    needs: [a]
    run: 'true'
`)
	h.createRun(t, "long", nil)
	testwait.For(t, 10*time.Second, func() bool {
		rs := h.runs(t, "long")
		if len(rs) == 0 {
			return false
		}
		// One of the first two tasks runs (a busy machine may poll past
		// the first one's 0.3 s); the last has not started.
		ts, _ := h.st.Tasks(context.Background(), rs[0].ID, "a")
		return len(ts) == 4 && (ts[0].Status == store.TaskRunning || ts[1].Status == store.TaskRunning) && ts[3].Status == store.TaskPending
	}, "the run to start")
	h.stop() // SIGTERM: the running task finishes, nothing new starts
	rs := h.runs(t, "long")
	if rs[0].Status != store.RunRunning || rs[0].Owner != "" {
		t.Fatalf("after a graceful stop: %s owner %q", rs[0].Status, rs[0].Owner)
	}
	ts, _ := h.st.Tasks(context.Background(), rs[0].ID, "a")
	if ts[0].Status != store.TaskSucceeded || ts[3].Status != store.TaskPending {
		t.Fatalf("tasks after the drain: %s ... %s", ts[0].Status, ts[3].Status)
	}
	// The next one takes it over and finishes it, reusing task 0.
	h.restart(t, config{Workers: 2})
	rs = h.waitRuns(t, "long", 2)
	if rs[0].Status != store.RunFailed || !strings.Contains(rs[0].Error, "handed back") || rs[1].Status != store.RunSucceeded || rs[1].OriginRunID != rs[0].ID {
		t.Fatalf("after the next orchestrator: %+v", rs)
	}
	ts, _ = h.st.Tasks(context.Background(), rs[1].ID, "a")
	if !ts[0].Reused() {
		t.Fatal("the task that finished before the stop ran again")
	}
}

// The same orchestration on the shared store: PostgreSQL, tasks through
// its queue, leadership by advisory lock.
func TestOnPostgres(t *testing.T) {
	t.Parallel()
	pgtest.Require(t)
	pg := config{Queue: true}
	t.Run("fan-out, params and dedupe", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, pg)
		h.apply(t, subscriber("big", "params.row_count > 100", ""), subscriber("all", "", ""))
		h.publish(t, "features_ready", "p1", map[string]any{"date": "d", "row_count": 500})
		h.publish(t, "features_ready", "p1", map[string]any{"date": "d", "row_count": 500})
		sg, _ := h.publish(t, "features_ready", "p2", map[string]any{"date": "e", "row_count": 5})
		if rs := h.waitRuns(t, "big", 1); rs[0].Status != store.RunSucceeded || param(t, rs[0], "date") != "d" {
			t.Fatalf("big: %+v", rs)
		}
		if rs := h.waitRuns(t, "all", 2); len(rs) != 2 {
			t.Fatalf("all: %+v", rs)
		}
		h.evaluated(t, sg)
		if rs := h.runs(t, "big"); len(rs) != 1 {
			t.Fatalf("big ran %d times", len(rs))
		}
	})
	t.Run("join and on_finish", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, pg)
		h.apply(t, `name: joined
params:
  date: {default: none}
triggers:
  - signals: [features_ready, labels_ready]
    join_keys: [date]
steps:
  - name: a
    run: 'true'
`, `name: after
triggers:
  - on_finish: {flow: joined}
steps:
  - name: a
    run: 'true'
`)
		h.publish(t, "features_ready", "f", map[string]any{"date": "d1", "row_count": 1})
		h.publish(t, "labels_ready", "l", map[string]any{"date": "d1"})
		h.waitRuns(t, "joined", 1)
		if rs := h.waitRuns(t, "after", 1); rs[0].Trigger != store.TriggerFinish {
			t.Fatalf("after: %+v", rs)
		}
	})
	t.Run("sequential strategy", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, config{Queue: true, Workers: 4})
		h.apply(t, strategyFlow("seq", "sequential", 1, "sleep 0.2"))
		for i := range 3 {
			h.createRun(t, "seq", map[string]any{"n": i})
		}
		if most := h.overlap(t, "seq", 3); most != 1 {
			t.Errorf("sequential ran %d at once", most)
		}
	})
}
