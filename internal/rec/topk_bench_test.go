package rec

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// BenchmarkTopK selects a page's 500 best of 10,000 scores.
func BenchmarkTopK(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	scores := make([]float32, 10_000)
	for i := range scores {
		scores[i] = rng.Float32()
	}
	allow := make([]bool, len(scores))
	for i := range allow {
		allow[i] = i%17 != 0
	}
	for b.Loop() {
		topK(scores, allow, 500)
	}
}

// topK is the naive sort's head, ties to the lower index, with masked and
// non-finite scores left out.
func TestTopKMatchesSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := range 300 {
		n := rng.IntN(300)
		scores := make([]float32, n)
		allow := make([]bool, n)
		for i := range scores {
			scores[i] = float32(rng.IntN(20)) // many ties
			allow[i] = rng.IntN(5) != 0
			switch rng.IntN(30) {
			case 0:
				scores[i] = float32(math.NaN())
			case 1:
				scores[i] = float32(math.Inf(-1))
			}
		}
		var want []int32
		for i, s := range scores {
			if allow[i] && s == s && !math.IsInf(float64(s), -1) {
				want = append(want, int32(i))
			}
		}
		slices.SortStableFunc(want, func(a, b int32) int { return cmp.Compare(scores[b], scores[a]) })
		k := rng.IntN(n + 2)
		got := topK(scores, allow, k)
		if len(want) > k {
			want = want[:k]
		}
		if !slices.Equal(got, want) {
			t.Fatalf("trial %d, k %d: got %v, want %v", trial, k, got, want)
		}
	}
}

// The selections over a large catalog (where a sampled threshold decides
// which scores are gathered) and over a subset are the naive sort's head
// too: random, tied, sorted (the sample misleads: fewer than k reach its
// threshold) and masked scores, with allow or deny flags.
func TestTopKLargeMatchesSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	naive := func(scores []float32, idx []int32, ok func(int) bool, k int) []int32 {
		var want []int32
		for _, i := range idx {
			if s := scores[i]; ok(int(i)) && s == s && !math.IsInf(float64(s), -1) {
				want = append(want, i)
			}
		}
		slices.SortStableFunc(want, func(a, b int32) int { return cmp.Compare(scores[b], scores[a]) })
		return want[:min(k, len(want))]
	}
	for trial := range 200 {
		n := 2000 + rng.IntN(8000)
		scores := make([]float32, n)
		mask := make([]bool, n)
		all := make([]int32, n)
		for i := range scores {
			all[i] = int32(i)
			mask[i] = rng.IntN(4) != 0
			switch trial % 4 {
			case 0:
				scores[i] = rng.Float32()
			case 1:
				scores[i] = float32(rng.IntN(7)) // many ties at every threshold
			case 2:
				scores[i] = float32(i) // ascending: the best are all at the end
			case 3:
				scores[i] = -float32(i) / 3 // descending
			}
			switch rng.IntN(50) {
			case 0:
				scores[i] = float32(math.NaN())
			case 1:
				scores[i] = float32(math.Inf(-1))
			}
		}
		k := []int{1, 10, 20, 60, 200, 500, n}[rng.IntN(7)]
		yes := func(int) bool { return true }
		if got, want := topK(scores, nil, k), naive(scores, all, yes, k); !slices.Equal(got, want) {
			t.Fatalf("trial %d, k %d: got %v, want %v", trial, k, got[:min(10, len(got))], want[:min(10, len(want))])
		}
		allowed := func(i int) bool { return mask[i] }
		if got, want := TopK(scores, mask, k), naive(scores, all, allowed, k); !slices.Equal(got, want) {
			t.Fatalf("trial %d, k %d, allow: got %v, want %v", trial, k, got[:min(10, len(got))], want[:min(10, len(want))])
		}
		denied := func(i int) bool { return !mask[i] }
		if got, want := TopKExcept(scores, mask, k), naive(scores, all, denied, k); !slices.Equal(got, want) {
			t.Fatalf("trial %d, k %d, deny: got %v, want %v", trial, k, got[:min(10, len(got))], want[:min(10, len(want))])
		}
		var sub []int32
		for i := range all {
			if rng.IntN(10) == 0 {
				sub = append(sub, int32(i))
			}
		}
		dst := []int32{-1}
		got := TopKOf(scores, sub, mask, k, dst)
		if want := naive(scores, sub, denied, k); got[0] != -1 || !slices.Equal(got[1:], want) {
			t.Fatalf("trial %d, k %d, subset: got %v, want [-1] + %v", trial, k, got[:min(10, len(got))], want[:min(10, len(want))])
		}
	}
}
