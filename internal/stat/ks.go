package stat

import "math"

// KS2 is the two-sample Kolmogorov–Smirnov test: d is the largest distance
// between the empirical CDFs of a and b, and p its two-sided p-value.
//
// p is SciPy's ks_2samp(method="asymp"): the one-sample distribution of D
// with n = round(|a||b|/(|a|+|b|)) observations, KolmogorovSF. It is not
// the exact two-sample distribution (SciPy's default for small samples),
// whose cost grows with |a|·|b|; for the sample sizes drift sees, the two
// differ in the third digit at most. NaNs are ignored; d and p are NaN if
// either sample has no other values.
func KS2(a, b []float64) (d, p float64) {
	return KS2Sorted(sortedCopy(a), sortedCopy(b))
}

// KS2Sorted is KS2 for samples already sorted ascending (NaNs first or
// absent), sparing two copies.
func KS2Sorted(a, b []float64) (d, p float64) {
	a, b = dropNaN(a), dropNaN(b)
	if len(a) == 0 || len(b) == 0 {
		return math.NaN(), math.NaN()
	}
	d = ksDistance(a, b)
	na, nb := float64(len(a)), float64(len(b))
	// NumPy's round is half-to-even; a plain Round would move n by one
	// whenever en ends in exactly .5.
	n := int(math.RoundToEven(na * nb / (na + nb)))
	return d, KolmogorovSF(max(n, 1), d)
}

// ksDistance walks both sorted samples in step. Each CDF is i/n rather than
// a running sum of 1/n, so that d is bit-for-bit the difference SciPy
// reports.
func ksDistance(a, b []float64) float64 {
	na, nb := float64(len(a)), float64(len(b))
	var d float64
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		// Ties across the samples must be passed together, or the
		// distance in between counts as a jump that no CDF makes.
		v := min(a[i], b[j])
		for i < len(a) && a[i] <= v {
			i++
		}
		for j < len(b) && b[j] <= v {
			j++
		}
		d = max(d, math.Abs(float64(i)/na-float64(j)/nb))
	}
	return d
}

// KolmogorovSF is P(D_n ≥ x) for the two-sided one-sample
// Kolmogorov–Smirnov statistic D_n of n observations (SciPy's kstwo.sf).
//
// No single method is both fast and accurate over all n and x, so this
// follows Simard and L'Ecuyer (2011), as SciPy does: exact formulas at the
// ends of the range, Durbin's matrix where n·x² is small, the one-sided
// Smirnov sum doubled where the two tails cannot overlap, and the Pelz–Good
// expansion for large n. Using the same switch points as SciPy keeps the
// p-values equal to its own, not merely close to the truth.
func KolmogorovSF(n int, x float64) float64 {
	switch {
	case n <= 0 || math.IsNaN(x):
		return math.NaN()
	case x >= 1:
		return 0
	case x <= 0:
		return 1
	}
	nf := float64(n)
	t := nf * x
	if t <= 1 {
		if t <= 0.5 {
			return 1
		}
		// Ruben and Gambino: P(D_n < x) = n!/nⁿ · (2t−1)ⁿ for 1/(2n) ≤ x ≤ 1/n.
		cdf := 1.0
		for i := 1; i <= n; i++ {
			cdf *= float64(i) / nf * (2*t - 1)
		}
		return clip01(1 - cdf)
	}
	if t >= nf-1 {
		return clip01(2 * math.Pow(1-x, nf))
	}
	if x >= 0.5 {
		// Both tails cannot exceed ½ at once, so P(D_n ≥ x) = 2·P(D_n⁺ ≥ x).
		return clip01(2 * smirnovSF(n, x))
	}
	nx2 := t * x
	if n <= 140 {
		if nx2 <= 4 {
			return clip01(1 - durbinCDF(n, x))
		}
		return clip01(2 * smirnovSF(n, x))
	}
	switch {
	case nx2 >= 370:
		return 0
	case nx2 >= 2.2:
		return clip01(2 * smirnovSF(n, x))
	case n <= 100000 && nf*math.Pow(x, 1.5) <= 1.4:
		return clip01(1 - durbinCDF(n, x))
	}
	return clip01(1 - pelzGoodCDF(n, x))
}

