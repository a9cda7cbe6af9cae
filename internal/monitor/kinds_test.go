package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/serve"
	"github.com/baton-ml/baton/internal/stat"
	"github.com/baton-ml/baton/internal/store"
)

// trainingSet is a planted training set: minutes_24h ~ N(60, 15), the
// last title uniform over t0..t19, a few empty cells.
func trainingSet(rng *rand.Rand, rows int) string {
	var b strings.Builder
	b.WriteString("member_id,ts,minutes_24h,last_title,label\n")
	for i := range rows {
		minutes := fmt.Sprintf("%.2f", max(0, 60+15*rng.NormFloat64()))
		title := fmt.Sprintf("t%d", rng.IntN(20))
		if i%97 == 0 {
			minutes, title = "", ""
		}
		fmt.Fprintf(&b, "r%d,2026-11-01T00:00:00Z,%s,%s,%d\n", i, minutes, title, rng.IntN(2))
	}
	return b.String()
}

// plays makes one play per member at time at: minutes ~ N(mean, 15), the
// title uniform over titles [lo, lo+20).
func plays(rng *rand.Rand, members int, at time.Time, mean float64, lo int) []string {
	var out []string
	for i := range members {
		out = append(out, fmt.Sprintf(`{"member_id":"m%d","ts":%q,"title_id":"t%d","market":"US","minutes":%.2f,"completed":1}`,
			i, at.Format(time.RFC3339), lo+rng.IntN(20), max(0, mean+15*rng.NormFloat64())))
	}
	return out
}

const featureDriftYAML = `monitors:
  - name: member-drift
    kind: feature_drift
    features: [minutes_24h, last_title]
    reference: {model: rec-home}
    source_window: 1d
    psi_max: 0.2
    ks_alpha: 0.001
    every: 1d
    publish: drift_detected
`

