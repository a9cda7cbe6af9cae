package orchestrate_test

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/orchestrate"
	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/testwait"
)

// clock is a cron clock the test moves.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Two orchestrators on one store, no server: one leads; a signal starts a
// run that finishes, a cron tick fires once; then the leader stops, the
// other takes the lead, and nothing it sees again fires twice.
func TestTwoOrchestratorsFireEachOnce(t *testing.T) {
	t.Parallel()
	clk := &clock{now: time.Date(2026, 11, 28, 10, 0, 30, 0, time.UTC)}
	cfg := config{Now: clk.Now}
	h := openHarness(t, cfg)
	h.applyNoWait(t, subscriber("on-signal", "", ""), `name: on-cron
triggers:
  - cron: "@every 1m"
steps:
  - name: a
    run: 'true'
`)
	h.start(t, cfg)
	second, secondEng := h.newOrchestrator(t, cfg)
	if err := second.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { second.Stop(); secondEng.Close() })
	if second.Leading() {
		t.Fatal("two orchestrators of one home lead at once")
	}

	// A signal: one run, executed to its end.
	sg, _ := h.publish(t, "features_ready", "s1", map[string]any{"date": "2026-11-28", "row_count": 1})
	rs := h.waitRuns(t, "on-signal", 1)
	if rs[0].Status != store.RunSucceeded || param(t, rs[0], "date") != "2026-11-28" {
		t.Fatalf("triggered run: %+v", rs[0])
	}
	// A cron tick: the first look sets the trigger's cursor (no catch-up
	// from the epoch); a minute later one tick is due.
	keys := h.o.CronCursors()
	if len(keys) != 1 {
		t.Fatalf("cron triggers: %v", keys)
	}
	var c0 int64
	testwait.For(t, 10*time.Second, func() bool {
		c, err := h.st.Cursor(context.Background(), keys[0])
		c0 = c
		return err == nil && c > 0
	}, "the cron trigger's cursor to be set")
	clk.add(time.Minute)
	rs = h.waitRuns(t, "on-cron", 1)
	if rs[0].Trigger != store.TriggerCron || rs[0].Status != store.RunSucceeded {
		t.Fatalf("cron run: %+v", rs[0])
	}

	// The leader stops; the other leads within its campaign's retry.
	h.stop()
	testwait.For(t, 20*time.Second, second.Leading, "the second orchestrator to lead")
	h.o = second
	// It has the signal again (published anew, and its cursor lost) and
	// the same moment on the clock: nothing fires twice.
	if _, created := h.publish(t, "features_ready", "s1", map[string]any{"date": "2026-11-28", "row_count": 1}); created {
		t.Fatal("a signal id published twice was stored twice")
	}
	if err := h.st.SetCursor(context.Background(), orchestrate.SignalsCursor, 0); err != nil {
		t.Fatal(err)
	}
	second.WakeSignals()
	h.evaluated(t, sg)
	// Its cron cursor lost too (as if the old leader died between firing
	// the tick and moving the cursor): the tick it catches up on was fired
	// already, and its firing key keeps it from firing again.
	if err := h.st.SetCursor(context.Background(), keys[0], c0); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 10*time.Second, func() bool {
		c, err := h.st.Cursor(context.Background(), keys[0])
		return err == nil && c > c0
	}, "the new leader to catch up on the cron tick")
	if rs := h.runs(t, "on-cron"); len(rs) != 1 {
		t.Fatalf("a cron tick caught up on after a hand-over fired again: %d runs", len(rs))
	}
	// A tick later, the new leader fires it: once.
	clk.add(time.Minute)
	rs = h.waitRuns(t, "on-cron", 2)
	if len(rs) != 2 {
		t.Fatalf("cron runs after the hand-over: %+v", rs)
	}
	if rs := h.runs(t, "on-signal"); len(rs) != 1 {
		t.Fatalf("the signal fired %d runs, want 1", len(rs))
	}
	fires, err := h.st.Fires(context.Background(), store.FireFilter{SignalID: "s1"})
	if err != nil || len(fires) != 1 {
		t.Fatalf("firings of s1: %+v %v", fires, err)
	}
}

func TestStartTwiceAndStopUnstarted(t *testing.T) {
	t.Parallel()
	h := openHarness(t, config{})
	h.o.Stop() // never started: nothing to stop
	h.start(t, config{})
	if err := h.o.Start(context.Background()); !errors.Is(err, orchestrate.ErrStarted) {
		t.Fatalf("second Start: %v, want ErrStarted", err)
	}
}

// The orchestrator is built without an HTTP stack: no package it links
// imports net/http.
func TestNoNetHTTP(t *testing.T) {
	t.Parallel()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	out, err := exec.Command(goBin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == "net/http" {
			t.Fatal("package orchestrate links net/http")
		}
	}
}
