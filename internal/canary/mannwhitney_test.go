package canary

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"gonum.org/v1/gonum/stat/distuv"
)

// Ozone by month from R's airquality data set (NAs removed): May and
// August. R documents wilcox.test(Ozone ~ Month, data = airquality,
// subset = Month %in% c(5, 8)) as W = 127.5, p-value = 0.0001208.
var (
	ozoneMay = []float64{41, 36, 12, 18, 28, 23, 19, 8, 7, 16, 11, 14, 18, 14, 34, 6, 30, 11, 1, 11, 4, 32, 23, 45, 115, 37}
	ozoneAug = []float64{39, 9, 16, 78, 35, 66, 122, 89, 110, 44, 28, 65, 22, 59, 23, 31, 44, 21, 9, 45, 168, 73, 76, 118, 84, 85}
)

// sub subtracts in float64: Go would fold constants exactly.
func sub(a, b float64) float64 { return a - b }

func synthetic() (x, y []float64) {
	for i := range 120 {
		x = append(x, 100+10*math.Sin(float64(i)*1.7)+float64(i%7))
	}
	for i := range 90 {
		y = append(y, 97+9*math.Cos(float64(i)*0.9)+float64(i%5))
	}
	return x, y
}

func integers() (x, y []float64) {
	for i := range 50 {
		x = append(x, float64(i%6))
	}
	for i := range 40 {
		y = append(y, float64((i*7)%5))
	}
	return x, y
}

// TestMannWhitneyR checks against R 4.x's
// wilcox.test(x, y, conf.int = TRUE, conf.level = c, exact = FALSE).
// R is not available where these tests run: the values below come from a
// line-by-line transcription of wilcox.test.default and of R_zeroin2 (the
// C behind uniroot), checked against R's documented airquality output.
// R's interval ends and estimate are uniroot roots of a step function,
// within tol.root = 1e-4 of the step; ours are the steps themselves, the
// pairwise differences, so they are compared with R's to 2e-4 and to the
// exact difference exactly.
func TestMannWhitneyR(t *testing.T) {
	t.Parallel()
	sx, sy := synthetic()
	ix, iy := integers()
	extremeY := make([]float64, 59)
	for i := range extremeY {
		extremeY[i] = float64(i + 2)
	}
	for _, c := range []struct {
		name       string
		x, y       []float64
		conf       float64
		w, p       float64
		rLo, rHi   float64 // R's uniroot values
		lo, hi, hl float64 // the exact steps, and the median difference
	}{
		{"airquality 95%", ozoneMay, ozoneAug, 0.95, 127.5, 0.00012080783076873214, -52.99998541627045, -14.999978983025168, -53, -15, -32},
		{"airquality 98%", ozoneMay, ozoneAug, 0.98, 127.5, 0.00012080783076873214, -55.00005190231273, -11.999961412557276, -55, -12, -32},
		// ?wilcox.test's x and y (Hollander & Wolfe), here two-sided and
		// with the normal approximation.
		{"hollander-wolfe", []float64{0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46}, []float64{1.15, 0.88, 0.90, 0.74, 1.21}, 0.95,
			35, 0.24462360512698345, -0.15001483719908448, 0.7599427653222939, sub(0.74, 0.89), sub(1.64, 0.88), (sub(1.04, 0.74) + sub(1.21, 0.90)) / 2},
		// R's own extreme case: the interval is the whole range.
		{"extreme", []float64{1}, extremeY, 0.95, 0, 0.0940228759025391, -59, -1, -59, -1, -30},
		{"synthetic", sx, sy, 0.98, 7123, 7.726578411326734e-05, 1.7852060302178496, 6.387357346339707, math.NaN(), math.NaN(), 4.0691339581956285},
		{"integers", ix, iy, 0.98, 1136, 0.2637077052529151, -1.827902410665279e-05, 1.0000504122167284, 0, 1, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r, err := MannWhitney(c.x, c.y, c.conf)
			if err != nil {
				t.Fatal(err)
			}
			if r.W != c.w {
				t.Errorf("W = %v, want %v", r.W, c.w)
			}
			if math.Abs(r.PValue-c.p) > 1e-12*c.p {
				t.Errorf("p = %v, want %v", r.PValue, c.p)
			}
			if math.Abs(r.CILow-c.rLo) > 2e-4 || math.Abs(r.CIHigh-c.rHi) > 2e-4 {
				t.Errorf("interval [%v, %v], R's [%v, %v]", r.CILow, r.CIHigh, c.rLo, c.rHi)
			}
			if !math.IsNaN(c.lo) && (r.CILow != c.lo || r.CIHigh != c.hi) {
				t.Errorf("interval [%v, %v], want [%v, %v]", r.CILow, r.CIHigh, c.lo, c.hi)
			}
			if math.Abs(r.Estimate-c.hl) > 1e-12*math.Max(1, math.Abs(c.hl)) {
				t.Errorf("estimate %v, want %v", r.Estimate, c.hl)
			}
		})
	}
}

