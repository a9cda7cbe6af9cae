package rec

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"

	"gonum.org/v1/gonum/mat"

	"github.com/baton-ml/baton/internal/fault"
)

// blendModel is the learned ensemble: popularity, item-kNN, ALS and PPR
// scores, each standardized over the catalog for the member (so scales
// do not matter), combined by logistic regression weights W (intercept
// first) fitted on a validation split.
type blendModel struct {
	KNN *knnModel
	ALS *alsModel
	PPR *pprModel
	W   []float64 // intercept, popularity, knn, als, ppr

	pool sync.Pool // *blendScratch
}

// BlendFeatures names the blend's inputs in W's order after the intercept.
var BlendFeatures = []string{"popularity", "knn", "als", "ppr"}

type blendScratch struct{ v [4][]float32 }

func (m *blendModel) check(b *base) error {
	if m == nil || m.KNN == nil || m.ALS == nil || m.PPR == nil || len(m.W) != 1+len(BlendFeatures) {
		return errors.New("damaged body (no blend part)")
	}
	for _, c := range []interface{ check(*base) error }{m.KNN, m.ALS, m.PPR} {
		if err := c.check(b); err != nil {
			return err
		}
	}
	return nil
}

// features fills v with the four standardized score vectors of u.
func (m *blendModel) features(b *base, u int, v *[4][]float32) {
	pop := b.popRow(b.marketOf(u, ""))
	for t, p := range pop {
		v[0][t] = float32(math.Log(float64(p) + 1e-7))
	}
	m.KNN.scores(b, u, v[1])
	m.ALS.scores(b, u, v[2])
	m.PPR.scores(b, u, v[3])
	for i := range v {
		standardize(v[i])
	}
}

func standardize(v []float32) {
	var s, ss float64
	for _, x := range v {
		s += float64(x)
	}
	mean := s / float64(len(v))
	for _, x := range v {
		d := float64(x) - mean
		ss += d * d
	}
	sd := math.Sqrt(ss / float64(len(v)))
	for i, x := range v {
		if sd == 0 {
			v[i] = 0
			continue
		}
		v[i] = float32((float64(x) - mean) / sd)
	}
}

func (m *blendModel) scratch(nt int) *blendScratch {
	if s, ok := m.pool.Get().(*blendScratch); ok && len(s.v[0]) == nt {
		return s
	}
	s := &blendScratch{}
	for i := range s.v {
		s.v[i] = make([]float32, nt)
	}
	return s
}

func (m *blendModel) scores(b *base, u int, dst []float32) {
	s := m.scratch(len(dst))
	defer m.pool.Put(s)
	m.features(b, u, &s.v)
	for t := range dst {
		z := m.W[0]
		for i := range s.v {
			z += m.W[i+1] * float64(s.v[i][t])
		}
		dst[t] = float32(z)
	}
}

// blendParts trains the three personal models on one dataset.
func blendParts(ctx context.Context, b *base, ps *params) (*blendModel, error) {
	m := &blendModel{}
	var err error
	kp, ap, pp := ps.sub("knn."), ps.sub("als."), ps.sub("ppr.")
	if m.KNN, err = trainKNN(ctx, b, kp); err == nil {
		if m.ALS, err = alsFromParams(ctx, b, ap); err == nil {
			m.PPR, err = trainPPR(b, pp)
		}
	}
	for _, c := range []struct {
		p      string
		params *params
	}{{"knn.", kp}, {"als.", ap}, {"ppr.", pp}} {
		if err := c.params.done(); err != nil && c.params.err == nil {
			c.params.err = err
		}
		ps.merge(c.p, c.params)
	}
	if ps.err != nil {
		return nil, ps.err
	}
	return m, err
}

func alsFromParams(ctx context.Context, b *base, ps *params) (*alsModel, error) {
	cfg, prec := alsParams(ps)
	if ps.err != nil {
		return nil, ps.err
	}
	return fitALS(ctx, b, cfg, prec)
}

