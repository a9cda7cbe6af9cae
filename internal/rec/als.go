package rec

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// alsModel is implicit-feedback matrix factorization (Hu, Koren, Volinsky
// 2008): member factors X and title factors Y, K each, row-major; the
// score of (u, t) is x_u·y_t.
type alsModel struct {
	K int
	X []float32
	Y []float32
}

func (m *alsModel) check(b *base) error {
	if m == nil {
		return errors.New("damaged body (no als part)")
	}
	if !rowsOf(len(m.X), len(b.Members), m.K) || !rowsOf(len(m.Y), len(b.Titles), m.K) {
		return fmt.Errorf("factors do not match %d members and %d titles", len(b.Members), len(b.Titles))
	}
	return nil
}

// rowsOf says whether l values are n rows of k, without computing n·k: a
// forged k overflows that product (4·2⁶² is 0), and a check by it let a
// file with no factors through to slice X[0:k] on the first score.
func rowsOf(l, n, k int) bool { return k >= 1 && l%k == 0 && l/k == n }

func (m *alsModel) scores(_ *base, u int, dst []float32) {
	x := m.X[u*m.K : (u+1)*m.K]
	impl := gonum.Implementation{}
	// dst = Y·x, one gemv over the whole title matrix.
	impl.Sgemv(blas.NoTrans, len(dst), m.K, 1, m.Y, m.K, x, 1, 0, dst, 1)
}

// scoreBatch scores many members with one matrix product (gonum's Sgemm,
// blocked), several times faster than a gemv per member; dst holds one
// row of len(Y)/K scores per member, back to back.
func (m *alsModel) scoreBatch(_ *base, us []int, dst []float32) {
	nt := len(m.Y) / m.K
	xs := make([]float32, len(us)*m.K)
	for i, u := range us {
		copy(xs[i*m.K:], m.X[u*m.K:(u+1)*m.K])
	}
	gonum.Implementation{}.Sgemm(blas.NoTrans, blas.Trans, len(us), nt, m.K, 1, xs, m.K, m.Y, m.K, 0, dst[:len(us)*nt], nt)
}

// alsConfig are ALS's parameters.
type alsConfig struct {
	K          int
	Iterations int
	Lambda     float64 // L2 regularisation of both factor matrices
	Alpha      float64 // confidence c = 1 + alpha·w
	CGSteps    int     // conjugate gradient steps per row and sweep
	Seed       uint64
	Workers    int
}

func alsParams(ps *params) (alsConfig, string) {
	c := alsConfig{
		K:          ps.int("factors", 64, 1, 1024),
		Iterations: ps.int("iterations", 10, 1, 1000),
		Lambda:     ps.float("lambda", 10, nonNeg, "a number ≥ 0"),
		Alpha:      ps.float("alpha", 10, nonNeg, "a number ≥ 0"),
		CGSteps:    ps.int("cg_steps", 3, 1, 1024),
		Seed:       uint64(ps.int("seed", 1, 0, math.MaxInt32)),
	}
	return c, ps.str("precision", "float32", "float32", "float64")
}

func trainALS(ctx context.Context, b *base, ps *params) (scorer, error) {
	cfg, prec := alsParams(ps)
	if ps.err != nil {
		return nil, ps.err
	}
	return fitALS(ctx, b, cfg, prec)
}

func fitALS(ctx context.Context, b *base, cfg alsConfig, prec string) (*alsModel, error) {
	if prec == "float64" {
		s := newALS[float64](b, cfg, kern64())
		if err := s.run(ctx, cfg.Iterations); err != nil {
			return nil, err
		}
		m := &alsModel{K: cfg.K, X: make([]float32, len(s.X)), Y: make([]float32, len(s.Y))}
		for i, v := range s.X {
			m.X[i] = float32(v)
		}
		for i, v := range s.Y {
			m.Y[i] = float32(v)
		}
		return m, nil
	}
	s := newALS[float32](b, cfg, kern32())
	if err := s.run(ctx, cfg.Iterations); err != nil {
		return nil, err
	}
	return &alsModel{K: cfg.K, X: s.X, Y: s.Y}, nil
}

