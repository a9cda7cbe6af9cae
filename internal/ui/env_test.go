package ui_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/artifact"
	"github.com/baton-ml/baton/internal/feature"
	"github.com/baton-ml/baton/internal/home"
	"github.com/baton-ml/baton/internal/serve"
	"github.com/baton-ml/baton/internal/server"
	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/store/pgtest"
	"github.com/baton-ml/baton/internal/store/postgres"
	"github.com/baton-ml/baton/internal/store/sqlite"
	"github.com/baton-ml/baton/internal/testwait"
)

// env is a running baton server on a fresh home, as `baton server` runs.
type env struct {
	s      *server.Server
	st     store.Store
	blobs  *artifact.Store
	dir    string
	url    string
	client *http.Client
}

// The populated home: a flow whose description holds markup, with a
// fan-out, artifacts of every previewable kind and a param that makes it
// fail; a flow that waits for a file (a run to follow live or cancel);
// a signal contract and a flow it triggers.
const etlFlow = `name: etl
description: 'Loads the <script>alert("pwned")</script> data & more'
params:
  n: {type: int, default: 3}
  fail: {type: bool, default: false}
steps:
  - name: extract
    run: |
      awk -v n="$BATON_PARAM_N" 'BEGIN { printf "["; for (i = 0; i < n; i++) printf "%s\"item-%d\"", (i ? "," : ""), i; print "]" }' > "$BATON_OUTPUT_DIR/items.json"
      printf 'id,score,label\n1,0.5,<b>cat</b>\n2,0.7,dog\n' > "$BATON_OUTPUT_DIR/table.csv"
      mkdir "$BATON_OUTPUT_DIR/parts" && printf 'part one' > "$BATON_OUTPUT_DIR/parts/p1.txt"
      echo "extracted $BATON_PARAM_N items <script>x</script>"
  - name: transform
    needs: [extract]
    foreach: items.json
    run: printf '%s' "$BATON_FOREACH_ITEM" > "$BATON_OUTPUT_DIR/out.txt"
  - name: load
    needs: [transform]
    publish: [data_ready]
    run: |
      if [ "$BATON_PARAM_FAIL" = true ]; then echo "load failed on purpose" >&2; exit 3; fi
      printf '{"accuracy": 0.%s, "loss": 0.25}' "$BATON_PARAM_N" > "$BATON_OUTPUT_DIR/metrics.json"
      printf '{"date": "2026-12-0%s", "note": "%s"}' "$BATON_PARAM_N" "$(printf 'sha%.0s0123456789abcdef' 1 2 3 4 5 6 7 8)" > "$BATON_OUTPUT_DIR/data_ready.json"
      echo 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==' | base64 -d > "$BATON_OUTPUT_DIR/pixel.png"
      echo loaded
`

const gatedFlow = `name: gated
description: Waits until a file exists.
params:
  gate: {type: string}
steps:
  - name: wait
    run: |
      while [ ! -e "$BATON_PARAM_GATE" ]; do sleep 0.05; done
      echo opened
  - name: after
    needs: [wait]
    run: echo after
`

const signalsDoc = `signals:
  - name: data_ready
    description: A day's data is ready.
    params:
      date: {type: string, required: true}
      note: {type: string}
`

const reportFlow = `name: report
description: Reports on each day of data.
params:
  date: {type: string, default: none}
triggers:
  - signal: data_ready
    params: {date: params.date}
steps:
  - name: report
    run: echo "report for $BATON_PARAM_DATE"
`

func newEnv(t testing.TB) *env { return newEnvOn(t, false) }

