package abtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// vectors holds the SciPy reference files, shared by the whole project
// beside the repository.
var vectors = filepath.Join("..", "..", "..", "shared", "testdata", "stats")

// tol is the relative tolerance against SciPy. Every value of the vectors
// agrees to it: the formulas are the same and the special functions
// (incomplete beta and gamma, their inverses) are accurate to about 1e-13.
const tol = 1e-9

type vecComparison struct {
	LiftAbs     *float64 `json:"lift_abs"`
	LiftRel     *float64 `json:"lift_rel"`
	CILow       *float64 `json:"ci_low"`
	CIHigh      *float64 `json:"ci_high"`
	PValue      *float64 `json:"p_value"`
	Significant *bool    `json:"significant"`
	Theta       *float64 `json:"theta"`
	Covariate   string   `json:"covariate"`
	NTotal      *int     `json:"n_total"`
	Tuning      *float64 `json:"tuning"`
}

type vecCase struct {
	File    string                              `json:"file"`
	Control string                              `json:"control"`
	SRM     SRMResult                           `json:"srm"`
	Metrics map[string]map[string]vecComparison `json:"metrics"`
}

func loadVectors(t testing.TB) []vecCase {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vectors, "exp.json"))
	if err != nil {
		if os.Getenv("CI") != "true" {
			t.Skipf("reference vectors missing (they live in ../shared beside the repository; under CI=true this fails): %v", err)
		}
		t.Fatalf("reference vectors missing (they live in ../shared beside the repository): %v", err)
	}
	var v struct {
		Cases []vecCase `json:"cases"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Cases) == 0 {
		t.Fatal("exp.json has no cases")
	}
	return v.Cases
}

func readFile(t testing.TB, path string) *Table {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		if os.Getenv("CI") != "true" {
			t.Skipf("reference vectors missing (they live in ../shared beside the repository; under CI=true this fails): %v", err)
		}
		t.Fatalf("reference vectors missing (they live in ../shared beside the repository): %v", err)
	}
	defer f.Close()
	tab, err := ReadTable(f, path)
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func near(got, want float64) bool {
	if got == want {
		return true
	}
	return math.Abs(got-want) <= tol*math.Abs(want)
}

// worstRel is the largest relative error against the vectors, for the log.
var worstRel struct {
	sync.Mutex
	v    float64
	what string
}

func checkNum(t *testing.T, what string, got float64, want *float64) {
	t.Helper()
	if want != nil && *want != 0 {
		worstRel.Lock()
		if r := math.Abs(got-*want) / math.Abs(*want); r > worstRel.v {
			worstRel.v, worstRel.what = r, t.Name()+" "+what
		}
		worstRel.Unlock()
	}
	if want != nil && !near(got, *want) {
		t.Errorf("%s = %.17g, want %.17g (rel. error %.2g)", what, got, *want, math.Abs(got-*want)/math.Abs(*want))
	}
}

// TestVectors checks every case, metric and method of exp.json.
func TestVectors(t *testing.T) {
	t.Parallel()
	checked := 0
	for _, c := range loadVectors(t) {
		t.Run(c.File, func(t *testing.T) {
			tab := readFile(t, filepath.Join(vectors, c.File))
			opts := Options{Control: c.Control, Covariates: map[string]string{}}
			var metrics []string
			for name, methods := range c.Metrics {
				metrics = append(metrics, name)
				if cu, ok := methods[MethodCUPED]; ok {
					opts.Covariates[name] = cu.Covariate
				}
				if _, ok := methods[MethodSequential]; ok {
					opts.Sequential = true
				}
			}
			rep, err := Analyze(tab, opts)
			if err != nil {
				t.Fatal(err)
			}
			checkNum(t, "srm chi2", rep.SRM.Chi2, &c.SRM.Chi2)
			checkNum(t, "srm p", rep.SRM.PValue, &c.SRM.PValue)
			if rep.SRM.OK != c.SRM.OK {
				t.Errorf("srm ok %v, want %v", rep.SRM.OK, c.SRM.OK)
			}
			if len(rep.Metrics) != len(metrics) {
				t.Fatalf("%d metrics reported, want %v (the numeric columns less the covariates)", len(rep.Metrics), metrics)
			}
			for _, m := range rep.Metrics {
				want, ok := c.Metrics[m.Name]
				if !ok {
					t.Errorf("metric %q reported, not in the vectors", m.Name)
					continue
				}
				for method, w := range want {
					var got *Comparison
					for i := range m.Comparisons {
						if m.Comparisons[i].Method == method {
							if got != nil {
								t.Fatalf("%s: two %s comparisons", m.Name, method)
							}
							got = &m.Comparisons[i]
						}
					}
					if got == nil {
						t.Errorf("%s: no %s comparison", m.Name, method)
						continue
					}
					p := m.Name + " " + method + " "
					checkNum(t, p+"lift_abs", got.LiftAbs, w.LiftAbs)
					checkNum(t, p+"lift_rel", got.LiftRel, w.LiftRel)
					checkNum(t, p+"ci_low", got.CILow, w.CILow)
					checkNum(t, p+"ci_high", got.CIHigh, w.CIHigh)
					checkNum(t, p+"p_value", got.PValue, w.PValue)
					checkNum(t, p+"theta", got.Theta, w.Theta)
					checkNum(t, p+"tuning", got.Tuning, w.Tuning)
					if w.NTotal != nil && got.NTotal != *w.NTotal {
						t.Errorf("%sn_total %d, want %d", p, got.NTotal, *w.NTotal)
					}
					if w.Covariate != "" && got.Covariate != w.Covariate {
						t.Errorf("%scovariate %q, want %q", p, got.Covariate, w.Covariate)
					}
					sig := got.CILow > 0 || got.CIHigh < 0 // the interval excludes 0
					if w.Significant != nil {
						sig = *w.Significant
					}
					if got.Significant != sig {
						t.Errorf("%ssignificant %v, want %v", p, got.Significant, sig)
					}
					if got.Variant != "treatment" {
						t.Errorf("%svariant %q", p, got.Variant)
					}
					checked++
				}
			}
		})
	}
	t.Cleanup(func() {
		if checked < 10 {
			t.Errorf("only %d comparisons checked", checked)
		}
		t.Logf("%d comparisons checked; largest relative error %.2g (%s)", checked, worstRel.v, worstRel.what)
	})
}

// TestVectorsJSON checks the report's JSON against the contract's shape.
func TestVectorsJSON(t *testing.T) {
	t.Parallel()
	c := loadVectors(t)[0]
	tab := readFile(t, filepath.Join(vectors, c.File))
	rep, err := Analyze(tab, Options{Control: c.Control, Covariates: map[string]string{"minutes": "minutes_pre"}, Sequential: true})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		SRM     map[string]any `json:"srm"`
		Metrics []struct {
			Name        string           `json:"name"`
			Variants    []map[string]any `json:"variants"`
			Comparisons []map[string]any `json:"comparisons"`
		} `json:"metrics"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"chi2", "p_value", "ok"} {
		if _, ok := doc.SRM[k]; !ok {
			t.Errorf("srm has no %q: %s", k, b)
		}
	}
	if len(doc.Metrics) != 2 || doc.Metrics[0].Name != "minutes" || doc.Metrics[1].Name != "converted" {
		t.Fatalf("metrics %s", b)
	}
	m := doc.Metrics[0]
	if len(m.Variants) != 2 || m.Variants[0]["name"] != "control" || m.Variants[1]["name"] != "treatment" {
		t.Errorf("variants %v", m.Variants)
	}
	for _, v := range m.Variants {
		for _, k := range []string{"name", "n", "mean", "variance"} {
			if _, ok := v[k]; !ok {
				t.Errorf("variant has no %q: %v", k, v)
			}
		}
	}
	methods := map[string][]string{
		"welch":      nil,
		"cuped":      {"theta", "covariate"},
		"sequential": {"n_total", "tuning"},
	}
	if len(m.Comparisons) != 3 {
		t.Fatalf("comparisons %v", m.Comparisons)
	}
	for _, c := range m.Comparisons {
		method, _ := c["method"].(string)
		extra, ok := methods[method]
		if !ok {
			t.Errorf("method %q", method)
		}
		for _, k := range append([]string{"variant", "lift_abs", "lift_rel", "ci_low", "ci_high", "p_value", "significant", "method"}, extra...) {
			if _, ok := c[k]; !ok {
				t.Errorf("%s comparison has no %q: %v", method, k, c)
			}
		}
		if len(c) != 8+len(extra) {
			t.Errorf("%s comparison has keys %v", method, c)
		}
	}
}