// TestMannWhitneyByHand works the Hollander–Wolfe case through the
// formulas: W = 35 of n·m = 50, no ties, σ² = 50·16/12.
func TestMannWhitneyByHand(t *testing.T) {
	t.Parallel()
	x := []float64{0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46}
	y := []float64{1.15, 0.88, 0.90, 0.74, 1.21}
	r, err := MannWhitney(x, y, 0.95)
	if err != nil {
		t.Fatal(err)
	}
	z := (35 - 25 - 0.5) / math.Sqrt(50*16/12.0)
	if p := 2 * distuv.UnitNormal.CDF(-z); math.Abs(r.Z-z) > 1e-15 || math.Abs(r.PValue-p) > 1e-15 {
		t.Errorf("z = %v, p = %v; want %v, %v", r.Z, r.PValue, z, p)
	}
	// R's one-sided, uncorrected p-value for the same data, from its
	// documentation: wilcox.test(x, y, alternative = "greater",
	// exact = FALSE, correct = FALSE) gives p = 0.1103.
	if p := distuv.UnitNormal.CDF(-(r.W - 25) / math.Sqrt(50*16/12.0)); math.Abs(p-0.1103) > 5e-5 {
		t.Errorf("one-sided uncorrected p = %v, R says 0.1103", p)
	}
}

// rFunc is R's W(d) − zq for the interval, computed the way R computes it:
// ranks of c(x − d, y), ties averaged, σ from the pooled tie groups.
func rFunc(x, y []float64, d, zq float64) float64 {
	pooled := make([]float64, 0, len(x)+len(y))
	for _, v := range x {
		pooled = append(pooled, v-d)
	}
	pooled = append(pooled, y...)
	idx := make([]int, len(pooled))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		switch {
		case pooled[a] < pooled[b]:
			return -1
		case pooled[a] > pooled[b]:
			return 1
		}
		return 0
	})
	rankX, ties := 0.0, 0.0
	for i := 0; i < len(idx); {
		j := i
		for j+1 < len(idx) && pooled[idx[j+1]] == pooled[idx[i]] {
			j++
		}
		avg := float64(i+j)/2 + 1
		for k := i; k <= j; k++ {
			if idx[k] < len(x) {
				rankX += avg
			}
		}
		t := float64(j - i + 1)
		ties += t*t*t - t
		i = j + 1
	}
	nx, ny := float64(len(x)), float64(len(y))
	dz := rankX - nx*(nx+1)/2 - nx*ny/2
	sigma := math.Sqrt(nx * ny / 12 * ((nx + ny + 1) - ties/((nx+ny)*(nx+ny-1))))
	return (dz-0.5*sign(dz))/sigma - zq
}

