package bandit

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
)

// Params are a policy's settings.
type Params struct {
	// Alpha is the width of LinUCB's confidence bonus: the score of an arm
	// is θᵀx + Alpha·sqrt(xᵀA⁻¹x). 0 is greedy on the mean.
	Alpha float64 `json:"alpha"`
	// Epsilon is the share of decisions drawn uniformly, in (0, 1]: every
	// action then has probability at least Epsilon/K (Epsilon/K! for a
	// row order), so logs can weigh it. 1 is the uniform logging policy.
	Epsilon float64 `json:"epsilon"`
	// Lambda is the ridge prior: A starts as Lambda·I.
	Lambda float64 `json:"lambda"`
	// Seed is mixed with each decision id into the decision's random
	// draw: the same seed and id give the same decision.
	Seed uint64 `json:"seed"`
}

// DefaultParams are the settings `baton bandit train` uses unless told.
func DefaultParams() Params { return Params{Alpha: 0.5, Epsilon: 0.1, Lambda: 1, Seed: 1} }

func (p Params) check() error {
	switch {
	case !(p.Alpha >= 0) || math.IsInf(p.Alpha, 0):
		return fmt.Errorf("%w: alpha %g: must be a finite number ≥ 0", ErrParams, p.Alpha)
	case !(p.Epsilon > 0 && p.Epsilon <= 1):
		return fmt.Errorf("%w: epsilon %g: must be in (0, 1] so that every action has a non-zero propensity", ErrParams, p.Epsilon)
	case !(p.Lambda > 0) || math.IsInf(p.Lambda, 0):
		return fmt.Errorf("%w: lambda %g: must be a finite number > 0", ErrParams, p.Lambda)
	}
	return nil
}

// armKey names one linear model: a row (Title empty) or a title's artwork.
type armKey struct {
	kind  Kind
	title string
	arm   string
}

// groupKey names the arms one decision chooses among: the rows, or one
// title's artwork. Models are kept by group and then by arm, so a page
// looks each group up once rather than every arm by a three-string key.
type groupKey struct {
	kind  Kind
	title string
}

type models map[groupKey]map[string]*armModel

func (ms models) get(k armKey) *armModel { return ms[groupKey{k.kind, k.title}][k.arm] }

func (ms models) set(k armKey, m *armModel) {
	g := ms[groupKey{k.kind, k.title}]
	if g == nil {
		g = map[string]*armModel{}
		ms[groupKey{k.kind, k.title}] = g
	}
	g[k.arm] = m
}

func (ms models) each(f func(armKey, *armModel) error) error {
	for gk, g := range ms {
		for a, m := range g {
			if err := f(armKey{gk.kind, gk.title, a}, m); err != nil {
				return err
			}
		}
	}
	return nil
}

func (ms models) len() int {
	n := 0
	for _, g := range ms {
		n += len(g)
	}
	return n
}

// armModel is one arm's ridge regression: A = λI + Σ x xᵀ, b = Σ r x,
// with A⁻¹ and θ = A⁻¹b kept so that scoring costs a few dot products.
type armModel struct {
	n     int
	a     []float64 // d×d, row-major
	ainv  []float64 // d×d, row-major, symmetric
	b     []float64
	theta []float64
}

func newArmModel(d int, lambda float64) *armModel {
	m := &armModel{a: make([]float64, d*d), ainv: make([]float64, d*d), b: make([]float64, d), theta: make([]float64, d)}
	for i := range d {
		m.a[i*d+i] = lambda
		m.ainv[i*d+i] = 1 / lambda
	}
	return m
}

// update adds one observation. A⁻¹ follows by Sherman–Morrison,
// (A + xxᵀ)⁻¹ = A⁻¹ − (A⁻¹x)(A⁻¹x)ᵀ / (1 + xᵀA⁻¹x), in O(d²) instead of a
// new inverse. u is scratch of length d.
func (m *armModel) update(x []float64, r float64, u []float64) {
	d := len(x)
	den := 1.0
	for i := range d {
		row := m.ainv[i*d : (i+1)*d]
		s := 0.0
		for j, xj := range x {
			s += row[j] * xj
		}
		u[i] = s
		den += x[i] * s
	}
	for i := range d {
		ui := u[i] / den
		row := m.ainv[i*d : (i+1)*d]
		arow := m.a[i*d : (i+1)*d]
		for j := range d {
			row[j] -= ui * u[j]
			arow[j] += x[i] * x[j]
		}
		m.b[i] += r * x[i]
	}
	m.refreshTheta()
	m.n++
}

