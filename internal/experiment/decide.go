package experiment

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/baton-ml/baton/internal/registry"
	"github.com/baton-ml/baton/internal/serve"
	"github.com/baton-ml/baton/internal/store"
)

// The outcomes of Decide.
const (
	// Continue: no decision yet; the experiment keeps running.
	Continue = "continue"
	// Shipped: a treatment won and was promoted; the experiment stopped.
	Shipped = "shipped"
	// KeptControl: no treatment won within the experiment's longest
	// duration, or a guardrail paused it; the experiment stopped and the
	// treatments' versions went back to registered.
	KeptControl = "kept_control"
)

// DecideOptions configure Decide.
type DecideOptions struct {
	// Better is which way the first metric improves: increase or decrease.
	Better string
	// MaxDuration is how long an experiment may run without a winner
	// (from its first exposure) before control is kept; 0 waits for ever.
	MaxDuration time.Duration
	// MinDuration is how long an experiment runs (from its first
	// exposure) before anything ships: a week's cycle, say.
	MinDuration time.Duration
	// NonInferiority ships a treatment shown no worse than this share of
	// control's mean (PromoteOptions.NonInferiority); 0 ships only a
	// treatment shown better.
	NonInferiority float64
	Actor          string
	Now            time.Time
}

// Decision is what Decide did with one experiment.
type Decision struct {
	Experiment string `json:"experiment"`
	Outcome    string `json:"outcome"`
	Variant    string `json:"variant,omitempty"`
	Reason     string `json:"reason"`
	// Promotion is the winner's promotion (Shipped).
	Promotion *Promotion `json:"promotion,omitempty"`
	// RolledBack are the treatments' versions moved back to registered.
	RolledBack []int `json:"rolled_back,omitempty"`
}

// DecideStore is what deciding needs: promotion's, plus stopping.
type DecideStore interface {
	PromoteStore
}

// Decide makes the call a person would make each day about a running or
// paused experiment: ship a treatment that won on the first metric
// (Promote, with every check it makes: a paused or SRM-failed experiment is
// never shipped), keep control when a guardrail paused it or when it ran
// MaxDuration without a winner, else let it run. A stopped experiment is
// left alone. The decision record of a shipped version comes from Promote.
func Decide(ctx context.Context, st DecideStore, l Loaded, o DecideOptions) (Decision, error) {
	s := l.Spec.WithDefaults()
	d := Decision{Experiment: s.Name, Outcome: Continue}
	if o.Better == "" {
		o.Better = "increase"
	}
	switch l.Status {
	case store.ExperimentStopped:
		d.Reason = "stopped"
		return d, nil
	case store.ExperimentPaused:
		return keepControl(ctx, st, l, d, "paused: "+l.Reason, o)
	}
	started, err := firstExposure(ctx, st, l)
	if err != nil {
		return d, err
	}
	switch {
	case started.IsZero():
		d.Reason = "nobody exposed yet"
		return d, nil
	case o.MinDuration > 0 && o.Now.Sub(started) < o.MinDuration:
		d.Reason = fmt.Sprintf("running less than %s", o.MinDuration)
		return d, nil
	}
	var notWon []error
	for _, v := range s.Variants {
		if v.Name == s.Control || v.ModelVersion == 0 {
			continue
		}
		p, err := Promote(ctx, st, l, PromoteOptions{Variant: v.Name, Better: o.Better, Actor: o.Actor, Now: o.Now, NonInferiority: o.NonInferiority})
		if errors.Is(err, ErrNotWon) || errors.Is(err, ErrSRM) {
			notWon = append(notWon, err)
			continue
		}
		if err != nil {
			return d, err
		}
		d.Outcome, d.Variant, d.Promotion = Shipped, v.Name, &p
		d.Reason = fmt.Sprintf("%s won; model version %d is %s", v.Name, p.Version.Version, p.Version.State)
		if _, err := SetStatus(ctx, st, s.Name, store.ExperimentStopped, "shipped "+v.Name); err != nil {
			return d, fmt.Errorf("experiment %s: %s was promoted but the experiment did not stop: %w", s.Name, v.Name, err)
		}
		return d, nil
	}
	d.Reason = fmt.Sprint(errors.Join(notWon...))
	if o.MaxDuration <= 0 {
		return d, nil
	}
	if o.Now.Sub(started) < o.MaxDuration {
		return d, nil
	}
	return keepControl(ctx, st, l, d, fmt.Sprintf("no winner in %s", o.MaxDuration), o)
}

// keepControl stops the experiment and sends each treatment's version
// that is still canary or shadow back to registered.
func keepControl(ctx context.Context, st DecideStore, l Loaded, d Decision, why string, o DecideOptions) (Decision, error) {
	s := l.Spec.WithDefaults()
	d.Outcome, d.Reason = KeptControl, why
	if _, err := SetStatus(ctx, st, s.Name, store.ExperimentStopped, "control kept: "+why); err != nil {
		return d, err
	}
	if s.Endpoint == "" {
		return d, nil
	}
	ep, err := serve.LoadEndpoint(ctx, st, s.Endpoint)
	if err != nil {
		return d, err
	}
	model := ep.Model
	reg := registry.New(st)
	for _, v := range s.Variants {
		if v.Name == s.Control || v.ModelVersion == 0 {
			continue
		}
		cur, err := st.ModelVersion(ctx, model, v.ModelVersion)
		if err != nil {
			return d, err
		}
		if cur.State != store.ModelCanary && cur.State != store.ModelShadow {
			continue
		}
		if _, err := reg.Transition(ctx, model, v.ModelVersion, store.ModelRegistered, o.Actor,
			fmt.Sprintf("experiment %s kept control: %s", s.Name, why), nil); err != nil {
			return d, err
		}
		d.RolledBack = append(d.RolledBack, v.ModelVersion)
	}
	return d, nil
}

func firstExposure(ctx context.Context, st store.ExperimentStore, l Loaded) (time.Time, error) {
	es, err := st.Exposures(ctx, l.Spec.Name, l.Version)
	if err != nil {
		return time.Time{}, err
	}
	var first time.Time
	for _, e := range es {
		if first.IsZero() || e.At.Before(first) {
			first = e.At
		}
	}
	return first, nil
}