// TestMannWhitneyBruteForce compares with all n·m differences formed and
// sorted, on samples large enough for several selection rounds, with and
// without heavy ties; and checks that each interval end is where R's
// function changes sign.
func TestMannWhitneyBruteForce(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	gens := map[string]func() float64{
		"normal":   func() float64 { return rng.NormFloat64()*10 + 100 },
		"integers": func() float64 { return float64(rng.IntN(7)) },
		"skewed":   func() float64 { return math.Exp(rng.NormFloat64() * 2) },
	}
	for name, gen := range gens {
		for _, size := range [][2]int{{1, 1}, {1, 2}, {3, 2}, {7, 11}, {60, 60}, {150, 230}, {301, 17}} {
			x := make([]float64, size[0])
			y := make([]float64, size[1])
			for i := range x {
				x[i] = gen()
			}
			for i := range y {
				y[i] = gen() + 0.5
			}
			if slices.Max(x) == slices.Min(x) && slices.Max(y) == slices.Min(y) && x[0] == y[0] {
				continue
			}
			r, err := MannWhitney(x, y, 0.98)
			if err != nil {
				t.Fatalf("%s %v: %v", name, size, err)
			}
			diffs := make([]float64, 0, len(x)*len(y))
			for _, a := range x {
				for _, b := range y {
					diffs = append(diffs, a-b)
				}
			}
			slices.Sort(diffs)
			nm := len(diffs)
			hl := diffs[nm/2]
			if nm%2 == 0 {
				hl = (diffs[nm/2-1] + diffs[nm/2]) / 2
			}
			if r.Estimate != hl {
				t.Errorf("%s %v: estimate %v, want the median difference %v", name, size, r.Estimate, hl)
			}
			zq := -distuv.UnitNormal.Quantile(0.01)
			for _, end := range []struct {
				v, zq float64
			}{{r.CILow, zq}, {r.CIHigh, -zq}} {
				if !slices.Contains(diffs, end.v) {
					t.Errorf("%s %v: interval end %v is not a pairwise difference", name, size, end.v)
					continue
				}
				// Just left of the end R's function is ≥ 0 (or the end is
				// the range's start), just right it is < 0 (or the end is
				// the range's end).
				eps := 1e-9 * math.Max(1, math.Abs(end.v))
				if end.v > diffs[0] && rFunc(x, y, end.v-eps, end.zq) < 0 {
					t.Errorf("%s %v: R's function is negative left of %v", name, size, end.v)
				}
				if end.v < diffs[nm-1] && rFunc(x, y, end.v+eps, end.zq) >= 0 {
					t.Errorf("%s %v: R's function is non-negative right of %v", name, size, end.v)
				}
			}
		}
	}
}

// kthOf selects one rank alone.
func (ws *workspace) kthOf(k int) float64 {
	var out [1]float64
	ws.selectRanks([]int{k}, out[:])
	return out[0]
}

// TestSelect checks every rank of a matrix large enough for the sampled
// rounds, with few distinct values (where pivots often equal the answer)
// and with many.
func TestSelect(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	for _, distinct := range []int{3, 1 << 30} {
		var ws workspace
		ws.x = make([]float64, 97)
		ws.y = make([]float64, 113)
		for i := range ws.x {
			ws.x[i] = float64(rng.IntN(distinct))
		}
		for i := range ws.y {
			ws.y[i] = float64(rng.IntN(distinct)) / 3
		}
		slices.Sort(ws.x)
		slices.Sort(ws.y)
		ws.prepareSelect()
		var diffs []float64
		for _, a := range ws.x {
			for _, b := range ws.y {
				diffs = append(diffs, a-b)
			}
		}
		slices.Sort(diffs)
		for k := 1; k <= len(diffs); k += 7 {
			if got := ws.kthOf(k); got != diffs[k-1] {
				t.Fatalf("distinct %d: kth(%d) = %v, want %v", distinct, k, got, diffs[k-1])
			}
			if k < len(diffs) {
				if got := ws.next(diffs[k-1], k); got != diffs[k] {
					t.Fatalf("distinct %d: next(%d) = %v, want %v", distinct, k, got, diffs[k])
				}
			}
		}
	}
}

