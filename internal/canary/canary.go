// Package canary judges a canary against its baseline the way Kayenta's
// Netflix judge does (see ml.md, "Canary judge"): each metric is classified
// High, Low, Pass or NoData by a Mann–Whitney test with a Hodges–Lehmann
// shift estimate, and the classifications are scored by group. Everything
// here is pure: no I/O but the readers it is handed, no shared state.
package canary

import (
	"fmt"
	"math"
	"slices"
	"strconv"
)

// Classification is a metric's verdict.
type Classification string

// The classifications, spelled as Kayenta spells them.
const (
	Pass   Classification = "Pass"
	High   Classification = "High"
	Low    Classification = "Low"
	NoData Classification = "NoData"
	// NodataFailMetric is NoData for a metric that must have data: it
	// counts against its group like High or Low.
	NodataFailMetric Classification = "NodataFailMetric"
)

// Verdict is the outcome of the whole canary.
type Verdict string

// The verdicts.
const (
	VerdictPass     Verdict = "pass"
	VerdictMarginal Verdict = "marginal"
	VerdictFail     Verdict = "fail"
)

// Result is the judgement of a canary, in the shape of ml.md's JSON.
type Result struct {
	// Score is the summary score in [0, 100], rounded to 2 decimals.
	Score float64 `json:"score"`
	// RawScore is Score before rounding (0 as well when forced to 0).
	RawScore float64 `json:"raw_score"`
	Result   Verdict `json:"result"`
	// Reason says why the score was forced to 0, if it was.
	Reason  string         `json:"reason,omitempty"`
	Metrics []MetricResult `json:"metrics"`
	Groups  []GroupResult  `json:"groups"`
}

// MetricResult is one metric's classification and the statistics behind
// it. The statistics are NaN (null in JSON) when the test was not run.
type MetricResult struct {
	Name           string         `json:"name"`
	Classification Classification `json:"classification"`
	Critical       bool           `json:"critical"`
	Muted          bool           `json:"muted,omitempty"`
	Group          string         `json:"group"`
	Direction      Direction      `json:"direction"`
	// BaselineCount and CanaryCount are the observations left once NaNs
	// are removed.
	BaselineCount int `json:"baseline_count"`
	CanaryCount   int `json:"canary_count"`
	// Estimate is the Hodges–Lehmann shift canary − baseline, and CILow
	// and CIHigh its interval at the configured confidence.
	Estimate Stat `json:"estimate"`
	CILow    Stat `json:"ci_low"`
	CIHigh   Stat `json:"ci_high"`
	PValue   Stat `json:"p_value"`
	// EffectSize is mean(canary) / mean(baseline); NaN when a mean is 0.
	EffectSize Stat   `json:"effect_size"`
	Reason     string `json:"reason"`
}

// GroupResult is a group's score. Score is NaN (null) when none of the
// group's metrics could be scored; the group then adds nothing to the
// summary but keeps its weight, as in Kayenta.
type GroupResult struct {
	Name   string  `json:"name"`
	Score  Stat    `json:"score"`
	Weight float64 `json:"weight"`
}

// Stat is a statistic that may be undefined: NaN in Go, null in JSON
// (which has no NaN).
type Stat float64

// MarshalJSON writes NaN and the infinities as null.
func (s Stat) MarshalJSON() ([]byte, error) {
	f := float64(s)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, f, 'g', -1, 64), nil
}

// UnmarshalJSON reads null as NaN.
func (s *Stat) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*s = Stat(math.NaN())
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("canary: statistic %s: %w", b, err)
	}
	*s = Stat(f)
	return nil
}

// Judge classifies every metric of baseline and canary (and every metric
// cfg names) and scores the canary. The samples are left untouched.
//
// cfg must pass Validate (LoadConfig sees to it). An invalid cfg fails the
// canary, with the problem in Reason, rather than guessing what was meant.
func Judge(baseline, canary map[string][]float64, cfg Config) Result {
	if err := cfg.Validate(); err != nil {
		return Result{Result: VerdictFail, Reason: "invalid configuration: " + err.Error(),
			Metrics: []MetricResult{}, Groups: []GroupResult{}}
	}
	names := metricNames(baseline, canary, cfg.Metrics)
	res := Result{Metrics: make([]MetricResult, len(names))}
	var ws workspace
	for i, name := range names {
		res.Metrics[i] = ws.judgeMetric(name, baseline[name], canary[name], cfg.Metrics[name], cfg)
	}
	score(&res, cfg)
	return res
}

