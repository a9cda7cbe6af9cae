// Package abtest analyzes A/B experiments: per metric and variant the
// count, mean and variance; per treatment variant Welch's t-test against
// the control, CUPED (the same test on covariate-adjusted values) and an
// anytime-valid confidence sequence; and a sample ratio mismatch (SRM)
// check of the split. The reference values the functions are tested
// against were computed with SciPy; the formulas are those of the project's
// ML contract (spec/ml.md, "Experiment analysis" and its appendix).
//
// Everything here is a pure function of its inputs except ReadTable, which
// reads CSV. Means and variances are accumulated in one pass (Welford), so
// that an experiment of ten million units costs one sweep over each metric
// column, and a server can keep running summaries with an Accumulator.
package abtest

import (
	"encoding/json"
	"math"

	"gonum.org/v1/gonum/mathext"
	"gonum.org/v1/gonum/stat/distuv"
)

// Defaults of Options.
const (
	DefaultAlpha  = 0.05
	DefaultTuning = 5000.0
	// SRMThreshold is the p-value under which a split is a sample ratio
	// mismatch.
	SRMThreshold = 0.001
)

// Methods, as Comparison.Method spells them.
const (
	MethodWelch      = "welch"
	MethodCUPED      = "cuped"
	MethodSequential = "sequential"
)

// Summary is the count, mean and sample variance (n − 1 denominator) of one
// variant's values. Mean is NaN without values, Variance with fewer than
// two.
type Summary struct {
	N        int     `json:"n"`
	Mean     float64 `json:"mean"`
	Variance float64 `json:"variance"`
}

// MarshalJSON writes NaN as null: JSON has no NaN.
func (s Summary) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		N        int  `json:"n"`
		Mean     jnum `json:"mean"`
		Variance jnum `json:"variance"`
	}{s.N, jnum(s.Mean), jnum(s.Variance)})
}

// Summarize returns the Summary of xs, leaving NaNs out.
func Summarize(xs []float64) Summary {
	var m moments
	for _, x := range xs {
		if x == x {
			m.add(x)
		}
	}
	return m.summary()
}

// moments is Welford's running mean and sum of squared deviations.
type moments struct {
	n    int
	mean float64
	m2   float64
}

func (m *moments) add(x float64) {
	m.n++
	d := x - m.mean
	m.mean += d / float64(m.n)
	m.m2 += d * (x - m.mean)
}

// merge folds o into m (Chan et al.'s parallel update).
func (m *moments) merge(o moments) {
	if o.n == 0 {
		return
	}
	if m.n == 0 {
		*m = o
		return
	}
	n := m.n + o.n
	d := o.mean - m.mean
	m.mean += d * float64(o.n) / float64(n)
	m.m2 += o.m2 + d*d*float64(m.n)*float64(o.n)/float64(n)
	m.n = n
}

func (m moments) summary() Summary {
	s := Summary{N: m.n, Mean: math.NaN(), Variance: math.NaN()}
	if m.n > 0 {
		s.Mean = m.mean
	}
	if m.n > 1 {
		s.Variance = m.m2 / float64(m.n-1)
	}
	return s
}

// comoments is Welford's update for a pair (x, y): both means, both sums of
// squared deviations and the sum of cross-deviations.
type comoments struct {
	n        int
	mx, my   float64
	m2x, m2y float64
	cxy      float64
}

func (c *comoments) add(x, y float64) {
	c.n++
	n := float64(c.n)
	dx := x - c.mx
	c.mx += dx / n
	dy := y - c.my
	c.my += dy / n
	c.m2x += dx * (x - c.mx)
	c.m2y += dy * (y - c.my)
	c.cxy += dx * (y - c.my)
}

func (c *comoments) merge(o comoments) {
	if o.n == 0 {
		return
	}
	if c.n == 0 {
		*c = o
		return
	}
	n := c.n + o.n
	f := float64(c.n) * float64(o.n) / float64(n)
	dx, dy := o.mx-c.mx, o.my-c.my
	c.mx += dx * float64(o.n) / float64(n)
	c.my += dy * float64(o.n) / float64(n)
	c.m2x += o.m2x + dx*dx*f
	c.m2y += o.m2y + dy*dy*f
	c.cxy += o.cxy + dx*dy*f
	c.n = n
}