// TestMannWhitneyTail: completely separated samples of 60 give z ≈ 9.45,
// p ≈ 3.4e-21, which 1 − Φ(z) would round to 0.
func TestMannWhitneyTail(t *testing.T) {
	t.Parallel()
	x, y := make([]float64, 60), make([]float64, 60)
	for i := range x {
		x[i], y[i] = float64(100+i), float64(i)
	}
	r, err := MannWhitney(x, y, 0.98)
	if err != nil {
		t.Fatal(err)
	}
	z := (1800 - 0.5) / math.Sqrt(3600*121/12.0)
	// 2·Φ(−z) by the complementary error function, written out.
	want := math.Erfc(z / math.Sqrt2)
	if math.Abs(r.Z-z) > 1e-12 || math.Abs(r.PValue-want) > 1e-12*want || r.PValue < 1e-21 {
		t.Errorf("z = %v, p = %v; want %v, %v", r.Z, r.PValue, z, want)
	}
}

func TestMannWhitneyErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		x, y []float64
		conf float64
	}{
		{"empty x", nil, []float64{1}, 0.98},
		{"only NaN in y", []float64{1}, []float64{math.NaN(), math.Inf(1)}, 0.98},
		{"all equal", []float64{2, 2}, []float64{2}, 0.98},
		{"confidence 1", []float64{1}, []float64{2}, 1},
		{"confidence NaN", []float64{1}, []float64{2}, math.NaN()},
	} {
		if _, err := MannWhitney(c.x, c.y, c.conf); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
	// Constant but different samples: every difference is the same.
	r, err := MannWhitney([]float64{5, 5, 5}, []float64{3, 3, math.NaN()}, 0.98)
	if err != nil || r.Estimate != 2 || r.CILow != 2 || r.CIHigh != 2 {
		t.Errorf("constant samples: %+v, %v", r, err)
	}
}

// TestMannWhitneyLarge checks, by counting, order statistics of a matrix
// that needs several sampled rounds, and that they do not depend on where
// the random pivots fall.
func TestMannWhitneyLarge(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 6))
	x := make([]float64, 3000)
	y := make([]float64, 2000)
	for i := range x {
		x[i] = rng.NormFloat64()*5 + 101
	}
	for i := range y {
		y[i] = math.Round(rng.NormFloat64()*50) / 10 // ties in y
	}
	r, err := MannWhitney(x, y, 0.98)
	if err != nil {
		t.Fatal(err)
	}
	ws := workspace{x: slices.Sorted(slices.Values(x)), y: slices.Sorted(slices.Values(y))}
	ws.prepareSelect()
	ks := []int{1, 12345, 3_000_000, 3_000_001, 5_999_999, 6_000_000}
	vals := make([]float64, len(ks))
	for i, k := range ks {
		vals[i] = ws.kthOf(k)
		for _, seed := range []uint64{1, 2} {
			ws.rng = seed
			if got := ws.kthOf(k); got != vals[i] {
				t.Errorf("kth(%d) = %v with seed %d, %v before", k, got, seed, vals[i])
			}
		}
	}
	less := make([]int, len(ks))
	leq := make([]int, len(ks))
	for _, a := range x {
		for _, b := range y {
			d := a - b
			for i, v := range vals {
				if d < v {
					less[i]++
				}
				if d <= v {
					leq[i]++
				}
			}
		}
	}
	// Shared rounds give the same answers.
	shared := make([]float64, len(ks))
	ws.selectRanks(ks, shared)
	for i, k := range ks {
		if shared[i] != vals[i] {
			t.Errorf("kth(%d) = %v alone, %v with the others", k, vals[i], shared[i])
		}
		if !(less[i] < k && k <= leq[i]) {
			t.Errorf("kth(%d) = %v, but %d differences are below it and %d at most it", k, vals[i], less[i], leq[i])
		}
	}
	if want := (vals[2] + vals[3]) / 2; r.Estimate != want {
		t.Errorf("estimate %v, want %v", r.Estimate, want)
	}
}