func metricNames(b, c map[string][]float64, m map[string]MetricConfig) []string {
	names := make([]string, 0, max(len(b), len(c), len(m)))
	for _, src := range []map[string][]float64{b, c} {
		for k := range src {
			names = append(names, k)
		}
	}
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// judgeMetric is Kayenta's MannWhitneyClassifier.
func (ws *workspace) judgeMetric(name string, baseline, canary []float64, mc MetricConfig, cfg Config) MetricResult {
	nan := Stat(math.NaN())
	r := MetricResult{
		Name: name, Critical: mc.Critical, Muted: mc.Muted, Group: groupOf(mc), Direction: mc.direction(),
		Estimate: nan, CILow: nan, CIHigh: nan, PValue: nan, EffectSize: nan,
	}
	// Infinities go with the NaNs: R's wilcox.test drops them too, and a
	// mean that is infinite would make the effect size meaningless.
	ws.x = ws.sortedFinite(ws.x, canary)
	ws.y = ws.sortedFinite(ws.y, baseline)
	x, y := ws.x, ws.y
	r.CanaryCount, r.BaselineCount = len(x), len(y)
	switch {
	case len(x) == 0 || len(y) == 0:
		r.Classification, r.Reason = NoData, "no data in the baseline or the canary"
		if mc.MustHaveData {
			r.Classification = NodataFailMetric
		}
		return r
	case slices.Equal(x, y):
		r.Classification, r.Reason = Pass, "baseline and canary are identical"
		return r
	case x[0] == x[len(x)-1] && y[0] == y[len(y)-1] && x[0] == y[0]:
		r.Classification, r.Reason = Pass, "one value throughout"
		return r
	case len(x) > math.MaxInt32 || len(y) > math.MaxInt32:
		r.Classification, r.Reason = NoData, "more than 2³¹ − 1 observations"
		return r
	}
	mw := ws.mannWhitney(cfg.confidence())
	r.Estimate, r.CILow, r.CIHigh, r.PValue = Stat(mw.Estimate), Stat(mw.CILow), Stat(mw.CIHigh), Stat(mw.PValue)
	effect := math.NaN()
	if mx, my := mean(x), mean(y); mx != 0 && my != 0 {
		effect = mx / my
	}
	r.EffectSize = Stat(effect)

	bound := orDefault(cfg.Tolerance, DefaultTolerance) * math.Abs(mw.Estimate)
	dir := r.Direction
	// A NaN effect size cannot veto: the comparisons below are false.
	switch {
	case dir != Decrease && mw.CILow > bound && !(effect < orDefault(mc.AllowedIncrease, DefaultAllowedIncrease)):
		r.Classification = High
		r.Reason = fmt.Sprintf("interval [%.4g, %.4g] of the shift is above +%.4g", mw.CILow, mw.CIHigh, bound)
	case dir != Increase && mw.CIHigh < -bound && !(effect > orDefault(mc.AllowedDecrease, DefaultAllowedDecrease)):
		r.Classification = Low
		r.Reason = fmt.Sprintf("interval [%.4g, %.4g] of the shift is below −%.4g", mw.CILow, mw.CIHigh, bound)
	default:
		r.Classification = Pass
		r.Reason = fmt.Sprintf("interval [%.4g, %.4g] of the shift is not clear of ±%.4g", mw.CILow, mw.CIHigh, bound)
		if mw.CILow > bound || mw.CIHigh < -bound {
			r.Reason = fmt.Sprintf("shift interval [%.4g, %.4g] is allowed by the direction or the effect size %.4g", mw.CILow, mw.CIHigh, effect)
		}
	}
	return r
}

func mean(v []float64) float64 {
	s := 0.0
	for _, f := range v {
		s += f
	}
	return s / float64(len(v))
}

// score is Kayenta's WeightedSumScorer and ThresholdScoreClassifier.
func score(res *Result, cfg Config) {
	type tally struct{ pass, failed int }
	groups := map[string]*tally{}
	active, noData := 0, 0
	criticalFailure := ""
	for _, m := range res.Metrics {
		if m.Muted {
			continue
		}
		active++
		if m.Critical && m.Classification != Pass && criticalFailure == "" {
			criticalFailure = m.Name
		}
		t := groups[m.Group]
		if t == nil {
			t = &tally{}
			groups[m.Group] = t
		}
		switch m.Classification {
		case NoData:
			noData++
		case Pass:
			t.pass++
		default:
			t.failed++
		}
	}

	// Configured weights count in full even for a group that is absent
	// (all its metrics muted): weights are shares of 100, as in Kayenta.
	// Summed in the groups' order, not the map's: Go's random order would
	// leave the unweighted groups' share, and so the raw score, a rounding
	// apart between two judgements of the same samples.
	weighted := 0.0
	for _, g := range sortedKeys(cfg.Weights) {
		weighted += cfg.Weights[g]
	}
	names := sortedKeys(groups)
	unweighted := 0
	for _, g := range names {
		if _, ok := cfg.Weights[g]; !ok {
			unweighted++
		}
	}
	share := 0.0
	if unweighted > 0 {
		share = (100 - weighted) / float64(unweighted)
	}
	res.Groups = make([]GroupResult, 0, len(names))
	raw := 0.0
	for _, g := range names {
		t := groups[g]
		w, ok := cfg.Weights[g]
		if !ok {
			w = share
		}
		gr := GroupResult{Name: g, Score: Stat(math.NaN()), Weight: w}
		if n := t.pass + t.failed; n > 0 {
			s := 100 * float64(t.pass) / float64(n)
			gr.Score = Stat(s)
			raw += s * w / 100
		}
		res.Groups = append(res.Groups, gr)
	}

	switch {
	case active == 0:
		raw, res.Reason = 0, "no metric to score"
	case criticalFailure != "":
		raw, res.Reason = 0, fmt.Sprintf("critical metric %q is not Pass", criticalFailure)
	case 2*noData >= active:
		raw, res.Reason = 0, fmt.Sprintf("%d of %d metrics have no data", noData, active)
	}
	res.RawScore = raw
	res.Score = math.Round(raw*100) / 100
	pass, marginal := cfg.thresholds()
	switch {
	case res.Score >= pass:
		res.Result = VerdictPass
	case res.Score >= marginal:
		res.Result = VerdictMarginal
	default:
		res.Result = VerdictFail
	}
}
