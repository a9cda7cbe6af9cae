package abtest

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/stat/distuv"
)

// CorrectionBH names the multiple-comparison correction of segment
// p-values in reports.
const CorrectionBH = "benjamini-hochberg"

// SegmentFamily says which p-values one correction spans.
const SegmentFamily = "every segment value × treatment variant of one segment column and one metric"

// HTE is a metric's heterogeneous treatment effects along one segment
// column: each value's Welch comparisons with p-values adjusted by
// Benjamini–Hochberg across the column's values (and treatment variants),
// and per treatment variant Cochran's Q test that the effect is the same
// in every segment.
type HTE struct {
	Column     string         `json:"column"`
	Correction string         `json:"correction"`
	Family     string         `json:"family"`
	Values     []SegmentValue `json:"values"`
	// Heterogeneity has one test per treatment variant.
	Heterogeneity []Heterogeneity `json:"heterogeneity"`
}

// SegmentValue is one value of the segment column.
type SegmentValue struct {
	Value       string              `json:"value"`
	Units       int                 `json:"units"`
	Variants    []VariantSummary    `json:"variants"`
	Comparisons []SegmentComparison `json:"comparisons"`
}

// SegmentComparison is Welch's comparison of one treatment with the
// control within a segment. Significant uses the adjusted p-value.
type SegmentComparison struct {
	Variant     string
	NControl    int
	NTreatment  int
	LiftAbs     float64
	LiftRel     float64
	CILow       float64
	CIHigh      float64
	PValue      float64
	PAdjusted   float64
	Significant bool
	// SE is the standard error of LiftAbs (not in the JSON).
	SE float64
}

// MarshalJSON writes NaN as null.
func (c SegmentComparison) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Variant     string `json:"variant"`
		NControl    int    `json:"n_control"`
		NTreatment  int    `json:"n_treatment"`
		LiftAbs     jnum   `json:"lift_abs"`
		LiftRel     jnum   `json:"lift_rel"`
		CILow       jnum   `json:"ci_low"`
		CIHigh      jnum   `json:"ci_high"`
		PValue      jnum   `json:"p_value"`
		PAdjusted   jnum   `json:"p_adjusted"`
		Significant bool   `json:"significant"`
		Method      string `json:"method"`
	}{c.Variant, c.NControl, c.NTreatment, jnum(c.LiftAbs), jnum(c.LiftRel), jnum(c.CILow), jnum(c.CIHigh),
		jnum(c.PValue), jnum(c.PAdjusted), c.Significant, MethodWelch})
}

// Heterogeneity is Cochran's Q test of one treatment's segment effects:
// Q = Σ wᵢ (dᵢ − d̄)², wᵢ = 1/SEᵢ², d̄ the inverse-variance weighted mean,
// against χ² with k − 1 degrees of freedom over the k segments with a
// finite, positive standard error; I² = max(0, (Q − df)/Q) is the share
// of the variation between segments beyond chance.
type Heterogeneity struct {
	Variant  string
	Segments int
	Q        float64
	DF       int
	PValue   float64
	I2       float64
	// Pooled is d̄, the fixed-effect pooled lift.
	Pooled        float64
	Heterogeneous bool
}

// MarshalJSON writes NaN as null.
func (h Heterogeneity) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Variant       string `json:"variant"`
		Segments      int    `json:"segments"`
		Test          string `json:"test"`
		Q             jnum   `json:"q"`
		DF            int    `json:"df"`
		PValue        jnum   `json:"p_value"`
		I2            jnum   `json:"i2"`
		Pooled        jnum   `json:"pooled_lift"`
		Heterogeneous bool   `json:"heterogeneous"`
	}{h.Variant, h.Segments, "cochran-q", jnum(h.Q), h.DF, jnum(h.PValue), jnum(h.I2), jnum(h.Pooled), h.Heterogeneous})
}

// BenjaminiHochberg returns the adjusted p-values of ps (step-up: the
// i-th smallest becomes min over j ≥ i of m·p₍ⱼ₎/j, capped at 1), as
// SciPy's false_discovery_control(method="bh") and R's p.adjust("BH").
// A NaN p-value stays NaN and does not count in m.
func BenjaminiHochberg(ps []float64) []float64 {
	out := make([]float64, len(ps))
	var idx []int
	for i, p := range ps {
		out[i] = math.NaN()
		if !math.IsNaN(p) {
			idx = append(idx, i)
		}
	}
	m := float64(len(idx))
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(ps[a], ps[b]) })
	prev := 1.0
	for r := len(idx) - 1; r >= 0; r-- {
		i := idx[r]
		adj := math.Min(prev, ps[i]*(m/float64(r+1))) // the ratio first: never below p
		out[i] = math.Min(adj, 1)
		prev = out[i]
	}
	return out
}