func clip01(p float64) float64 { return min(max(p, 0), 1) }

// smirnovMaxN is where the exact one-sided sum, O(n) terms, gives way to an
// asymptotic formula (SciPy's cut-over too).
const smirnovMaxN = 1_000_000

// smirnovSF is P(D_n⁺ ≥ x), the one-sided statistic, by the Birnbaum–Tingey
// sum
//
//	x · Σ_{j=0}^{⌊n(1−x)⌋} C(n,j) (1 − x − j/n)^(n−j) (x + j/n)^(j−1)
//
// Every term is positive, so summing in log space loses nothing to
// cancellation, and p-values far below 1e-300 come out as 0 rather than NaN.
func smirnovSF(n int, x float64) float64 {
	nf := float64(n)
	if n > smirnovMaxN {
		return math.Exp(-math.Pow(6*nf*x+1, 2) / (18 * nf))
	}
	// exp of anything below this is 0 in float64.
	if -2*nf*x*x < -745.13321910194122 {
		return 0
	}
	lgN, _ := math.Lgamma(nf + 1)
	lx := math.Log(x)
	top := int(math.Floor(nf * (1 - x)))
	lmax, s := math.Inf(-1), 0.0
	prev := math.Inf(-1)
	for j := 0; j <= top; j++ {
		jf := float64(j)
		a := (nf-jf)/nf - x
		if a <= 0 {
			break
		}
		lgJ, _ := math.Lgamma(jf + 1)
		lgNJ, _ := math.Lgamma(nf - jf + 1)
		lt := lgN - lgJ - lgNJ + (nf-jf)*math.Log(a) + (jf-1)*math.Log(jf/nf+x) + lx
		if lt > lmax {
			s = s*math.Exp(lmax-lt) + 1
			lmax = lt
		} else {
			s += math.Exp(lt - lmax)
		}
		// The terms rise to one peak and fall: once past it, stop when
		// the rest cannot reach the last bit.
		if lt < prev && lt-lmax < -45 {
			break
		}
		prev = lt
	}
	return math.Exp(lmax + math.Log(s))
}

// durbinCDF is P(D_n < d) by Durbin's matrix formula, as Marsaglia, Tsang
// and Wang (2003) compute it: with d = (k−h)/n, the k-th diagonal element of
// Hⁿ times n!/nⁿ, for an m×m matrix H, m = 2k−1. Its cost is O(m³ log n),
// which the caller bounds by using it only where n·x² or n·x^1.5 is small.
func durbinCDF(n int, d float64) float64 {
	nf := float64(n)
	nd := nf * d
	k := int(math.Ceil(nd))
	h := float64(k) - nd
	m := 2*k - 1

	invFact := make([]float64, m+1) // 1/j!
	invFact[0] = 1
	for j := 1; j <= m; j++ {
		invFact[j] = invFact[j-1] / float64(j)
	}
	H := make([]float64, m*m)
	for i := range m {
		for j := 0; j <= min(i+1, m-1); j++ {
			H[i*m+j] = invFact[i-j+1]
		}
	}
	for i := range m {
		H[i*m] -= math.Pow(h, float64(i+1)) * invFact[i+1]
		H[(m-1)*m+i] -= math.Pow(h, float64(m-i)) * invFact[m-i]
	}
	if 2*h-1 > 0 {
		H[(m-1)*m] += math.Pow(2*h-1, float64(m)) * invFact[m]
	}

	// Hⁿ by squaring. Its entries grow like nⁿ/n!, so both the power and
	// the running square carry a binary exponent beside them.
	P := make([]float64, m*m)
	for i := range m {
		P[i*m+i] = 1
	}
	tmp := make([]float64, m*m)
	pe, he := 0, 0
	for e := n; e > 0; e >>= 1 {
		if e&1 == 1 {
			matMul(tmp, P, H, m)
			P, tmp = tmp, P
			pe += he
			pe += rescale(P)
		}
		if e > 1 {
			matMul(tmp, H, H, m)
			H, tmp = tmp, H
			he *= 2
			he += rescale(H)
		}
	}
	p := P[(k-1)*m+(k-1)]
	// × n!/nⁿ one factor at a time, keeping p inside float64's range.
	for i := 1; i <= n; i++ {
		p *= float64(i) / nf
		if p < 0x1p-128 {
			p *= 0x1p128
			pe -= 128
		}
	}
	return clip01(math.Ldexp(p, pe))
}

