package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/catalog"
	"github.com/baton-ml/baton/internal/engine"
	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/store/pgtest"
	"github.com/baton-ml/baton/internal/token"
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
	h := newHarness(t, Options{})
	h.apply(t, subscriber("big", "params.row_count > 100", ""), subscriber("us", `params.region == "US"`, ""), subscriber("all", "", ""))
	r := h.publish(t, "features_ready", "f1", map[string]any{"date": "2026-11-28", "row_count": 500, "region": "EU"})
	if r.code != 201 {
		t.Fatalf("publish: %d %s", r.code, r.body)
	}
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
	// The region condition was not met: once the server has evaluated the
	// signal, no run of us may exist.
	h.waitEvaluated(t)
	if us := h.runs(t, "us"); len(us) != 0 {
		t.Fatalf("a condition that does not hold started %d run(s)", len(us))
	}
}

func TestDedupeBySignalID(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	h.apply(t, subscriber("once", "", ""))
	first := h.publish(t, "features_ready", "same-id", map[string]any{"date": "d", "row_count": 1})
	second := h.publish(t, "features_ready", "same-id", map[string]any{"date": "other", "row_count": 2})
	if first.code != 201 || second.code != 200 || !strings.Contains(string(second.body), `"created": false`) {
		t.Fatalf("publish twice: %d then %d %s", first.code, second.code, second.body)
	}
	h.waitRuns(t, "once", 1)
	// Evaluating every signal again (a restart losing its cursor) fires nothing new.
	if err := h.st.SetCursor(context.Background(), signalsCursor, 0); err != nil {
		t.Fatal(err)
	}
	if err := h.s.evalSignals(context.Background()); err != nil {
		t.Fatal(err)
	}
	// And so does the server's own pass, should it run again meanwhile.
	h.waitEvaluated(t)
	if rs := h.runs(t, "once"); len(rs) != 1 || param(t, rs[0], "date") != "d" {
		t.Fatalf("runs after a duplicate and a re-evaluation: %+v", rs)
	}
}

func TestTriggerParamMappingAndFailures(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
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
	if bad[0].Status != store.RunFailed || !strings.Contains(bad[0].Error, "param region") || !strings.Contains(bad[0].Error, "int") {
		t.Fatalf("a run whose params do not fit: %s %q", bad[0].Status, bad[0].Error)
	}
}

func TestJoinTrigger(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
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
	h.publish(t, "labels_ready", "l-d2", map[string]any{"date": "d2", "labels": 3})
	h.waitEvaluated(t)
	if rs := h.runs(t, "joined"); len(rs) != 0 {
		t.Fatalf("a join fired without agreeing keys: %+v", rs)
	}
	h.publish(t, "labels_ready", "l-d1", map[string]any{"date": "d1", "labels": 7})
	rs := h.waitRuns(t, "joined", 1)
	if param(t, rs[0], "date") != "d1" || param(t, rs[0], "labels") != "7" || param(t, rs[0], "row_count") != "10" || rs[0].Trigger != store.TriggerJoin {
		t.Fatalf("join run: %+v", rs[0])
	}
	// The parts were used up: another labels for d1 waits for new features.
	h.publish(t, "labels_ready", "l-d1-again", map[string]any{"date": "d1", "labels": 8})
	h.waitEvaluated(t)
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
	h := newHarness(t, Options{})
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
	if r := h.do(t, "POST", "/api/v1/flows/up/runs", map[string]any{"params": map[string]any{"date": "d9"}}, ""); r.code != 201 {
		t.Fatalf("create run: %d %s", r.code, r.body)
	}
	ok := h.waitRuns(t, "after-success", 1)
	if param(t, ok[0], "date") != "d9" || ok[0].Trigger != store.TriggerFinish {
		t.Fatalf("on_finish run: %+v", ok[0])
	}
	r := h.do(t, "POST", "/api/v1/flows/up/runs", map[string]any{"params": map[string]any{"fail": true}}, "")
	var failing store.Run
	r.json(t, &failing)
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
	h := newHarness(t, Options{})
	h.apply(t, `name: waits
steps:
  - name: a
    wait: {signal: labels_ready, when: 'params.labels > 5', timeout: 30s}
    run: printf '%s' "$BATON_SIGNAL_PARAMS" > "$BATON_OUTPUT_DIR/got"
`)
	h.do(t, "POST", "/api/v1/flows/waits/runs", map[string]any{}, "")
	waitUntil(t, 10*time.Second, func() bool {
		rs := h.runs(t, "waits")
		if len(rs) == 0 {
			return false
		}
		steps, _ := h.st.Steps(context.Background(), rs[0].ID)
		return len(steps) == 1 && steps[0].Status == store.TaskWaiting
	}, "the step never waited")
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
	waitUntil(t, 30*time.Second, func() bool {
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
	}, "%d ended runs of %s", n, flow)
	return most
}

