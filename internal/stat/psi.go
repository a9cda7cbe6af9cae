package stat

import (
	"math"
	"slices"
	"sort"
)

// EmptyBinShare stands in for the share of an empty bin, which would
// otherwise make ln(cur/ref) infinite.
const EmptyBinShare = 0.0001

// PSI is the population stability index of cur against ref over ten bins cut
// at ref's deciles:
//
//	Σ (cur% − ref%) · ln(cur% / ref%)
//
// The outer bins are open-ended, so values of cur beyond ref's range still
// count; a value equal to a cut point falls in the bin above it. An empty bin
// counts as EmptyBinShare. NaNs are ignored; PSI is NaN if either sample has
// no other values.
func PSI(ref, cur []float64) float64 {
	return PSISorted(sortedCopy(ref), cur)
}

// PSISorted is PSI for a ref that is already sorted (ascending, NaNs first or
// absent), sparing the copy; cur may be in any order. Callers that also run
// KS2Sorted on the same column sort once and use both.
func PSISorted(ref, cur []float64) float64 {
	ref = dropNaN(ref)
	if len(ref) == 0 {
		return math.NaN()
	}
	cuts := Deciles(ref)
	var rc, cc [10]float64
	// ref is sorted, so its bins are runs: each boundary is one search.
	prev := 0
	for i, c := range cuts {
		j := sort.Search(len(ref), func(k int) bool { return ref[k] >= c })
		rc[i] = float64(j - prev)
		prev = j
	}
	rc[9] = float64(len(ref) - prev)
	nc := 0
	for _, v := range cur {
		if math.IsNaN(v) {
			continue
		}
		cc[binOf(&cuts, v)]++
		nc++
	}
	if nc == 0 {
		return math.NaN()
	}
	return psiShares(rc[:], cc[:], float64(len(ref)), float64(nc))
}

// binOf returns the bin of v: the number of cut points ≤ v.
func binOf(cuts *[9]float64, v float64) int {
	lo, hi := 0, len(cuts)
	for lo < hi {
		m := (lo + hi) / 2
		if cuts[m] <= v {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// PSICounts is PSI over bins already counted: ref[i] and cur[i] are the
// counts of bin i, for callers that keep histograms rather than samples
// (monitoring keeps one per window). It is NaN if the lengths differ, a
// count is negative or NaN, or either total is zero.
func PSICounts(ref, cur []float64) float64 {
	if len(ref) != len(cur) {
		return math.NaN()
	}
	var nr, nc float64
	for i := range ref {
		if !(ref[i] >= 0 && cur[i] >= 0) {
			return math.NaN()
		}
		nr += ref[i]
		nc += cur[i]
	}
	if nr <= 0 || nc <= 0 {
		return math.NaN()
	}
	return psiShares(ref, cur, nr, nc)
}

// psiShares sums the PSI terms of two count vectors with totals nr and nc.
func psiShares(rc, cc []float64, nr, nc float64) float64 {
	var s float64
	for i := range rc {
		r, c := rc[i]/nr, cc[i]/nc
		if r == 0 {
			r = EmptyBinShare
		}
		if c == 0 {
			c = EmptyBinShare
		}
		s += (c - r) * math.Log(c/r)
	}
	return s
}

// PSICategorical is PSI with one bin per category, over the union of the
// categories seen in ref and cur; a category seen in only one of them is an
// empty bin in the other. It is NaN if either sample is empty.
func PSICategorical(ref, cur []string) float64 {
	if len(ref) == 0 || len(cur) == 0 {
		return math.NaN()
	}
	_, t := CategoryCounts(ref, cur)
	return psiShares(t[0], t[1], float64(len(ref)), float64(len(cur)))
}

// CategoryCounts returns the union of the categories of ref and cur, sorted
// so that sums over them do not depend on map order, and the 2×k table of
// their counts: row 0 for ref, row 1 for cur. The table is what
// ChiSquareIndependence takes.
func CategoryCounts(ref, cur []string) (cats []string, table [2][]float64) {
	idx := make(map[string]int)
	for _, s := range [2][]string{ref, cur} {
		for _, v := range s {
			if _, ok := idx[v]; !ok {
				idx[v] = 0
				cats = append(cats, v)
			}
		}
	}
	slices.Sort(cats)
	for i, c := range cats {
		idx[c] = i
	}
	table[0] = make([]float64, len(cats))
	table[1] = make([]float64, len(cats))
	for _, v := range ref {
		table[0][idx[v]]++
	}
	for _, v := range cur {
		table[1][idx[v]]++
	}
	return cats, table
}
