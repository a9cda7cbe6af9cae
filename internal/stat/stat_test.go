package stat

import (
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// vectorsDir holds the SciPy reference vectors, shared by the whole project
// beside the repository.
var vectorsDir = filepath.Join("..", "..", "..", "shared", "testdata", "stats")

type driftVectors struct {
	Note  string `json:"note"`
	Cases []struct {
		Reference string `json:"reference"`
		Current   string `json:"current"`
		Columns   []struct {
			Name        string   `json:"name"`
			Type        string   `json:"type"`
			PSI         float64  `json:"psi"`
			KSStatistic *float64 `json:"ks_statistic"`
			PValue      float64  `json:"p_value"`
			PValueExact *float64 `json:"p_value_exact"`
			Drifted     bool     `json:"drifted"`
		} `json:"columns"`
	} `json:"cases"`
}

func loadVectors(t testing.TB) driftVectors {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vectorsDir, "drift.json"))
	if err != nil {
		if os.Getenv("CI") != "true" {
			t.Skipf("reference vectors missing (they live in ../shared beside the repository; under CI=true this fails): %v", err)
		}
		t.Fatalf("reference vectors missing (they live in ../shared beside the repository): %v", err)
	}
	var v driftVectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("drift.json: %v", err)
	}
	if len(v.Cases) == 0 {
		t.Fatal("drift.json has no cases")
	}
	return v
}