// TestSummaryMatchesTwoPass checks Welford against the textbook two-pass
// mean and variance.
func TestSummaryMatchesTwoPass(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	xs := make([]float64, 100001)
	for i := range xs {
		xs[i] = 1e6 + r.NormFloat64()*3
	}
	var sum float64
	for _, x := range xs {
		sum += x
	}
	mean := sum / float64(len(xs))
	var ss float64
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	s := Summarize(xs)
	if s.N != len(xs) || math.Abs(s.Mean-mean) > 1e-12*mean || math.Abs(s.Variance-ss/float64(len(xs)-1)) > 1e-9*s.Variance {
		t.Errorf("Summarize = %+v, two-pass mean %v variance %v", s, mean, ss/float64(len(xs)-1))
	}
	// Merging halves gives the whole.
	var a, b moments
	for i, x := range xs {
		if i%3 == 0 {
			a.add(x)
		} else {
			b.add(x)
		}
	}
	a.merge(b)
	if m := a.summary(); m.N != s.N || !near(m.Mean, s.Mean) || math.Abs(m.Variance-s.Variance) > 1e-9*s.Variance {
		t.Errorf("merged %+v, whole %+v", m, s)
	}
}

func TestSRM(t *testing.T) {
	t.Parallel()
	// Closed forms: with 1 df the chi-square survival is erfc(sqrt(x/2)),
	// with 2 df exp(−x/2).
	for _, c := range []struct {
		name    string
		obs     []int
		weights []float64
		chi2    float64
		p       float64
		ok      bool
	}{
		{"balanced", []int{500, 500}, []float64{1, 1}, 0, 1, true},
		{"slight", []int{1000, 1100}, []float64{1, 1}, 100.0 / 21, math.Erfc(math.Sqrt(50.0 / 21)), true},
		{"mismatch", []int{1000, 1200}, []float64{0.5, 0.5}, 400.0 / 22, math.Erfc(math.Sqrt(200.0 / 22)), false},
		{"weighted fit", []int{300, 700}, []float64{0.3, 0.7}, 0, 1, true},
		{"weighted, equal counts", []int{500, 500}, []float64{3, 7}, 200.0*200/300 + 200.0*200/700, math.Erfc(math.Sqrt((200.0*200/300 + 200.0*200/700) / 2)), false},
		{"three", []int{100, 110, 90}, []float64{1, 1, 1}, 2, math.Exp(-1), true},
		{"one variant", []int{42}, []float64{1}, 0, 1, true},
		{"no units", []int{0, 0}, []float64{1, 1}, 0, 1, true},
	} {
		got := SRM(c.obs, c.weights)
		if !near(got.Chi2, c.chi2) || math.Abs(got.PValue-c.p) > 1e-12*c.p+1e-300 || got.OK != c.ok {
			t.Errorf("%s: %+v, want chi2 %v p %v ok %v", c.name, got, c.chi2, c.p, c.ok)
		}
	}
	// The vectors' unbalanced case: 3000 and 3180 units.
	for _, c := range loadVectors(t) {
		if c.SRM.Chi2 == 0 {
			continue
		}
		tab := readFile(t, filepath.Join(vectors, c.File))
		counts := make([]int, len(tab.Variants))
		for _, v := range tab.Variant {
			counts[v]++
		}
		got := SRM(counts, []float64{1, 1})
		if !near(got.Chi2, c.SRM.Chi2) || !near(got.PValue, c.SRM.PValue) || got.OK != c.SRM.OK {
			t.Errorf("%s: %+v, want %+v", c.File, got, c.SRM)
		}
	}
}

