package orchestrate_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/orchestrate"
	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/testwait"
)

func subscriber(name, when, extra string) string {
	w := ""
	if when != "" {
		w = fmt.Sprintf("\n    when: '%s'", when)
	}
	return fmt.Sprintf(`name: %s
params:
  date: {default: none}
  row_count: {type: int, default: 0}
triggers:
  - signal: features_ready%s%s
steps:
  - name: a
    run: printf '%%s' "$BATON_PARAM_DATE" > "$BATON_OUTPUT_DIR/date"
`, name, w, extra)
}

func TestConditionalFanOutAndParams(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config{})
	h.apply(t, subscriber("big", "params.row_count > 100", ""), subscriber("us", `params.region == "US"`, ""), subscriber("all", "", ""))
	sg, _ := h.publish(t, "features_ready", "f1", map[string]any{"date": "2026-11-28", "row_count": 500, "region": "EU"})
	big := h.waitRuns(t, "big", 1)
	all := h.waitRuns(t, "all", 1)
	for _, run := range []store.Run{big[0], all[0]} {
		if run.Status != store.RunSucceeded || run.Trigger != store.TriggerSignal || !strings.Contains(run.TriggerDetail, "f1") {
			t.Fatalf("triggered run: %+v", run)
		}
		if param(t, run, "date") != "2026-11-28" || param(t, run, "row_count") != "500" {
			t.Fatalf("params from the signal: %v", run.Params)
		}
	}
	// The region condition was not met: once the signal is evaluated,
	// nothing of "us" may exist.
	h.evaluated(t, sg)
	if us := h.runs(t, "us"); len(us) != 0 {
		t.Fatalf("a condition that does not hold started %d run(s)", len(us))
	}
}

// The API's answers to a duplicate (200, "created": false) are tested in
// package server; here, what the orchestrator does with it.
func TestDedupeBySignalID(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config{})
	h.apply(t, subscriber("once", "", ""))
	_, first := h.publish(t, "features_ready", "same-id", map[string]any{"date": "d", "row_count": 1})
	again, second := h.publish(t, "features_ready", "same-id", map[string]any{"date": "other", "row_count": 2})
	if !first || second || param(t, store.Run{Params: again.Params}, "date") != "d" {
		t.Fatalf("publish twice: created %v then %v, second answered %v", first, second, again.Params)
	}
	h.waitRuns(t, "once", 1)
	// Evaluating every signal again (a restart losing its cursor) fires nothing new.
	if err := h.st.SetCursor(context.Background(), orchestrate.SignalsCursor, 0); err != nil {
		t.Fatal(err)
	}
	if err := h.o.EvalSignals(context.Background()); err != nil {
		t.Fatal(err)
	}
	if rs := h.runs(t, "once"); len(rs) != 1 || param(t, rs[0], "date") != "d" {
		t.Fatalf("runs after a duplicate and a re-evaluation: %+v", rs)
	}
}

func TestTriggerParamMappingAndFailures(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config{})
	h.apply(t, `name: mapped
params:
  model: {default: none}
  rows: {type: int}
triggers:
  - signal: features_ready
    params:
      model: '"recs-" + params.feature_version'
      rows: 'params.row_count * 2'
steps:
  - name: a
    run: 'true'
`, `name: needs-region
params:
  region: {type: int}
triggers:
  - signal: features_ready
steps:
  - name: a
    run: 'true'
`)
	h.publish(t, "features_ready", "m1", map[string]any{"date": "d", "row_count": 21, "feature_version": "v7", "region": "US"})
	rs := h.waitRuns(t, "mapped", 1)
	if param(t, rs[0], "model") != "recs-v7" || param(t, rs[0], "rows") != "42" || rs[0].Status != store.RunSucceeded {
		t.Fatalf("mapped run: %+v", rs[0])
	}
	bad := h.waitRuns(t, "needs-region", 1)
	if bad[0].Status != store.RunFailed || !strings.Contains(bad[0].Error, "params.region") || !strings.Contains(bad[0].Error, "int") {
		t.Fatalf("a run whose params do not fit: %s %q", bad[0].Status, bad[0].Error)
	}
}

func TestJoinTrigger(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config{})
	h.apply(t, `name: joined
params:
  date: {default: none}
  labels: {type: int, default: 0}
  row_count: {type: int, default: 0}
triggers:
  - signals: [features_ready, labels_ready]
    join_keys: [date]
steps:
  - name: a
    run: 'true'
`)
	h.publish(t, "features_ready", "f-d1", map[string]any{"date": "d1", "row_count": 10})
	sg, _ := h.publish(t, "labels_ready", "l-d2", map[string]any{"date": "d2", "labels": 3})
	h.evaluated(t, sg)
	if rs := h.runs(t, "joined"); len(rs) != 0 {
		t.Fatalf("a join fired without agreeing keys: %+v", rs)
	}
	h.publish(t, "labels_ready", "l-d1", map[string]any{"date": "d1", "labels": 7})
	rs := h.waitRuns(t, "joined", 1)
	if param(t, rs[0], "date") != "d1" || param(t, rs[0], "labels") != "7" || param(t, rs[0], "row_count") != "10" || rs[0].Trigger != store.TriggerJoin {
		t.Fatalf("join run: %+v", rs[0])
	}
	// The parts were used up: another labels for d1 waits for new features.
	sg, _ = h.publish(t, "labels_ready", "l-d1-again", map[string]any{"date": "d1", "labels": 8})
	h.evaluated(t, sg)
	if rs := h.runs(t, "joined"); len(rs) != 1 {
		t.Fatalf("a used-up join fired again: %d runs", len(rs))
	}
	h.publish(t, "features_ready", "f-d2", map[string]any{"date": "d2", "row_count": 1})
	if rs := h.waitRuns(t, "joined", 2); param(t, rs[1], "date") != "d2" {
		t.Fatalf("second join: %+v", rs[1])
	}
}