// readColumns reads a vector CSV into its numeric and its string columns by
// name; empty cells are skipped.
func readColumns(t testing.TB, name string) (map[string][]float64, map[string][]string) {
	t.Helper()
	f, err := os.Open(filepath.Join(vectorsDir, name))
	if err != nil {
		t.Fatalf("reference vectors: %v", err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	nums, strs := map[string][]float64{}, map[string][]string{}
	for _, row := range rows[1:] {
		for j, cell := range row {
			if cell == "" {
				continue
			}
			col := rows[0][j]
			strs[col] = append(strs[col], cell)
			if v, err := strconv.ParseFloat(cell, 64); err == nil {
				nums[col] = append(nums[col], v)
			}
		}
	}
	return nums, strs
}

func relErr(got, want float64) float64 {
	if got == want {
		return 0
	}
	return math.Abs(got-want) / math.Max(math.Abs(want), math.SmallestNonzeroFloat64)
}

func TestVectors(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	var worst float64
	for _, c := range v.Cases {
		rn, rs := readColumns(t, c.Reference)
		cn, cs := readColumns(t, c.Current)
		for _, col := range c.Columns {
			var psi, p float64
			switch col.Type {
			case "numeric":
				psi = PSI(rn[col.Name], cn[col.Name])
				var d float64
				d, p = KS2(rn[col.Name], cn[col.Name])
				if e := relErr(d, *col.KSStatistic); e > 1e-12 {
					t.Errorf("%s %s: KS d = %.17g, want %.17g (rel %.2g)", c.Reference, col.Name, d, *col.KSStatistic, e)
				}
			case "string":
				psi = PSICategorical(rs[col.Name], cs[col.Name])
				_, table := CategoryCounts(rs[col.Name], cs[col.Name])
				_, p, _ = ChiSquareIndependence(table[:])
			default:
				t.Fatalf("%s: unknown column type %q", col.Name, col.Type)
			}
			ePSI, eP := relErr(psi, col.PSI), relErr(p, col.PValue)
			t.Logf("%s %-7s psi %.17g (rel %.2g)  p %.17g (rel %.2g)", c.Reference, col.Name, psi, ePSI, p, eP)
			if ePSI > 1e-12 {
				t.Errorf("%s %s: PSI = %.17g, want %.17g (rel %.2g)", c.Reference, col.Name, psi, col.PSI, ePSI)
			}
			if eP > 1e-11 {
				t.Errorf("%s %s: p = %.17g, want %.17g (rel %.2g)", c.Reference, col.Name, p, col.PValue, eP)
			}
			worst = max(worst, ePSI, eP)
		}
	}
	t.Logf("largest relative error: %.2g", worst)
}

func TestQuantileMatchesNumPy(t *testing.T) {
	t.Parallel()
	x := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	// np.quantile(np.arange(1, 11), [0, .1, .25, .5, .9, 1])
	for _, c := range []struct{ p, want float64 }{
		{0, 1}, {0.1, 1.9}, {0.25, 3.25}, {0.5, 5.5}, {0.9, 9.1}, {1, 10},
	} {
		if got := Quantile(x, c.p); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("Quantile(1..10, %g) = %.17g, want %g", c.p, got, c.want)
		}
	}
	if got := Quantile(nil, 0.5); !math.IsNaN(got) {
		t.Errorf("Quantile(nil) = %g, want NaN", got)
	}
	inf := math.Inf(1)
	if got := Quantile([]float64{1, inf, inf}, 0.75); got != inf {
		t.Errorf("Quantile between two +Inf = %g, want +Inf", got)
	}
	if got := Quantile([]float64{-inf, 5}, 0.3); got != -inf {
		t.Errorf("Quantile(-Inf, 5; .3) = %g, want -Inf", got)
	}
	if got := Quantile([]float64{-inf, 5}, 0.7); got != 5 {
		t.Errorf("Quantile(-Inf, 5; .7) = %g, want 5", got)
	}
	d := Deciles([]float64{7})
	for i, v := range d {
		if v != 7 {
			t.Errorf("Deciles([7])[%d] = %g, want 7", i, v)
		}
	}
}

func TestPSIEdgeCases(t *testing.T) {
	t.Parallel()
	ramp := make([]float64, 1000)
	for i := range ramp {
		ramp[i] = float64(i % 97)
	}
	if got := PSI(ramp, ramp); got != 0 {
		t.Errorf("PSI of identical samples = %g, want 0", got)
	}
	same := []float64{3, 3, 3, 3}
	if got := PSI(same, []float64{3, 3}); got != 0 {
		t.Errorf("PSI of all-equal samples = %g, want 0", got)
	}
	// All of ref sits on the cut points, so it is one bin; cur splits
	// between that bin and the one below: two bins differ.
	want := (0.5-1)*math.Log(0.5/1) + (0.5-EmptyBinShare)*math.Log(0.5/EmptyBinShare)
	if got := PSI(same, []float64{3, 1}); relErr(got, want) > 1e-14 {
		t.Errorf("PSI(all 3, {3, 1}) = %.17g, want %.17g", got, want)
	}
	// NaNs are not values: they change neither sample.
	nan := math.NaN()
	if got, want := PSI(append([]float64{nan}, ramp...), append(ramp, nan)), 0.0; got != want {
		t.Errorf("PSI with NaNs = %g, want %g", got, want)
	}
	if got := PSI(nil, ramp); !math.IsNaN(got) {
		t.Errorf("PSI(empty ref) = %g, want NaN", got)
	}
	if got := PSI(ramp, []float64{nan}); !math.IsNaN(got) {
		t.Errorf("PSI(cur of NaN only) = %g, want NaN", got)
	}
	// Values of cur beyond ref's range still count, in the outer bins.
	far := make([]float64, 500)
	for i := range far {
		far[i] = 1e9
	}
	wantFar := 0.0
	for i := range 10 {
		r, c := 0.1, EmptyBinShare
		if i == 9 {
			c = 1
		}
		wantFar += (c - r) * math.Log(c/r)
	}
	base := make([]float64, 1000)
	for i := range base {
		base[i] = float64(i) + 0.5
	}
	if got := PSI(base, far); relErr(got, wantFar) > 1e-12 {
		t.Errorf("PSI(cur all above ref) = %.17g, want %.17g", got, wantFar)
	}
}

func TestPSICounts(t *testing.T) {
	t.Parallel()
	got := PSICounts([]float64{50, 50}, []float64{25, 75})
	want := (0.25-0.5)*math.Log(0.25/0.5) + (0.75-0.5)*math.Log(0.75/0.5)
	if relErr(got, want) > 1e-15 {
		t.Errorf("PSICounts = %.17g, want %.17g", got, want)
	}
	for _, bad := range [][2][]float64{{{1}, {1, 2}}, {{0, 0}, {1, 2}}, {{1, 2}, {0, 0}}, {{-1, 2}, {1, 1}}, {{1, 1}, {math.NaN(), 1}}} {
		if got := PSICounts(bad[0], bad[1]); !math.IsNaN(got) {
			t.Errorf("PSICounts(%v, %v) = %g, want NaN", bad[0], bad[1], got)
		}
	}
}

func TestPSICategorical(t *testing.T) {
	t.Parallel()
	ref := []string{"a", "a", "b", "b"}
	if got := PSICategorical(ref, []string{"b", "a"}); got != 0 {
		t.Errorf("PSICategorical of equal shares = %g, want 0", got)
	}
	// "c" is only in the current sample: an empty bin in the reference.
	got := PSICategorical(ref, []string{"a", "b", "c", "c"})
	want := 2*(0.25-0.5)*math.Log(0.25/0.5) + (0.5-EmptyBinShare)*math.Log(0.5/EmptyBinShare)
	if relErr(got, want) > 1e-14 {
		t.Errorf("PSICategorical with a new category = %.17g, want %.17g", got, want)
	}
	if got := PSICategorical(nil, ref); !math.IsNaN(got) {
		t.Errorf("PSICategorical(empty) = %g, want NaN", got)
	}
	cats, table := CategoryCounts(ref, []string{"c", "a"})
	if len(cats) != 3 || cats[0] != "a" || cats[2] != "c" {
		t.Fatalf("categories = %q, want [a b c]", cats)
	}
	if table[0][2] != 0 || table[1][2] != 1 || table[0][0] != 2 {
		t.Errorf("counts = %v", table)
	}
}

func TestKS2(t *testing.T) {
	t.Parallel()
	x := []float64{0.3, 1.2, -4, 2.5, 2.5, 9}
	if d, p := KS2(x, x); d != 0 || p != 1 {
		t.Errorf("KS2 of identical samples = (%g, %g), want (0, 1)", d, p)
	}
	if d, p := KS2([]float64{5, 5, 5}, []float64{5}); d != 0 || p != 1 {
		t.Errorf("KS2 of all-equal samples = (%g, %g), want (0, 1)", d, p)
	}
	// Ties across samples are passed together: at 1 the CDFs are 2/3
	// and 1/3, at 2 both are 1.
	if d, _ := KS2([]float64{1, 1, 2}, []float64{1, 2, 2}); relErr(d, 1.0/3) > 1e-15 {
		t.Errorf("KS2 with ties: d = %g, want 1/3", d)
	}
	// 5·5/10 = 2.5 rounds half to even, to 2 (as NumPy's round does).
	a := []float64{1, 2, 3, 4, 5}
	b := []float64{3.5, 4.5, 5.5, 6.5, 7.5}
	d, p := KS2(a, b)
	if relErr(d, 0.6) > 1e-15 {
		t.Errorf("d = %g, want 0.6", d)
	}
	if want := KolmogorovSF(2, d); p != want {
		t.Errorf("p = %.17g, want KolmogorovSF(2, d) = %.17g", p, want)
	}
	if d, p := KS2(nil, a); !math.IsNaN(d) || !math.IsNaN(p) {
		t.Errorf("KS2(empty) = (%g, %g), want NaNs", d, p)
	}
	if d, p := KS2([]float64{math.NaN(), 1, 2}, []float64{2, 1}); d != 0 || p != 1 {
		t.Errorf("KS2 ignoring NaN = (%g, %g), want (0, 1)", d, p)
	}
}

func TestKolmogorovSF(t *testing.T) {
	t.Parallel()
	// Marsaglia, Tsang and Wang (2003) give K(10, 0.274) = 0.6284796154565043.
	if got := 1 - KolmogorovSF(10, 0.274); relErr(got, 0.6284796154565043) > 1e-13 {
		t.Errorf("K(10, .274) = %.17g, want 0.6284796154565043", got)
	}
	// Ruben–Gambino, by hand: n = 2, x = 1/3: P(D < x) = 2!/2² (2·2/3 − 1)² = 1/18.
	if got := KolmogorovSF(2, 1.0/3); relErr(got, 17.0/18) > 1e-15 {
		t.Errorf("KolmogorovSF(2, 1/3) = %.17g, want 17/18", got)
	}
	// Where the two tails cannot both exceed x, Durbin's exact matrix and
	// the doubled one-sided sum are the same probability.
	for _, n := range []int{2, 5, 10, 50, 100} {
		for _, x := range []float64{0.5, 0.6, 0.8, 0.95} {
			a, b := 1-durbinCDF(n, x), 2*smirnovSF(n, x)
			if math.Abs(a-b) > 1e-14 {
				t.Errorf("n=%d x=%g: Durbin %.17g, 2·Smirnov %.17g", n, x, a, b)
			}
		}
	}
	// At the switch points the methods agree to the accuracy of the
	// approximate one.
	for _, c := range []struct {
		name string
		n    int
		x    float64
		a, b func(int, float64) float64
		tol  float64
	}{
		{"Durbin|Smirnov n=140", 140, math.Sqrt(4.0 / 140), durbinSF, twoSmirnov, 1e-10},
		{"Durbin|Pelz-Good n=2000", 2000, math.Pow(1.4/2000, 2.0/3), durbinSF, pelzGoodSF, 1e-8},
		{"Pelz-Good|Smirnov n=1000", 1000, math.Sqrt(2.2 / 1000), pelzGoodSF, twoSmirnov, 1e-5},
	} {
		a, b := c.a(c.n, c.x), c.b(c.n, c.x)
		if relErr(a, b) > c.tol {
			t.Errorf("%s: %.17g vs %.17g (rel %.2g)", c.name, a, b, relErr(a, b))
		}
	}
	for _, c := range []struct {
		n    int
		x, p float64
	}{{0, 0.5, math.NaN()}, {5, math.NaN(), math.NaN()}, {5, 0, 1}, {5, -1, 1}, {5, 1, 0}, {5, 0.05, 1}, {3000, 0.9, 0}} {
		got := KolmogorovSF(c.n, c.x)
		if got != c.p && !(math.IsNaN(got) && math.IsNaN(c.p)) {
			t.Errorf("KolmogorovSF(%d, %g) = %g, want %g", c.n, c.x, got, c.p)
		}
	}
	// Monotone in x, and inside [0, 1], across every method's range.
	for _, n := range []int{1, 7, 140, 141, 1714, 100001, 2_000_000} {
		prev := 1.0
		for i := 1; i <= 400; i++ {
			x := float64(i) / 400
			p := KolmogorovSF(n, x)
			if !(p >= 0 && p <= prev+1e-12) {
				t.Fatalf("KolmogorovSF(%d, %g) = %g after %g", n, x, p, prev)
			}
			prev = p
		}
	}
}

func durbinSF(n int, x float64) float64   { return 1 - durbinCDF(n, x) }
func pelzGoodSF(n int, x float64) float64 { return 1 - pelzGoodCDF(n, x) }
func twoSmirnov(n int, x float64) float64 { return 2 * smirnovSF(n, x) }

func TestChiSquareIndependence(t *testing.T) {
	t.Parallel()
	// SciPy's chi2_contingency documentation example, correction=False.
	chi2, p, dof := ChiSquareIndependence([][]float64{{10, 10, 20}, {20, 20, 20}})
	if relErr(chi2, 2.7777777777777777) > 1e-14 || relErr(p, 0.24935220877729619) > 1e-12 || dof != 2 {
		t.Errorf("got (%.17g, %.17g, %d), want (2.7777777777777777, 0.24935220877729619, 2)", chi2, p, dof)
	}
	if chi2, p, dof := ChiSquareIndependence([][]float64{{4, 6}, {2, 3}}); chi2 != 0 || p != 1 || dof != 1 {
		t.Errorf("proportional rows: (%g, %g, %d), want (0, 1, 1)", chi2, p, dof)
	}
	if chi2, p, dof := ChiSquareIndependence([][]float64{{4}, {7}}); chi2 != 0 || p != 1 || dof != 0 {
		t.Errorf("one category: (%g, %g, %d), want (0, 1, 0)", chi2, p, dof)
	}
	// An all-zero column is dropped rather than divided by.
	a, pa, da := ChiSquareIndependence([][]float64{{10, 0, 10, 20}, {20, 0, 20, 20}})
	if a != chi2Of(t, [][]float64{{10, 10, 20}, {20, 20, 20}}) || relErr(pa, 0.24935220877729619) > 1e-12 || da != 2 {
		t.Errorf("zero column: (%g, %g, %d)", a, pa, da)
	}
	for _, bad := range [][][]float64{nil, {{}}, {{1, 2}, {3}}, {{1, -1}, {2, 2}}} {
		if chi2, p, _ := ChiSquareIndependence(bad); !math.IsNaN(chi2) || !math.IsNaN(p) {
			t.Errorf("ChiSquareIndependence(%v) = (%g, %g), want NaNs", bad, chi2, p)
		}
	}
}

func chi2Of(t *testing.T, table [][]float64) float64 {
	t.Helper()
	c, _, _ := ChiSquareIndependence(table)
	return c
}

func BenchmarkPSI(b *testing.B) {
	ref, cur := benchSamples()
	b.ReportAllocs()
	for b.Loop() {
		PSI(ref, cur)
	}
}

func BenchmarkKS2(b *testing.B) {
	ref, cur := benchSamples()
	b.ReportAllocs()
	for b.Loop() {
		KS2(ref, cur)
	}
}

func benchSamples() (ref, cur []float64) {
	ref, cur = make([]float64, 100_000), make([]float64, 80_000)
	for i := range ref {
		ref[i] = math.Sin(float64(i)) * 3
	}
	for i := range cur {
		cur[i] = math.Sin(float64(i)*1.3) * 3.1
	}
	return ref, cur
}
