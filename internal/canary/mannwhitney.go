package canary

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/stat/distuv"
)

// MWResult is the outcome of MannWhitney: R's
// wilcox.test(x, y, conf.int = TRUE, exact = FALSE, correct = TRUE).
type MWResult struct {
	// W is R's statistic: the number of pairs (x_i, y_j) with x_i > y_j,
	// a tied pair counting one half.
	W float64
	// Z is the normal score of W, tie-corrected and continuity-corrected.
	Z float64
	// PValue is the two-sided p-value of Z.
	PValue float64
	// Estimate is the Hodges–Lehmann estimate of the shift x − y: the
	// median of the n·m pairwise differences x_i − y_j.
	Estimate float64
	// CILow and CIHigh bound the shift at the Confidence level.
	CILow, CIHigh float64
	Confidence    float64
}

// MannWhitney runs the two-sided Mann–Whitney (Wilcoxon rank-sum) test of
// x against y with the normal approximation, and estimates the shift x − y
// with its confidence interval. As R does, it ignores NaNs and infinities;
// it fails when either sample has no finite value, when all the values
// are equal (the variance is 0), or when confidence is not in (0, 1).
//
// The p-value is R's, computed as 2·Φ(−|z|) so that it keeps its precision
// far in the tail. The interval's ends are the roots
// of R's continuity-corrected z(d) − z_q as a function of the shift d, over
// [min(x) − max(y), max(x) − min(y)]; that function is a step function
// whose steps sit at the pairwise differences, so its roots are pairwise
// differences and are found exactly (R's uniroot stops within 1e-4 of
// them). R's estimate for exact = FALSE is likewise uniroot's approximation
// of the median of the differences; this one is exact.
func MannWhitney(x, y []float64, confidence float64) (MWResult, error) {
	if !(confidence > 0 && confidence < 1) {
		return MWResult{}, fmt.Errorf("mann-whitney: confidence %g: want a number in (0, 1)", confidence)
	}
	var ws workspace
	ws.x = ws.sortedFinite(ws.x, x)
	ws.y = ws.sortedFinite(ws.y, y)
	switch {
	case len(ws.x) == 0:
		return MWResult{}, errors.New("mann-whitney: no finite value in x")
	case len(ws.y) == 0:
		return MWResult{}, errors.New("mann-whitney: no finite value in y")
	case ws.x[0] == ws.x[len(ws.x)-1] && ws.y[0] == ws.y[len(ws.y)-1] && ws.x[0] == ws.y[0]:
		return MWResult{}, errors.New("mann-whitney: all observations are equal")
	case len(ws.x) > math.MaxInt32 || len(ws.y) > math.MaxInt32:
		// The selection keeps column indices in int32 to halve its memory.
		return MWResult{}, errors.New("mann-whitney: more than 2³¹ − 1 values in a sample")
	}
	return ws.mannWhitney(confidence), nil
}

// sortedFinite returns the finite values of src, sorted, in dst's storage.
func (ws *workspace) sortedFinite(dst, src []float64) []float64 {
	dst = dst[:0]
	for _, v := range src {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			dst = append(dst, v)
		}
	}
	ws.sort(dst)
	return dst
}

// sort sorts v, which holds no NaN. Sorting the samples is a good part of a
// test's time, and a radix sort on the bits takes a fraction of a
// comparison sort's at the sizes that matter.
func (ws *workspace) sort(v []float64) {
	n := len(v)
	if n < 512 {
		slices.Sort(v)
		return
	}
	ws.keys, ws.keys2 = grow(ws.keys, n), grow(ws.keys2, n)
	src, dst := ws.keys, ws.keys2
	// Flipping the sign bit of positive numbers and every bit of negative
	// ones orders the bit patterns as the numbers.
	var counts [8][256]int
	for i, f := range v {
		b := math.Float64bits(f)
		b ^= uint64(int64(b)>>63) | 1<<63
		src[i] = b
		for d := range 8 {
			counts[d][byte(b>>(8*d))]++
		}
	}
	for d := range 8 {
		c := &counts[d]
		if c[byte(src[0]>>(8*d))] == n {
			continue // every key has the same digit here
		}
		pos := 0
		for i, k := range c {
			c[i], pos = pos, pos+k
		}
		for _, b := range src {
			digit := byte(b >> (8 * d))
			dst[c[digit]] = b
			c[digit]++
		}
		src, dst = dst, src
	}
	for i, b := range src {
		b ^= uint64(int64(^b)>>63) | 1<<63
		v[i] = math.Float64frombits(b)
	}
}