func TestSRMWeightsInAnalyze(t *testing.T) {
	t.Parallel()
	tab := mustRead(t, "unit,variant,m\n1,A,1\n2,A,2\n3,A,3\n4,B,1\n")
	rep, err := Analyze(tab, Options{Control: "A", Weights: map[string]float64{"A": 3, "B": 1}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.SRM.Chi2 != 0 || rep.SRM.PValue != 1 {
		t.Errorf("3:1 against weights 3:1: %+v", rep.SRM)
	}
	// A weighted variant without units: SRM counts it, and the metric
	// reports it empty.
	rep, err = Analyze(tab, Options{Control: "A", Weights: map[string]float64{"A": 1, "B": 1, "C": 2}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.SRM.DF != 2 || !near(rep.SRM.Chi2, 4+0+2) {
		t.Errorf("SRM with an empty variant: %+v", rep.SRM)
	}
	m := rep.Metrics[0]
	if len(m.Variants) != 3 || m.Variants[2].Name != "C" || m.Variants[2].N != 0 {
		t.Errorf("variants %+v", m.Variants)
	}
	if _, err := Analyze(tab, Options{Control: "A", Weights: map[string]float64{"A": 1}}); err == nil || !strings.Contains(err.Error(), `"B"`) {
		t.Errorf("a variant without a weight: %v", err)
	}
	if _, err := Analyze(tab, Options{Control: "A", Weights: map[string]float64{"A": 1, "B": -1}}); err == nil || !strings.Contains(err.Error(), `"B"`) {
		t.Errorf("a negative weight: %v", err)
	}
}

func mustRead(t testing.TB, s string) *Table {
	t.Helper()
	tab, err := ReadTable(strings.NewReader(s), "test.csv")
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func TestEdgeCases(t *testing.T) {
	t.Parallel()
	t.Run("empty variant", func(t *testing.T) {
		// B has units, but none with a value of m.
		tab := mustRead(t, "unit,variant,m\n1,A,1\n2,A,2\n3,B,\n4,B,NaN\n")
		rep, err := Analyze(tab, Options{Control: "A", Sequential: true})
		if err != nil {
			t.Fatal(err)
		}
		m := rep.Metrics[0]
		if m.Variants[1].N != 0 || !math.IsNaN(m.Variants[1].Mean) {
			t.Errorf("B %+v", m.Variants[1])
		}
		for _, c := range m.Comparisons {
			if !math.IsNaN(c.LiftAbs) || !math.IsNaN(c.PValue) || !math.IsNaN(c.CILow) || c.Significant {
				t.Errorf("%s comparison with an empty variant: %+v", c.Method, c)
			}
		}
		b, err := json.Marshal(rep)
		if err != nil {
			t.Fatalf("NaN must be null in JSON: %v", err)
		}
		if !strings.Contains(string(b), `"lift_abs":null`) || !strings.Contains(string(b), `"mean":null`) {
			t.Errorf("JSON %s", b)
		}
	})
	t.Run("one unit", func(t *testing.T) {
		c := Welch(Summarize([]float64{1, 2, 3}), Summarize([]float64{5}), 0.05)
		if c.LiftAbs != 3 || c.LiftRel != 1.5 || !math.IsNaN(c.PValue) || c.Significant {
			t.Errorf("%+v", c)
		}
	})
	t.Run("zero variance", func(t *testing.T) {
		a := Summarize([]float64{2, 2, 2})
		b := Summarize([]float64{3, 3, 3, 3})
		c := Welch(a, b, 0.05)
		if c.LiftAbs != 1 || c.CILow != 1 || c.CIHigh != 1 || c.PValue != 0 || !c.Significant {
			t.Errorf("different constants: %+v", c)
		}
		c = Welch(a, a, 0.05)
		if c.LiftAbs != 0 || c.PValue != 1 || c.Significant {
			t.Errorf("equal constants: %+v", c)
		}
		s := Sequential(a, b, 0.05, 0)
		if s.CILow != 1 || s.CIHigh != 1 || !s.Significant || s.PValue != 0 {
			t.Errorf("sequential, different constants: %+v", s)
		}
		// One variance 0: Welch's df are the other's n − 1.
		c = Welch(a, Summarize([]float64{1, 2, 3, 4}), 0.05)
		if c.DF != 3 {
			t.Errorf("df %v, want 3", c.DF)
		}
		// A constant covariate: theta 0, CUPED is Welch.
		cu := CUPED([]float64{1, 2, 3}, []float64{5, 5, 5}, []float64{2, 3, 5}, []float64{5, 5, 5}, 0.05)
		w := Welch(Summarize([]float64{1, 2, 3}), Summarize([]float64{2, 3, 5}), 0.05)
		if cu.Theta != 0 || !near(cu.PValue, w.PValue) || !near(cu.CILow, w.CILow) {
			t.Errorf("CUPED with a constant covariate %+v, Welch %+v", cu, w)
		}
	})
	t.Run("zero control mean", func(t *testing.T) {
		c := Welch(Summarize([]float64{-1, 1}), Summarize([]float64{1, 2}), 0.05)
		if !math.IsNaN(c.LiftRel) || c.LiftAbs != 1.5 {
			t.Errorf("%+v", c)
		}
	})
	t.Run("perfect covariate", func(t *testing.T) {
		// post = 2·pre + 1 exactly, and no effect: the adjusted values are
		// all equal.
		pre := []float64{1, 2, 3, 4, 5, 6}
		post := make([]float64, len(pre))
		for i, x := range pre {
			post[i] = 2*x + 1
		}
		c := CUPED(post[:3], pre[:3], post[3:], pre[3:], 0.05)
		if !near(c.Theta, 2) || math.Abs(c.LiftAbs) > 1e-12 {
			t.Errorf("%+v", c)
		}
	})
	t.Run("unknown control", func(t *testing.T) {
		tab := mustRead(t, "unit,variant,m\n1,A,1\n2,B,2\n")
		_, err := Analyze(tab, Options{Control: "ctrl"})
		if err == nil || !strings.Contains(err.Error(), `"ctrl"`) || !strings.Contains(err.Error(), `"A", "B"`) {
			t.Errorf("error %v", err)
		}
		if _, err := Analyze(tab, Options{}); err == nil {
			t.Error("no control: no error")
		}
	})
	t.Run("single variant", func(t *testing.T) {
		tab := mustRead(t, "unit,variant,m\n1,A,1\n2,A,2\n")
		rep, err := Analyze(tab, Options{Control: "A"})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Metrics[0].Comparisons) != 0 || rep.SRM.PValue != 1 {
			t.Errorf("%+v", rep)
		}
	})
}

func TestAnalyzeErrors(t *testing.T) {
	t.Parallel()
	tab := mustRead(t, "unit,variant,m,pre,market,score\n1,A,1,2,DE,1\n2,B,2,3,FR,x\n3,A,3,1,DE,2\n")
	for _, c := range []struct {
		name string
		opts Options
		want []string
	}{
		{"unknown metric", Options{Control: "A", Metrics: []string{"revenue"}}, []string{`"revenue"`, `"m"`, "test.csv"}},
		{"variant as metric", Options{Control: "A", Metrics: []string{"variant"}}, []string{`"variant"`}},
		{"unknown covariate", Options{Control: "A", Metrics: []string{"m"}, Covariates: map[string]string{"m": "m_pre"}}, []string{`"m_pre"`}},
		{"covariate for unknown metric", Options{Control: "A", Covariates: map[string]string{"rev": "pre"}}, []string{`"rev"`}},
		{"covariate of no metric", Options{Control: "A", Metrics: []string{"m"}, Covariates: map[string]string{"pre": "m"}}, []string{`"pre"`, "not analyzed"}},
		{"text covariate", Options{Control: "A", Metrics: []string{"m"}, Covariates: map[string]string{"m": "market"}}, []string{"line 2", `"market"`, `"DE"`}},
		{"text metric", Options{Control: "A", Metrics: []string{"score"}}, []string{"test.csv", "line 3", `column "score"`, `"x" is not a number`}},
		{"default metrics, broken column", Options{Control: "A"}, []string{"line 3", `"score"`, `"x"`}},
		{"unknown breakdown", Options{Control: "A", Metrics: []string{"m"}, Breakdown: "country"}, []string{`"country"`}},
		{"bad alpha", Options{Control: "A", Metrics: []string{"m"}, Alpha: 1.5}, []string{"alpha"}},
		{"bad tuning", Options{Control: "A", Metrics: []string{"m"}, Tuning: -1}, []string{"tuning"}},
	} {
		_, err := Analyze(tab, c.opts)
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not name %s", c.name, err, w)
			}
		}
	}
	var ie *InputError
	if _, err := Analyze(tab, Options{Control: "A", Metrics: []string{"score"}}); !errors.As(err, &ie) || ie.Line != 3 || ie.Column != "score" {
		t.Errorf("a text metric: %#v", err)
	}
}

func TestReadTableErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, in string
		line     int
		column   string
		want     string
	}{
		{"empty", "", 0, "", "empty file"},
		{"no variant column", "unit,group,m\n1,A,1\n", 1, "", `"variant"`},
		{"duplicate column", "unit,variant,m,m\n1,A,1,2\n", 1, "m", "duplicate"},
		{"nameless column", "unit,variant,,m\n1,A,1,2\n", 1, "", "column 3"},
		{"missing variant", "unit,variant,m\n1,A,1\n2, ,2\n", 3, "variant", "missing variant"},
		{"ragged short", "unit,variant,m,n\n1,A,1,2\n\n2,B,2\n", 4, "n", "missing"},
		{"ragged long", "unit,variant,m\n1,A,1,2\n", 2, "", "3"},
		{"no rows", "unit,variant,m\n", 1, "", "no data rows"},
		{"open quote", "unit,variant,m\n1,\"A,1\n", 2, "", "not closed"},
		{"bare quote", "unit,variant,m\n1,A\"B,1\n", 2, "", "quote"},
		{"text after quote", "unit,variant,m\n1,\"A\"B,1\n", 2, "", "closing quote"},
	} {
		_, err := ReadTable(strings.NewReader(c.in), "in.csv")
		var ie *InputError
		if !errors.As(err, &ie) {
			t.Errorf("%s: error %v, want an *InputError", c.name, err)
			continue
		}
		if ie.File != "in.csv" || ie.Line != c.line || ie.Column != c.column || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %q (line %d, column %q), want line %d, column %q, %q", c.name, err, ie.Line, ie.Column, c.line, c.column, c.want)
		}
	}
}