// Comparison is one treatment variant against the control by one method.
// Lifts and the interval are of treatment minus control; LiftRel is LiftAbs
// over the control's mean (of the adjusted values, for CUPED). Values that
// cannot be computed (too few units, a control mean of 0) are NaN, and null
// in JSON.
type Comparison struct {
	Variant     string  `json:"variant"`
	LiftAbs     float64 `json:"lift_abs"`
	LiftRel     float64 `json:"lift_rel"`
	CILow       float64 `json:"ci_low"`
	CIHigh      float64 `json:"ci_high"`
	PValue      float64 `json:"p_value"`
	Significant bool    `json:"significant"`
	Method      string  `json:"method"`

	// CUPED: the pooled regression coefficient and the covariate column.
	Theta     float64 `json:"theta,omitempty"`
	Covariate string  `json:"covariate,omitempty"`
	// Sequential: the units of both variants and the tuning parameter N*.
	NTotal int     `json:"n_total,omitempty"`
	Tuning float64 `json:"tuning,omitempty"`

	// SE is the Welch standard error of LiftAbs, DF its degrees of freedom
	// (Welch and CUPED only). Neither is in the JSON.
	SE float64 `json:"-"`
	DF float64 `json:"-"`
}

// MarshalJSON writes NaN as null, and a method's own fields only for it.
func (c Comparison) MarshalJSON() ([]byte, error) {
	out := struct {
		Variant     string   `json:"variant"`
		LiftAbs     jnum     `json:"lift_abs"`
		LiftRel     jnum     `json:"lift_rel"`
		CILow       jnum     `json:"ci_low"`
		CIHigh      jnum     `json:"ci_high"`
		PValue      jnum     `json:"p_value"`
		Significant bool     `json:"significant"`
		Method      string   `json:"method"`
		Theta       *jnum    `json:"theta,omitempty"`
		Covariate   string   `json:"covariate,omitempty"`
		NTotal      *int     `json:"n_total,omitempty"`
		Tuning      *float64 `json:"tuning,omitempty"`
	}{
		Variant: c.Variant, LiftAbs: jnum(c.LiftAbs), LiftRel: jnum(c.LiftRel),
		CILow: jnum(c.CILow), CIHigh: jnum(c.CIHigh), PValue: jnum(c.PValue),
		Significant: c.Significant, Method: c.Method,
	}
	switch c.Method {
	case MethodCUPED:
		th := jnum(c.Theta)
		out.Theta, out.Covariate = &th, c.Covariate
	case MethodSequential:
		n, t := c.NTotal, c.Tuning
		out.NTotal, out.Tuning = &n, &t
	}
	return json.Marshal(out)
}

// jnum is a float64 that is null in JSON when it is not finite.
type jnum float64

func (v jnum) MarshalJSON() ([]byte, error) {
	f := float64(v)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return json.Marshal(f)
}

// nanComparison is a comparison with nothing computable.
func nanComparison(method string) Comparison {
	nan := math.NaN()
	return Comparison{LiftAbs: nan, LiftRel: nan, CILow: nan, CIHigh: nan, PValue: nan,
		Method: method, SE: nan, DF: nan}
}

// lift returns treatment − control and its ratio to the control's mean
// (NaN when that mean is 0).
func lift(control, treatment Summary) (abs, rel float64) {
	if control.N == 0 || treatment.N == 0 {
		return math.NaN(), math.NaN()
	}
	abs = treatment.Mean - control.Mean
	rel = math.NaN()
	if control.Mean != 0 {
		rel = abs / control.Mean
	}
	return abs, rel
}

// welchSE returns the Welch standard error of the difference of means and
// its Welch–Satterthwaite degrees of freedom. Both are NaN when a variant
// has fewer than two values, and df is NaN when both variances are 0.
func welchSE(control, treatment Summary) (se, df float64) {
	if control.N < 2 || treatment.N < 2 {
		return math.NaN(), math.NaN()
	}
	a := control.Variance / float64(control.N)
	b := treatment.Variance / float64(treatment.N)
	se = math.Sqrt(a + b)
	// df does not change with the scale of a and b: scaling them to at
	// most 1 keeps their squares from under- or overflowing.
	if m := max(a, b); m > 0 && !math.IsInf(m, 0) {
		a, b = a/m, b/m
	}
	v := a + b
	return se, v * v / (a*a/float64(control.N-1) + b*b/float64(treatment.N-1))
}

// largeDF is where Student's t gives way to its expansions in 1/df: gonum's
// incomplete beta loses digits as df grows (about 1e-11 at df 10⁵, 1e-9
// at 10⁷), while the expansions are good to 1e-13 from df 10⁴ on (both
// checked against 40-digit mpmath).
const largeDF = 1e4