type float interface{ float32 | float64 }

// kern are the vector kernels of one precision, gonum's assembly ones.
type kern[F float] struct {
	dot  func(x, y []F) F
	axpy func(a F, x, y []F) // y += a·x
	gram func(n, k int, a, g []F)
}

func kern32() kern[float32] {
	impl := gonum.Implementation{}
	return kern[float32]{
		dot:  func(x, y []float32) float32 { return impl.Sdot(len(x), x, 1, y, 1) },
		axpy: func(a float32, x, y []float32) { impl.Saxpy(len(x), a, x, 1, y, 1) },
		gram: func(n, k int, a, g []float32) { impl.Sgemm(blas.Trans, blas.NoTrans, k, k, n, 1, a, k, a, k, 0, g, k) },
	}
}

func kern64() kern[float64] {
	impl := gonum.Implementation{}
	return kern[float64]{
		dot:  func(x, y []float64) float64 { return impl.Ddot(len(x), x, 1, y, 1) },
		axpy: func(a float64, x, y []float64) { impl.Daxpy(len(x), a, x, 1, y, 1) },
		gram: func(n, k int, a, g []float64) { impl.Dgemm(blas.Trans, blas.NoTrans, k, k, n, 1, a, k, a, k, 0, g, k) },
	}
}

// als is one training: the member-side rows (b.Hist) and the title-side
// rows (its transpose), the factors and the kernels.
type als[F float] struct {
	cfg  alsConfig
	k    kern[F]
	X, Y []F
	nu   int
	nt   int
	// member rows and title rows of the confidence matrix
	uPtr []int64
	uIdx []int32
	uW   []float32
	tPtr []int64
	tIdx []int32
	tW   []float32
}

func newALS[F float](b *base, cfg alsConfig, k kern[F]) *als[F] {
	s := &als[F]{cfg: cfg, k: k, nu: len(b.Members), nt: len(b.Titles)}
	s.uPtr, s.uIdx, s.uW = b.Hist.Ptr, b.Hist.Title, b.Hist.Weight
	s.tPtr, s.tIdx, s.tW = b.Hist.transpose(s.nt)
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	scale := 0.1 / math.Sqrt(float64(cfg.K))
	s.X = make([]F, s.nu*cfg.K)
	s.Y = make([]F, s.nt*cfg.K)
	for i := range s.X {
		s.X[i] = F(rng.NormFloat64() * scale)
	}
	for i := range s.Y {
		s.Y[i] = F(rng.NormFloat64() * scale)
	}
	return s
}

func (s *als[F]) run(ctx context.Context, iterations int) error {
	for range iterations {
		if err := s.sweep(ctx, s.X, s.Y, s.uPtr, s.uIdx, s.uW, s.nt); err != nil {
			return err
		}
		if err := s.sweep(ctx, s.Y, s.X, s.tPtr, s.tIdx, s.tW, s.nu); err != nil {
			return err
		}
	}
	return nil
}