func TestStrategies(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{Workers: 4})
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
	create := func(flow string, n int) {
		if r := h.do(t, "POST", "/api/v1/flows/"+flow+"/runs", map[string]any{"params": map[string]any{"n": n}}, ""); r.code != 201 {
			t.Fatalf("create run of %s: %d %s", flow, r.code, r.body)
		}
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
	waitUntil(t, 10*time.Second, func() bool { rs := h.runs(t, "first"); return rs[0].Status == store.RunRunning }, "the first run of first to run")
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
	waitUntil(t, 10*time.Second, finished("first", 2), "first_only to drop the runs that arrived during a run")
	open("first")
	first := h.waitRuns(t, "first", 3)
	if first[0].Status != store.RunSucceeded || first[1].Status != store.RunCancelled || !strings.Contains(first[2].Error, "first_only") {
		t.Errorf("first_only: %s %s %s %q", first[0].Status, first[1].Status, first[2].Status, first[2].Error)
	}
	// last_only: of the runs waiting, only the newest runs.
	create("last", 0)
	waitUntil(t, 10*time.Second, func() bool { rs := h.runs(t, "last"); return rs[0].Status == store.RunRunning }, "the first run of last to run")
	create("last", 1)
	create("last", 2)
	waitUntil(t, 10*time.Second, finished("last", 1), "last_only to drop the superseded run")
	open("last")
	last := h.waitRuns(t, "last", 3)
	if last[0].Status != store.RunSucceeded || last[1].Status != store.RunCancelled || !strings.Contains(last[1].Error, "superseded") || last[2].Status != store.RunSucceeded {
		t.Errorf("last_only: %s %s(%q) %s", last[0].Status, last[1].Status, last[1].Error, last[2].Status)
	}
	// strict_sequential: a failure blocks the queue until unblocked.
	create("strict", 1)
	h.waitRuns(t, "strict", 1)
	// The block is recorded just after the run ends; a run created before
	// it would start, rightly.
	waitUntil(t, 10*time.Second, func() bool {
		_, blocked, _ := h.st.Blocked(context.Background(), "strict")
		return blocked
	}, "strict to be blocked by its failed run")
	create("strict", 2)
	// A scheduling pass that has seen run 2 must leave it pending.
	if err := h.s.schedule(context.Background()); err != nil {
		t.Fatal(err)
	}
	if rs := h.runs(t, "strict"); rs[1].Status != store.RunPending {
		t.Fatalf("strict_sequential after a failure: run %d is %s, want pending", rs[1].ID, rs[1].Status)
	}
	if r := h.do(t, "POST", "/api/v1/flows/strict/unblock", nil, ""); r.code != 200 {
		t.Fatalf("unblock: %d %s", r.code, r.body)
	}
	if rs := h.waitRuns(t, "strict", 2); rs[1].Status != store.RunSucceeded {
		t.Fatalf("after unblock: %s", rs[1].Status)
	}
}

func TestCronTicksAndCatchup(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	h.stop() // drive the cron logic by hand, with a clock of our own
	now := time.Date(2026, 11, 28, 10, 0, 30, 0, time.UTC)
	h.s.opt.Now = func() time.Time { return now }
	h.s.upSince = now
	for _, policy := range []string{"none", "last", "all"} {
		extra := ""
		if policy == "all" {
			extra = "\n    catchup_max: 3"
		}
		h.applyQuiet(t, fmt.Sprintf(`name: cron-%s
triggers:
  - cron: "@every 1m"
    catchup: %s%s
steps:
  - name: a
    run: 'true'
`, policy, policy, extra))
	}
	ctx := context.Background()
	if _, err := h.s.cronTick(ctx); err != nil { // first sight: cursors start now
		t.Fatal(err)
	}
	now = now.Add(time.Minute) // one tick, on time
	if _, err := h.s.cronTick(ctx); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"none", "last", "all"} {
		if rs := h.runs(t, "cron-"+p); len(rs) != 1 || rs[0].Trigger != store.TriggerCron {
			t.Fatalf("cron-%s after one tick: %d runs", p, len(rs))
		}
	}
	// The same moment again (a second loop, a restart) fires nothing.
	if _, err := h.s.cronTick(ctx); err != nil {
		t.Fatal(err)
	}
	// Down for ten minutes: ten ticks missed; the server is back now.
	now = now.Add(10*time.Minute + 20*time.Second)
	h.s.upSince = now
	if _, err := h.s.cronTick(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"none": 1, "last": 2, "all": 4}
	for p, n := range want {
		if rs := h.runs(t, "cron-"+p); len(rs) != n {
			t.Errorf("cron-%s after ten missed ticks: %d runs, want %d", p, len(rs), n)
		}
	}
}

