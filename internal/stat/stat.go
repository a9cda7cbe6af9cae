// Package stat holds the statistics behind drift detection, feature quality
// gates and model monitoring: PSI, the two-sample Kolmogorov–Smirnov test and
// the chi-square test of independence. Every function is pure and does no
// I/O; the reference values they are tested against were computed by SciPy,
// and where SciPy picks between several numerical methods these functions
// pick the same one, so that a report made here agrees with one made there.
package stat

import (
	"math"
	"slices"
)

// Quantile returns the p-quantile (0 ≤ p ≤ 1) of sorted, interpolating
// linearly between order statistics: NumPy's default ("linear", Hyndman–Fan
// type 7). gonum's LinInterp is a different definition (type 4), and the
// decile cut points that PSI reports must agree with NumPy's. It returns NaN
// for an empty slice.
func Quantile(sorted []float64, p float64) float64 {
	n := len(sorted)
	if n == 0 || math.IsNaN(p) {
		return math.NaN()
	}
	h := min(max(p, 0), 1) * float64(n-1)
	i := int(h)
	if i >= n-1 {
		return sorted[n-1]
	}
	lo, hi := sorted[i], sorted[i+1]
	frac := h - float64(i)
	switch {
	case lo == hi || frac == 0:
		return lo
	case math.IsInf(lo, 0) || math.IsInf(hi, 0):
		// Interpolating towards an infinity gives Inf−Inf = NaN, and a NaN
		// cut point would bin nothing; the nearer neighbour keeps the cut
		// points ordered.
		if frac < 0.5 {
			return lo
		}
		return hi
	}
	return lo + frac*(hi-lo)
}

// Deciles returns the nine interior cut points of sorted (the 10th, 20th,
// …, 90th percentiles), as Quantile computes them.
func Deciles(sorted []float64) [9]float64 {
	var d [9]float64
	for i := range d {
		d[i] = Quantile(sorted, float64(i+1)/10)
	}
	return d
}

// sortedCopy returns x sorted with its NaNs removed. slices.Sort orders NaNs
// first, so dropping them is a cheap re-slice.
func sortedCopy(x []float64) []float64 {
	s := slices.Clone(x)
	slices.Sort(s)
	return dropNaN(s)
}

// dropNaN strips the NaNs that slices.Sort leaves at the front.
func dropNaN(sorted []float64) []float64 {
	i := 0
	for i < len(sorted) && math.IsNaN(sorted[i]) {
		i++
	}
	return sorted[i:]
}
