package abtest

import "math"

// cupedTheta is cov(post, pre)/var(pre) of pooled comoments (pre is x,
// post is y). Without variance in pre there is nothing to regress on, and
// theta is 0: no adjustment.
func cupedTheta(pooled comoments) float64 {
	if pooled.n < 2 || pooled.m2x == 0 {
		return 0
	}
	return pooled.cxy / pooled.m2x
}

// cupedSummary is the Summary of the adjusted values
// post − theta·(pre − mu) of one variant, from its comoments: their mean
// is mean(post) − theta·(mean(pre) − mu) and their sum of squared
// deviations m2(post) − 2·theta·c(post, pre) + theta²·m2(pre).
func cupedSummary(c comoments, theta, mu float64) Summary {
	m := moments{n: c.n, mean: c.my - theta*(c.mx-mu), m2: c.m2y - 2*theta*c.cxy + theta*theta*c.m2x}
	if m.m2 < 0 { // rounding, with post an exact linear function of pre
		m.m2 = 0
	}
	return m.summary()
}

// cupedCompare runs Welch on the adjusted values of two variants, theta
// and mu being those of the pooled units.
func cupedCompare(control, treatment comoments, theta, mu, alpha float64, covariate string) Comparison {
	c := Welch(cupedSummary(control, theta, mu), cupedSummary(treatment, theta, mu), alpha)
	c.Method, c.Theta, c.Covariate = MethodCUPED, theta, covariate
	return c
}

// CUPED compares treatment with control on a metric adjusted by a
// pre-experiment covariate (Deng et al.): theta = cov(post, pre)/var(pre)
// over the units of both variants pooled, each value becomes
// post − theta·(pre − pooled mean of pre), and Welch's test runs on those.
// A unit whose post or pre value is NaN is left out. Theta is reported in
// the Comparison. It panics if a variant's post and pre differ in length.
func CUPED(controlPost, controlPre, treatmentPost, treatmentPre []float64, alpha float64) Comparison {
	ctl, trt := pairMoments(controlPost, controlPre), pairMoments(treatmentPost, treatmentPre)
	pooled := ctl
	pooled.merge(trt)
	return cupedCompare(ctl, trt, cupedTheta(pooled), pooled.mx, alpha, "")
}

func pairMoments(post, pre []float64) comoments {
	if len(post) != len(pre) {
		panic("abtest.CUPED: post and pre values differ in length")
	}
	var c comoments
	for i, y := range post {
		if x := pre[i]; !math.IsNaN(x) && !math.IsNaN(y) {
			c.add(x, y)
		}
	}
	return c
}