func (m *armModel) refreshTheta() {
	d := len(m.b)
	for i := range d {
		row := m.ainv[i*d : (i+1)*d]
		s := 0.0
		for j, bj := range m.b {
			s += row[j] * bj
		}
		m.theta[i] = s
	}
}

// reinvert recomputes A⁻¹ from A by Cholesky, dropping the rounding that
// many Sherman–Morrison steps gather; a saved policy keeps A, and loading
// it goes through here too, so a trained and a loaded policy decide alike.
func (m *armModel) reinvert() error {
	d := len(m.b)
	sym := mat.NewSymDense(d, append([]float64(nil), m.a...))
	var ch mat.Cholesky
	if ok := ch.Factorize(sym); !ok {
		return fmt.Errorf("%w: the matrix A is not positive definite", ErrParams)
	}
	var inv mat.SymDense
	if err := ch.InverseTo(&inv); err != nil {
		return fmt.Errorf("%w: inverting A: %v", ErrParams, err)
	}
	for i := range d {
		for j := range d {
			m.ainv[i*d+j] = inv.At(i, j)
		}
	}
	m.refreshTheta()
	return nil
}

func (m *armModel) clone() *armModel {
	return &armModel{n: m.n, a: append([]float64(nil), m.a...), ainv: append([]float64(nil), m.ainv...),
		b: append([]float64(nil), m.b...), theta: append([]float64(nil), m.theta...)}
}

// vec is a context vector with the indices of its non-zero entries: most
// columns are one-hot zeros, so xᵀA⁻¹x runs over the non-zeros only.
type vec struct {
	x  []float64
	nz []int
}

func (v *vec) reset() {
	v.nz = v.nz[:0]
	for i, xi := range v.x {
		if xi != 0 {
			v.nz = append(v.nz, i)
		}
	}
}

// score is the arm's upper confidence bound and its mean θᵀx. An arm with
// no model (never seen in training) has the prior's: mean 0 and the
// widest bonus, so a new row or artwork is tried first by the greedy part.
func (p *Policy) score(m *armModel, v *vec) (ucb, mean float64) {
	if m == nil {
		q := 0.0
		for _, i := range v.nz {
			q += v.x[i] * v.x[i]
		}
		return p.params.Alpha * math.Sqrt(q/p.params.Lambda), 0
	}
	d := len(v.x)
	q := 0.0
	for _, i := range v.nz {
		mean += m.theta[i] * v.x[i]
		row := m.ainv[i*d : (i+1)*d]
		s := 0.0
		for _, j := range v.nz {
			s += row[j] * v.x[j]
		}
		q += v.x[i] * s
	}
	return mean + p.params.Alpha*math.Sqrt(max(q, 0)), mean
}

// stream is a decision's random numbers: splitmix64 seeded with the
// policy's seed and an FNV-1a hash of the decision id, so that a decision
// replays exactly and decisions with different ids are independent draws.
type stream struct{ s uint64 }

func newStream(seed uint64, id string) stream {
	h := uint64(14695981039346656037)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= 1099511628211
	}
	st := stream{seed ^ h}
	st.next() // one round so that close ids land far apart
	return st
}

func (s *stream) next() uint64 {
	s.s += 0x9e3779b97f4a7c15
	z := s.s
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// float is uniform on [0, 1) in steps of 2⁻⁵³: P(float < ε) is ε up to
// 2⁻⁵³.
func (s *stream) float() float64 { return float64(s.next()>>11) * 0x1p-53 }

// intn is uniform on [0, n) without modulo bias: draws below 2⁶⁴ mod n are
// redrawn, leaving a range that is a multiple of n.
func (s *stream) intn(n int) int {
	un := uint64(n)
	limit := -un % un
	for {
		if v := s.next(); v >= limit {
			return int(v % un)
		}
	}
}

// factorials up to MaxRows, exact in float64 (20! < 2⁶³ and has enough
// trailing zero bits).
var factorial = func() [MaxRows + 1]float64 {
	var f [MaxRows + 1]float64
	f[0] = 1
	for i := 1; i <= MaxRows; i++ {
		f[i] = f[i-1] * float64(i)
	}
	return f
}()
