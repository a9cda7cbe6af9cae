package rec

import (
	"math"
	"slices"
	"sync"
)

// The selections of the k best scores that serving and training make:
// over the whole catalog (a member's page, a title's neighbours) or over a
// subset of it (a row's recent titles). Every one keeps the same order:
// score, high first, ties to the lower index; masked, NaN and -Inf scores
// are left out.

// topK is the indexes of the k highest finite scores (avail nil: all
// allowed), best first, ties to the lower index.
func topK(scores []float32, avail []bool, k int) []int32 {
	return selectTop(scores, nil, avail, nil, k, nil)
}

// TopK is the catalog indexes of the k highest finite scores, best first,
// ties to the lower index; allow (nil: every title) masks the rest.
func TopK(scores []float32, allow []bool, k int) []int32 { return topK(scores, allow, k) }

// TopKExcept is TopK with the titles to leave out given instead of those
// to keep (deny nil: none), so that a page's "already taken" flags serve
// as they are, without a mask built for the selection.
func TopKExcept(scores []float32, deny []bool, k int) []int32 {
	return selectTop(scores, nil, nil, deny, k, nil)
}

// TopKOf is TopKExcept over the titles of idx only, for a selection among
// a few titles of a large catalog (a row's recent releases) that need not
// pass over every score. The answer is appended to dst.
func TopKOf(scores []float32, idx []int32, deny []bool, k int, dst []int32) []int32 {
	return selectTop(scores, idx, nil, deny, k, dst)
}

// selectTop gathers the allowed finite scores as (score, index) pairs
// (idx nil: every title; allow and deny may each be nil), moves the k
// best to the front by quickselect and sorts those k: linear in the
// titles considered, where a heap of k costs a hard-to-predict branch per
// level of every entry (measured 3-4x slower for 500 of 10,000).
func selectTop(scores []float32, idx []int32, allow, deny []bool, k int, dst []int32) []int32 {
	neg := float32(math.Inf(-1))
	pp := pairPool.Get().(*[]scoredIdx)
	defer pairPool.Put(pp)
	ps := (*pp)[:0]
	keep := func(t int) bool { return (allow == nil || allow[t]) && (deny == nil || !deny[t]) }
	switch {
	case idx != nil:
		for _, t := range idx {
			if s := scores[t]; s != neg && s == s && keep(int(t)) {
				ps = append(ps, scoredIdx{s, t})
			}
		}
	default:
		// Only the scores at or above a threshold that about 2k of them
		// pass are gathered (a sample of the scores says where it lies);
		// when fewer than k pass, every score is.
		thr, ok := neg, false
		if k > 0 && len(scores) >= 16*k {
			if t, found := threshold(scores, allow, deny, k); found {
				thr, ok = t, true
			}
		}
		for {
			if allow == nil && deny == nil {
				for t, s := range scores {
					if s >= thr && s != neg {
						ps = append(ps, scoredIdx{s, int32(t)})
					}
				}
			} else {
				for t, s := range scores {
					if s >= thr && s != neg && keep(t) {
						ps = append(ps, scoredIdx{s, int32(t)})
					}
				}
			}
			if !ok || len(ps) >= k {
				break
			}
			ps, thr, ok = ps[:0], neg, false
		}
	}
	k = max(0, min(k, len(ps)))
	if k < len(ps) {
		selectBest(ps, k)
	}
	top := ps[:k]
	slices.SortFunc(top, func(a, b scoredIdx) int {
		if better(a, b) {
			return -1
		}
		if better(b, a) {
			return 1
		}
		return 0
	})
	var out []int32
	if dst == nil {
		out = make([]int32, 0, k)
	} else {
		out = slices.Grow(dst, k)
	}
	for _, p := range top {
		out = append(out, p.t)
	}
	*pp = ps
	return out
}

// threshold guesses a score that about 2k of the allowed finite scores
// reach, from a sample of about a thousand of them taken at even steps. Any guess is
// safe: when fewer than k reach it, the caller gathers every score (the
// k best are always among the scores at or above a value that k or more
// reach). ok is false when the sample finds nothing to go by.
func threshold(scores []float32, allow, deny []bool, k int) (float32, bool) {
	step := max(1, len(scores)/1024)
	sp := samplePool.Get().(*[]float32)
	defer samplePool.Put(sp)
	sample := (*sp)[:0]
	neg := float32(math.Inf(-1))
	for t := 0; t < len(scores); t += step {
		if s := scores[t]; s != neg && s == s && (allow == nil || allow[t]) && (deny == nil || !deny[t]) {
			sample = append(sample, s)
		}
	}
	*sp = sample
	// The sample stands for step scores each: its j-th best is reached
	// by about j·step of all of them.
	j := max(8, 2*k/step)
	if len(sample) <= j {
		return 0, false
	}
	return nthLargest(sample, j-1), true
}

// nthLargest is the value that would be at xs[n] were xs sorted from the
// largest (xs is reordered).
func nthLargest(xs []float32, n int) float32 {
	lo, hi := 0, len(xs)-1
	for lo < hi {
		mid := lo + (hi-lo)/2
		if xs[mid] > xs[lo] {
			xs[mid], xs[lo] = xs[lo], xs[mid]
		}
		if xs[hi] > xs[lo] {
			xs[hi], xs[lo] = xs[lo], xs[hi]
		}
		if xs[mid] > xs[hi] {
			xs[mid], xs[hi] = xs[hi], xs[mid]
		}
		pivot := xs[hi]
		i := lo
		for j := lo; j < hi; j++ {
			if xs[j] > pivot {
				xs[i], xs[j] = xs[j], xs[i]
				i++
			}
		}
		xs[i], xs[hi] = xs[hi], xs[i]
		switch {
		case i == n:
			return xs[i]
		case i < n:
			lo = i + 1
		default:
			hi = i - 1
		}
	}
	return xs[n]
}

var samplePool = sync.Pool{New: func() any { return new([]float32) }}

// pairPool holds selectTop's working slices: a catalog's worth of pairs
// per call would be most of a page's allocation.
var pairPool = sync.Pool{New: func() any { return new([]scoredIdx) }}

type scoredIdx struct {
	s float32
	t int32
}

// better orders by score, high first, ties to the lower index.
func better(a, b scoredIdx) bool { return a.s > b.s || a.s == b.s && a.t < b.t }

// selectBest moves the k best of ps to ps[:k] (in no order): quickselect
// with a median-of-three pivot.
func selectBest(ps []scoredIdx, k int) {
	lo, hi := 0, len(ps)-1
	for lo < hi {
		mid := lo + (hi-lo)/2
		if better(ps[mid], ps[lo]) {
			ps[mid], ps[lo] = ps[lo], ps[mid]
		}
		if better(ps[hi], ps[lo]) {
			ps[hi], ps[lo] = ps[lo], ps[hi]
		}
		if better(ps[mid], ps[hi]) {
			ps[mid], ps[hi] = ps[hi], ps[mid]
		}
		pivot := ps[hi] // the median of the three
		i := lo
		for j := lo; j < hi; j++ {
			if better(ps[j], pivot) {
				ps[i], ps[j] = ps[j], ps[i]
				i++
			}
		}
		ps[i], ps[hi] = ps[hi], ps[i]
		switch {
		case i == k || i == k-1:
			return
		case i < k:
			lo = i + 1
		default:
			hi = i - 1
		}
	}
}