// sweep solves every row of dst against the fixed src: for row u,
// (SᵀS + Σ_i (c_i−1) s_i s_iᵀ + λI) x_u = Σ_i c_i s_i, by a few conjugate
// gradient steps warm-started at the current x_u (Takács, Pilászy, Tikk
// 2011): each step costs one product with the matrix, which is SᵀS·p plus
// the row's few nonzeros, never the K×K matrix itself.
func (s *als[F]) sweep(ctx context.Context, dst, src []F, ptr []int64, idx []int32, w []float32, nsrc int) error {
	K := s.cfg.K
	gram := make([]F, K*K)
	s.k.gram(nsrc, K, src, gram)
	rows := len(ptr) - 1
	workers := s.cfg.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	var next atomic.Int64
	const chunk = 256
	var wg sync.WaitGroup
	var pn panics
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer pn.catch()
			r, p, ap, bv := make([]F, K), make([]F, K), make([]F, K), make([]F, K)
			for ctx.Err() == nil && !pn.failed() {
				lo := int(next.Add(chunk)) - chunk
				if lo >= rows {
					return
				}
				for u := lo; u < min(lo+chunk, rows); u++ {
					s.solveRow(dst[u*K:(u+1)*K], src, gram, idx[ptr[u]:ptr[u+1]], w[ptr[u]:ptr[u+1]], r, p, ap, bv)
				}
			}
		}()
	}
	wg.Wait()
	if err := pn.err(); err != nil {
		return err
	}
	return ctx.Err()
}

// mulA sets out = (G + λI)v + Σ (c_i−1)(s_i·v) s_i.
func (s *als[F]) mulA(out, v, src, gram []F, idx []int32, w []float32) {
	K := s.cfg.K
	lambda := F(s.cfg.Lambda)
	for j := range K {
		out[j] = s.k.dot(gram[j*K:(j+1)*K], v) + lambda*v[j]
	}
	alpha := F(s.cfg.Alpha)
	for n, i := range idx {
		si := src[int(i)*K : (int(i)+1)*K]
		s.k.axpy(alpha*F(w[n])*s.k.dot(si, v), si, out)
	}
}

func (s *als[F]) solveRow(x, src, gram []F, idx []int32, w []float32, r, p, ap, bv []F) {
	K := s.cfg.K
	clear(bv)
	alpha := F(s.cfg.Alpha)
	for n, i := range idx {
		s.k.axpy(1+alpha*F(w[n]), src[int(i)*K:(int(i)+1)*K], bv)
	}
	s.mulA(ap, x, src, gram, idx, w)
	for j := range K {
		r[j] = bv[j] - ap[j]
	}
	copy(p, r)
	rs := s.k.dot(r, r)
	for range s.cfg.CGSteps {
		if rs <= 1e-20 {
			return
		}
		s.mulA(ap, p, src, gram, idx, w)
		pap := s.k.dot(p, ap)
		if pap <= 0 {
			return
		}
		a := rs / pap
		s.k.axpy(a, p, x)
		s.k.axpy(-a, ap, r)
		rsNew := s.k.dot(r, r)
		beta := rsNew / rs
		for j := range K {
			p[j] = r[j] + beta*p[j]
		}
		rs = rsNew
	}
}

// loss is the objective ALS minimises: Σ_all c_ut (p_ut − x_u·y_t)² +
// λ(‖X‖² + ‖Y‖²), with p = 1 and c = 1 + α·w where played, p = 0 and c = 1
// elsewhere. The sum over every pair is trace(XᵀX·YᵀY) plus a correction
// on the played pairs.
func (s *als[F]) loss() float64 {
	K := s.cfg.K
	gx, gy := make([]F, K*K), make([]F, K*K)
	s.k.gram(s.nu, K, s.X, gx)
	s.k.gram(s.nt, K, s.Y, gy)
	var l float64
	for i := range gx {
		l += float64(gx[i]) * float64(gy[i])
	}
	for u := range s.nu {
		xu := s.X[u*K : (u+1)*K]
		for n := s.uPtr[u]; n < s.uPtr[u+1]; n++ {
			t := int(s.uIdx[n])
			sc := float64(s.k.dot(xu, s.Y[t*K:(t+1)*K]))
			c := 1 + s.cfg.Alpha*float64(s.uW[n])
			l += c*(1-sc)*(1-sc) - sc*sc
		}
	}
	var reg float64
	for _, v := range s.X {
		reg += float64(v) * float64(v)
	}
	for _, v := range s.Y {
		reg += float64(v) * float64(v)
	}
	return l + s.cfg.Lambda*reg
}