// matMul sets dst = a·b for m×m row-major matrices.
func matMul(dst, a, b []float64, m int) {
	clear(dst)
	for i := range m {
		row := dst[i*m : (i+1)*m]
		for l := range m {
			ail := a[i*m+l]
			if ail == 0 {
				continue
			}
			for j, blj := range b[l*m : (l+1)*m] {
				row[j] += ail * blj
			}
		}
	}
}

// rescale divides a by 2¹²⁸ if its largest entry has passed that, and
// returns the exponent taken out.
func rescale(a []float64) int {
	var big float64
	for _, v := range a {
		big = max(big, math.Abs(v))
	}
	if big <= 0x1p128 {
		return 0
	}
	for i := range a {
		a[i] *= 0x1p-128
	}
	return 128
}

// pelzGoodCDF is the Pelz–Good (1976) approximation of P(D_n ≤ x) for
// large n: Li-Chien and Korolyuk's expansion K₀ + K₁/√n + K₂/n + K₃/n^1.5
// in z = x√n, with each K rewritten through Jacobi's theta identity into
// sums that converge fast for small z.
func pelzGoodCDF(n int, x float64) float64 {
	nf := float64(n)
	z := math.Sqrt(nf) * x
	z2 := z * z
	if math.Pi*math.Pi/(8*z2) > 708 {
		return 0
	}
	z3, z4 := z2*z, z2*z2
	z6 := z4 * z2
	z7, z8 := z6*z, z4*z4
	z10 := z8 * z2
	const pi2 = math.Pi * math.Pi
	const pi4 = pi2 * pi2
	const pi6 = pi4 * pi2

	// Beyond k = 16z/π the weights are below e^-128.
	kmax := int(math.Ceil(16 * z / math.Pi))
	var s0, s1, s2, s3 float64 // over half-integers u = k − ½
	var t2, t3 float64         // over integers k
	for k := kmax; k >= 1; k-- {
		u2 := (float64(k) - 0.5) * (float64(k) - 0.5)
		w := math.Exp(-pi2 * u2 / (2 * z2))
		s0 += w
		s1 += (pi2*u2 - z2) * w
		s2 += (6*z6 + 2*z4 + pi2*(2*z4-5*z2)*u2 + pi4*(1-2*z2)*u2*u2) * w
		s3 += (-30*z6 - 90*z8 + pi2*(135*z4-96*z6)*u2 + pi4*(212*z4-60*z2)*u2*u2 + pi6*(5-30*z2)*u2*u2*u2) * w

		kk := float64(k) * float64(k)
		v := math.Exp(-pi2 * kk / (2 * z2))
		t2 += pi2 * kk * v
		t3 += (3*pi2*kk*z2 - pi4*kk*kk) * v
	}
	r := math.Sqrt(math.Pi / 2)
	k0 := 2 * r / z * s0
	k1 := r / (3 * z4) * s1
	k2 := r/(36*z7)*s2 - r/(18*z3)*t2
	k3 := r/(3240*z10)*s3 + r/(108*z6)*t3
	sn := math.Sqrt(nf)
	return k0 + k1/sn + k2/nf + k3/(nf*sn)
}
