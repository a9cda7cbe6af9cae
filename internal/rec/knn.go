package rec

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
)

// knnModel is item-based nearest neighbours: for each title its top
// neighbours by cosine similarity of the binary member × title matrix
// (two titles are alike when the same members played both); a member's
// score for t is the sum of t's similarities to the titles they played.
type knnModel struct {
	Ptr []int64 // title t's neighbours are Nbr[Ptr[t]:Ptr[t+1]]
	Nbr []int32
	Sim []float32
}

func (m *knnModel) check(b *base) error {
	if m == nil {
		return errors.New("damaged body (no knn part)")
	}
	// Ptr[0] must be 0 too: the lists are checked to ascend and to end at
	// len(Nbr), and a forged -1 first passed both and indexed Nbr[-1].
	if len(m.Ptr) != len(b.Titles)+1 || len(m.Nbr) != len(m.Sim) || m.Ptr[0] != 0 || m.Ptr[len(m.Ptr)-1] != int64(len(m.Nbr)) {
		return fmt.Errorf("neighbour lists do not match %d titles", len(b.Titles))
	}
	for t := range len(b.Titles) {
		if m.Ptr[t] > m.Ptr[t+1] {
			return fmt.Errorf("neighbour list %d out of range", t)
		}
	}
	for _, j := range m.Nbr {
		if j < 0 || int(j) >= len(b.Titles) {
			return fmt.Errorf("neighbour %d out of range", j)
		}
	}
	return nil
}

// tieBreak is the weight of popularity added to personal scores: small
// enough never to outrank a personal signal, enough to order the titles
// the personal signal does not reach.
const tieBreak = 1e-4

func (m *knnModel) scores(b *base, u int, dst []float32) {
	pop := b.popRow(b.marketOf(u, ""))
	for t := range dst {
		dst[t] = tieBreak * pop[t]
	}
	for _, i := range b.Hist.row(u) {
		for n := m.Ptr[i]; n < m.Ptr[i+1]; n++ {
			dst[m.Nbr[n]] += m.Sim[n]
		}
	}
}

func trainKNN(ctx context.Context, b *base, ps *params) (*knnModel, error) {
	k := ps.int("neighbours", 50, 1, 10000)
	shrink := ps.float("shrink", 0, nonNeg, "a number ≥ 0 (added to the cosine's denominator)")
	if ps.err != nil {
		return nil, ps.err
	}
	nt := len(b.Titles)
	tPtr, tIdx, _ := b.Hist.transpose(nt)
	deg := make([]float64, nt)
	for t := range nt {
		deg[t] = float64(tPtr[t+1] - tPtr[t])
	}
	nbrs := make([][]int32, nt)
	sims := make([][]float32, nt)
	var next atomic.Int64
	var wg sync.WaitGroup
	var p panics
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer p.catch()
			acc := make([]float32, nt)
			var touched []int32
			var cand []float32
			for ctx.Err() == nil && !p.failed() {
				i := int(next.Add(1)) - 1
				if i >= nt {
					return
				}
				touched = touched[:0]
				for _, u := range tIdx[tPtr[i]:tPtr[i+1]] {
					for _, j := range b.Hist.row(int(u)) {
						if int(j) == i {
							continue
						}
						if acc[j] == 0 {
							touched = append(touched, j)
						}
						acc[j]++
					}
				}
				cand = cand[:0]
				for _, j := range touched {
					cand = append(cand, float32(float64(acc[j])/(math.Sqrt(deg[i]*deg[j])+shrink)))
					acc[j] = 0
				}
				best := topK(cand, nil, k)
				nb, sm := make([]int32, len(best)), make([]float32, len(best))
				for n, c := range best {
					nb[n], sm[n] = touched[c], cand[c]
				}
				nbrs[i], sims[i] = nb, sm
			}
		}()
	}
	wg.Wait()
	if err := p.err(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m := &knnModel{Ptr: make([]int64, nt+1)}
	for t := range nt {
		m.Nbr = append(m.Nbr, nbrs[t]...)
		m.Sim = append(m.Sim, sims[t]...)
		m.Ptr[t+1] = int64(len(m.Nbr))
	}
	return m, nil
}
