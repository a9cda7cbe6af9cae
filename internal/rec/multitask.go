package rec

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/baton-ml/baton/internal/fault"
)

// mtModel is a multi-task factorization: member and title embeddings P
// and Q shared by two heads, play and completion; head h's logit for
// (u, t) is Σ_f G[h][f]·P[u,f]·Q[t,f] + B[h][t] (a gate per factor and a
// bias per title), so each head reads the shared space its own way. The
// play head is P(play); the completion head is P(complete | play), so
// P(play and complete) = σ(play)·σ(completion). It serves
// WPlay·P(play) + WComplete·P(play and complete).
type mtModel struct {
	K         int
	P, Q      []float32
	G         [2][]float32
	B         [2][]float32
	WPlay     float64
	WComplete float64
}

const (
	headPlay     = 0
	headComplete = 1
)

func (m *mtModel) check(b *base) error {
	if m == nil {
		return errors.New("damaged body (no multitask part)")
	}
	if !rowsOf(len(m.P), len(b.Members), m.K) || !rowsOf(len(m.Q), len(b.Titles), m.K) {
		return fmt.Errorf("embeddings do not match %d members and %d titles", len(b.Members), len(b.Titles))
	}
	for h := range 2 {
		if len(m.G[h]) != m.K || len(m.B[h]) != len(b.Titles) {
			return fmt.Errorf("head %d does not match", h)
		}
	}
	return nil
}

func (m *mtModel) logit(h, u, t int) float32 {
	p, q, g := m.P[u*m.K:(u+1)*m.K], m.Q[t*m.K:(t+1)*m.K], m.G[h]
	var s float32
	for f := range p {
		s += g[f] * p[f] * q[f]
	}
	return s + m.B[h][t]
}

func sig32(x float32) float32 { return float32(1 / (1 + math.Exp(-float64(x)))) }

func (m *mtModel) scores(_ *base, u int, dst []float32) {
	wp, wc := float32(m.WPlay), float32(m.WComplete)
	for t := range dst {
		p := sig32(m.logit(headPlay, u, t))
		s := wp * p
		if wc != 0 {
			s += wc * p * sig32(m.logit(headComplete, u, t))
		}
		dst[t] = s
	}
}

// trainMultiTask fits both heads by SGD on logistic losses: each played
// pair is a positive of the play head and, labelled by whether it was
// completed, an example of the completion head; titles the member never
// played, drawn uniformly, are the play head's negatives. Both heads'
// gradients move the shared embeddings. One goroutine, a seeded
// generator: the same data and params give the same model.
func trainMultiTask(ctx context.Context, b *base, ps *params) (*mtModel, error) {
	k := ps.int("factors", 16, 1, 1024)
	epochs := ps.int("epochs", 20, 1, 1000)
	negatives := ps.int("negatives", 4, 1, 100)
	lr := ps.float("learning_rate", 0.05, positive, "a number > 0")
	reg := ps.float("reg", 0.001, nonNeg, "a number ≥ 0")
	taskPlay := ps.float("play_task_weight", 1, nonNeg, "a number ≥ 0")
	taskDone := ps.float("complete_task_weight", 1, nonNeg, "a number ≥ 0")
	m := &mtModel{K: k,
		WPlay:     ps.float("serve_play", 1, nonNeg, "a number ≥ 0"),
		WComplete: ps.float("serve_complete", 1, nonNeg, "a number ≥ 0"),
	}
	seed := uint64(ps.int("seed", 1, 0, math.MaxInt32))
	if ps.err != nil {
		return nil, ps.err
	}
	if m.WPlay == 0 && m.WComplete == 0 {
		return nil, fault0("serve_play and serve_complete are both 0: the model would score every title 0")
	}
	nu, nt := len(b.Members), len(b.Titles)
	rng := rand.New(rand.NewPCG(seed, 0x3717))
	m.P, m.Q = make([]float32, nu*k), make([]float32, nt*k)
	for i := range m.P {
		m.P[i] = float32(rng.NormFloat64() * 0.1)
	}
	for i := range m.Q {
		m.Q[i] = float32(rng.NormFloat64() * 0.1)
	}
	for h := range 2 {
		m.G[h] = make([]float32, k)
		for f := range k {
			m.G[h][f] = 1
		}
		m.B[h] = make([]float32, nt)
	}
	type pair struct{ u, t int32 }
	var pos []pair
	for u := range nu {
		for _, t := range b.Hist.row(u) {
			pos = append(pos, pair{int32(u), t})
		}
	}
	completed := func(u int, t int32) bool {
		row := b.Hist.row(u)
		i, ok := slices.BinarySearch(row, t)
		return ok && b.Hist.Completed[b.Hist.Ptr[u]+int64(i)]
	}
	// step takes one SGD step on head h for (u, t) with label y, weighted.
	step := func(h, u, t int, y, weight, eta float32) {
		if weight == 0 {
			return
		}
		g := (sig32(m.logit(h, u, t)) - y) * weight
		p, q, gate := m.P[u*k:(u+1)*k], m.Q[t*k:(t+1)*k], m.G[h][:k]
		q, gate = q[:len(p)], gate[:len(p)]
		r := float32(reg)
		for f, pf := range p {
			qf, gf := q[f], gate[f]
			p[f] = pf - eta*(g*gf*qf+r*pf)
			q[f] = qf - eta*(g*gf*pf+r*qf)
			gate[f] = gf - eta*0.1*(g*pf*qf+r*(gf-1))
		}
		m.B[h][t] -= eta * g
	}
	wPlay, wDone := float32(taskPlay), float32(taskDone)
	for e := range epochs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		eta := float32(lr / (1 + 0.2*float64(e)))
		rng.Shuffle(len(pos), func(i, j int) { pos[i], pos[j] = pos[j], pos[i] })
		for _, pr := range pos {
			u, t := int(pr.u), int(pr.t)
			done := float32(0)
			if completed(u, pr.t) {
				done = 1
			}
			step(headPlay, u, t, 1, wPlay, eta)
			step(headComplete, u, t, done, wDone, eta)
			row := b.Hist.row(u)
			for range negatives {
				j := int32(rng.IntN(nt))
				if _, seen := slices.BinarySearch(row, j); seen {
					continue
				}
				step(headPlay, u, int(j), 0, wPlay, eta)
			}
		}
	}
	return m, nil
}

func fault0(msg string) error { return fault.Invalidf("params", "%s", msg) }