// workspace holds the buffers of one test, so that Judge can run many
// tests while allocating only for the largest of them.
type workspace struct {
	x, y []float64 // the samples, sorted and finite
	yr   []float64 // y in descending order: x[i] − yr[j] increases with j

	// Selection state over the implicit n×m matrix D[i][j] = x[i] − yr[j]:
	// row i's candidates are the columns [lo[i], hi[i]). c1 and c2
	// receive the per-row counts of the pivots; they swap with lo and hi
	// rather than being copied. savedLo and savedHi hold the state that
	// the ranks of one test share.
	lo, hi, c1, c2   []int32
	savedLo, savedHi []int32
	keys, keys2      []uint64  // radix sort buffers
	sample           []float64 // pivot candidates
	buf              []float64 // the last candidates, selected directly
	rng              uint64
}

// mannWhitney tests ws.x against ws.y, both sorted, finite, non-empty and
// not all equal.
func (ws *workspace) mannWhitney(confidence float64) MWResult {
	x, y := ws.x, ws.y
	nx, ny := float64(len(x)), float64(len(y))
	nn := nx + ny
	w, tiesAll, tiesApart := rankStats(x, y)

	res := MWResult{W: w, Confidence: confidence}
	sigma := math.Sqrt(nx * ny / 12 * ((nn + 1) - tiesAll/(nn*(nn-1))))
	dz := w - nx*ny/2
	res.Z = (dz - 0.5*sign(dz)) / sigma
	// Φ(−|z|), an erfc, rather than gonum's Survival, 1 − erf, which
	// cancels to 0 for a large z.
	res.PValue = min(1, 2*distuv.UnitNormal.CDF(-math.Abs(res.Z)))

	// Between two consecutive pairwise differences no x_i − d ties a y_j,
	// so the variance there has only the ties within each sample.
	sigmaOpen := math.Sqrt(nx * ny / 12 * ((nn + 1) - tiesApart/(nn*(nn-1))))
	zq := -distuv.UnitNormal.Quantile((1 - confidence) / 2)
	nm := len(x) * len(y)
	mid := (nm + 1) / 2
	ranks := [3]int{ciRank(nm, zq*sigmaOpen), mid, ciRank(nm, -zq*sigmaOpen)}
	var got [3]float64
	ws.prepareSelect()
	ws.selectRanks(ranks[:], got[:])
	res.CILow, res.CIHigh = got[0], got[2]
	res.Estimate = got[1]
	if nm%2 == 0 {
		res.Estimate = midpoint(got[1], ws.next(got[1], mid))
	}
	return res
}

// rankStats merges the sorted samples and returns R's W, Σ(t³ − t) over the
// tie groups of the pooled sample, and the same sum over the tie groups of
// each sample taken apart.
func rankStats(x, y []float64) (w, tiesAll, tiesApart float64) {
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		var v float64
		switch {
		case j == len(y) || (i < len(x) && x[i] <= y[j]):
			v = x[i]
		default:
			v = y[j]
		}
		i0, j0 := i, j
		for i < len(x) && x[i] == v {
			i++
		}
		for j < len(y) && y[j] == v {
			j++
		}
		a, b := float64(i-i0), float64(j-j0)
		// Every x equal to v beats the j0 smaller y values and ties b.
		w += a*float64(j0) + a*b/2
		t := a + b
		tiesAll += t*t*t - t
		tiesApart += a*a*a - a + b*b*b - b
	}
	return w, tiesAll, tiesApart
}

// ciRank is the rank (1-based, ascending) of the pairwise difference at
// which R's
//
//	f(d) = (dz(d) − ½·sign(dz(d))) / σ − z_q
//
// changes sign, given bound = z_q·σ. Off the pairwise differences,
// dz(d) = C − nm/2 where C counts the differences above d, and f is
// non-decreasing in C: the root is the difference that moves C from the
// last value with f ≥ 0 to the first with f < 0. When f is negative (or
// positive) over the whole range the root is the range's end, as in R.
func ciRank(nm int, bound float64) int {
	half := float64(nm) / 2
	below := func(c int) bool { // f < 0 with C = c
		t := float64(c) - half
		return t-0.5*sign(t) < bound
	}
	// The largest C with f < 0, from an estimate within a step or two.
	c := int(math.Floor(half + bound + 0.5))
	c = max(-1, min(c, nm))
	for c >= 0 && !below(c) {
		c--
	}
	for c < nm && below(c+1) {
		c++
	}
	if c < 0 {
		return nm
	}
	return max(1, nm-c)
}

func sign(v float64) float64 {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}

// midpoint is the mean of a and b, as R's median takes it, without
// overflowing for huge values of one sign.
func midpoint(a, b float64) float64 {
	if m := (a + b) / 2; !math.IsInf(m, 0) {
		return m
	}
	return a/2 + b/2
}