// applyQuiet registers documents without a running server.
func (h *harness) applyQuiet(t *testing.T, docs ...string) {
	t.Helper()
	h.applyNoWait(t, docs...)
	if err := h.s.reload(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{RequireAuth: true})
	mk := func(role store.Role) string {
		secret, tk, err := token.New(string(role)+"-user", role)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.st.CreateToken(context.Background(), tk); err != nil {
			t.Fatal(err)
		}
		return secret
	}
	viewer, operator, admin := mk("viewer"), mk("operator"), mk("admin")
	sig := map[string]any{"name": "labels_ready", "params": map[string]any{"date": "d"}}
	cases := []struct {
		method, path string
		body         any
		tok          string
		code         int
	}{
		{"GET", "/api/v1/runs", nil, "", 401},
		{"GET", "/api/v1/runs", nil, "bt_wrong", 401},
		{"GET", "/api/v1/runs", nil, viewer, 200},
		{"POST", "/api/v1/signals", sig, viewer, 403},
		{"POST", "/api/v1/signals", sig, operator, 201},
		{"GET", "/api/v1/tokens", nil, operator, 403},
		{"GET", "/api/v1/tokens", nil, admin, 200},
		{"POST", "/api/v1/tokens", map[string]any{"name": "ci", "role": "viewer"}, admin, 201},
		{"GET", "/healthz", nil, "", 200},
		{"GET", "/metrics", nil, "", 200},
	}
	for _, c := range cases {
		if r := h.do(t, c.method, c.path, c.body, c.tok); r.code != c.code {
			t.Errorf("%s %s with %q: %d, want %d: %s", c.method, c.path, c.tok, r.code, c.code, r.body)
		}
	}
	if r := h.do(t, "GET", "/api/v1/runs", nil, ""); !strings.Contains(string(r.body), "baton token create") {
		t.Errorf("401 says what to do? %s", r.body)
	}
}

func TestBadRequests(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	h.apply(t, subscriber("sub", "", ""))
	cases := []struct {
		method, path string
		body         any
		code         int
		want         string
	}{
		{"POST", "/api/v1/signals", `{"name": "features_ready", "params": `, 400, "malformed JSON"},
		{"POST", "/api/v1/signals", `{"name": "features_ready", "extra": 1}`, 400, "unknown field"},
		{"POST", "/api/v1/signals", ``, 400, "empty body"},
		{"POST", "/api/v1/signals", `{"name": "features_ready", "params": {"date": "` + strings.Repeat("x", 2<<20) + `"}}`, 413, "larger than"},
		{"POST", "/api/v1/signals", map[string]any{"name": "features_ready", "params": map[string]any{"date": "d", "row_count": "many"}}, 400, "row_count"},
		{"POST", "/api/v1/signals", map[string]any{"name": "features_ready", "params": map[string]any{"row_count": 1}}, 400, "date"},
		{"POST", "/api/v1/signals", map[string]any{"name": "nobody_declared", "params": map[string]any{}}, 400, "no contract"},
		{"POST", "/api/v1/signals", map[string]any{"name": "Bad Name"}, 400, "not a signal name"},
		{"GET", "/api/v1/runs/abc", nil, 400, "positive number"},
		{"GET", "/api/v1/runs/999", nil, 404, "not found"},
		{"GET", "/api/v1/runs?status=weird", nil, 400, "status"},
		{"GET", "/api/v1/artifacts/1/a/..%2F..%2Fetc", nil, 400, ".."},
		{"POST", "/api/v1/flows/sub/runs", map[string]any{"params": map[string]any{"row_count": "x"}}, 400, "row_count"},
		{"POST", "/api/v1/flows/sub/runs", map[string]any{"params": map[string]any{"nope": 1}}, 400, "has no param"},
		{"POST", "/api/v1/flows/nope/runs", map[string]any{}, 404, "nope"},
		{"POST", "/api/v1/flows", map[string]any{"files": []map[string]any{{"path": "x.yaml", "content": "name: x\nsteps:\n  - name: a\n    needs: [zz]\n    run: 'true'\n"}}}, 400, "zz"},
		{"GET", "/api/v1/nothing", nil, 404, "no endpoint"},
	}
	for _, c := range cases {
		r := h.do(t, c.method, c.path, c.body, "")
		if r.code != c.code || !strings.Contains(string(r.body), c.want) {
			t.Errorf("%s %s: %d %s, want %d mentioning %q", c.method, c.path, r.code, r.body, c.code, c.want)
		}
	}
	if sigs, _ := h.st.Signals(context.Background(), store.SignalFilter{}); len(sigs) != 0 {
		t.Fatalf("refused requests stored %d signals", len(sigs))
	}
	if rs := h.runs(t, "sub"); len(rs) != 0 {
		t.Fatalf("refused requests created %d runs", len(rs))
	}
}

