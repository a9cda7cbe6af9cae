package bandit

import (
	"context"
	"fmt"
	"math"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/baton-ml/baton/internal/fault"
)

// Estimate is a policy value with its confidence interval (normal
// approximation: Value ± z·StdErr).
type Estimate struct {
	Value  float64 `json:"value"`
	Low    float64 `json:"low"`
	High   float64 `json:"high"`
	StdErr float64 `json:"stderr"`
}

// KindReport is the off-policy evaluation of one kind of decision. The
// estimates are nil with fewer than two records (no spread to measure).
type KindReport struct {
	Kind    Kind      `json:"kind"`
	Records int       `json:"records"`
	Logging *Estimate `json:"logging"` // the mean logged reward: the logging policy's value
	IPS     *Estimate `json:"ips"`
	SNIPS   *Estimate `json:"snips"`
	DR      *Estimate `json:"dr"`
	// ESS is the effective sample size of the weights, (Σw)²/Σw²: how
	// many records the estimate is worth.
	ESS       float64 `json:"ess"`
	MaxWeight float64 `json:"max_weight"`
	// Agree is the share of records where the policy's greedy choice is
	// what was logged (the first row for a row order).
	Agree float64 `json:"agree"`
}

// Report is a policy's off-policy evaluation on logs, per kind.
type Report struct {
	Policy     string       `json:"policy"`
	Confidence float64      `json:"confidence"`
	Kinds      []KindReport `json:"kinds"`
}

// EvalOptions tune Evaluate.
type EvalOptions struct {
	// Confidence of the intervals, in (0, 1); default 0.95.
	Confidence float64
}

// Evaluate estimates, from logged events, the mean reward p would get if
// it made the decisions (with its own ε-exploration). For a decision with
// logged propensity μ and the policy's probability π of the logged action:
//
//	w = π/μ
//	IPS   = (1/n) Σ w·r
//	SNIPS = Σ w·r / Σ w
//	DR    = (1/n) Σ [ Σ_a π(a|x)·r̂(x,a) + w·(r − r̂(x,a_logged)) ]
//
// where r̂(x,a) = θ_aᵀx is the policy's own linear reward model (the
// direct method). A row order is evaluated on its first position: the
// action is the row placed first, μ its logged first_propensity and π the
// policy's probability of putting it first ((1−ε)·1[best] + ε/K); the
// reward is the page's, so this is exact when the reward depends on the
// first row and an approximation otherwise. Intervals are normal
// approximations (SNIPS by the delta method).
func Evaluate(ctx context.Context, p *Policy, events []Event, opts EvalOptions) (Report, error) {
	conf := opts.Confidence
	if conf == 0 {
		conf = 0.95
	}
	if !(conf > 0 && conf < 1) {
		return Report{}, fmt.Errorf("%w: confidence %g: must be in (0, 1)", ErrParams, conf)
	}
	if len(events) == 0 {
		return Report{}, fmt.Errorf("%w to evaluate on", ErrNoEvents)
	}
	z := distuv.UnitNormal.Quantile(1 - (1-conf)/2)
	type acc struct {
		r, w, ips, dr []float64
		agree         int
	}
	accs := map[Kind]*acc{RowOrder: {}, Artwork: {}}
	v := vec{x: make([]float64, p.fz.Dim())}
	var sc []float64
	eps := p.params.Epsilon
	for n := range events {
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return Report{}, err
			}
		}
		e := &events[n]
		// Events read by LogReader passed this check; events made in Go
		// may not have, and a zero propensity would weigh infinitely.
		if err := e.check(); err != nil {
			return Report{}, fault.Invalidf("", "%s: %v", e.Where, err)
		}
		if err := p.fz.Encode(e.Context, v.x); err != nil {
			return Report{}, fmt.Errorf("%s: %w", e.Where, err)
		}
		v.reset()
		k := len(e.Arms)
		if cap(sc) < k {
			sc = make([]float64, k)
		}
		sc = sc[:k]
		var best int
		var mu float64
		if e.Kind == RowOrder {
			best, mu = p.bestRow(e.Arms, &v), e.FirstPropensity
		} else {
			best, mu = p.bestArtwork(e.Title, e.Arms, &v, sc), e.Propensity
		}
		logged := e.Chosen[0]
		var dm, rhatLogged, pi float64
		g := p.arms[groupKey{e.Kind, e.Title}]
		for i, a := range e.Arms {
			_, mean := p.score(g[a], &v)
			pa := eps / float64(k)
			if i == best {
				pa += 1 - eps
			}
			dm += pa * mean
			if a == logged {
				rhatLogged, pi = mean, pa
			}
		}
		w := pi / mu
		a := accs[e.Kind]
		a.r = append(a.r, e.Reward)
		a.w = append(a.w, w)
		a.ips = append(a.ips, w*e.Reward)
		a.dr = append(a.dr, dm+w*(e.Reward-rhatLogged))
		if e.Arms[best] == logged {
			a.agree++
		}
	}
	rep := Report{Policy: p.id, Confidence: conf}
	for _, kind := range []Kind{RowOrder, Artwork} {
		a := accs[kind]
		n := len(a.r)
		if n == 0 {
			continue
		}
		kr := KindReport{Kind: kind, Records: n, Agree: float64(a.agree) / float64(n)}
		var sw, sw2, swr float64
		for i, w := range a.w {
			sw += w
			sw2 += w * w
			swr += w * a.r[i]
			kr.MaxWeight = max(kr.MaxWeight, w)
		}
		if sw2 > 0 {
			kr.ESS = sw * sw / sw2
		}
		if n >= 2 {
			kr.Logging = meanEstimate(a.r, z)
			kr.IPS = meanEstimate(a.ips, z)
			kr.DR = meanEstimate(a.dr, z)
			if sw > 0 {
				sn := swr / sw
				// Delta method: SNIPS − V ≈ mean(w(r − V)) / mean(w).
				infl := make([]float64, n)
				mw := sw / float64(n)
				for i, w := range a.w {
					infl[i] = w * (a.r[i] - sn) / mw
				}
				se := meanEstimate(infl, z).StdErr
				kr.SNIPS = &Estimate{Value: sn, StdErr: se, Low: sn - z*se, High: sn + z*se}
			}
		}
		rep.Kinds = append(rep.Kinds, kr)
	}
	return rep, nil
}

// meanEstimate is the mean of xs with the normal interval of the mean.
func meanEstimate(xs []float64, z float64) *Estimate {
	n := float64(len(xs))
	var s float64
	for _, x := range xs {
		s += x
	}
	m := s / n
	var ss float64
	for _, x := range xs {
		ss += (x - m) * (x - m)
	}
	se := math.Sqrt(ss / (n - 1) / n)
	return &Estimate{Value: m, StdErr: se, Low: m - z*se, High: m + z*se}
}
