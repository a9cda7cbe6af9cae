package stat

import (
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// ChiSquareIndependence is Pearson's chi-square test of independence on a
// contingency table of counts (rows × columns), without Yates' continuity
// correction: chi2 = Σ (o − e)²/e with e = row sum · column sum / total,
// dof = (rows − 1)(columns − 1), p = P(χ²_dof ≥ chi2). This is SciPy's
// chi2_contingency(table, correction=False).
//
// Rows and columns whose counts are all zero carry no information and would
// divide by zero; they are left out, and dof counts what remains. A table
// with dof 0 (a single category, say) gives chi2 0 and p 1. A ragged or
// empty table, or a negative count, gives NaNs and dof 0.
func ChiSquareIndependence(table [][]float64) (chi2, p float64, dof int) {
	nan := math.NaN()
	if len(table) == 0 || len(table[0]) == 0 {
		return nan, nan, 0
	}
	cols := len(table[0])
	rowSum := make([]float64, len(table))
	colSum := make([]float64, cols)
	var total float64
	for i, row := range table {
		if len(row) != cols {
			return nan, nan, 0
		}
		for j, v := range row {
			if v < 0 || math.IsNaN(v) {
				return nan, nan, 0
			}
			rowSum[i] += v
			colSum[j] += v
		}
		total += rowSum[i]
	}
	r, c := nonZero(rowSum), nonZero(colSum)
	dof = (r - 1) * (c - 1)
	if dof <= 0 {
		return 0, 1, 0
	}
	for i, row := range table {
		if rowSum[i] == 0 {
			continue
		}
		for j, o := range row {
			if colSum[j] == 0 {
				continue
			}
			e := rowSum[i] * colSum[j] / total
			chi2 += (o - e) * (o - e) / e
		}
	}
	p = distuv.ChiSquared{K: float64(dof)}.Survival(chi2)
	return chi2, p, dof
}

func nonZero(x []float64) int {
	n := 0
	for _, v := range x {
		if v != 0 {
			n++
		}
	}
	return n
}
