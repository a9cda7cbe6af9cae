package main_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// demoSummary is the part of baton demo -o json the test compares.
type demoSummary map[string]any

func runDemo(t *testing.T, home string, args ...string) demoSummary {
	t.Helper()
	r := must(t, baton(t, home, append([]string{"demo", "-o", "json"}, args...)...), 0)
	var s demoSummary
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("demo -o json: %v\n%s\n%s", err, r.stdout, r.stderr)
	}
	return s
}

// TestDemo runs a short demo and checks from the store, through the CLI
// (not from the summary), that every link of the platform's signal chain
// and every episode happened; then that the same seed gives the same
// summary, and that a home already used is refused.
func TestDemo(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	args := []string{"--days", "10", "--members", "1200", "--titles", "300", "--seed", "3"}
	sum := runDemo(t, home, args...)
	for _, k := range []string{"seed", "days", "members", "titles", "events", "signals", "runs", "models", "offline", "online", "experiments", "responsible_ai", "quality_scenarios"} {
		if _, ok := sum[k]; !ok {
			t.Fatalf("summary has no %q: %v", k, sum)
		}
	}

	// Every night a partition landed and its features were computed,
	// each run started by the signal before it.
	var landed struct {
		Subscribers []string `json:"subscribers"`
		Recent      []struct {
			Params    map[string]any `json:"params"`
			Triggered []int64        `json:"triggered_runs"`
		} `json:"recent"`
	}
	if err := json.Unmarshal([]byte(must(t, baton(t, home, "lineage", "signal", "data_landed", "-o", "json"), 0).stdout), &landed); err != nil {
		t.Fatal(err)
	}
	// Each night the interactions partition and the catalog: 11 each
	// (the history's last day and 10 days); the catalog starts nothing.
	for _, r := range landed.Recent {
		if want := map[string]int{"interactions": 2, "catalog": 0}[r.Params["table"].(string)]; len(r.Triggered) != want {
			t.Fatalf("data_landed %v started runs %v, want %d", r.Params, r.Triggered, want)
		}
	}
	signals := func(name string) []map[string]any {
		var out []struct {
			Params map[string]any `json:"params"`
		}
		if err := json.Unmarshal([]byte(must(t, baton(t, home, "signal", "list", "--name", name, "--limit", "500", "-o", "json"), 0).stdout), &out); err != nil {
			t.Fatal(err)
		}
		var ps []map[string]any
		for _, s := range out {
			ps = append(ps, s.Params)
		}
		return ps
	}
	tables := map[string]int{}
	for _, p := range signals("data_landed") {
		tables[p["table"].(string)]++
	}
	if tables["interactions"] != 11 || tables["catalog"] != 11 {
		t.Fatalf("data_landed by table: %v, want 11 of interactions and 11 of the catalog", tables)
	}
	if n := len(signals("features_ready")); n != 11 {
		t.Fatalf("%d features_ready, want 11", n)
	}
	for _, p := range signals("features_ready") {
		if p["training_set"] == nil {
			t.Fatalf("features_ready without its training set: %v", p)
		}
	}

	// Training: the weekly runs and the injected regression, each
	// registering versions that published model_trained.
	var runs []struct {
		ID      int64          `json:"id"`
		Flow    string         `json:"flow"`
		Status  string         `json:"status"`
		Trigger string         `json:"trigger"`
		Params  map[string]any `json:"params"`
	}
	if err := json.Unmarshal([]byte(must(t, baton(t, home, "runs", "--limit", "1000", "-o", "json"), 0).stdout), &runs); err != nil {
		t.Fatal(err)
	}
	var regression int64
	byFlow := map[string]int{}
	fromFeatures := map[string]int{} // runs started by features_ready
	for _, r := range runs {
		byFlow[r.Flow]++
		if r.Flow == "train-recommender" && r.Params["regression"] == true {
			regression = r.ID
		}
		if (r.Flow == "audit" || r.Flow == "train-search") && r.Trigger == "signal" {
			fromFeatures[r.Flow]++
		}
		if r.Status == "succeeded" {
			continue
		}
		// The one run allowed to fail is an audit that found a training
		// set regressed against the day before (the first simulated day
		// can: the history was synthesized, not simulated), and it must
		// say so and keep its report.
		if r.Flow != "audit" || r.Status != "failed" {
			t.Errorf("run %d of %s %s", r.ID, r.Flow, r.Status)
			continue
		}
		id := strconv.FormatInt(r.ID, 10)
		logs := must(t, baton(t, home, "logs", id+"/judge"), 0).stdout
		report := must(t, baton(t, home, "artifact", "get", id+"/measure/report.md"), 0).stdout
		if !strings.Contains(logs, "the training set regressed against the day before") || !strings.Contains(report, "## Regressions") {
			t.Errorf("audit run %d failed without naming a regression:\n%s\n%s", r.ID, logs, report)
		}
	}
	for _, f := range []string{"ingest", "member-features", "decide", "train-recommender", "canary", "fallback", "abtest", "audit", "train-search", "search-canary"} {
		if byFlow[f] == 0 {
			t.Errorf("no run of %s: %v", f, byFlow)
		}
	}
	// Every day's features were audited, and Sundays' trained the
	// re-ranker (the history's last day is one).
	if fromFeatures["audit"] != 11 || fromFeatures["train-search"] != 2 || byFlow["train-search"] != 2 {
		t.Errorf("runs started by features_ready: %v, want 11 audits and 2 search trainings (the Sundays)", fromFeatures)
	}
	if regression == 0 {
		t.Fatal("no training run with the injected regression")
	}
	trained := signals("model_trained")
	var regVersion string
	for _, p := range trained {
		if p["model"] == "rec-als" && p["run_id"] == float64(regression) {
			regVersion, _ = p["version"].(string)
		}
	}
	if regVersion == "" {
		t.Fatalf("the regression's run %d published no model_trained for rec-als: %v", regression, trained)
	}
	// Its canary check passed (errors and latency look fine), its A/B
	// test's guardrail paused it, and control was kept: the version is
	// back to registered, the experiment stopped.
	passed := false
	for _, p := range signals("canary_passed") {
		passed = passed || p["version"] == regVersion
	}
	if !passed {
		t.Fatalf("no canary_passed for the regression's version %s", regVersion)
	}
	exp := "home-v" + regVersion
	paused := false
	for _, p := range signals("experiment_paused") {
		paused = paused || p["experiment"] == exp
	}
	if !paused {
		t.Fatalf("experiment %s was not paused: %v", exp, signals("experiment_paused"))
	}
	var shown struct {
		Version struct{ State string }
	}
	if err := json.Unmarshal([]byte(must(t, baton(t, home, "model", "show", "rec-als", regVersion, "-o", "json"), 0).stdout), &shown); err != nil {
		t.Fatal(err)
	}
	if shown.Version.State != "registered" {
		t.Fatalf("the regression's version is %s", shown.Version.State)
	}
	list := must(t, baton(t, home, "exp", "list"), 0).stdout
	if !strings.Contains(list, exp) {
		t.Fatalf("exp list has no %s:\n%s", exp, list)
	}

	// The catalog expansion and the market launch reached the warehouse
	// the flows read; the outage was a fault on the endpoint the whole day.
	cat, _ := os.ReadFile(filepath.Join(home, "warehouse", "catalog.csv"))
	if n := strings.Count(string(cat), "\n") - 1; n != 300+500 {
		t.Fatalf("catalog has %d titles, want 800", n)
	}
	members, _ := os.ReadFile(filepath.Join(home, "warehouse", "members.csv"))
	if !strings.Contains(string(members), ",JP,") {
		t.Fatal("no member of the launched market in members.csv")
	}
	log, _ := os.ReadFile(filepath.Join(home, "demo.log"))
	if !strings.Contains(string(log), `msg="fault injected" endpoint=home kind=error`) {
		t.Fatal("the outage's fault is not in the server's log")
	}
	online := sum["online"].(map[string]any)
	if online["errors"].(float64) != 0 || online["outage_fallback_rate"].(float64) != 1 {
		t.Fatalf("online: %v", online)
	}

	// The search box: the members' searches went to the search endpoint
	// (applied by train-search), whose click log each night trained the
	// re-ranker; its new versions were rolled out on that traffic and
	// promoted by the canary judge.
	search, _ := online["search"].(map[string]any)
	if search == nil || search["requests"].(float64) == 0 || search["errors"].(float64) != 0 || search["plays_per_search"].(float64) == 0 {
		t.Fatalf("online search: %v", search)
	}
	var rollouts []struct {
		Model   string `json:"model"`
		Status  string `json:"status"`
		History []struct {
			Canary   int    `json:"canary_requests"`
			Baseline int    `json:"baseline_requests"`
			Result   string `json:"result"`
		} `json:"history"`
	}
	if err := json.Unmarshal([]byte(must(t, baton(t, home, "rollout", "status", "search", "-o", "json"), 0).stdout), &rollouts); err != nil {
		t.Fatal(err)
	}
	rolledOut := 0
	for _, ro := range rollouts {
		if ro.Model != "search-rerank" || (ro.Status != "passed" && ro.Status != "running") {
			t.Fatalf("search rollouts: %+v", rollouts)
		}
		for _, h := range ro.History {
			if h.Canary == 0 || h.Baseline == 0 || h.Result != "pass" {
				t.Fatalf("a search rollout's evaluation without traffic on both sides, or not passed: %+v", rollouts)
			}
		}
		if ro.Status == "passed" {
			rolledOut++
		}
	}
	if rolledOut == 0 {
		t.Fatalf("no search-rerank version passed its rollout on the search endpoint: %+v", rollouts)
	}
	var clickDays int
	for _, day := range []string{"2027-01-04", "2027-01-13"} {
		b, err := os.ReadFile(filepath.Join(home, "warehouse", "clicks", day+".csv"))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(string(b), "member,query,title,clicked,position\n") && strings.Contains(string(b), ",true,") {
			clickDays++
		}
	}
	if clickDays != 2 {
		t.Fatal("the click log of the first or the last day has no clicks")
	}
	if off, _ := sum["offline"].(map[string]any)["search-rerank"].(map[string]any); off == nil || !(off["mrr"].(float64) > off["mrr_bm25"].(float64)) {
		t.Fatalf("offline search-rerank: %v, want a held-out MRR above BM25's", sum["offline"])
	}

	// The quality scenarios, measured by the server from what happened
	// (scenario monitors' results in the store): QS-02 saw the catalog
	// grow by 500 and a retrained rec-als after it; QS-03 timed the
	// regression's pause from its breach.
	scenario := func(monitor string) map[string]any {
		var rs []struct {
			Evidence map[string]any `json:"evidence"`
			Error    string         `json:"error"`
		}
		if err := json.Unmarshal([]byte(must(t, baton(t, home, "monitor", "results", monitor, "--limit", "1", "-o", "json"), 0).stdout), &rs); err != nil {
			t.Fatal(err)
		}
		if len(rs) != 1 || rs[0].Error != "" {
			t.Fatalf("%s: %+v", monitor, rs)
		}
		return rs[0].Evidence
	}
	qs2 := scenario("qs-02-catalog-expansion")
	cases, _ := qs2["cases"].([]any)
	if len(cases) != 1 || !strings.Contains(cases[0].(map[string]any)["subject"].(string), "300 → 800") || cases[0].(map[string]any)["response"] == nil {
		t.Fatalf("QS-02: %v", qs2)
	}
	qs3 := scenario("qs-03-guardrail-pause")
	found := false
	for _, c := range qs3["cases"].([]any) {
		c := c.(map[string]any)
		if c["subject"] == "experiment "+exp+"@1" {
			found = true
			if c["response"] == nil || c["measured"] == nil || c["status"] == "pending" {
				t.Fatalf("QS-03 of the paused %s: %v", exp, c)
			}
		}
	}
	if !found {
		t.Fatalf("QS-03 has no case for %s: %v", exp, qs3)
	}
	q := must(t, baton(t, home, "docs", "--view", "quality"), 0).stdout
	for _, want := range []string{"### Measured by the server", "| QS-01 |", "| QS-02 |", "| QS-03 |", "qs-03-guardrail-pause |"} {
		if !strings.Contains(q, want) {
			t.Fatalf("baton docs --view quality has no %q:\n%s", want, q)
		}
	}
	for _, qs := range sum["quality_scenarios"].([]any) {
		if qs.(map[string]any)["status"] == "" {
			t.Fatalf("a scenario in the summary without a status: %v", qs)
		}
	}

	// The same seed and flags: the same summary, timings aside. A request
	// that timed out (the machine stalled past the endpoint's 50 ms)
	// changes what a member saw, so the runs are comparable only when
	// neither had one; the summary counts them.
	again := runDemo(t, t.TempDir(), args...)
	if a, b := online["timeouts"].(float64), again["online"].(map[string]any)["timeouts"].(float64); a+b > 0 {
		t.Logf("not comparing the two runs: %g and %g requests timed out on this machine", a, b)
		return
	}
	for _, s := range []demoSummary{sum, again} {
		delete(s, "wall_seconds")
		o := s["online"].(map[string]any)
		delete(o, "p50_ms")
		delete(o, "p99_ms")
	}
	if !reflect.DeepEqual(sum, again) {
		a, _ := json.MarshalIndent(sum, "", " ")
		b, _ := json.MarshalIndent(again, "", " ")
		t.Fatalf("same seed, different summaries:\n%s\n---\n%s", a, b)
	}

	// A home that holds a demo is not overwritten.
	r := baton(t, home, append([]string{"demo"}, args...)...)
	if r.code != 2 || !strings.Contains(r.stderr, "already holds") {
		t.Fatalf("second demo in one home: %d %s", r.code, r.stderr)
	}
}