// tTwoSided is P(|T| > |t|) for T of Student's t with df degrees of
// freedom: I_{df/(df+t²)}(df/2, 1/2), which keeps small p-values that
// 1 − CDF would lose; beyond largeDF, Hill's normalizing expansion (ACM
// Algorithm 395) and the normal tail.
func tTwoSided(t, df float64) float64 {
	switch {
	case math.IsNaN(t) || math.IsNaN(df) || df <= 0:
		return math.NaN()
	case math.IsInf(t, 0):
		return 0
	case math.IsInf(df, 1):
		return math.Erfc(math.Abs(t) / math.Sqrt2)
	case df > largeDF:
		a := df - 0.5
		b := 48 * a * a
		y := a * math.Log1p(t*t/df)
		y = (((((-0.4*y-3.3)*y-24)*y-85.5)/(0.8*y*y+100+b)+y+3)/b + 1) * math.Sqrt(y)
		return math.Erfc(y / math.Sqrt2)
	}
	return mathext.RegIncBeta(df/2, 0.5, df/(df+t*t))
}

// tUpper is the upper p-quantile of Student's t (P(T > q) = p, p ≤ 1/2)
// with df degrees of freedom; beyond largeDF, the Cornish–Fisher expansion
// around the normal quantile (Abramowitz & Stegun 26.7.5).
func tUpper(p, df float64) float64 {
	switch {
	case math.IsNaN(df) || df <= 0:
		return math.NaN()
	case df > largeDF:
		z := -mathext.NormalQuantile(p)
		z2 := z * z
		g1 := (z2 + 1) * z / 4
		g2 := ((5*z2+16)*z2 + 3) * z / 96
		g3 := (((3*z2+19)*z2+17)*z2 - 15) * z / 384
		g4 := ((((79*z2+776)*z2+1482)*z2-1920)*z2 - 945) * z / 92160
		return z + (g1+(g2+(g3+g4/df)/df)/df)/df
	}
	return -distuv.StudentsT{Mu: 0, Sigma: 1, Nu: df}.Quantile(p)
}

// Welch is Welch's two-sided t-test of treatment against control: the
// difference of means with the Welch standard error, Welch–Satterthwaite
// degrees of freedom, the two-sided p-value and the 1 − alpha confidence
// interval of the difference (NaN unless 0 < alpha < 1); Significant is
// p < alpha. This is SciPy's
// ttest_ind(treatment, control, equal_var=False) with its
// confidence_interval(1 − alpha).
//
// With fewer than two values in a variant only the lifts are computed (and
// nothing without a value). When both variances are 0 the interval is the
// difference itself, and p is 0 if it is not 0 and 1 if it is.
func Welch(control, treatment Summary, alpha float64) Comparison {
	c := nanComparison(MethodWelch)
	c.LiftAbs, c.LiftRel = lift(control, treatment)
	se, df := welchSE(control, treatment)
	c.SE, c.DF = se, df
	switch {
	case math.IsNaN(se) || math.IsInf(se, 0) || math.IsNaN(c.LiftAbs) || math.IsInf(c.LiftAbs, 0):
		return c
	case se == 0:
		c.CILow, c.CIHigh = c.LiftAbs, c.LiftAbs
		c.PValue = 1
		if c.LiftAbs != 0 {
			c.PValue = 0
		}
	default:
		c.PValue = tTwoSided(c.LiftAbs/se, df)
		if alpha > 0 && alpha < 1 {
			q := tUpper(alpha/2, df)
			c.CILow, c.CIHigh = c.LiftAbs-q*se, c.LiftAbs+q*se
		}
	}
	c.Significant = c.PValue < alpha
	return c
}

// seqHalfWidth is the half-width of the asymptotic confidence sequence
// (Waudby-Smith et al.) at n units, standard error se, level exp(−u) (u is
// −ln alpha, so that tiny levels do not underflow) and tuning N*:
//
//	ρ = sqrt((−2 ln α + ln(−2 ln α + 1)) / N*)
//	half-width = sqrt(se² n) · sqrt(2 (n ρ² + 1) · ln(sqrt(n ρ² + 1) / α) / (n ρ)²)
func seqHalfWidth(se, n, u, tuning float64) float64 {
	rho2 := (2*u + math.Log1p(2*u)) / tuning
	nr2 := n * rho2
	return math.Sqrt(se*se*n) * math.Sqrt(2*(nr2+1)*(0.5*math.Log1p(nr2)+u)/(n*nr2))
}