func TestHotReload(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{Reload: 200 * time.Millisecond})
	// Applied behind the server's back, as another process would.
	h.applyNoWait(t, subscriber("late", "", ""))
	start := time.Now()
	waitUntil(t, 2*time.Second, func() bool { return h.s.defs.Load().flows["late"] != nil }, "a flow applied while running was not picked up within 2s")
	t.Logf("picked up after %s", time.Since(start))
	h.publish(t, "features_ready", "x", map[string]any{"date": "d", "row_count": 1})
	h.waitRuns(t, "late", 1)
}

func (h *harness) applyNoWait(t *testing.T, docs ...string) {
	t.Helper()
	var ds []catalog.Document
	for i, d := range docs {
		ds = append(ds, catalog.Document{Path: fmt.Sprintf("late%d.yaml", i), Dir: h.dir, Data: []byte(d)})
	}
	if _, err := catalog.Apply(context.Background(), h.st, ds); err != nil {
		t.Fatal(err)
	}
}

func TestDrainHandsBackAndNextServerFinishes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{Workers: 1, Drain: 10 * time.Second})
	h.apply(t, `name: long
steps:
  - name: a
    foreach: [1, 2, 3, 4]
    run: sleep 0.3; echo "$BATON_FOREACH_ITEM" > "$BATON_OUTPUT_DIR/x"
  - name: b
    needs: [a]
    run: 'true'
`)
	h.do(t, "POST", "/api/v1/flows/long/runs", map[string]any{}, "")
	waitUntil(t, 10*time.Second, func() bool {
		rs := h.runs(t, "long")
		if len(rs) == 0 {
			return false
		}
		// One of the first two tasks runs (a busy machine may poll past
		// the first one's 0.3 s); the last has not started.
		ts, _ := h.st.Tasks(context.Background(), rs[0].ID, "a")
		return len(ts) == 4 && (ts[0].Status == store.TaskRunning || ts[1].Status == store.TaskRunning) && ts[3].Status == store.TaskPending
	}, "never started")
	h.stop() // SIGTERM: the running task finishes, nothing new starts
	rs := h.runs(t, "long")
	if rs[0].Status != store.RunRunning || rs[0].Owner != "" {
		t.Fatalf("after a graceful stop: %s owner %q", rs[0].Status, rs[0].Owner)
	}
	ts, _ := h.st.Tasks(context.Background(), rs[0].ID, "a")
	if ts[0].Status != store.TaskSucceeded || ts[3].Status != store.TaskPending {
		t.Fatalf("tasks after the drain: %s ... %s", ts[0].Status, ts[3].Status)
	}
	// The next server takes it over and finishes it, reusing task 0.
	h.startServer(t, Options{Workers: 2})
	rs = h.waitRuns(t, "long", 2)
	if rs[0].Status != store.RunFailed || !strings.Contains(rs[0].Error, "handed back") || rs[1].Status != store.RunSucceeded || rs[1].OriginRunID != rs[0].ID {
		t.Fatalf("after the next server: %+v", rs)
	}
	ts, _ = h.st.Tasks(context.Background(), rs[1].ID, "a")
	if !ts[0].Reused() {
		t.Fatal("the task that finished before the stop ran again")
	}
}