// TestPlatformAudit runs the platform's audit flow on three days of
// features_ready params: the first is the reference; the second regresses
// (a feature's not-null rate falls, a warn gate fires, half the rows are
// gone) and fails, naming each regression, its report kept; the third is
// compared with the second (a lasting change fails once) but lost a
// feature, and fails for that alone.
func TestPlatformAudit(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	must(t, baton(t, home, "flow", "apply", "../../examples/platform/signals.yaml", "../../examples/platform/audit.yaml"), 0)
	day := func(date string, rows int, quality string) result {
		return baton(t, home, "run", "../../examples/platform/audit.yaml", "--param", "date="+date, "--param", "row_count="+strconv.Itoa(rows),
			"--param", "quality="+quality, "--param", "training_set=7/build/members.csv")
	}
	must(t, day("2027-01-04", 500, `{"metrics":{"minutes_7d":{"max":2558.7,"mean":726.7,"min":5.6,"not_null_rate":1,"psi":0.018},"plays_1d":{"mean":3.45,"not_null_rate":1}},"status":"passed"}`), 0)
	first := must(t, baton(t, home, "artifact", "get", "1/measure/report.md"), 0).stdout
	if !strings.Contains(first, "No earlier day") {
		t.Fatalf("the first day's report:\n%s", first)
	}

	must(t, day("2027-01-05", 200, `{"metrics":{"minutes_7d":{"mean":700.1,"not_null_rate":0.95,"psi":0.3},"plays_1d":{"mean":3.4,"not_null_rate":0.995,"psi":1e-05}},"status":"warned"}`), 1)
	logs := must(t, baton(t, home, "logs", "2/judge"), 0).stdout
	for _, want := range []string{
		"audit of 2027-01-05: the training set regressed against the day before:",
		"not-null rate of minutes_7d fell from 1.0000 to 0.9500 (more than 0.01)",
		"the quality gates went from passed to warned (their checks: baton artifact get 7/build/quality.json)",
		"rows fell from 500 to 200 (below 0.5 of the day before)",
		"baton artifact get 2/measure/report.md",
	} {
		if !strings.Contains(logs, want) {
			t.Fatalf("the failed audit's log has no %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "plays_1d") {
		t.Fatalf("plays_1d fell by 0.005, within the tolerated 0.01:\n%s", logs)
	}
	report := must(t, baton(t, home, "artifact", "get", "2/measure/report.md"), 0).stdout
	if !strings.Contains(report, "| minutes_7d | 0.95 | 1 | 700.1 | 726.7 | 0.3 |") || !strings.Contains(report, "## Regressions") {
		t.Fatalf("report:\n%s", report)
	}
	table, err := os.ReadFile(filepath.Join(home, "warehouse", "training_quality", "2027-01-05.csv"))
	if err != nil || !strings.Contains(string(table), "rows,200\nstatus,warned\n") {
		t.Fatalf("the warehouse's training_quality partition: %v\n%s", err, table)
	}

	must(t, day("2027-01-06", 210, `{"metrics":{"minutes_7d":{"mean":701,"not_null_rate":0.95}},"status":"warned"}`), 1)
	logs = must(t, baton(t, home, "logs", "3/judge"), 0).stdout
	if !strings.Contains(logs, "feature plays_1d is gone (it was in the training set of 2027-01-05)") || strings.Contains(logs, "minutes_7d") ||
		strings.Contains(logs, "quality gates") || strings.Contains(logs, "rows fell") {
		t.Fatalf("the third day against the second:\n%s", logs)
	}
	must(t, day("2027-01-07", 220, `{"metrics":{"minutes_7d":{"mean":702,"not_null_rate":0.96}},"status":"passed"}`), 0)
}

// TestPlatformSearchLineage runs the platform's train-search flow on a
// warehouse of one synthetic day: the re-ranker version it registers
// names, like every other trained model, the data it was fitted on: the
// click log the train step read, pinned by digest (it registered with no
// training set before).
func TestPlatformSearchLineage(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	data, wh := t.TempDir(), t.TempDir()
	must(t, baton(t, home, "search", "synth", "--titles", "300", "--members", "100", "--sessions", "600", "--out", data), 0)
	for _, f := range []struct{ from, to string }{
		{"catalog.csv", "catalog.csv"}, {"interactions.csv", "interactions/2027-01-03.csv"}, {"clicks.csv", "clicks/2027-01-03.csv"},
	} {
		b, err := os.ReadFile(filepath.Join(data, f.from))
		if err == nil {
			err = os.MkdirAll(filepath.Dir(filepath.Join(wh, f.to)), 0o755)
		}
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, wh, f.to, string(b))
	}
	must(t, baton(t, home, "flow", "apply", "../../examples/platform/signals.yaml"), 0)
	must(t, baton(t, home, "run", "../../examples/platform/train-search.yaml", "--param", "warehouse="+wh, "--param", "date=2027-01-03"), 0)
	var shown struct {
		Version struct {
			Artifact string
			Lineage  struct {
				TrainingSet       string `json:"training_set"`
				TrainingSetDigest string `json:"training_set_digest"`
			}
		}
	}
	r := must(t, baton(t, home, "model", "show", "search-rerank", "1", "-o", "json"), 0)
	if err := json.Unmarshal([]byte(r.stdout), &shown); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	lin := shown.Version.Lineage
	if shown.Version.Artifact != "1/train/model.json" || lin.TrainingSet != "1/train/clicks.csv" || lin.TrainingSetDigest == "" {
		t.Fatalf("search-rerank 1: artifact %q, training set %q (digest %q), want 1/train/model.json trained on 1/train/clicks.csv:\n%s",
			shown.Version.Artifact, lin.TrainingSet, lin.TrainingSetDigest, r.stdout)
	}
	// The training set is the click log as landed: every search of the day.
	clicks := must(t, baton(t, home, "artifact", "get", lin.TrainingSet), 0).stdout
	landed, _ := os.ReadFile(filepath.Join(wh, "clicks", "2027-01-03.csv"))
	if clicks != string(landed) {
		t.Fatalf("the training set is not the landed click log: %d bytes, landed %d", len(clicks), len(landed))
	}
}