// The selection below finds order statistics of the n·m differences
// x[i] − y[j] without forming them. With x ascending and yr = y descending,
// D[i][j] = x[i] − yr[j] increases along rows and columns, so counting the
// differences at most a value takes one O(n + m) staircase walk. Each round
// draws a stratified sample of the remaining candidates, takes two pivots
// that bracket the target rank in the sample (Floyd–Rivest), counts them,
// and keeps the candidates between the pivots: with s samples about 4/√s
// of them survive, so 10⁸ differences come down to n + m in three rounds,
// and those are then selected directly. The three ranks a test needs (the
// interval's ends and the median) are close, so the first round is shared.
// Floating-point subtraction is monotone, so the rounded differences are
// ordered exactly as the walks assume, and the answers are order
// statistics of the rounded differences.
const (
	pivotSamples = 2048
	// minDirect is the candidate count under which selecting directly
	// beats another round of walks.
	minDirect = 4096
)

// prepareSelect sizes the buffers for ws.x and ws.y.
func (ws *workspace) prepareSelect() {
	n, m := len(ws.x), len(ws.y)
	ws.yr = grow(ws.yr, m)
	for j, v := range ws.y {
		ws.yr[m-1-j] = v
	}
	ws.lo, ws.hi = grow(ws.lo, n), grow(ws.hi, n)
	ws.c1, ws.c2 = grow(ws.c1, n), grow(ws.c2, n)
	ws.savedLo, ws.savedHi = grow(ws.savedLo, n), grow(ws.savedHi, n)
	ws.sample = grow(ws.sample, pivotSamples)
	// A fixed seed: the pivots change the work done, never the answer.
	ws.rng = 0x9e3779b97f4a7c15
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// selectRanks sets out[i] to the ks[i]-th smallest (1-based) difference;
// ks is ascending.
func (ws *workspace) selectRanks(ks []int, out []float64) {
	n, m := len(ws.x), len(ws.yr)
	for i := range n {
		ws.lo[i], ws.hi[i] = 0, int32(m)
	}
	below, top := 0, n*m
	limit := max(n+m, minDirect)
	if top-below > limit {
		kmin, kmax := ks[0], ks[len(ks)-1]
		p1, p2 := ws.pivots(kmin-below, kmax-below, top-below)
		// If the sample misled us, start the ranks from scratch.
		if leq1, leq2 := ws.countLeq(p1, p2, ws.c1, ws.c2); kmin > leq1 && kmax <= leq2 {
			ws.lo, ws.c1 = ws.c1, ws.lo
			ws.hi, ws.c2 = ws.c2, ws.hi
			below, top = leq1, leq2
		}
	}
	copy(ws.savedLo, ws.lo)
	copy(ws.savedHi, ws.hi)
	for i, k := range ks {
		if i > 0 {
			copy(ws.lo, ws.savedLo)
			copy(ws.hi, ws.savedHi)
		}
		out[i] = ws.kth(k, below, top, limit)
	}
}

// kth returns the k-th smallest difference, from the candidates in ws.lo
// and ws.hi, below and top being Σ lo and Σ hi.
func (ws *workspace) kth(k, below, top, limit int) float64 {
	// The candidates lie strictly above a lower bound, and at or below an
	// upper bound (strictly below it after countLess).
	for top-below > limit {
		p1, p2 := ws.pivots(k-below, k-below, top-below)
		leq1, leq2 := ws.countLeq(p1, p2, ws.c1, ws.c2)
		switch {
		case k <= leq1:
			// The sample misled us (rarely), or p1 is the answer, repeated.
			less1 := ws.countLess(p1, ws.c2)
			if k > less1 {
				return p1
			}
			ws.hi, ws.c2 = ws.c2, ws.hi
			top = less1
		case k <= leq2:
			ws.lo, ws.c1 = ws.c1, ws.lo
			ws.hi, ws.c2 = ws.c2, ws.hi
			below, top = leq1, leq2
		default:
			ws.lo, ws.c2 = ws.c2, ws.lo
			below = leq2
		}
	}
	ws.buf = ws.buf[:0]
	for i, xi := range ws.x {
		for _, yj := range ws.yr[ws.lo[i]:ws.hi[i]] {
			ws.buf = append(ws.buf, xi-yj)
		}
	}
	return ws.selectDirect(ws.buf, k-below-1)
}

// countLeq returns how many differences are at most p1 and at most p2
// (p1 ≤ p2), storing each row's counts in c1 and c2. The pivots must be
// candidates: then every row's counts lie within its candidate range, and
// the walks down the columns stay inside it. Both walks share one pass
// over the rows, which is where the time goes.
func (ws *workspace) countLeq(p1, p2 float64, c1, c2 []int32) (n1, n2 int) {
	x, yr, lo, hi := ws.x, ws.yr, ws.lo, ws.hi
	j1, j2 := int32(len(yr)), int32(len(yr))
	for i, xi := range x {
		l, h := lo[i], hi[i]
		j1, j2 = min(j1, h), min(j2, h)
		for j1 > l && xi-yr[j1-1] > p1 {
			j1--
		}
		for j2 > l && xi-yr[j2-1] > p2 {
			j2--
		}
		c1[i], c2[i] = j1, j2
		n1 += int(j1)
		n2 += int(j2)
	}
	return n1, n2
}

// countLess returns how many differences are below p, a candidate, and
// stores each row's count in c.
func (ws *workspace) countLess(p float64, c []int32) (n int) {
	x, yr, lo, hi := ws.x, ws.yr, ws.lo, ws.hi
	j := int32(len(yr))
	for i, xi := range x {
		l := lo[i]
		j = min(j, hi[i])
		for j > l && xi-yr[j-1] >= p {
			j--
		}
		c[i] = j
		n += int(j)
	}
	return n
}

// next returns the (k+1)-th smallest difference, given v, the k-th.
func (ws *workspace) next(v float64, k int) float64 {
	x, yr := ws.x, ws.yr
	m := len(yr)
	leq, succ := 0, math.Inf(1)
	c := m
	for _, xi := range x {
		for c > 0 && xi-yr[c-1] > v {
			c--
		}
		leq += c
		if c < m {
			succ = min(succ, xi-yr[c])
		}
	}
	if leq > k {
		return v
	}
	return succ
}

// pivots samples the width candidates and returns two of them: the first
// ranks (with high probability) below candidate tLo, the second above
// candidate tHi (1-based ranks among the candidates, tLo ≤ tHi). The
// sample is stratified, one candidate from each of s equal slices of the
// row-major order, which one pass over the rows can draw.
func (ws *workspace) pivots(tLo, tHi, width int) (float64, float64) {
	s := ws.sample[:min(pivotSamples, width)]
	stride := float64(width) / float64(len(s))
	r, next := 0, int(ws.unit()*stride)
	start := 0 // the row-major position of row i's first candidate
	for i, xi := range ws.x {
		l, end := int(ws.lo[i]), start+int(ws.hi[i]-ws.lo[i])
		for next < end {
			s[r] = xi - ws.yr[l+next-start]
			r++
			if r == len(s) {
				break
			}
			next = int((float64(r) + ws.unit()) * stride)
		}
		if r == len(s) {
			break
		}
		start = end
	}
	// A sample quantile's rank is off by about √(s·f·(1 − f)); two of
	// those either side make the bracket miss rarely.
	ns := float64(len(s))
	at := func(t int, side float64) int {
		f := (float64(t) - 0.5) / float64(width)
		i := math.Floor(f*ns + side*(2*math.Sqrt(ns*f*(1-f))+1))
		return int(max(0, min(ns-1, i)))
	}
	i1, i2 := at(tLo, -1), at(tHi, +1)
	p1 := ws.selectDirect(s, i1)
	// selectDirect leaves s partitioned around i1: the second pivot is in
	// the part above it.
	p2 := p1
	if i2 > i1 {
		p2 = ws.selectDirect(s[i1+1:], i2-i1-1)
	}
	return p1, p2
}

// selectDirect returns the k-th smallest (0-based) of a, reordering a so
// that a[k] holds it with nothing greater before it and nothing smaller
// after: quickselect with random pivots and a three-way partition, which
// keeps runs of equal values (integer-valued metrics) linear.
func (ws *workspace) selectDirect(a []float64, k int) float64 {
	l, r := 0, len(a)-1
	for l < r {
		p := a[l+int(ws.rand()%uint64(r-l+1))]
		lt, i, gt := l, l, r
		for i <= gt {
			switch v := a[i]; {
			case v < p:
				a[lt], a[i] = v, a[lt]
				lt++
				i++
			case v > p:
				a[gt], a[i] = v, a[gt]
				gt--
			default:
				i++
			}
		}
		switch {
		case k < lt:
			r = lt - 1
		case k > gt:
			l = gt + 1
		default:
			return p
		}
	}
	return a[l]
}

// rand is splitmix64: the pivots need speed and spread, not quality.
func (ws *workspace) rand() uint64 {
	ws.rng += 0x9e3779b97f4a7c15
	z := ws.rng
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// unit is a uniform draw in [0, 1).
func (ws *workspace) unit() float64 { return float64(ws.rand()>>11) / (1 << 53) }
