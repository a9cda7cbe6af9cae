package rec

import (
	"bytes"
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/baton-ml/baton/internal/fault"
)

// world is a small planted world split in time: the last fifth held out.
func world(t testing.TB, seed uint64, members, titles int) (*World, *Dataset, *Dataset) {
	t.Helper()
	w, err := Synthesize(Synth{Seed: seed, Members: members, Titles: titles, Markets: 3})
	if err != nil {
		t.Fatal(err)
	}
	train, test := w.Data.Cut(w.Data.CutAt(0.2))
	return w, train, test
}

func train(t testing.TB, kind string, d *Dataset, p map[string]string) *Recommender {
	t.Helper()
	m, err := Train(context.Background(), kind, d, p)
	if err != nil {
		t.Fatalf("train %s: %v", kind, err)
	}
	return m
}

func eval(t testing.TB, m *Recommender, test *Dataset) Metrics {
	t.Helper()
	r, err := Evaluate(context.Background(), m, test, 10)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestALSBeatsPopularity: on planted data, ALS's recall@10 is at least
// twice popularity's (it fails when ALS learns nothing).
func TestALSBeatsPopularity(t *testing.T) {
	_, tr, te := world(t, 1, 1500, 400)
	pop := eval(t, train(t, KindPopularity, tr, nil), te)
	als := eval(t, train(t, KindALS, tr, map[string]string{"factors": "16", "iterations": "8"}), te)
	t.Logf("popularity %+v", pop)
	t.Logf("als %+v", als)
	if als.Recall < 2*pop.Recall {
		t.Fatalf("ALS recall@10 %.4f < 2 × popularity's %.4f", als.Recall, pop.Recall)
	}
}

// TestALSMatchesExactSolve: CG with as many steps as factors is the
// exact solve; its loss after each iteration equals that of a
// brute-force normal-equation solve per row (gonum) within 1e-6.
func TestALSMatchesExactSolve(t *testing.T) {
	w, err := Synthesize(Synth{Seed: 3, Members: 60, Titles: 40, Markets: 2, Interactions: 600})
	if err != nil {
		t.Fatal(err)
	}
	b := newBase(KindALS, w.Data, nil)
	cfg := alsConfig{K: 6, Lambda: 0.5, Alpha: 5, CGSteps: 6, Seed: 9, Workers: 2}
	cg := newALS[float64](b, cfg, kern64())
	ex := newALS[float64](b, cfg, kern64())
	prev := math.Inf(1)
	for it := range 5 {
		if err := cg.run(context.Background(), 1); err != nil {
			t.Fatal(err)
		}
		exactSweep(ex, ex.X, ex.Y, ex.uPtr, ex.uIdx, ex.uW, ex.nt)
		exactSweep(ex, ex.Y, ex.X, ex.tPtr, ex.tIdx, ex.tW, ex.nu)
		lc, le := cg.loss(), ex.loss()
		if math.Abs(lc-le) > 1e-6*math.Max(1, math.Abs(le)) {
			t.Fatalf("iteration %d: CG loss %.12g, exact %.12g", it, lc, le)
		}
		if le > prev+1e-9 {
			t.Fatalf("iteration %d: loss rose %g → %g", it, prev, le)
		}
		prev = le
	}
}

// exactSweep solves each row's normal equations with a dense solve.
func exactSweep(s *als[float64], dst, src []float64, ptr []int64, idx []int32, w []float32, nsrc int) {
	K := s.cfg.K
	S := mat.NewDense(nsrc, K, src)
	var G mat.Dense
	G.Mul(S.T(), S)
	for u := 0; u+1 < len(ptr); u++ {
		A := mat.DenseCopyOf(&G)
		bv := mat.NewVecDense(K, nil)
		for j := range K {
			A.Set(j, j, A.At(j, j)+s.cfg.Lambda)
		}
		for n := ptr[u]; n < ptr[u+1]; n++ {
			i := int(idx[n])
			c := 1 + s.cfg.Alpha*float64(w[n])
			yi := src[i*K : (i+1)*K]
			for a := range K {
				bv.SetVec(a, bv.AtVec(a)+c*yi[a])
				for bb := range K {
					A.Set(a, bb, A.At(a, bb)+(c-1)*yi[a]*yi[bb])
				}
			}
		}
		var x mat.VecDense
		if err := x.SolveVec(A, bv); err != nil {
			panic(err)
		}
		for a := range K {
			dst[u*K+a] = x.AtVec(a)
		}
	}
}

func TestSaveLoad(t *testing.T) {
	_, tr, _ := world(t, 2, 300, 120)
	for _, kind := range []string{KindPopularity, KindKNN, KindALS, KindPPR} {
		m := train(t, kind, tr, nil)
		var buf bytes.Buffer
		if err := m.Save(&buf); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(buf.String(), "BATONREC 1 "+kind+"\n") {
			t.Fatalf("%s header: %q", kind, buf.String()[:20])
		}
		l, err := Load(&buf)
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		member := tr.Members[0].ID
		a, b := m.Recommend(member, Options{N: 20}), l.Recommend(member, Options{N: 20})
		if len(a) != 20 || len(a) != len(b) {
			t.Fatalf("%s: %d and %d items", kind, len(a), len(b))
		}
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("%s: item %d %v after load, %v before", kind, i, b[i], a[i])
			}
		}
	}
	_, err := Load(strings.NewReader("{\"kind\":\"logistic\"}"))
	if !errors.Is(err, ErrNotModel) || !errors.Is(err, fault.Invalid) {
		t.Fatalf("a JSON model: %v", err)
	}
}