func TestReadTable(t *testing.T) {
	t.Parallel()
	in := "\ufeffunit, variant ,m,label,n\r\n" +
		"u1,A,1.5,x,1e3\r\n" +
		"\r\n" +
		"\"u,2\",\"B\",\" -2 \",\"multi\nline\",\r\n" +
		"u3, A ,+.25,\"say \"\"hi\"\"\",NaN\r\n" +
		"u4,C,0x1p-2,7,-0\n" +
		"u5,B,12345678901234567890.5,8,1e400x\n"
	tab, err := ReadTable(strings.NewReader(in), "in.csv")
	if err != nil {
		t.Fatal(err)
	}
	if tab.Rows != 5 || strings.Join(tab.Variants, ",") != "A,B,C" || len(tab.Variant) != 5 || tab.Variant[2] != 0 {
		t.Fatalf("table %+v", tab)
	}
	m := tab.Column("m")
	want := []float64{1.5, -2, 0.25, 0.25, 12345678901234567890.5}
	if m == nil || m.Kind != Numeric || len(m.Values) != 5 {
		t.Fatalf("m %+v", m)
	}
	for i, w := range want {
		if m.Values[i] != w {
			t.Errorf("m[%d] = %v, want %v", i, m.Values[i], w)
		}
	}
	l := tab.Column("label")
	if l.Kind != Text || len(l.Codes) != 5 {
		t.Fatalf("label %+v", l)
	}
	var labels []string
	for _, c := range l.Codes {
		labels = append(labels, l.Levels[c])
	}
	if strings.Join(labels, "|") != `x|multi`+"\n"+`line|say "hi"|7|8` {
		t.Errorf("labels %q", labels)
	}
	n := tab.Column("n")
	if n.Kind != Text || n.notNumber.line != 8 || n.notNumber.value != "1e400x" || !n.turned {
		t.Errorf("n %+v", n)
	}
	var ns []string
	for _, c := range n.Codes {
		ns = append(ns, n.Levels[c])
	}
	if strings.Join(ns, "|") != "1000|||-0|1e400x" {
		t.Errorf("n as text %q", ns)
	}
	if tab.Column("unit") != nil || tab.Column("variant") != nil {
		t.Error("unit and variant are not columns")
	}
	// Infinity is not a metric value.
	tab = mustRead(t, "unit,variant,m\n1,A,1\n2,B,1e999\n")
	if _, err := Analyze(tab, Options{Control: "A", Metrics: []string{"m"}}); err == nil || !strings.Contains(err.Error(), "finite") {
		t.Errorf("infinite metric: %v", err)
	}
}