// newEnvOn is newEnv on a fresh PostgreSQL schema when pg is set (skipped
// without PostgreSQL, failed under CI=true).
func newEnvOn(t testing.TB, pg bool) *env {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	db := "sqlite://" + filepath.Join(dir, "baton.db")
	var st store.Store
	var err error
	if pg {
		db = pgtest.DSN(t)
		st, err = postgres.Open(ctx, db)
	} else {
		st, err = sqlite.Open(ctx, filepath.Join(dir, "baton.db"), sqlite.Options{})
	}
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := artifact.Open(ctx, "file://"+filepath.Join(dir, "artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("BATON_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	hm := home.Home{Dir: dir, DB: db, Artifacts: "file://" + filepath.Join(dir, "artifacts")}
	s, err := server.New(st, blobs, hm, server.Options{Addr: "127.0.0.1:0", Poll: 50 * time.Millisecond, Reload: 100 * time.Millisecond,
		Workers: 4, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	e := &env{s: s, st: st, blobs: blobs, dir: dir, url: "http://" + s.Addr(), client: &http.Client{Transport: tr}}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
		tr.CloseIdleConnections()
		blobs.Close()
		st.Close()
	})
	testwait.For(t, 20*time.Second, s.Leading, "the server to lead")
	return e
}

// api sends a request with the home's token, as the CLI does.
func (e *env) api(t testing.TB, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.s.HomeToken())
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// get fetches a page with the home's token.
func (e *env) get(t testing.TB, path string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("GET", e.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+e.s.HomeToken())
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func (e *env) applyFlows(t testing.TB, docs ...string) {
	t.Helper()
	var files []map[string]string
	for i, d := range docs {
		files = append(files, map[string]string{"path": fmt.Sprintf("doc%d.yaml", i), "content": d})
	}
	if code, b := e.api(t, "POST", "/api/v1/flows", map[string]any{"files": files, "dir": e.dir}); code != 200 {
		t.Fatalf("apply: %d %s", code, b)
	}
}

// start queues a run through the API and returns its id.
func (e *env) start(t testing.TB, flow string, params map[string]any) int64 {
	t.Helper()
	code, b := e.api(t, "POST", "/api/v1/flows/"+flow+"/runs", map[string]any{"params": params})
	if code != 201 {
		t.Fatalf("start %s: %d %s", flow, code, b)
	}
	var r store.Run
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r.ID
}

// wait waits for run id to end and returns it.
func (e *env) wait(t testing.TB, id int64) store.Run {
	t.Helper()
	var r store.Run
	testwait.Until(t, 60*time.Second, func() (bool, string) {
		var err error
		r, err = e.st.Run(context.Background(), id)
		return err == nil && r.Status.Final(), fmt.Sprintf("%s %v", r.Status, err)
	}, "run %d to end", id)
	return r
}

// populated is a home with every kind of thing a page shows: a succeeded
// run of etl (two versions of it), a failed one, the report run the
// succeeded one's signal started.
type populated struct {
	*env
	ok, ok2, failed int64
}

func newPopulated(t testing.TB) *populated { return newPopulatedOn(t, false) }

func newPopulatedOn(t testing.TB, pg bool) *populated {
	t.Helper()
	e := newEnvOn(t, pg)
	e.applyFlows(t, signalsDoc, etlFlow, gatedFlow, reportFlow)
	p := &populated{env: e}
	p.ok = e.start(t, "etl", map[string]any{"n": 3})
	if r := e.wait(t, p.ok); r.Status != store.RunSucceeded {
		t.Fatalf("run %d: %s %s", p.ok, r.Status, r.Error)
	}
	// A second version of the flow, for the diff.
	e.applyFlows(t, signalsDoc, strings.Replace(etlFlow, "default: 3}", "default: 4}", 1), gatedFlow, reportFlow)
	p.ok2 = e.start(t, "etl", map[string]any{"n": 5})
	p.failed = e.start(t, "etl", map[string]any{"fail": true})
	e.wait(t, p.ok2)
	if r := e.wait(t, p.failed); r.Status != store.RunFailed {
		t.Fatalf("run %d: %s, want failed", p.failed, r.Status)
	}
	// The report runs the signals started.
	testwait.Until(t, 30*time.Second, func() (bool, string) {
		rs, err := e.st.Runs(context.Background(), store.RunFilter{Flow: "report"})
		if err != nil || len(rs) < 2 {
			return false, fmt.Sprintf("%d report runs, %v", len(rs), err)
		}
		for _, r := range rs {
			if !r.Status.Final() {
				return false, fmt.Sprintf("report run %d %s", r.ID, r.Status)
			}
		}
		return true, ""
	}, "the signals to start report runs")
	p.addModelsAndExperiments(t)
	p.addFeatures(t)
	return p
}

const featuresDoc = `entities:
  - name: member
    key: member_id
sources:
  - name: plays
    entity: member
    timestamp: ts
    fields: {title_id: string, minutes: float}
  - name: views
    entity: member
    timestamp: ts
    fields: {title_id: string}
features:
  - name: views_1h
    source: views
    aggregate: count
    window: 1h
    freshness_sla: 1h
  - name: plays_1h
    source: plays
    aggregate: count
    window: 1h
    description: Plays in the last hour <i>per member</i>.
  - name: minutes_24h
    source: plays
    aggregate: sum
    field: minutes
    window: 24h
    freshness_sla: 1h
    quality:
      - {check: not_null_rate, min: 0.5, action: block}
`

// addFeatures applies three features, sends the server an event of plays
// (so one is fresh; views, with an SLA too, has had none) and records a
// computation whose quality gate warned.
func (p *populated) addFeatures(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(p.dir, "features.yaml")
	if err := os.WriteFile(path, []byte(featuresDoc), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := feature.ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := feature.Apply(ctx, p.st, path, d); err != nil {
		t.Fatal(err)
	}
	// The server reloads the definitions by itself; an event for a source
	// it does not know yet is refused, so send until it is taken.
	ev := fmt.Sprintf(`{"member_id": "m1", "ts": %q, "title_id": "t1", "minutes": 12.5}`, time.Now().UTC().Format(time.RFC3339))
	testwait.Until(t, 20*time.Second, func() (bool, string) {
		req, _ := http.NewRequest("POST", p.url+"/api/v1/features/events/plays", strings.NewReader(ev))
		req.Header.Set("Authorization", "Bearer "+p.s.HomeToken())
		req.Header.Set("Content-Type", "application/json")
		resp, err := p.client.Do(req)
		if err != nil {
			return false, err.Error()
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == 200 && strings.Contains(string(b), `"accepted": 1`), fmt.Sprintf("%d %s", resp.StatusCode, b)
	}, "the server to take an event of plays")
	// A blocked computation, then a warned one: the features page shows
	// the warned one as the last, and both over time.
	mean := 12.5
	blocked, _ := json.Marshal(feature.Report{Status: "blocked", Rows: 30, Metrics: map[string]feature.Quality{"minutes_24h": {NotNullRate: 0.2, Mean: &mean}},
		Checks: []feature.Result{{Feature: "minutes_24h", Check: "not_null_rate", Action: "block", Value: 0.2, Passed: false, Detail: "0.2 below 0.3"}}})
	if _, err := p.st.AddComputation(ctx, store.FeatureComputation{Kind: "backfill", Features: map[string]int{"minutes_24h": 1},
		Rows: 30, Status: "blocked", Report: blocked}); err != nil {
		t.Fatal(err)
	}
	rep, _ := json.Marshal(feature.Report{Status: "warned", Rows: 40, Checks: []feature.Result{
		{Feature: "minutes_24h", Check: "not_null_rate", Action: "warn", Value: 0.4, Passed: false, Detail: "0.4 below 0.5"}}})
	if _, err := p.st.AddComputation(ctx, store.FeatureComputation{Kind: "training_set", Features: map[string]int{"minutes_24h": 1},
		Rows: 40, Status: "warned", Report: rep}); err != nil {
		t.Fatal(err)
	}
}

// addModelsAndExperiments registers two versions of model churn from the
// etl runs (v2 in production), a rollout judged once and one with three
// evaluations, an experiment with exposures and metric events over the
// last hour in which the treatment is better, and one (quiet) with none.
func (p *populated) addModelsAndExperiments(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	for _, run := range []int64{p.ok, p.ok2} {
		body := map[string]any{"artifact": fmt.Sprintf("%d/load/metrics.json", run), "metrics": map[string]float64{"auc": 0.7 + float64(run)/100},
			"reason": "trained on <b>fresh</b> data"}
		if code, b := p.api(t, "POST", "/api/v1/models/churn/versions", body); code != 201 {
			t.Fatalf("register: %d %s", code, b)
		}
	}
	for _, to := range []string{"canary", "production"} {
		if code, b := p.api(t, "POST", "/api/v1/models/churn/versions/2/transitions", map[string]any{"to": to, "reason": "looks good"}); code != 200 {
			t.Fatalf("transition to %s: %d %s", to, code, b)
		}
	}
	now := time.Now()
	// An earlier rollout, judged once: one point is no line to draw.
	once, _ := json.Marshal([]serve.Step{{At: now.Add(-2 * time.Hour), Stage: 0, Share: 100, Canary: 300, Baseline: 2000, Score: 95, Result: "pass", Action: "promote"}})
	early, err := p.st.StartRollout(ctx, store.Rollout{Endpoint: "churn", Model: "churn", CanaryVersion: 2, BaselineVersion: 1,
		Stages: []float64{100}, Status: store.RolloutRunning, StartedAt: now.Add(-3 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.st.UpdateRollout(ctx, early.ID, 0, 0, store.RolloutPassed, once); err != nil {
		t.Fatal(err)
	}
	hist, _ := json.Marshal([]serve.Step{
		{At: now.Add(-30 * time.Minute), Stage: 0, Share: 5, Canary: 120, Baseline: 2300, Score: 91, Result: "pass", Action: "advance"},
		{At: now.Add(-20 * time.Minute), Stage: 1, Share: 25, Canary: 610, Baseline: 1800, Score: 72, Result: "marginal", Action: "hold"},
		{At: now.Add(-10 * time.Minute), Stage: 1, Share: 25, Canary: 590, Baseline: 1750, Score: 88, Result: "pass", Action: "advance"},
	})
	ro, err := p.st.StartRollout(ctx, store.Rollout{Endpoint: "churn", Model: "churn", CanaryVersion: 2, BaselineVersion: 1,
		Stages: []float64{5, 25, 50, 100}, Status: store.RolloutRunning, StartedAt: now.Add(-40 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.st.UpdateRollout(ctx, ro.ID, 0, 2, store.RolloutRunning, hist); err != nil {
		t.Fatal(err)
	}
	doc := []map[string]any{{"name": "button_color", "variants": []map[string]any{
		{"name": "control", "weight": 0.5}, {"name": "treatment", "weight": 0.5}},
		"metrics": []string{"clicks"}, "guardrails": []map[string]any{{"metric": "errors", "direction": "increase"}}}}
	if code, b := p.api(t, "POST", "/api/v1/experiments", doc); code != 200 && code != 201 {
		t.Fatalf("apply experiment: %d %s", code, b)
	}
	// An experiment nobody has been exposed to: its guardrails have no data.
	quiet := []map[string]any{{"name": "quiet", "layer": "quiet", "variants": []map[string]any{
		{"name": "control", "weight": 0.5}, {"name": "treatment", "weight": 0.5}},
		"metrics": []string{"clicks"}, "guardrails": []map[string]any{{"metric": "errors", "direction": "increase"}}}}
	if code, b := p.api(t, "POST", "/api/v1/experiments", quiet); code != 200 && code != 201 {
		t.Fatalf("apply experiment quiet: %d %s", code, b)
	}
	var exps []store.Exposure
	var evs []store.MetricEvent
	for i := 0; i < 400; i++ {
		at := now.Add(-time.Hour + time.Duration(i)*9*time.Second)
		unit := fmt.Sprintf("u%d", i)
		variant, base := "control", 1.0
		if i%2 == 1 {
			variant, base = "treatment", 1.6
		}
		exps = append(exps, store.Exposure{Experiment: "button_color", Version: 1, Unit: unit, Variant: variant, At: at})
		evs = append(evs, store.MetricEvent{Experiment: "button_color", Unit: unit, Metric: "clicks", Value: base + float64(i%7)/10, At: at.Add(time.Second)},
			store.MetricEvent{Experiment: "button_color", Unit: unit, Metric: "errors", Value: float64(i % 3 / 2), At: at.Add(time.Second)})
	}
	if _, err := p.st.AddExposures(ctx, exps); err != nil {
		t.Fatal(err)
	}
	if err := p.st.AddMetricEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
}

func writeFile(path string) error { return os.WriteFile(path, []byte("go"), 0o644) }
