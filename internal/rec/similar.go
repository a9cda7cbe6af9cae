package rec

import (
	"context"
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// Similar is the n titles most like title by this model (for a "Because
// you watched" row), best first, in market ("" anywhere), never title
// itself: the neighbour list for knn and blend, the cosine of title
// factors for als and multitask, and otherwise the cosine of co-plays
// (the members who played both). An unknown title has none.
func (r *Recommender) Similar(title string, n int, market string) []Item {
	t, ok := r.b.titleIdx[title]
	if !ok || n <= 0 {
		return nil
	}
	scores := make([]float32, len(r.b.Titles))
	r.similarScores(t, scores)
	var avail []bool
	if mk, ok := r.b.marketIdx[market]; ok {
		avail = r.b.avail[mk]
	}
	idx := topK(scores, avail, n)
	out := make([]Item, len(idx))
	for i, j := range idx {
		out[i] = Item{Title: r.b.Titles[j].ID, Score: float64(scores[j])}
	}
	return out
}

// SimilarIndexes is, for each title of titles (catalog indexes), the
// catalog indexes of the n titles most like it: Similar's answer in every
// market, worked out by up to workers goroutines at once. Serving builds
// it when a model loads, so that no request computes a title's
// neighbours. It stops early, with ctx's error, when ctx ends, and with
// a *PanicError when working out a title panics.
func (r *Recommender) SimilarIndexes(ctx context.Context, titles []int32, n, workers int) ([][]int32, error) {
	out := make([][]int32, len(titles))
	if n <= 0 || len(titles) == 0 {
		return out, nil
	}
	workers = max(1, min(workers, len(titles)))
	// One backing array for every list, each title's n places in it: a
	// list per title would be as many objects for the collector to walk
	// for as long as the model serves.
	flat := make([]int32, len(titles)*n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var p panics
	for range workers {
		wg.Go(func() {
			defer p.catch()
			scores := make([]float32, len(r.b.Titles))
			for {
				i := int(next.Add(1) - 1)
				if i >= len(titles) || ctx.Err() != nil || p.failed() {
					return
				}
				r.similarScores(titles[i], scores)
				out[i] = selectTop(scores, nil, nil, nil, n, flat[i*n:i*n:(i+1)*n])
			}
		})
	}
	wg.Wait()
	if err := p.err(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// similarScores fills scores with every title's likeness to title t
// (-Inf for t itself and for titles with nothing to compare).
func (r *Recommender) similarScores(t int32, scores []float32) {
	neg := float32(math.Inf(-1))
	for i := range scores {
		scores[i] = neg
	}
	switch s := r.s.(type) {
	case *knnModel:
		s.similar(t, scores)
	case *blendModel:
		s.KNN.similar(t, scores)
	case *alsModel:
		r.cosines(s.Y, s.K, t, scores)
	case *mtModel:
		r.cosines(s.Q, s.K, t, scores)
	default:
		r.b.coPlays(t, scores)
	}
	scores[t] = neg
}

func (m *knnModel) similar(t int32, scores []float32) {
	for e := m.Ptr[t]; e < m.Ptr[t+1]; e++ {
		scores[m.Nbr[e]] = m.Sim[e]
	}
}

// cosines scores every row of the row-major matrix v (k columns) by its
// cosine with row t.
func (r *Recommender) cosines(v []float32, k int, t int32, scores []float32) {
	// The titles' norms once per model, the dot products as one gemv: a
	// row of "Because You Watched" asks this for each new anchor title.
	r.normsOnce.Do(func() {
		r.norms = make([]float32, len(v)/k)
		for i := range r.norms {
			var s float64
			for _, x := range v[i*k : (i+1)*k] {
				s += float64(x) * float64(x)
			}
			r.norms[i] = float32(math.Sqrt(s))
		}
	})
	nt := r.norms[t]
	if nt == 0 {
		return
	}
	neg := float32(math.Inf(-1))
	vt := slices.Clone(v[int(t)*k : (int(t)+1)*k])
	gonum.Implementation{}.Sgemv(blas.NoTrans, len(r.norms), k, 1, v, k, vt, 1, 0, scores, 1)
	for i, d := range r.norms {
		if d == 0 {
			scores[i] = neg
			continue
		}
		scores[i] /= d * nt
	}
}

// coPlays scores titles by the cosine of co-plays with t, walking t's
// members' histories (a scan of the history: no index is kept for it).
func (b *base) coPlays(t int32, scores []float32) {
	// The history transposed (who played each title), built once: a scan
	// of every member per call would make a row of "Because You Watched"
	// cost a pass over the whole training data.
	b.playersOnce.Do(b.buildPlayers)
	deg := func(i int32) float64 { return float64(b.playersPtr[i+1] - b.playersPtr[i]) }
	count := map[int32]float32{}
	for _, u := range b.players[b.playersPtr[t]:b.playersPtr[t+1]] {
		for _, j := range b.Hist.row(int(u)) {
			count[j]++
		}
	}
	for j, c := range count {
		scores[j] = c / float32(math.Sqrt(deg(j)*deg(t)))
	}
}

// buildPlayers transposes the history: players[playersPtr[t]:playersPtr[t+1]]
// are the members who played title t.
func (b *base) buildPlayers() {
	nt := len(b.Titles)
	b.playersPtr = make([]int64, nt+1)
	for _, t := range b.Hist.Title {
		b.playersPtr[t+1]++
	}
	for i := 1; i <= nt; i++ {
		b.playersPtr[i] += b.playersPtr[i-1]
	}
	b.players = make([]int32, len(b.Hist.Title))
	pos := slices.Clone(b.playersPtr[:nt])
	for u := range len(b.Members) {
		for _, t := range b.Hist.row(u) {
			b.players[pos[t]] = int32(u)
			pos[t]++
		}
	}
}
