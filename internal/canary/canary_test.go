package canary

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// vectors holds the reference files shared by the whole project beside the
// repository.
var vectors = filepath.Join("..", "..", "..", "shared", "testdata", "stats")

func openVector(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := os.Open(filepath.Join(vectors, name))
	if err != nil {
		if os.Getenv("CI") != "true" {
			t.Skipf("reference vectors missing (they live in ../shared beside the repository; under CI=true this fails): %v", err)
		}
		t.Fatalf("reference vectors missing (they live in ../shared beside the repository): %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func readVector(t *testing.T, name string) map[string][]float64 {
	t.Helper()
	s, err := ReadSamples(openVector(t, name), name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVectors(t *testing.T) {
	t.Parallel()
	var file struct {
		Cases []struct {
			Name           string            `json:"name"`
			Baseline       string            `json:"baseline"`
			Canary         string            `json:"canary"`
			Config         *string           `json:"config"`
			Classification map[string]string `json:"classification"`
			Score          float64           `json:"score"`
			Result         string            `json:"result"`
		} `json:"cases"`
	}
	if err := json.NewDecoder(openVector(t, "canary.json")).Decode(&file); err != nil {
		t.Fatal(err)
	}
	if len(file.Cases) == 0 {
		t.Fatal("canary.json has no cases")
	}
	for _, c := range file.Cases {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			var cfg Config
			if c.Config != nil {
				var err error
				if cfg, err = LoadConfig(openVector(t, *c.Config), *c.Config); err != nil {
					t.Fatal(err)
				}
			}
			res := Judge(readVector(t, c.Baseline), readVector(t, c.Canary), cfg)
			if len(res.Metrics) != len(c.Classification) {
				t.Errorf("%d metrics, want %d", len(res.Metrics), len(c.Classification))
			}
			for _, m := range res.Metrics {
				if want := c.Classification[m.Name]; string(m.Classification) != want {
					t.Errorf("%s: %s (%s), want %s", m.Name, m.Classification, m.Reason, want)
				}
			}
			// The vectors give the score unrounded; ml.md rounds it to 2
			// decimals. RawScore is the former, Score the latter.
			if math.Abs(res.RawScore-c.Score) > 1e-9 {
				t.Errorf("raw score %v, want %v", res.RawScore, c.Score)
			}
			if want := math.Round(c.Score*100) / 100; res.Score != want {
				t.Errorf("score %v, want %v", res.Score, want)
			}
			if string(res.Result) != c.Result {
				t.Errorf("result %s, want %s", res.Result, c.Result)
			}
		})
	}
}

func ptr(v float64) *float64 { return &v }

// shifted returns n observations around center, spread deterministically.
func shifted(center float64, n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = center + float64(i%10) - 4.5 + float64(i)/float64(10*n)
	}
	return v
}

func classes(r Result) map[string]Classification {
	m := map[string]Classification{}
	for _, mr := range r.Metrics {
		m[mr.Name] = mr.Classification
	}
	return m
}

func TestJudgeClassification(t *testing.T) {
	t.Parallel()
	base := shifted(100, 50)
	up := shifted(130, 50)
	down := shifted(70, 50)
	nan := math.NaN()
	for _, c := range []struct {
		name   string
		b, c   []float64
		mc     MetricConfig
		want   Classification
		reason string
	}{
		{"no canary data", base, nil, MetricConfig{}, NoData, "no data"},
		{"only NaN", base, []float64{nan, nan}, MetricConfig{}, NoData, "no data"},
		{"must have data", nil, base, MetricConfig{MustHaveData: true}, NodataFailMetric, "no data"},
		{"identical", base, append([]float64{nan}, base...), MetricConfig{}, Pass, "identical"},
		{"identical in another order", []float64{3, 1, 2}, []float64{2, 3, 1}, MetricConfig{}, Pass, "identical"},
		{"one value", []float64{4, 4, 4}, []float64{4, nan}, MetricConfig{}, Pass, "one value"},
		{"up", base, up, MetricConfig{}, High, "above"},
		{"up, increase", base, up, MetricConfig{Direction: Increase}, High, "above"},
		{"up, decrease", base, up, MetricConfig{Direction: Decrease}, Pass, "allowed"},
		{"down", base, down, MetricConfig{}, Low, "below"},
		{"down, decrease", base, down, MetricConfig{Direction: Decrease}, Low, "below"},
		{"down, increase", base, down, MetricConfig{Direction: Increase}, Pass, "allowed"},
		{"same", base, shifted(100.2, 50), MetricConfig{}, Pass, "not clear"},
		// 30% up, within an allowed increase of 1.5.
		{"up within allowance", base, up, MetricConfig{AllowedIncrease: ptr(1.5)}, Pass, "allowed"},
		{"up beyond allowance", base, up, MetricConfig{AllowedIncrease: ptr(1.2)}, High, "above"},
		{"down within allowance", base, down, MetricConfig{AllowedDecrease: ptr(0.5)}, Pass, "allowed"},
		// A zero mean makes the effect size NaN, which cannot veto.
		{"zero baseline mean", []float64{-1, 1, -2, 2, 0}, []float64{10, 11, 12, 13, 14}, MetricConfig{AllowedIncrease: ptr(1e9)}, High, "above"},
		// Constant and different: every difference is the same.
		{"constant shift", []float64{3, 3, 3}, []float64{5, 5}, MetricConfig{}, High, "above"},
	} {
		res := Judge(map[string][]float64{"m": c.b}, map[string][]float64{"m": c.c}, Config{Metrics: map[string]MetricConfig{"m": c.mc}})
		m := res.Metrics[0]
		if m.Classification != c.want || !strings.Contains(m.Reason, c.reason) {
			t.Errorf("%s: %s (%s), want %s (%s)", c.name, m.Classification, m.Reason, c.want, c.reason)
		}
	}
}

func TestJudgeTolerance(t *testing.T) {
	t.Parallel()
	// Shift 1 with an interval of about [0.92, 1.08]: clear of ±0.25 of
	// the estimate, not of ±0.95.
	b := shifted(100, 400)
	c := shifted(101, 400)
	in := map[string][]float64{"m": b}
	out := map[string][]float64{"m": c}
	if got := Judge(in, out, Config{}).Metrics[0]; got.Classification != High {
		t.Fatalf("default tolerance: %s (%s)", got.Classification, got.Reason)
	}
	if got := Judge(in, out, Config{Tolerance: ptr(0.95)}).Metrics[0]; got.Classification != Pass {
		t.Errorf("tolerance 0.95: %s (%s)", got.Classification, got.Reason)
	}
	if got := Judge(in, out, Config{Confidence: 0.5}).Metrics[0]; !(float64(got.CIHigh)-float64(got.CILow) < 0.5) {
		t.Errorf("confidence 0.5: interval [%v, %v]", got.CILow, got.CIHigh)
	}
}

func TestJudgeScore(t *testing.T) {
	t.Parallel()
	base := shifted(100, 40)
	up := shifted(140, 40)
	same := shifted(100, 40)
	// b and c build samples from a metric → (baseline, canary) table.
	sample := func(m map[string][2][]float64) (b, c map[string][]float64) {
		b, c = map[string][]float64{}, map[string][]float64{}
		for k, v := range m {
			b[k], c[k] = v[0], v[1]
		}
		return b, c
	}
	pass := [2][]float64{base, same}
	high := [2][]float64{base, up}
	none := [2][]float64{base, nil}
	for _, c := range []struct {
		name    string
		metrics map[string][2][]float64
		cfg     Config
		score   float64
		result  Verdict
		reason  string
	}{
		{"all pass", map[string][2][]float64{"a": pass, "b": pass}, Config{}, 100, VerdictPass, ""},
		{"one of three high", map[string][2][]float64{"a": pass, "b": pass, "c": high}, Config{}, 66.67, VerdictMarginal, ""},
		{"one of two high", map[string][2][]float64{"a": pass, "b": high}, Config{}, 50, VerdictMarginal, ""},
		{"one of three high, strict", map[string][2][]float64{"a": pass, "b": pass, "c": high},
			Config{Thresholds: Thresholds{Pass: ptr(95), Marginal: ptr(90)}}, 66.67, VerdictFail, ""},
		{"one of three high, lenient", map[string][2][]float64{"a": pass, "b": pass, "c": high},
			Config{Thresholds: Thresholds{Pass: ptr(60), Marginal: ptr(0)}}, 66.67, VerdictPass, ""},
		{"critical high", map[string][2][]float64{"a": pass, "b": pass, "c": high, "d": pass},
			Config{Metrics: map[string]MetricConfig{"c": {Critical: true}}}, 0, VerdictFail, `critical metric "c"`},
		{"critical no data", map[string][2][]float64{"a": pass, "b": pass, "c": none, "d": pass},
			Config{Metrics: map[string]MetricConfig{"c": {Critical: true}}}, 0, VerdictFail, `critical metric "c"`},
		{"muted high", map[string][2][]float64{"a": pass, "b": high},
			Config{Metrics: map[string]MetricConfig{"b": {Muted: true}}}, 100, VerdictPass, ""},
		// NoData is left out of its group's score...
		{"one no data", map[string][2][]float64{"a": pass, "b": pass, "c": none}, Config{}, 100, VerdictPass, ""},
		// ...unless the metric must have data.
		{"must have data", map[string][2][]float64{"a": pass, "b": pass, "c": none},
			Config{Metrics: map[string]MetricConfig{"c": {MustHaveData: true}}}, 66.67, VerdictMarginal, ""},
		{"half no data", map[string][2][]float64{"a": pass, "b": none}, Config{}, 0, VerdictFail, "1 of 2 metrics have no data"},
		// A metric named in the configuration and in neither sample is NoData.
		{"configured, absent", map[string][2][]float64{"a": pass, "b": pass},
			Config{Metrics: map[string]MetricConfig{"c": {}, "d": {}}}, 0, VerdictFail, "2 of 4"},
		{"muted no data", map[string][2][]float64{"a": pass, "b": none},
			Config{Metrics: map[string]MetricConfig{"b": {Muted: true}}}, 100, VerdictPass, ""},
		{"nothing", nil, Config{}, 0, VerdictFail, "no metric"},
		// Groups: errors 1/2 pass, latency 1/1: weighted 70/30.
		{"weights", map[string][2][]float64{"e1": pass, "e2": high, "l1": pass},
			Config{Metrics: map[string]MetricConfig{"e1": {Group: "errors"}, "e2": {Group: "errors"}, "l1": {Group: "latency"}},
				Weights: map[string]float64{"errors": 70, "latency": 30}}, 65, VerdictMarginal, ""},
		// Unweighted groups share what is left: errors 60, latency and
		// default 20 each → 0.5·60 + 20 + 20.
		{"partial weights", map[string][2][]float64{"e1": pass, "e2": high, "l1": pass, "x": pass},
			Config{Metrics: map[string]MetricConfig{"e1": {Group: "errors"}, "e2": {Group: "errors"}, "l1": {Group: "latency"}},
				Weights: map[string]float64{"errors": 60}}, 70, VerdictMarginal, ""},
		// A group with no data keeps its share (Kayenta): 50 + 0.
		{"group without data", map[string][2][]float64{"a": pass, "b": pass, "c": none},
			Config{Metrics: map[string]MetricConfig{"c": {Group: "other"}}}, 50, VerdictMarginal, ""},
	} {
		b, cn := sample(c.metrics)
		res := Judge(b, cn, c.cfg)
		if res.Score != c.score || res.Result != c.result || !strings.Contains(res.Reason, c.reason) || (c.reason == "") != (res.Reason == "") {
			t.Errorf("%s: score %v %s (%q), want %v %s (%q); metrics %v", c.name, res.Score, res.Result, res.Reason,
				c.score, c.result, c.reason, classes(res))
		}
	}
}

// TestRawScoreIsBitForBitDeterministic judges the same samples again and
// again: the weights used to be summed in Go's random map order, which
// left the unweighted group's share, and the raw score, a rounding apart
// from one judgement to the next.
func TestRawScoreIsBitForBitDeterministic(t *testing.T) {
	t.Parallel()
	base, up, same := shifted(100, 40), shifted(140, 40), shifted(100, 40)
	b, c := map[string][]float64{}, map[string][]float64{}
	cfg := Config{Metrics: map[string]MetricConfig{}, Weights: map[string]float64{}}
	// Twelve weighted groups whose sum depends on the order it is taken
	// in, each failing, and one passing (the default group's metric "x")
	// that shares what they leave: the raw score is that share.
	for i, w := range []float64{1.1, 2.3, 3.7, 0.9, 4.1, 5.3, 0.7, 6.1, 1.3, 2.9, 0.3, 7.9} {
		g, m := fmt.Sprintf("g%02d", i), fmt.Sprintf("m%02d", i)
		cfg.Metrics[m] = MetricConfig{Group: g}
		cfg.Weights[g] = w
		b[m], c[m] = base, up
	}
	b["x"], c["x"] = base, same
	want := math.Float64bits(Judge(b, c, cfg).RawScore)
	for range 200 {
		if got := math.Float64bits(Judge(b, c, cfg).RawScore); got != want {
			t.Fatalf("raw score %v, then %v: the same samples judged twice differ", math.Float64frombits(want), math.Float64frombits(got))
		}
	}
}

func TestJudgeInvalidConfig(t *testing.T) {
	t.Parallel()
	res := Judge(map[string][]float64{"m": {1}}, map[string][]float64{"m": {1}},
		Config{Metrics: map[string]MetricConfig{"m": {Direction: "up"}}})
	if res.Result != VerdictFail || !strings.Contains(res.Reason, "metrics.m.direction") {
		t.Errorf("%+v", res)
	}
	if _, err := json.Marshal(res); err != nil {
		t.Error(err)
	}
}

func TestJudgeLeavesInputAlone(t *testing.T) {
	t.Parallel()
	b := []float64{3, 1, math.NaN(), 2}
	c := []float64{9, 8, 7}
	Judge(map[string][]float64{"m": b}, map[string][]float64{"m": c}, Config{})
	if b[0] != 3 || b[1] != 1 || !math.IsNaN(b[2]) || c[0] != 9 {
		t.Errorf("samples changed: %v %v", b, c)
	}
}

func TestResultJSON(t *testing.T) {
	t.Parallel()
	res := Judge(map[string][]float64{"latency": shifted(100, 30), "errors": {0, 0, 1}, "cpu": {1}},
		map[string][]float64{"latency": shifted(150, 30), "errors": {0, 1, 0}},
		Config{Metrics: map[string]MetricConfig{"errors": {Critical: true}}})
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	// Decode into maps: the test is of the JSON's shape, not of a Go type.
	var got struct {
		Score   *float64         `json:"score"`
		Result  string           `json:"result"`
		Metrics []map[string]any `json:"metrics"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Score == nil || got.Result == "" || len(got.Metrics) != 3 {
		t.Fatalf("%s", b)
	}
	want := []map[string]any{
		{"name": "cpu", "classification": "NoData", "critical": false, "estimate": nil},
		{"name": "errors", "classification": "Pass", "critical": true, "estimate": nil},
		{"name": "latency", "classification": "High", "critical": false, "estimate": 50.0},
	}
	for i, w := range want {
		for k, v := range w {
			if got.Metrics[i][k] != v {
				t.Errorf("metric %d: %s = %v, want %v", i, k, got.Metrics[i][k], v)
			}
		}
	}
	var back Result
	if err := json.Unmarshal(b, &back); err != nil || !math.IsNaN(float64(back.Metrics[0].Estimate)) || back.Metrics[2].Estimate != 50 {
		t.Errorf("round trip: %v %+v", err, back.Metrics)
	}
}

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	cfg, err := LoadConfig(strings.NewReader(`
metrics:
  errors: {direction: increase, critical: true, group: reliability, must_have_data: true}
  latency: {direction: either, allowed_increase: 1.1, group: speed}
  rps: {direction: decrease, allowed_decrease: 0.9, group: speed, muted: true}
weights: {reliability: 60}
thresholds: {pass: 80, marginal: 0}
confidence: 0.95
tolerance: 0
`), "canary.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.Metrics
	if m["errors"].Direction != Increase || !m["errors"].Critical || !m["errors"].MustHaveData || m["errors"].Group != "reliability" ||
		*m["latency"].AllowedIncrease != 1.1 || *m["rps"].AllowedDecrease != 0.9 || !m["rps"].Muted ||
		cfg.Weights["reliability"] != 60 || *cfg.Thresholds.Pass != 80 || *cfg.Thresholds.Marginal != 0 ||
		cfg.Confidence != 0.95 || cfg.Tolerance == nil || *cfg.Tolerance != 0 {
		t.Errorf("%+v", cfg)
	}
	if cfg, err := LoadConfig(strings.NewReader("\n"), "empty.yaml"); err != nil || cfg.Metrics != nil {
		t.Errorf("empty file: %+v, %v", cfg, err)
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		yaml string
		want []string
	}{
		{"metrics:\n  latency: {direction: up}\n", []string{"bad.yaml", "metrics.latency.direction", `"up"`}},
		{"metrics:\n  latency: {directon: up}\n", []string{"bad.yaml", "line 2", "directon"}},
		{"metric:\n  latency: {}\n", []string{"bad.yaml", "line 1", "metric"}},
		{"metrics:\n  latency: {critical: true, muted: true}\n", []string{"metrics.latency", "critical and muted"}},
		{"metrics:\n  latency: {allowed_increase: -1}\n", []string{"metrics.latency.allowed_increase", "-1"}},
		{"metrics:\n  latency: {allowed_decrease: .nan}\n", []string{"metrics.latency.allowed_decrease"}},
		{"metrics:\n  a: {group: x}\n  b: {group: y}\nweights: {x: 70, y: 40}\n", []string{"weights", "110", "over 100"}},
		{"metrics:\n  a: {group: x}\nweights: {x: -5}\n", []string{"weights.x", "-5"}},
		{"metrics:\n  a: {group: x}\nweights: {z: 5}\n", []string{"weights.z", "no metric"}},
		{"thresholds: {pass: 50, marginal: 75}\n", []string{"thresholds", "marginal 75 is above pass 50"}},
		{"thresholds: {marginal: 80}\n", []string{"thresholds", "marginal 80 is above pass 75"}},
		{"thresholds: {pass: 101}\n", []string{"thresholds.pass", "101"}},
		{"thresholds: {marginal: -1}\n", []string{"thresholds.marginal", "-1"}},
		{"confidence: 1.5\n", []string{"confidence", "1.5"}},
		{"confidence: -0.1\n", []string{"confidence"}},
		{"tolerance: -0.25\n", []string{"tolerance", "-0.25"}},
		{"thresholds: [75, 50]\n", []string{"bad.yaml", "line 1"}},
		{"metrics:\n  a: {}\n  a: {}\n", []string{"bad.yaml", "line 3"}},
	} {
		_, err := LoadConfig(strings.NewReader(c.yaml), "bad.yaml")
		if err == nil {
			t.Errorf("%q: no error", c.yaml)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q: error %q does not name %s", c.yaml, err, w)
			}
		}
	}
	if err := (Config{Metrics: map[string]MetricConfig{"": {}}}).Validate(); err == nil || !strings.Contains(err.Error(), "empty name") {
		t.Errorf("empty metric name: %v", err)
	}
}

// BenchmarkJudge20x10000 is the target size: 20 metrics, 10,000 points a
// side each. Target: under 100 ms per Judge.
func BenchmarkJudge20x10000(b *testing.B) {
	rng := rand.New(rand.NewPCG(7, 8))
	base, can := map[string][]float64{}, map[string][]float64{}
	for m := range 20 {
		name := fmt.Sprintf("metric%02d", m)
		shift := float64(m%3) * 0.5 // a third shifted up, a third more
		bs, cs := make([]float64, 10000), make([]float64, 10000)
		for i := range bs {
			bs[i] = 100 + rng.NormFloat64()*10
			cs[i] = 100 + shift + rng.NormFloat64()*10
		}
		base[name], can[name] = bs, cs
	}
	b.ReportAllocs()
	for b.Loop() {
		Judge(base, can, Config{})
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ms/op")
}