// Feature drift: the members active in the last day, valued as of the
// evaluation, against the production version's training set. The same
// distributions pass; a shift of the minutes and a new set of titles
// breach on both statistics, and the breach publishes drift_detected
// with the evidence.
func TestFeatureDriftBreachesOnShiftNotOnSameDistribution(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rng := rand.New(rand.NewPCG(1, 1))
	e.model(t, "rec-home", trainingSet(rng, 2000))
	e.apply(t, featureDriftYAML)
	e.ingest(t, "plays", plays(rng, 1000, t0.Add(12*time.Hour), 60, 0))
	day1 := e.evaluate(t, t0.Add(24*time.Hour))
	if day1.Breached || day1.Error != "" || day1.Signal != "" {
		t.Fatalf("the same distribution breached: %+v", day1)
	}
	for _, name := range []string{"psi/minutes_24h", "psi/last_title"} {
		if c := check(t, day1, name); !c.Judged || c.Value == nil || *c.Value > 0.05 {
			t.Fatalf("%s on the same distribution: %+v", name, c)
		}
	}
	if c := check(t, day1, "p_value/minutes_24h"); c.Value == nil || *c.Value < 0.01 {
		t.Fatalf("KS p-value on the same distribution: %+v", c)
	}
	var ev FeatureDriftEvidence
	if err := json.Unmarshal(day1.Evidence, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Keys != 1000 || ev.Reference.Rows != 2000 || ev.Reference.Model != "rec-home" || ev.Reference.Version != 1 || len(ev.Features) != 2 {
		t.Fatalf("evidence: %+v", ev)
	}
	if f := ev.Features[0]; f.ReferenceN != 2000-21 || f.CurrentN != 1000 || math.Abs(f.ReferenceNull-21.0/2000) > 1e-12 || len(f.ReferenceDeciles) != 9 {
		t.Fatalf("minutes evidence: %+v", f)
	}

	// Day 2: the members watch longer, and only titles of a new batch.
	e.ingest(t, "plays", plays(rng, 1000, t0.Add(36*time.Hour), 100, 20))
	day2 := e.evaluate(t, t0.Add(48*time.Hour))
	if !day2.Breached || day2.Error != "" {
		t.Fatalf("a shift did not breach: %+v", day2)
	}
	for _, name := range []string{"psi/minutes_24h", "p_value/minutes_24h", "psi/last_title", "p_value/last_title"} {
		if c := check(t, day2, name); !c.Breached {
			t.Fatalf("%s did not breach: %+v", name, c)
		}
	}
	if err := json.Unmarshal(day2.Evidence, &ev); err != nil {
		t.Fatal(err)
	}
	if m := *ev.Features[0].CurrentMean; m < 90 || m > 110 {
		t.Fatalf("current mean minutes %g, want about 100", m)
	}
	if ev.Features[1].Type != "string" || ev.Features[1].Test != "chi2" || len(ev.Features[1].Moved) != 5 {
		t.Fatalf("title evidence: %+v", ev.Features[1])
	}
	// The signal: once, with the slot in its id, under the documented
	// contract.
	if len(e.pub.sigs) != 1 || day2.Signal != "monitor/member-drift/2026-11-30T00:00:00Z" || e.pub.sigs[0].ID != day2.Signal {
		t.Fatalf("signals %+v, result's %q", e.pub.sigs, day2.Signal)
	}
	p := e.pub.sigs[0].Params
	var value, threshold float64
	json.Unmarshal(p["value"], &value)
	json.Unmarshal(p["threshold"], &threshold)
	if string(p["monitor"]) != `"member-drift"` || string(p["kind"]) != `"feature_drift"` || string(p["model"]) != `"rec-home"` ||
		string(p["check"]) != `"psi/minutes_24h"` || value <= 0.2 || threshold != 0.2 || !strings.Contains(string(p["evidence"]), `"current_mean"`) {
		t.Fatalf("params: %s", mustJSON(p))
	}
	var breaches []Check
	if err := json.Unmarshal(p["checks"], &breaches); err != nil || len(breaches) != 4 {
		t.Fatalf("checks param: %s %v", p["checks"], err)
	}

	// Day 3: the drift lasts. Still a breach, stored, but not published
	// again: a lasting breach must not start a retraining every slot.
	e.ingest(t, "plays", plays(rng, 1000, t0.Add(60*time.Hour), 100, 20))
	day3 := e.evaluate(t, t0.Add(72*time.Hour))
	if !day3.Breached || !day3.Repeated || day3.Signal != "" || len(e.pub.sigs) != 1 {
		t.Fatalf("a lasting breach: %+v, signals %d", day3, len(e.pub.sigs))
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// A feature whose reference column is missing, and a reference version
// without a training set: reported, never a breach.
func TestFeatureDriftWithoutReferenceData(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rng := rand.New(rand.NewPCG(2, 2))
	e.model(t, "rec-home", "member_id,minutes_24h\nm1,3\n")
	e.apply(t, strings.Replace(featureDriftYAML, "min_samples", "x", 1))
	e.ingest(t, "plays", plays(rng, 100, t0.Add(time.Hour), 60, 0))
	r := e.evaluate(t, t0.Add(2*time.Hour))
	if r.Breached || r.Error != "" {
		t.Fatalf("%+v", r)
	}
	if c := check(t, r, "psi/last_title"); c.Judged || c.Note != "the reference has no column last_title" {
		t.Fatalf("missing column: %+v", c)
	}
	if c := check(t, r, "psi/minutes_24h"); c.Judged || !strings.Contains(c.Note, "fewer than min_samples 50") {
		t.Fatalf("one reference row: %+v", c)
	}
	// A Parquet training set: said, not misread.
	e.model(t, "rec-home", "PAR1\x00\x01binary")
	r = e.evaluate(t, t0.Add(26*time.Hour))
	if r.Breached || !strings.Contains(r.Error, "reference 1/build/train.csv is Parquet: a monitor reads a CSV training set") {
		t.Fatalf("%+v", r)
	}
	// A version registered without --training-set: the evaluation says so.
	ctx := context.Background()
	v, _ := e.st.CreateModelVersion(ctx, store.ModelVersion{Model: "rec-home", Artifact: "1/fit/m", Digest: strings.Repeat("a", 64), RunID: 1}, "t", "t")
	e.st.TransitionModel(ctx, store.ModelTransition{Model: "rec-home", Version: v.Version, From: store.ModelRegistered, To: store.ModelProduction, Actor: "t"}, true)
	r = e.evaluate(t, t0.Add(50*time.Hour))
	if r.Breached || !strings.Contains(r.Error, "version 3 has no training set in its lineage") {
		t.Fatalf("%+v", r)
	}
}

const predictionDriftYAML = `monitors:
  - name: confidence
    kind: prediction_drift
    endpoint: churn
    psi_max: 0.2
    every: 1d
    publish: drift_detected
`

// Prediction drift: the production version's first day of served
// confidence is the reference; a day like it passes, a day of lower
// confidence breaches. The reference lives in the stored results: a
// restarted runner compares with the same one, and a new production
// version makes its own.
func TestPredictionDriftAgainstTheVersionsFirstWindow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rng := rand.New(rand.NewPCG(3, 3))
	v1 := e.model(t, "churn", "x\n1\n")
	e.endpoint(t, "churn", "churn", false)
	e.apply(t, predictionDriftYAML)
	serveDay := func(day int, version int, lo, hi float64) {
		for i := range 500 {
			e.samples.add(t0.Add(time.Duration(day)*24*time.Hour+time.Duration(i)*time.Minute), version, lo+(hi-lo)*rng.Float64())
		}
	}
	serveDay(0, v1, 0.5, 0.9)
	first := e.evaluate(t, t0.Add(24*time.Hour))
	if c := check(t, first, "psi"); first.Breached || c.Judged || !strings.Contains(c.Note, "the reference of version 1 is this window") {
		t.Fatalf("first window: %+v", first)
	}
	serveDay(1, v1, 0.5, 0.9)
	same := e.evaluate(t, t0.Add(48*time.Hour))
	if c := check(t, same, "psi"); same.Breached || !c.Judged || *c.Value > 0.05 {
		t.Fatalf("same distribution: %+v", same)
	}
	var ev PredictionDriftEvidence
	json.Unmarshal(same.Evidence, &ev)
	if ev.N != 500 || ev.Reference == nil || ev.Reference.N != 500 || !ev.Reference.From.Equal(t0) || ev.Version != v1 {
		t.Fatalf("evidence: %+v", ev)
	}
	// A restart: the reference comes from the stored results.
	e.r = e.runner()
	serveDay(2, v1, 0.2, 0.6)
	low := e.evaluate(t, t0.Add(72*time.Hour))
	if c := check(t, low, "psi"); !low.Breached || *c.Value <= 0.2 || low.Signal == "" {
		t.Fatalf("lower confidence: %+v", low)
	}
	// The PSI of the bins kept is the PSI of the samples themselves.
	json.Unmarshal(low.Evidence, &ev)
	if got := *ev.PSI; math.Abs(got-*check(t, low, "psi").Value) > 1e-12 || ev.Reference.Version != v1 {
		t.Fatalf("psi %g", got)
	}
	// A new production version starts over with its own first window.
	v2 := e.model(t, "churn", "x\n2\n")
	serveDay(3, v2, 0.2, 0.6)
	fresh := e.evaluate(t, t0.Add(96*time.Hour))
	if c := check(t, fresh, "psi"); fresh.Breached || c.Judged || !strings.Contains(c.Note, fmt.Sprintf("the reference of version %d", v2)) {
		t.Fatalf("new version: %+v", fresh)
	}
}

// The PSI over a reference's kept bins equals the PSI over the samples.
func TestBinnedPSIMatchesSamplePSI(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(4, 4))
	ref, cur := make([]float64, 700), make([]float64, 300)
	for i := range ref {
		ref[i] = math.Round(rng.Float64()*20) / 20 // ties at the cuts
	}
	for i := range cur {
		cur[i] = math.Round((0.3+rng.Float64())*20) / 20
	}
	sorted := append([]float64(nil), ref...)
	sortFloats(sorted)
	dec := statDeciles(sorted)
	got := statPSICounts(binCounts(dec[:], ref), binCounts(dec[:], cur))
	if want := statPSI(ref, cur); math.Abs(got-want) > 1e-12 {
		t.Fatalf("binned PSI %g, sample PSI %g", got, want)
	}
}

// completion is a market's plays: n plays, the first done of them
// completed.
func completion(market string, n, done int, at time.Time, member int) []string {
	var out []string
	for i := range n {
		c := 0
		if i < done {
			c = 1
		}
		out = append(out, fmt.Sprintf(`{"member_id":"m%d","ts":%q,"title_id":"t1","market":%q,"minutes":10,"completed":%d}`, member+i, at.Format(time.RFC3339), market, c))
	}
	return out
}

const qualityYAML = `monitors:
  - name: completion-by-market
    kind: online_quality
    numerator: {source: plays, field: completed}
    denominator: {source: plays}
    by: market
    min: 0.25
    min_relative: 0.9
    min_events: 50
    every: 1d
    publish: drift_detected
  - name: click-through
    kind: online_quality
    numerator: {source: plays}
    denominator: {source: impressions, field: items}
    by: market
    min: 0.01
    every: 1d
  - name: few
    kind: online_quality
    numerator: {source: plays, field: completed}
    denominator: {source: plays}
    min: 0.9
    min_events: 5000
`

// Online quality: the completion rate per market against the global one
// flags exactly the degraded market; a market with too few events is
// reported, not judged; a ratio of two sources sums each over the window.
func TestOnlineQualityFlagsExactlyTheDegradedMarket(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.apply(t, qualityYAML)
	at := t0.Add(10 * time.Hour)
	var evs []string
	evs = append(evs, completion("US", 400, 240, at, 0)...)    // 0.60
	evs = append(evs, completion("GB", 200, 118, at, 1000)...) // 0.59
	evs = append(evs, completion("BR", 200, 80, at, 2000)...)  // 0.40: below 0.9 × global
	evs = append(evs, completion("XX", 10, 0, at, 3000)...)    // too few to judge
	// Outside the window: a day earlier, all failed.
	evs = append(evs, completion("US", 300, 0, t0.Add(-10*time.Hour), 4000)...)
	e.ingest(t, "plays", evs)
	var imps []string
	for i := range 100 {
		imps = append(imps, fmt.Sprintf(`{"member_id":"m%d","ts":%q,"market":"US","items":80}`, i, at.Format(time.RFC3339)))
	}
	e.ingest(t, "impressions", imps)
	rs, err := e.r.EvaluateDue(context.Background(), t0.Add(24*time.Hour))
	if err != nil || len(rs) != 3 {
		t.Fatalf("%+v %v", rs, err)
	}
	byName := map[string]Result{}
	for _, r := range rs {
		byName[r.Monitor] = r
	}
	// Below its min, but on fewer events than it asks for: not judged.
	if c := check(t, byName["few"], "ratio"); c.Judged || c.Breached || c.Note != "810 events, fewer than min_events 5000" {
		t.Fatalf("few: %+v", c)
	}
	q := byName["completion-by-market"]
	global := 438.0 / 810
	if c := check(t, q, "ratio"); math.Abs(*c.Value-global) > 1e-12 || c.Breached || !c.Judged {
		t.Fatalf("global: %+v", c)
	}
	var breached []string
	for _, c := range q.Checks {
		if c.Breached {
			breached = append(breached, c.Name)
		}
	}
	if !q.Breached || len(breached) != 1 || breached[0] != "relative/market=BR" {
		t.Fatalf("breached %v, want only relative/market=BR: %+v", breached, q.Checks)
	}
	if c := check(t, q, "relative/market=BR"); math.Abs(*c.Value-0.4/global) > 1e-12 || *c.Min != 0.9 {
		t.Fatalf("BR: %+v", c)
	}
	if c := check(t, q, "relative/market=XX"); c.Judged || c.Breached || !strings.Contains(c.Note, "10 events, fewer than min_events 50") {
		t.Fatalf("XX: %+v", c)
	}
	var ev QualityEvidence
	json.Unmarshal(q.Evidence, &ev)
	if ev.Numerator.Sum != 438 || ev.Denominator.Events != 810 || len(ev.Groups) != 4 || ev.Groups[0].Value != "BR" {
		t.Fatalf("evidence: %+v", ev)
	}
	ct := byName["click-through"]
	if c := check(t, ct, "ratio"); math.Abs(*c.Value-810.0/8000) > 1e-12 || ct.Breached {
		t.Fatalf("click-through: %+v", ct)
	}
	// Only the breach of the monitor that publishes is a signal.
	if len(e.pub.sigs) != 1 || !strings.Contains(string(e.pub.sigs[0].Params["check"]), "relative/market=BR") {
		t.Fatalf("signals: %+v", e.pub.sigs)
	}
}

const responsibleYAML = `monitors:
  - name: home-rai
    kind: responsible_ai
    endpoint: home
    window: 1d
    catalog_coverage: {min: 0.2}
    diversity: {min: 0.5}
    new_creator_exposure: {min: 0.1, max: 0.9}
    min_pages: 100
    market_quality:
      numerator: {source: plays, field: completed}
      denominator: {source: plays}
      by: market
      min_relative: 0.8
    every: 1d
    publish: drift_detected
`

// Responsible AI: coverage, diversity and new creators' exposure from the
// window of served pages, each against its bounds; too few pages are
// reported, not judged.
func TestResponsibleAIChecks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.model(t, "rec-home", "x\n1\n")
	e.endpoint(t, "home", "rec-home", true)
	e.apply(t, responsibleYAML)
	e.pages.w = serve.PageWindow{Pages: 400, Rows: 1600, Items: 32000, NewCreatorItems: 1600, DiversitySum: 1600 * 0.62, Titles: 150, Catalog: 1000, Models: 1}
	e.ingest(t, "plays", append(completion("US", 100, 60, t0.Add(time.Hour), 0), completion("BR", 100, 30, t0.Add(time.Hour), 100)...))
	now := t0.Add(24 * time.Hour)
	r := e.evaluate(t, now)
	if !e.pages.from.Equal(t0) || !e.pages.to.Equal(now) {
		t.Fatalf("pages window [%s, %s)", e.pages.from, e.pages.to)
	}
	want := map[string]struct {
		v        float64
		breached bool
	}{"catalog_coverage": {0.15, true}, "diversity": {0.62, false}, "new_creator_exposure": {0.05, true}, "market_quality/market=BR": {0.3 / 0.45, true}, "market_quality/market=US": {0.6 / 0.45, false}}
	for name, w := range want {
		c := check(t, r, name)
		if math.Abs(*c.Value-w.v) > 1e-12 || c.Breached != w.breached || !c.Judged {
			t.Fatalf("%s: %+v, want %g breached %v", name, c, w.v, w.breached)
		}
	}
	if len(r.Checks) != len(want) || !r.Breached || r.Signal == "" {
		t.Fatalf("%+v", r)
	}
	// Too few pages: nothing about pages is judged.
	e.pages.w = serve.PageWindow{Pages: 99, Rows: 99, Items: 990, Titles: 1, Catalog: 1000}
	r = e.evaluate(t, now.Add(24*time.Hour))
	if c := check(t, r, "catalog_coverage"); c.Judged || c.Breached || !strings.Contains(c.Note, "99 pages served in the window, fewer than min_pages 100") {
		t.Fatalf("%+v", c)
	}
}