// CochranQ tests whether effects d with standard errors se are equal;
// pairs without a finite positive standard error or a finite effect are
// left out. With fewer than two left, Q and its p-value are NaN.
func CochranQ(d, se []float64, alpha float64) Heterogeneity {
	var w, x []float64
	for i := range d {
		if s := se[i]; s > 0 && !math.IsInf(s, 0) && !math.IsNaN(d[i]) && !math.IsInf(d[i], 0) {
			w = append(w, 1/(s*s))
			x = append(x, d[i])
		}
	}
	h := Heterogeneity{Segments: len(x), Q: math.NaN(), PValue: math.NaN(), I2: math.NaN(), Pooled: math.NaN()}
	if len(x) == 0 {
		return h
	}
	var sw, swx float64
	for i := range x {
		sw += w[i]
		swx += w[i] * x[i]
	}
	h.Pooled = swx / sw
	if len(x) < 2 {
		return h
	}
	var q float64
	for i := range x {
		q += w[i] * (x[i] - h.Pooled) * (x[i] - h.Pooled)
	}
	h.Q, h.DF = q, len(x)-1
	h.PValue = distuv.ChiSquared{K: float64(h.DF)}.Survival(q)
	h.I2 = 0
	if q > 0 {
		h.I2 = math.Max(0, (q-float64(h.DF))/q)
	}
	h.Heterogeneous = h.PValue < alpha
	return h
}

// segments analyzes every segment column of opts for every metric of
// rep: a breakdown by the column (Welch only), then the corrections and
// the heterogeneity tests.
func segments(t *Table, opts Options, rep *Report) error {
	names := make([]string, len(rep.Metrics))
	for i, m := range rep.Metrics {
		names[i] = m.Name
	}
	for _, col := range opts.Segments {
		o := Options{Control: opts.Control, Metrics: names, Alpha: rep.Alpha, Weights: opts.Weights, Tuning: opts.Tuning, Breakdown: col}
		p, err := plan(t, o)
		if err != nil {
			return err
		}
		for i := range p.metrics {
			b := p.metric(i).Breakdown
			rep.Metrics[i].Segments = append(rep.Metrics[i].Segments, hte(b, rep.Alpha))
		}
	}
	return nil
}

// hte turns a breakdown into segment effects with adjusted p-values and
// heterogeneity tests.
func hte(b *Breakdown, alpha float64) HTE {
	h := HTE{Column: b.Column, Correction: CorrectionBH, Family: SegmentFamily, Values: make([]SegmentValue, len(b.Segments))}
	var ps []float64
	type at struct{ seg, cmp int }
	var where []at
	var treatments []string
	for s, seg := range b.Segments {
		n := map[string]int{}
		for _, v := range seg.Variants {
			n[v.Name] = v.N
		}
		ctl := seg.Variants[0].Name // control first
		sv := SegmentValue{Value: seg.Value, Units: seg.Units, Variants: seg.Variants}
		for _, c := range seg.Comparisons {
			if c.Method != MethodWelch {
				continue
			}
			if s == 0 {
				treatments = append(treatments, c.Variant)
			}
			sv.Comparisons = append(sv.Comparisons, SegmentComparison{Variant: c.Variant, NControl: n[ctl], NTreatment: n[c.Variant],
				LiftAbs: c.LiftAbs, LiftRel: c.LiftRel, CILow: c.CILow, CIHigh: c.CIHigh, PValue: c.PValue, SE: c.SE})
			ps = append(ps, c.PValue)
			where = append(where, at{s, len(sv.Comparisons) - 1})
		}
		h.Values[s] = sv
	}
	adj := BenjaminiHochberg(ps)
	for k, w := range where {
		c := &h.Values[w.seg].Comparisons[w.cmp]
		c.PAdjusted = adj[k]
		c.Significant = adj[k] < alpha
	}
	for _, tr := range treatments {
		var d, se []float64
		for _, v := range h.Values {
			for _, c := range v.Comparisons {
				if c.Variant == tr {
					d, se = append(d, c.LiftAbs), append(se, c.SE)
				}
			}
		}
		q := CochranQ(d, se, alpha)
		q.Variant = tr
		h.Heterogeneity = append(h.Heterogeneity, q)
	}
	return h
}

// checkSegments refuses an unknown, reserved or repeated segment column.
func checkSegments(t *Table, cols []string) error {
	seen := map[string]bool{}
	for _, c := range cols {
		switch {
		case c == UnitColumn || c == VariantColumn:
			return fmt.Errorf("%s: segment %q: the %s column cannot be one", t.Name, c, c)
		case seen[c]:
			return fmt.Errorf("%s: segment %q named twice", t.Name, c)
		case t.Column(c) == nil:
			names := make([]string, len(t.Columns))
			for i, col := range t.Columns {
				names[i] = col.Name
			}
			return fmt.Errorf("%s: unknown segment column %q; the columns are %s", t.Name, c, quoteAll(names))
		}
		seen[c] = true
	}
	return nil
}
