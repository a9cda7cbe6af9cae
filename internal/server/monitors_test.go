package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/monitor"
	"github.com/baton-ml/baton/internal/rec"
	"github.com/baton-ml/baton/internal/registry"
	"github.com/baton-ml/baton/internal/serve"
	"github.com/baton-ml/baton/internal/store"
)

// simClock is a clock a test moves.
type simClock struct{ ns atomic.Int64 }

func (c *simClock) now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *simClock) set(t time.Time)     { c.ns.Store(t.UnixNano()) }
func newSimClock(t time.Time) *simClock { c := &simClock{}; c.set(t); return c }

// driftContract is the drift_detected contract docs/monitors.md gives.
func driftContract(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "monitors.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(b), "<!-- contract: drift_detected -->\n```yaml\n")
	block, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("docs/monitors.md has no drift_detected contract")
	}
	return block
}

const retrainFlow = `name: retrain
params:
  monitor: {default: ""}
  check: {default: ""}
triggers:
  - signal: drift_detected
steps:
  - name: start
    run: 'test -n "$BATON_PARAM_MONITOR"'
`

const monitorFeatures = `entities: [{name: member, key: member_id}]
sources:
  - {name: plays, entity: member, timestamp: ts, fields: {title_id: string, market: string, minutes: float, completed: float}}
features:
  - {name: minutes_24h, source: plays, aggregate: sum, field: minutes, window: 24h}
`

// postEvents sends events through the API.
func postEvents(t *testing.T, h *harness, source string, lines []string) {
	t.Helper()
	r := h.do(t, "POST", "/api/v1/features/events/"+source, strings.Join(lines, "\n")+"\n", "")
	var res struct {
		Accepted, Rejected int
	}
	r.json(t, &res)
	if r.code != 200 || res.Accepted != len(lines) {
		t.Fatalf("events: %d %s", r.code, r.body)
	}
}

// The monitors' whole path through a server on a simulated clock: applied
// through the API, events ingested and pages served over two days, the
// due monitors evaluated at the clock's midnights; the shift of the second
// day breaches, publishes drift_detected with its evidence, and the flow
// subscribed to it runs. The responsible-AI monitor counts exactly the
// pages the API served.
func TestMonitorsDriftTriggersRetraining(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	clk := newSimClock(t0)
	h := newHarness(t, Options{Now: clk.now})
	ctx := context.Background()
	h.apply(t, driftContract(t), retrainFlow)
	applyFeatures(t, h, monitorFeatures)
	rng := rand.New(rand.NewPCG(9, 9))

	// The model whose training set is the reference.
	var csv strings.Builder
	csv.WriteString("member_id,ts,minutes_24h\n")
	for i := range 1000 {
		fmt.Fprintf(&csv, "r%d,2026-11-01T00:00:00Z,%.2f\n", i, max(0, 60+15*rng.NormFloat64()))
	}
	d, n, err := h.blobs.PutBytes(ctx, []byte(csv.String()))
	if err != nil {
		t.Fatal(err)
	}
	lin, _ := json.Marshal(registry.Lineage{RunID: 1, Step: "build", TrainingSet: "1/build/train.csv", TrainingSetDigest: d})
	v, err := h.st.CreateModelVersion(ctx, store.ModelVersion{Model: "member-model", Artifact: "1/fit/m.json", Digest: d, Size: n, RunID: 1, Lineage: lin}, "t", "t")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []store.ModelState{store.ModelCanary, store.ModelProduction} {
		if _, err := registry.New(h.st).Transition(ctx, "member-model", v.Version, s, "t", "t", nil); err != nil {
			t.Fatal(err)
		}
	}
	// A recommend endpoint, served by a popularity model.
	w, err := rec.Synthesize(rec.Synth{Seed: 5, Members: 300, Titles: 200, Interactions: 300 * 25})
	if err != nil {
		t.Fatal(err)
	}
	m, err := rec.Train(ctx, rec.KindPopularity, w.Data, nil)
	if err != nil {
		t.Fatal(err)
	}
	var mb bytes.Buffer
	if err := m.Save(&mb); err != nil {
		t.Fatal(err)
	}
	modelVersion(t, h, "rec-pop", mb.String(), store.ModelCanary, store.ModelProduction)
	// A generous timeout: on a loaded machine no page may give way to the
	// static fallback (no page), or the pages counted would vary.
	eps := []serve.Endpoint{{Name: "home", Kind: serve.KindRecommend, Model: "rec-pop", Fallback: serve.Fallback{Static: []any{}}, Timeout: serve.Duration(time.Minute),
		Recommend: &serve.RecommendConfig{Rows: []serve.RowConfig{{Type: serve.RowTopPicks}, {Type: serve.RowTrending}}}}}
	if r := h.do(t, "POST", "/api/v1/endpoints", eps, ""); r.code != 200 {
		t.Fatalf("endpoints: %d %s", r.code, r.body)
	}
	monitors := `[
  {"name": "member-drift", "kind": "feature_drift", "features": ["minutes_24h"], "reference": {"model": "member-model"},
   "source_window": "1d", "psi_max": 0.2, "every": "1d", "publish": "drift_detected"},
  {"name": "home-rai", "kind": "responsible_ai", "endpoint": "home", "catalog_coverage": {"min": 0.9},
   "new_creator_exposure": {"min": 0}, "min_pages": 10, "every": "1d"}]`
	r := h.do(t, "POST", "/api/v1/monitors", monitors, "")
	var applied []monitor.Applied
	r.json(t, &applied)
	if r.code != 200 || len(applied) != 2 || !applied[0].Changed {
		t.Fatalf("apply: %d %s", r.code, r.body)
	}
	if r := h.do(t, "POST", "/api/v1/monitors", monitors, ""); !strings.Contains(string(r.body), `"changed": false`) {
		t.Fatalf("applying again changed something: %s", r.body)
	}

	// Day 0: members play as in training; the endpoint serves 40 pages.
	play := func(at time.Time, mean float64) []string {
		var out []string
		for i := range 500 {
			out = append(out, fmt.Sprintf(`{"member_id":"m%d","ts":%q,"title_id":"t1","market":"US","minutes":%.2f,"completed":1}`,
				i, at.Format(time.RFC3339), max(0, mean+15*rng.NormFloat64())))
		}
		return out
	}
	postEvents(t, h, "plays", play(t0.Add(12*time.Hour), 60))
	clk.set(t0.Add(13 * time.Hour))
	titles := map[string]bool{}
	newItems, items := 0, 0
	for _, mem := range w.Data.Members[:40] {
		r := h.do(t, "POST", "/api/v1/predict/home", map[string]any{"key": mem.ID}, "")
		var resp struct {
			Prediction serve.Page `json:"prediction"`
		}
		r.json(t, &resp)
		for _, row := range resp.Prediction.Rows {
			for _, it := range row.Items {
				titles[it.Title] = true
				items++
				if it.NewCreator {
					newItems++
				}
			}
		}
	}
	clk.set(t0.Add(24 * time.Hour))
	if err := h.s.EvaluateMonitors(ctx); err != nil {
		t.Fatal(err)
	}
	day1 := monitorResult(t, h, "member-drift", t0.Add(24*time.Hour))
	if day1.Breached || day1.Error != "" {
		t.Fatalf("day 1: %+v", day1)
	}
	rai := monitorResult(t, h, "home-rai", t0.Add(24*time.Hour))
	var ev monitor.ResponsibleAIEvidence
	if err := json.Unmarshal(rai.Evidence, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Pages.Pages != 40 || ev.Pages.Titles != len(titles) || ev.Pages.Catalog != 200 || ev.Pages.Items != int64(items) || ev.Pages.NewCreatorItems != int64(newItems) {
		t.Fatalf("pages: %+v; served %d titles, %d items, %d by new creators", ev.Pages, len(titles), items, newItems)
	}
	if cov := *ev.CatalogCoverage; cov != float64(len(titles))/200 || !rai.Breached || rai.Signal != "" {
		t.Fatalf("coverage %g: %+v", cov, rai)
	}

	// Day 1: the members watch far longer.
	postEvents(t, h, "plays", play(t0.Add(36*time.Hour), 120))
	clk.set(t0.Add(48 * time.Hour))
	if err := h.s.EvaluateMonitors(ctx); err != nil {
		t.Fatal(err)
	}
	day2 := monitorResult(t, h, "member-drift", t0.Add(48*time.Hour))
	if !day2.Breached || day2.Signal != "monitor/member-drift/2026-11-30T00:00:00Z" {
		t.Fatalf("day 2: %+v", day2)
	}
	sg, err := h.st.Signal(ctx, day2.Signal)
	if err != nil || sg.Name != "drift_detected" || string(sg.Params["check"]) != `"psi/minutes_24h"` || !strings.Contains(string(sg.Params["evidence"]), `"member-model"`) {
		t.Fatalf("signal: %+v %v", sg, err)
	}
	runs := h.waitRuns(t, "retrain", 1)
	if runs[0].Status != store.RunSucceeded || param(t, runs[0], "monitor") != "member-drift" || param(t, runs[0], "check") != "psi/minutes_24h" {
		t.Fatalf("retrain run: %+v", runs[0])
	}
	// Evaluating again at the same time changes nothing.
	if err := h.s.EvaluateMonitors(ctx); err != nil {
		t.Fatal(err)
	}
	// (The loop may or may not have answered the first day's slot before
	// the clock moved on: what counts is one result per slot.)
	rs, _ := h.st.MonitorResults(ctx, store.MonitorResultFilter{Monitor: "member-drift"})
	dues := map[time.Time]int{}
	for _, r := range rs {
		dues[r.DueAt.UTC()]++
	}
	if dues[t0.Add(24*time.Hour)] != 1 || dues[t0.Add(48*time.Hour)] != 1 || len(rs) != len(dues) {
		t.Fatalf("results by due time: %v", dues)
	}
	metrics := string(h.do(t, "GET", "/metrics", nil, "").body)
	for _, want := range []string{`baton_monitor_breaches_total{monitor="member-drift"} 1`, `baton_monitor_value{check="catalog_coverage",monitor="home-rai"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// Evaluated on demand: a manual result, the schedule untouched.
	r = h.do(t, "POST", "/api/v1/monitors/home-rai/evaluate", nil, "")
	var manual monitor.Result
	r.json(t, &manual)
	if r.code != 200 || manual.Trigger != store.MonitorManual || manual.ID == 0 {
		t.Fatalf("evaluate: %d %s", r.code, r.body)
	}
	if r := h.do(t, "POST", "/api/v1/monitors/home-rai/evaluate", `{"now": 1}`, ""); r.code != 400 {
		t.Fatalf("a body with a field: %d %s", r.code, r.body)
	}
	if r := h.do(t, "POST", "/api/v1/monitors/nope/evaluate", nil, ""); r.code != 404 {
		t.Fatalf("unknown monitor: %d %s", r.code, r.body)
	}
	r = h.do(t, "GET", "/api/v1/monitors", nil, "")
	var list []struct {
		Spec monitor.Spec    `json:"spec"`
		Last *monitor.Result `json:"last"`
	}
	r.json(t, &list)
	if len(list) != 2 || list[0].Spec.Name != "home-rai" || list[0].Last == nil || list[0].Last.ID != manual.ID || list[1].Last.Signal != day2.Signal {
		t.Fatalf("list: %s", r.body)
	}
}

// monitorResult is a monitor's scheduled result for a due time, through
// the API.
func monitorResult(t *testing.T, h *harness, name string, due time.Time) monitor.Result {
	t.Helper()
	r := h.do(t, "GET", "/api/v1/monitors/"+name+"/results?limit=10", nil, "")
	var rs []monitor.Result
	r.json(t, &rs)
	for _, res := range rs {
		if res.Trigger == store.MonitorScheduled && res.DueAt.Equal(due) {
			return res
		}
	}
	t.Fatalf("monitor %s has no result due %s: %s", name, due, r.body)
	return monitor.Result{}
}