// trainBlend fits the blend: the parts are trained on all but the last
// `validation` share of d (by time); for sampled members, the titles
// they then played are positives and titles they never played (drawn
// uniformly, `negatives` per positive) negatives of a logistic
// regression on the parts' standardized scores. The parts are then
// trained again on all of d with the same parameters, the weights kept.
func trainBlend(ctx context.Context, b *base, d *Dataset, ps *params, halfLife float64) (*blendModel, error) {
	valShare := ps.float("validation", 0.2, func(v float64) bool { return v > 0 && v < 1 }, "a share in (0, 1)")
	negatives := ps.int("negatives", 10, 1, 1000)
	maxMembers := ps.int("max_members", 3000, 1, 1<<30)
	seed := uint64(ps.int("seed", 1, 0, math.MaxInt32))
	if ps.err != nil {
		return nil, ps.err
	}
	sub, val := d.Cut(d.CutAt(valShare))
	if sub.Inter.Len() == 0 || val.Inter.Len() == 0 {
		return nil, fault.Invalidf("param validation", "%g leaves no interactions on one side of the split", valShare)
	}
	sb := newBase(KindBlend, sub, nil)
	sb.Pop, sb.Count = popularity(sub, halfLife)
	parts, err := blendParts(ctx, sb, ps)
	if err != nil {
		return nil, err
	}
	vh := buildHistory(&val.Inter, len(val.Members))
	var members []int
	for u := range len(val.Members) {
		if vh.Ptr[u+1] > vh.Ptr[u] {
			members = append(members, u)
		}
	}
	rng := rand.New(rand.NewPCG(seed, 0xb1e4d))
	if len(members) > maxMembers {
		rng.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
		members = members[:maxMembers]
		slices.Sort(members)
	}
	nt := len(d.Titles)
	var xs [][5]float64
	var ys []float64
	s := parts.scratch(nt)
	for _, u := range members {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		seen := sb.Hist.row(u)
		var positives []int32
		for _, t := range vh.row(u) {
			if _, ok := slices.BinarySearch(seen, t); !ok {
				positives = append(positives, t)
			}
		}
		if len(positives) == 0 {
			continue
		}
		parts.features(sb, u, &s.v)
		row := func(t int32, y float64) {
			var x [5]float64
			x[0] = 1
			for i := range s.v {
				x[i+1] = float64(s.v[i][t])
			}
			xs = append(xs, x)
			ys = append(ys, y)
		}
		mk := sb.marketOf(u, "")
		for _, t := range positives {
			row(t, 1)
			for range negatives {
				j := int32(rng.IntN(nt))
				if _, ok := slices.BinarySearch(seen, j); ok || slices.Contains(positives, j) || (mk >= 0 && !sb.avail[mk][j]) {
					continue
				}
				row(j, 0)
			}
		}
	}
	if len(ys) == 0 {
		return nil, fault.Invalidf("param validation", "the validation split has no member with a new title to learn from")
	}
	w, err := logistic(xs, ys, 1e-3)
	if err != nil {
		return nil, err
	}
	full, err := blendParts(ctx, b, ps)
	if err != nil {
		return nil, err
	}
	full.W = w
	return full, nil
}

// logistic fits L2-regularised logistic regression by Newton's method
// (the intercept, column 0, unpenalised).
func logistic(xs [][5]float64, ys []float64, l2 float64) ([]float64, error) {
	const p = 5
	w := make([]float64, p)
	for range 50 {
		var g [p]float64
		h := mat.NewSymDense(p, nil)
		var hh [p][p]float64
		for n, x := range xs {
			var z float64
			for i := range p {
				z += w[i] * x[i]
			}
			mu := 1 / (1 + math.Exp(-z))
			r := mu - ys[n]
			s := mu * (1 - mu)
			for i := range p {
				g[i] += r * x[i]
				for j := i; j < p; j++ {
					hh[i][j] += s * x[i] * x[j]
				}
			}
		}
		for i := range p {
			for j := i; j < p; j++ {
				v := hh[i][j]
				if i == j && i > 0 {
					v += l2 * float64(len(xs))
				}
				h.SetSym(i, j, v)
			}
			if i > 0 {
				g[i] += l2 * float64(len(xs)) * w[i]
			}
		}
		var step mat.VecDense
		if err := step.SolveVec(h, mat.NewVecDense(p, g[:])); err != nil {
			return nil, fmt.Errorf("blend: fitting the weights: %w", err)
		}
		var size float64
		for i := range p {
			w[i] -= step.AtVec(i)
			size = math.Max(size, math.Abs(step.AtVec(i)))
		}
		if size < 1e-8 {
			break
		}
	}
	return w, nil
}