// TestParseNum: a metric cell is csvtable's number (whose fast path
// csvtable tests against strconv), and never an infinity.
func TestParseNum(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]float64{"1.5": 1.5, "-0.25": -0.25, "42": 42, "1e3": 1000} {
		if got, ok := parseNum([]byte(s)); !ok || got != want {
			t.Errorf("parseNum(%q) = %v %v, want %v", s, got, ok, want)
		}
	}
	for _, s := range []string{"", "-", ".", "+.", "1.2.3", "1e", "abc", "--1", "1 2", "inf", "-Inf", "1e999"} {
		if f, ok := parseNum([]byte(s)); ok {
			t.Errorf("parseNum(%q) = %v, ok", s, f)
		}
	}
}

func TestBreakdown(t *testing.T) {
	t.Parallel()
	c := loadVectors(t)[1]
	full := readFile(t, filepath.Join(vectors, c.File))
	// A market column: the rows alternate between DE and FR, so each
	// segment is its own experiment; check it against Analyze on the
	// segment's rows alone.
	var all, de, fr strings.Builder
	all.WriteString("unit,variant,minutes,minutes_pre,market\n")
	de.WriteString("unit,variant,minutes,minutes_pre\n")
	fr.WriteString("unit,variant,minutes,minutes_pre\n")
	mins, pre := full.Column("minutes").Values, full.Column("minutes_pre").Values
	for i := range full.Rows {
		v := full.Variants[full.Variant[i]]
		row := strconv.Itoa(i) + "," + v + "," + strconv.FormatFloat(mins[i], 'g', -1, 64) + "," + strconv.FormatFloat(pre[i], 'g', -1, 64)
		market := "DE"
		seg := &de
		if i%3 == 0 {
			market, seg = "FR", &fr
		}
		all.WriteString(row + "," + market + "\n")
		seg.WriteString(row + "\n")
	}
	opts := Options{Control: "control", Covariates: map[string]string{"minutes": "minutes_pre"}, Sequential: true}
	whole, err := Analyze(mustRead(t, all.String()), Options{Control: "control", Covariates: opts.Covariates, Sequential: true, Breakdown: "market"})
	if err != nil {
		t.Fatal(err)
	}
	m := whole.Metrics[0]
	if m.Breakdown == nil || m.Breakdown.Column != "market" || len(m.Breakdown.Segments) != 2 {
		t.Fatalf("breakdown %+v", m.Breakdown)
	}
	// The whole is still the vectors' case.
	if whole.SRM != (SRMResult{Chi2: 0, PValue: 1, OK: true, DF: 1}) || whole.Units != full.Rows {
		t.Errorf("overall SRM %+v, units %d", whole.SRM, whole.Units)
	}
	wantWelch := c.Metrics["minutes"]["welch"]
	checkNum(t, "overall welch p", m.Comparisons[0].PValue, wantWelch.PValue)
	checkNum(t, "overall cuped theta", m.Comparisons[1].Theta, c.Metrics["minutes"]["cuped"].Theta)
	for i, seg := range []*strings.Builder{&de, &fr} {
		s := m.Breakdown.Segments[i]
		if s.Value != []string{"DE", "FR"}[i] {
			t.Errorf("segment %d is %q", i, s.Value)
		}
		alone, err := Analyze(mustRead(t, seg.String()), opts)
		if err != nil {
			t.Fatal(err)
		}
		if s.Units != alone.Units || s.SRM != alone.SRM {
			t.Errorf("%s: units %d srm %+v, alone %d %+v", s.Value, s.Units, s.SRM, alone.Units, alone.SRM)
		}
		a := alone.Metrics[0]
		for j, c := range s.Comparisons {
			w := a.Comparisons[j]
			if c.Method != w.Method || !near(c.LiftAbs, w.LiftAbs) || !near(c.PValue, w.PValue) ||
				!near(c.CILow, w.CILow) || !near(c.CIHigh, w.CIHigh) || !near(c.Theta, w.Theta) {
				t.Errorf("%s %s: %+v, alone %+v", s.Value, c.Method, c, w)
			}
		}
		for j, v := range s.Variants {
			w := a.Variants[j]
			if v.Name != w.Name || v.N != w.N || !near(v.Mean, w.Mean) || math.Abs(v.Variance-w.Variance) > 1e-9*w.Variance {
				t.Errorf("%s: %+v, alone %+v", s.Value, v, w)
			}
		}
	}
	// A numeric breakdown column, empty cells included.
	tab := mustRead(t, "unit,variant,m,week\n1,A,1,2\n2,B,2,10\n3,A,3,\n4,B,4,2\n5,A,1,10\n")
	rep, err := Analyze(tab, Options{Control: "A", Breakdown: "week"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Metrics) != 1 {
		t.Fatalf("the breakdown column is not a metric: %+v", rep.Metrics)
	}
	var vals []string
	for _, s := range rep.Metrics[0].Breakdown.Segments {
		vals = append(vals, s.Value+":"+strconv.Itoa(s.Units))
	}
	if strings.Join(vals, ",") != ":1,2:2,10:2" {
		t.Errorf("segments %v", vals)
	}
}

// TestAccumulator feeds the vectors one observation at a time.
func TestAccumulator(t *testing.T) {
	t.Parallel()
	c := loadVectors(t)[0]
	tab := readFile(t, filepath.Join(vectors, c.File))
	var acc Accumulator
	var wg sync.WaitGroup
	vals := tab.Column("minutes").Values
	for part := range 4 { // concurrently: it is safe for that
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := part; i < tab.Rows; i += 4 {
				acc.Add(tab.Variants[tab.Variant[i]], vals[i])
			}
		}()
	}
	wg.Wait()
	acc.Add("control", math.NaN()) // no observation
	rep, err := Analyze(tab, Options{Control: "control", Metrics: []string{"minutes"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range rep.Metrics[0].Variants {
		s := acc.Summary(v.Name)
		if s.N != v.N || !near(s.Mean, v.Mean) || math.Abs(s.Variance-v.Variance) > 1e-9*v.Variance {
			t.Errorf("%s: accumulated %+v, table %+v", v.Name, s, v.Summary)
		}
	}
	if got := acc.Variants(); len(got) != 2 {
		t.Errorf("variants %v", got)
	}
	low, high := SequentialInterval(acc.Summary("control"), acc.Summary("treatment"), 0.05, DefaultTuning)
	seq := c.Metrics["minutes"]["sequential"]
	if math.Abs(low-*seq.CILow) > 1e-9*math.Abs(*seq.CILow) || math.Abs(high-*seq.CIHigh) > 1e-9*math.Abs(*seq.CIHigh) {
		t.Errorf("sequential interval [%v, %v], want [%v, %v]", low, high, *seq.CILow, *seq.CIHigh)
	}
	if s := acc.Summary("nobody"); s.N != 0 || !math.IsNaN(s.Mean) {
		t.Errorf("unknown variant %+v", s)
	}
	acc.Reset()
	if len(acc.Variants()) != 0 {
		t.Error("Reset kept variants")
	}
}

// TestSequentialPValue checks that the sequential p-value inverts the
// confidence sequence: at alpha = p the interval just touches 0.
func TestSequentialPValue(t *testing.T) {
	t.Parallel()
	ctl := Summary{N: 5000, Mean: 10, Variance: 4}
	for _, d := range []float64{0.01, 0.1, 0.2, 0.3, 1} {
		trt := Summary{N: 5100, Mean: 10 + d, Variance: 4.5}
		s := Sequential(ctl, trt, 0.05, 0)
		if s.PValue <= 0 || s.PValue > 1 {
			t.Fatalf("d %v: p %v", d, s.PValue)
		}
		if s.Significant != (s.PValue < 0.05) {
			t.Errorf("d %v: significant %v with p %v", d, s.Significant, s.PValue)
		}
		if s.PValue < 1 {
			low, _ := SequentialInterval(ctl, trt, s.PValue, 0)
			if math.Abs(low) > 1e-9*d {
				t.Errorf("d %v: at alpha = p = %v the interval starts at %v, not 0", d, s.PValue, low)
			}
		}
		// Anytime-valid costs width: the sequential p is above Welch's
		// (far in the tails the t distribution's heavier tails win).
		if w := Welch(ctl, trt, 0.05); w.PValue > 1e-20 && s.PValue < w.PValue {
			t.Errorf("d %v: sequential p %v below Welch's %v", d, s.PValue, w.PValue)
		}
	}
}

// FuzzReadTable checks that ReadTable never panics and that what it reads
// is consistent (package csvtable checks its records against
// encoding/csv's).
func FuzzReadTable(f *testing.F) {
	for _, s := range []string{
		"unit,variant,m\n1,A,1\n2,B,2.5\n",
		"unit,variant,m,label\r\n1,\"A\",\"1\",\"x\ny\"\r\n\r\n2,B,,z\n",
		"variant,m\nA,1e5\nB,NaN\nA,x\n",
		"unit,variant,m\n1,A,\"1\"\"\"\n",
		"\ufeffunit,variant\n1, A \n",
		"unit,variant,m\n1,A\n",
		"unit,variant,m\n1,\"A\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		tab, err := ReadTable(bytes.NewReader(in), "fuzz.csv")
		if err == nil {
			if tab.Rows == 0 || len(tab.Variant) != tab.Rows {
				t.Fatalf("rows %d, variants %d", tab.Rows, len(tab.Variant))
			}
			for _, v := range tab.Variant {
				if int(v) >= len(tab.Variants) {
					t.Fatalf("variant code %d of %d", v, len(tab.Variants))
				}
			}
			for _, c := range tab.Columns {
				switch {
				case c.Kind == Numeric && len(c.Values) != tab.Rows,
					c.Kind == Text && !c.tooMany && len(c.Codes) != tab.Rows:
					t.Fatalf("column %q has %d/%d values for %d rows", c.Name, len(c.Values), len(c.Codes), tab.Rows)
				}
				for _, code := range c.Codes {
					if int(code) >= len(c.Levels) {
						t.Fatalf("code %d of %d levels", code, len(c.Levels))
					}
				}
			}
			if len(tab.Variants) > 0 {
				if _, err := Analyze(tab, Options{Control: tab.Variants[0], Sequential: true}); err != nil {
					var ie *InputError
					if errors.As(err, &ie) && ie.Line == 0 {
						t.Fatalf("a line-less input error: %v", err)
					}
				}
			}
		} else {
			var ie *InputError
			if !errors.As(err, &ie) || ie.File != "fuzz.csv" {
				t.Fatalf("error %v is not an *InputError naming the file", err)
			}
		}
	})
}

// TestStudentT checks the t tail and quantile on both sides of largeDF
// against 40-digit mpmath (betainc and its root), including the 10⁷
// degrees of freedom that ten million units give.
func TestStudentT(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ t, df, p float64 }{
		{0.5, 5000, 0.61709708085403377853},
		{3, 5000, 0.0027131090242857939267},
		{12, 5000, 9.9666564263483467525e-33},
		{0.5, 20000, 0.61708057843015578593},
		{3, 20000, 0.0027031210381204915695},
		{12, 20000, 4.6150376583735798717e-33},
		{0.5, 1e+06, 0.61707518747237138777},
		{3, 1e+06, 0.0026998625414217970587},
		{12, 1e+06, 3.5716851247650898236e-33},
		{0.5, 1e+07, 0.61707508845401508392},
		{3, 1e+07, 0.0026998027110371612512},
		{12, 1e+07, 3.5548320509346353699e-33},
		{0.5, 1e+09, 0.61707507756199420732},
		{3, 1e+09, 0.0026997961297379156678},
		{12, 1e+09, 3.5529828977411435877e-33},
	} {
		if got := tTwoSided(c.t, c.df); math.Abs(got-c.p) > 1e-11*c.p {
			t.Errorf("P(|T| > %g), df %g = %.17g, want %.17g", c.t, c.df, got, c.p)
		}
		if got := tTwoSided(-c.t, c.df); math.Abs(got-c.p) > 1e-11*c.p {
			t.Errorf("P(|T| > %g), df %g = %.17g, want %.17g", -c.t, c.df, got, c.p)
		}
	}
	for _, c := range []struct{ p, df, q float64 }{
		{0.025, 5000, 1.9604385517065078948},
		{0.0005, 5000, 3.2924737233708512709},
		{0.025, 20000, 1.9600826051581351704},
		{0.0005, 20000, 3.2910132833642562885},
		{0.025, 1e+06, 1.9599663568141070115},
		{0.0005, 1e+06, 3.290536461248691125},
		{0.025, 1e+07, 1.9599642217672054666},
		{0.0005, 1e+07, 3.290527704465222444},
		{0.025, 1e+09, 1.9599639869123254449},
		{0.0005, 1e+09, 3.2905267412216254768},
	} {
		if got := tUpper(c.p, c.df); math.Abs(got-c.q) > 1e-12*c.q {
			t.Errorf("upper %g quantile, df %g = %.17g, want %.17g", c.p, c.df, got, c.q)
		}
	}
	for _, df := range []float64{0, -1, math.NaN()} {
		if !math.IsNaN(tTwoSided(1, df)) || !math.IsNaN(tUpper(0.025, df)) {
			t.Errorf("df %v: not NaN", df)
		}
	}
	if p := tTwoSided(2, math.Inf(1)); math.Abs(p-math.Erfc(math.Sqrt2)) > 1e-15 {
		t.Errorf("infinite df: %v", p)
	}
	// Variances whose squares underflow still give Welch's df.
	c := Welch(Summary{N: 10, Mean: 0, Variance: 1e-200}, Summary{N: 10, Mean: 1e-100, Variance: 1e-200}, 0.05)
	if !near(c.DF, 18) || !(c.PValue > 0 && c.PValue < 1) {
		t.Errorf("tiny variances: %+v", c)
	}
}
