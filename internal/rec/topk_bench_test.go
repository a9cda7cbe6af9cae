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
