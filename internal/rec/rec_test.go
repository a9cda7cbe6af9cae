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

// TestModelsBeatPopularity: on planted data every personal model's
// recall@10 is at least twice popularity's (each fails if its learner
// learns nothing), and the blend is not worse than its best part.
func TestModelsBeatPopularity(t *testing.T) {
	t.Parallel()
	_, tr, te := world(t, 1, 1200, 300)
	pop := eval(t, train(t, KindPopularity, tr, nil), te)
	t.Logf("popularity recall@10 %.4f", pop.Recall)
	got := map[string]float64{}
	for _, c := range []struct {
		kind string
		p    map[string]string
	}{
		{KindALS, map[string]string{"factors": "16"}},
		{KindKNN, nil},
		{KindPPR, nil},
		{KindBlend, map[string]string{"als.factors": "16"}},
		{KindMultiTask, nil},
	} {
		r := eval(t, train(t, c.kind, tr, c.p), te)
		t.Logf("%s recall@10 %.4f ndcg@10 %.4f coverage %.3f", c.kind, r.Recall, r.NDCG, r.Coverage)
		got[c.kind] = r.Recall
		if r.Recall < 2*pop.Recall {
			t.Errorf("%s recall@10 %.4f < 2 × popularity's %.4f", c.kind, r.Recall, pop.Recall)
		}
	}
	if best := max(got[KindALS], got[KindKNN], got[KindPPR]); got[KindBlend] < 0.97*best {
		t.Errorf("blend recall@10 %.4f below its best part's %.4f", got[KindBlend], best)
	}
}

// TestMultiTaskCompletionHead: where completion follows other factors
// than play, ranking by the completion head (P(play and complete)) beats
// a play-only model of the same size on completion NDCG.
func TestMultiTaskCompletionHead(t *testing.T) {
	t.Parallel()
	_, tr, te := world(t, 1, 1200, 300)
	both := eval(t, train(t, KindMultiTask, tr, map[string]string{"serve_play": "0"}), te)
	playOnly := eval(t, train(t, KindMultiTask, tr, map[string]string{"serve_complete": "0", "complete_task_weight": "0"}), te)
	t.Logf("completion NDCG@10: completion head %.4f, play-only %.4f", both.NDCGComplete, playOnly.NDCGComplete)
	if both.NDCGComplete < 1.05*playOnly.NDCGComplete {
		t.Fatalf("completion head's completion NDCG@10 %.4f not above play-only's %.4f by 5%%", both.NDCGComplete, playOnly.NDCGComplete)
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
	t.Parallel()
	_, tr, _ := world(t, 2, 300, 120)
	for _, kind := range Kinds {
		m := train(t, kind, tr, map[string]string{})
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
