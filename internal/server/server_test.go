package server

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/store"
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

// The API's side of a duplicate: 201, then 200 with "created": false.
func TestDedupeBySignalID(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	h.apply(t, subscriber("once", "", ""))
	first := h.publish(t, "features_ready", "same-id", map[string]any{"date": "d", "row_count": 1})
	second := h.publish(t, "features_ready", "same-id", map[string]any{"date": "other", "row_count": 2})
	if first.code != 201 || second.code != 200 || !strings.Contains(string(second.body), `"created": false`) {
		t.Fatalf("publish twice: %d then %d %s", first.code, second.code, second.body)
	}
	if rs := h.waitRuns(t, "once", 1); len(rs) != 1 || param(t, rs[0], "date") != "d" {
		t.Fatalf("runs after a duplicate: %+v", rs)
	}
	// What a re-evaluation does with it is tested in package orchestrate
	// (TestDedupeBySignalID).
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