func sortFloats(x []float64)             { slices.Sort(x) }
func statDeciles(x []float64) [9]float64 { return stat.Deciles(x) }
func statPSICounts(a, b []float64) float64 {
	return stat.PSICounts(a, b)
}
func statPSI(a, b []float64) float64 { return stat.PSI(a, b) }

// A breach found by the part of an evaluation that could read its data is
// published, and the part that could not is the result's error.
func TestPartialEvaluationStillPublishesItsBreach(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.model(t, "rec-home", "x\n1\n")
	e.endpoint(t, "home", "rec-home", true)
	e.apply(t, responsibleYAML)
	e.pages.w = serve.PageWindow{Pages: 400, Rows: 1600, Items: 32000, NewCreatorItems: 1600, DiversitySum: 1600 * 0.62, Titles: 150, Catalog: 1000, Models: 1}
	e.r = NewRunner(Deps{Store: e.st, Pages: e.pages, Publish: e.pub.publish, Reg: e.reg, Log: e.r.d.Log})
	r := e.evaluate(t, t0.Add(24*time.Hour))
	if !r.Breached || r.Signal == "" || r.Error != "evaluate: market quality: this process has no feature engine" || len(r.Checks) != 3 {
		t.Fatalf("%+v", r)
	}
	if n := e.metric(t, "baton_monitor_errors_total", "home-rai", "evaluate"); n != 1 {
		t.Fatalf("evaluation errors counted %g", n)
	}
}
