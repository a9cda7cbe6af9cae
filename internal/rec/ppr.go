package rec

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// pprModel is personalized PageRank on the member–title bipartite graph,
// estimated by Monte Carlo random walks with restart from the member: a
// walk steps member → one of their titles → one of that title's members
// → one of theirs ..., counting the titles it visits from the second on
// (the first is the member's own) and ending after each with probability
// Restart; a title's score
// is its share of visits, divided by its degree^Beta to temper the pull
// of very popular titles. The walks of member u draw from a generator
// seeded with (Seed, u), so an answer is the same every time.
type pprModel struct {
	Walks   int
	Restart float64
	Beta    float64
	Seed    uint64
	TPtr    []int64 // title t's members are TIdx[TPtr[t]:TPtr[t+1]]
	TIdx    []int32
}

func (m *pprModel) check(b *base) error {
	if m == nil {
		return errors.New("damaged body (no ppr part)")
	}
	if len(m.TPtr) != len(b.Titles)+1 || m.TPtr[0] != 0 || m.TPtr[len(m.TPtr)-1] != int64(len(m.TIdx)) || m.Walks < 1 || m.Walks > maxWalks || !(m.Restart > 0 && m.Restart <= 1) || !(m.Beta >= 0 && m.Beta <= 10) {
		return fmt.Errorf("graph does not match %d titles", len(b.Titles))
	}
	for t := range len(b.Titles) {
		if m.TPtr[t] > m.TPtr[t+1] {
			return fmt.Errorf("graph row %d out of range", t)
		}
	}
	for _, u := range m.TIdx {
		if u < 0 || int(u) >= len(b.Members) {
			return fmt.Errorf("graph names member %d of %d", u, len(b.Members))
		}
	}
	return nil
}

// maxWalk bounds one walk's length (a restart probability near 0 would
// otherwise walk for ever).
const maxWalk = 64

// maxWalks bounds the walks of one member's scores: 20,000 walks of up to
// 64 hops are tens of milliseconds, a budget a served page can afford.
const maxWalks = 20_000

func (m *pprModel) scores(b *base, u int, dst []float32) {
	clear(dst)
	rng := rand.New(rand.NewPCG(m.Seed, uint64(u)))
	if b.Hist.Ptr[u] < b.Hist.Ptr[u+1] {
		for range m.Walks {
			cur := u
			for hop := range maxWalk {
				row := b.Hist.row(cur)
				if len(row) == 0 {
					// Only a damaged or forged file leads here: a walk
					// reaches members through titles they played.
					break
				}
				t := row[rng.IntN(len(row))]
				if hop > 0 {
					// The first hop only reaches the member's own titles,
					// which are known; every walk goes on to a neighbour.
					dst[t]++
					if rng.Float64() < m.Restart {
						break
					}
				}
				ms := m.TIdx[m.TPtr[t]:m.TPtr[t+1]]
				if len(ms) == 0 {
					break
				}
				cur = int(ms[rng.IntN(len(ms))])
			}
		}
	}
	pop := b.popRow(b.marketOf(u, ""))
	inv := 1 / float32(m.Walks)
	for t, v := range dst {
		s := v * inv
		if s > 0 && m.Beta != 0 {
			s /= float32(math.Pow(float64(m.TPtr[t+1]-m.TPtr[t]), m.Beta))
		}
		dst[t] = s + tieBreak*pop[t]
	}
}

func trainPPR(b *base, ps *params) (*pprModel, error) {
	m := &pprModel{
		// At most maxWalks: a page is served in the request, and each walk
		// is up to maxWalk hops.
		Walks:   ps.int("walks", 1000, 1, maxWalks),
		Restart: ps.float("restart", 0.8, func(v float64) bool { return v > 0 && v <= 1 }, "a probability in (0, 1]"),
		// Beyond 10 the degree penalty underflows to 0 and the model is
		// popularity by another name.
		Beta: ps.float("beta", 0.3, func(v float64) bool { return v >= 0 && v <= 10 }, "a number from 0 to 10"),
		Seed: uint64(ps.int("seed", 1, 0, math.MaxInt32)),
	}
	if ps.err != nil {
		return nil, ps.err
	}
	m.TPtr, m.TIdx, _ = b.Hist.transpose(len(b.Titles))
	return m, nil
}