func TestLineageAndOpenLineage(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	h.apply(t, `name: producer
steps:
  - name: make
    publish: [model_trained]
    run: |
      printf '{"model": "recs"}' > "$BATON_OUTPUT_DIR/model_trained.json"
`, `name: consumer
triggers:
  - signal: model_trained
steps:
  - name: a
    run: 'true'
`, `name: after
triggers:
  - on_finish: {flow: consumer}
steps:
  - name: a
    run: 'true'
`)
	h.do(t, "POST", "/api/v1/flows/producer/runs", map[string]any{}, "")
	h.waitRuns(t, "after", 1)
	prod := h.runs(t, "producer")[0]

	var sl struct {
		Publishers  []string `json:"publishers"`
		Subscribers []string `json:"subscribers"`
		Recent      []struct {
			ID            string  `json:"id"`
			TriggeredRuns []int64 `json:"triggered_runs"`
		} `json:"recent"`
	}
	h.do(t, "GET", "/api/v1/lineage/signals/model_trained", nil, "").json(t, &sl)
	cons := h.runs(t, "consumer")[0]
	if fmt.Sprint(sl.Publishers) != "[producer]" || fmt.Sprint(sl.Subscribers) != "[consumer]" || len(sl.Recent) != 1 ||
		fmt.Sprint(sl.Recent[0].TriggeredRuns) != fmt.Sprint([]int64{cons.ID}) {
		t.Fatalf("signal lineage: %+v", sl)
	}
	var fl struct {
		Flows []struct {
			Flow     string   `json:"flow"`
			Path     []string `json:"path"`
			Declared bool     `json:"declared"`
			Observed bool     `json:"observed"`
		} `json:"flows"`
	}
	h.do(t, "GET", "/api/v1/lineage/flows/producer?direction=downstream", nil, "").json(t, &fl)
	if len(fl.Flows) != 2 || fl.Flows[1].Flow != "after" ||
		strings.Join(fl.Flows[1].Path, " ") != "producer signal:model_trained consumer on_finish after" || !fl.Flows[1].Declared || !fl.Flows[1].Observed {
		t.Fatalf("downstream of producer: %+v", fl)
	}
	var rl struct {
		Downstream []struct {
			To struct {
				Flow string `json:"flow"`
			} `json:"to"`
			Via string `json:"via"`
		} `json:"downstream"`
	}
	h.do(t, "GET", fmt.Sprintf("/api/v1/lineage/runs/%d", prod.ID), nil, "").json(t, &rl)
	if len(rl.Downstream) != 2 || rl.Downstream[0].Via != "signal:model_trained" || rl.Downstream[1].To.Flow != "after" {
		t.Fatalf("run lineage: %+v", rl)
	}
	var evs []map[string]any
	h.do(t, "GET", fmt.Sprintf("/api/v1/lineage/runs/%d/openlineage", cons.ID), nil, "").json(t, &evs)
	if len(evs) != 2 || evs[0]["eventType"] != "START" || evs[1]["eventType"] != "COMPLETE" {
		t.Fatalf("openlineage: %v", evs)
	}
	run := evs[1]["run"].(map[string]any)
	if _, ok := run["facets"].(map[string]any)["parent"]; !ok || len(evs[1]["inputs"].([]any)) != 1 {
		t.Fatalf("openlineage of a triggered run lacks parent or inputs: %v", evs[1])
	}
}

// The same server on the shared store: PostgreSQL, tasks through its
// queue, leadership by advisory lock.
func TestOnPostgres(t *testing.T) {
	t.Parallel()
	pgtest.Require(t)
	pg := Options{Dispatch: engine.Queue}
	t.Run("fan-out, params and dedupe", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, pg)
		h.apply(t, subscriber("big", "params.row_count > 100", ""), subscriber("all", "", ""))
		h.publish(t, "features_ready", "p1", map[string]any{"date": "d", "row_count": 500})
		h.publish(t, "features_ready", "p1", map[string]any{"date": "d", "row_count": 500})
		h.publish(t, "features_ready", "p2", map[string]any{"date": "e", "row_count": 5})
		if rs := h.waitRuns(t, "big", 1); rs[0].Status != store.RunSucceeded || param(t, rs[0], "date") != "d" {
			t.Fatalf("big: %+v", rs)
		}
		if rs := h.waitRuns(t, "all", 2); len(rs) != 2 {
			t.Fatalf("all: %+v", rs)
		}
		h.waitEvaluated(t)
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
		h := newHarness(t, Options{Dispatch: engine.Queue, Workers: 4})
		h.apply(t, strategyFlow("seq", "sequential", 1, "sleep 0.2"))
		for i := range 3 {
			h.do(t, "POST", "/api/v1/flows/seq/runs", map[string]any{"params": map[string]any{"n": i}}, "")
		}
		if most := h.overlap(t, "seq", 3); most != 1 {
			t.Errorf("sequential ran %d at once", most)
		}
	})
}