// SequentialInterval returns the anytime-valid 1 − alpha confidence
// sequence of treatment − control at the current sample (Waudby-Smith et
// al.'s asymptotic confidence sequence, as GrowthBook uses it): the
// difference of means ± the half-width at n = the units of both variants,
// se = the Welch standard error and the tuning parameter N* (the sample
// size at which the sequence is tightest; DefaultTuning if not positive).
// Unlike a fixed-sample interval it stays valid however often it is
// looked at, which is what a guardrail monitor needs. Both ends are NaN
// with fewer than two values in a variant, or unless 0 < alpha < 1.
func SequentialInterval(control, treatment Summary, alpha, tuning float64) (low, high float64) {
	if !(tuning > 0) {
		tuning = DefaultTuning
	}
	d, _ := lift(control, treatment)
	se, _ := welchSE(control, treatment)
	if math.IsNaN(se) || math.IsNaN(d) || !(alpha > 0 && alpha < 1) {
		return math.NaN(), math.NaN()
	}
	h := seqHalfWidth(se, float64(control.N+treatment.N), -math.Log(alpha), tuning)
	return d - h, d + h
}

// Sequential compares treatment with control by the confidence sequence of
// SequentialInterval. Significant is the interval excluding 0. PValue is
// the anytime-valid p-value that goes with it: the smallest alpha whose
// sequence excludes 0 (the half-width falls as alpha grows, so this is the
// alpha at which it equals |lift|; 1 when no alpha < 1 excludes 0).
func Sequential(control, treatment Summary, alpha, tuning float64) Comparison {
	if !(tuning > 0) {
		tuning = DefaultTuning
	}
	c := nanComparison(MethodSequential)
	c.NTotal, c.Tuning = control.N+treatment.N, tuning
	c.LiftAbs, c.LiftRel = lift(control, treatment)
	c.CILow, c.CIHigh = SequentialInterval(control, treatment, alpha, tuning)
	se, _ := welchSE(control, treatment)
	c.SE = se
	if math.IsNaN(c.CILow) {
		return c
	}
	c.Significant = c.CILow > 0 || c.CIHigh < 0
	c.PValue = sequentialP(math.Abs(c.LiftAbs), se, float64(c.NTotal), tuning)
	return c
}

// sequentialP inverts the confidence sequence: it returns the alpha at
// which the half-width equals d, by bisection on u = −ln alpha, over
// which the half-width rises.
func sequentialP(d, se, n, tuning float64) float64 {
	const uMin = 1e-12 // alpha just under 1
	if se == 0 {
		if d == 0 {
			return 1
		}
		return 0
	}
	if d <= seqHalfWidth(se, n, uMin, tuning) {
		return 1
	}
	lo, hi := uMin, 1.0
	for seqHalfWidth(se, n, hi, tuning) < d {
		lo, hi = hi, 2*hi
		if hi > 1e6 {
			return 0 // alpha below exp(−10⁶): 0 in float64
		}
	}
	for range 200 {
		mid := 0.5 * (lo + hi)
		if mid <= lo || mid >= hi {
			break
		}
		if seqHalfWidth(se, n, mid, tuning) < d {
			lo = mid
		} else {
			hi = mid
		}
	}
	return math.Exp(-0.5 * (lo + hi))
}

// SRMResult is the chi-square goodness-of-fit test of the units per
// variant against the configured split.
type SRMResult struct {
	Chi2   float64 `json:"chi2"`
	PValue float64 `json:"p_value"`
	// OK is PValue ≥ SRMThreshold: no sample ratio mismatch.
	OK bool `json:"ok"`
	DF int  `json:"df"`
}

// SRM tests observed counts against weights (same length; positive; they
// need not sum to 1): χ² = Σ (oᵢ − eᵢ)²/eᵢ with eᵢ = wᵢ/Σw · N, k − 1
// degrees of freedom. This is SciPy's chisquare(observed, expected). With
// one variant, or no units, chi2 is 0 and p 1. It panics if the lengths
// differ.
func SRM(observed []int, weights []float64) SRMResult {
	if len(observed) != len(weights) {
		panic("abtest.SRM: observed and weights differ in length")
	}
	var total int
	var wsum float64
	for i, o := range observed {
		total += o
		wsum += weights[i]
	}
	k := len(observed)
	if k < 2 || total == 0 {
		return SRMResult{Chi2: 0, PValue: 1, OK: true, DF: max(k-1, 0)}
	}
	var chi2 float64
	for i, o := range observed {
		e := weights[i] / wsum * float64(total)
		d := float64(o) - e
		chi2 += d * d / e
	}
	p := distuv.ChiSquared{K: float64(k - 1)}.Survival(chi2)
	return SRMResult{Chi2: chi2, PValue: p, OK: p >= SRMThreshold, DF: k - 1}
}