func TestOnFinish(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config{})
	h.apply(t, `name: up
params:
  date: {default: x}
  fail: {type: bool, default: false}
steps:
  - name: a
    run: '[ "$BATON_PARAM_FAIL" = false ]'
`, `name: after-success
params:
  date: {default: none}
triggers:
  - on_finish: {flow: up}
steps:
  - name: a
    run: 'true'
`, `name: after-failure
params:
  source: {type: int, default: 0}
triggers:
  - on_finish: {flow: up, status: [failed]}
    params: {source: 'run.id'}
steps:
  - name: a
    run: 'true'
`)
	h.createRun(t, "up", map[string]any{"date": "d9"})
	ok := h.waitRuns(t, "after-success", 1)
	if param(t, ok[0], "date") != "d9" || ok[0].Trigger != store.TriggerFinish {
		t.Fatalf("on_finish run: %+v", ok[0])
	}
	failing := h.createRun(t, "up", map[string]any{"fail": true})
	bad := h.waitRuns(t, "after-failure", 1)
	if param(t, bad[0], "source") != fmt.Sprint(failing.ID) {
		t.Fatalf("on_finish failed run params: %v, want source %d", bad[0].Params, failing.ID)
	}
	if rs := h.runs(t, "after-success"); len(rs) != 1 {
		t.Fatalf("a failure triggered the success subscriber: %d runs", len(rs))
	}
}

func TestWaitingStepWakesOnPublish(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config{})
	h.apply(t, `name: waits
steps:
  - name: a
    wait: {signal: labels_ready, when: 'params.labels > 5', timeout: 30s}
    run: printf '%s' "$BATON_SIGNAL_PARAMS" > "$BATON_OUTPUT_DIR/got"
`)
	h.createRun(t, "waits", nil)
	testwait.For(t, 10*time.Second, func() bool {
		rs := h.runs(t, "waits")
		if len(rs) == 0 {
			return false
		}
		steps, _ := h.st.Steps(context.Background(), rs[0].ID)
		return len(steps) == 1 && steps[0].Status == store.TaskWaiting
	}, "the step to wait")
	h.publish(t, "labels_ready", "few", map[string]any{"date": "d", "labels": 1})
	start := time.Now()
	h.publish(t, "labels_ready", "many", map[string]any{"date": "d", "labels": 9})
	rs := h.waitRuns(t, "waits", 1)
	if rs[0].Status != store.RunSucceeded || time.Since(start) > 5*time.Second {
		t.Fatalf("waiting run: %s after %s", rs[0].Status, time.Since(start))
	}
	steps, _ := h.st.Steps(context.Background(), rs[0].ID)
	if steps[0].SignalID != "many" {
		t.Fatalf("the step took signal %q", steps[0].SignalID)
	}
}

func TestHotReload(t *testing.T) {
	t.Parallel()
	h := newHarness(t, config{Reload: 200 * time.Millisecond})
	// Applied behind the orchestrator's back, as another process would.
	h.applyNoWait(t, subscriber("late", "", ""))
	start := time.Now()
	testwait.For(t, 2*time.Second, func() bool { return h.o.HasFlow("late") }, "a flow applied while running to be picked up within 2s")
	t.Logf("picked up after %s", time.Since(start))
	h.publish(t, "features_ready", "x", map[string]any{"date": "d", "row_count": 1})
	h.waitRuns(t, "late", 1)
}

func TestCronTicksAndCatchup(t *testing.T) {
	t.Parallel()
	h := openHarness(t, config{}) // not started: the cron logic driven by hand, with a clock of our own
	now := time.Date(2026, 11, 28, 10, 0, 30, 0, time.UTC)
	h.o.SetClock(func() time.Time { return now }, now)
	for _, policy := range []string{"none", "last", "all"} {
		extra := ""
		if policy == "all" {
			extra = "\n    catchup_max: 3"
		}
		h.applyNoWait(t, fmt.Sprintf(`name: cron-%s
triggers:
  - cron: "@every 1m"
    catchup: %s%s
steps:
  - name: a
    run: 'true'
`, policy, policy, extra))
	}
	ctx := context.Background()
	if err := h.o.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := h.o.CronTick(ctx); err != nil { // first sight: cursors start now
		t.Fatal(err)
	}
	now = now.Add(time.Minute) // one tick, on time
	if _, err := h.o.CronTick(ctx); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"none", "last", "all"} {
		if rs := h.runs(t, "cron-"+p); len(rs) != 1 || rs[0].Trigger != store.TriggerCron {
			t.Fatalf("cron-%s after one tick: %d runs", p, len(rs))
		}
	}
	// The same moment again (a second loop, a restart) fires nothing.
	if _, err := h.o.CronTick(ctx); err != nil {
		t.Fatal(err)
	}
	// Down for ten minutes: ten ticks missed; the orchestrator is back now.
	now = now.Add(10*time.Minute + 20*time.Second)
	h.o.SetClock(func() time.Time { return now }, now)
	if _, err := h.o.CronTick(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"none": 1, "last": 2, "all": 4}
	for p, n := range want {
		if rs := h.runs(t, "cron-"+p); len(rs) != n {
			t.Errorf("cron-%s after ten missed ticks: %d runs, want %d", p, len(rs), n)
		}
	}
}
