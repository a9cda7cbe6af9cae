package experiment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/fault"
	"github.com/baton-ml/baton/internal/registry"
	"github.com/baton-ml/baton/internal/store"
)

// promoteFixture: model churn with version 1 in production and version 2
// registered, an endpoint churn serving it, and an experiment "win" whose
// treatment (version 2) adds lift to minutes. skip drops that share of
// the treatment's exposures (a sample ratio mismatch).
func promoteFixture(t *testing.T, decision *DecisionSpec, lift, skip float64) (store.Store, Loaded) {
	t.Helper()
	ctx := context.Background()
	st := openStore(t)
	for i := range 2 {
		if _, err := st.CreateModelVersion(ctx, store.ModelVersion{Model: "churn", Artifact: "1/fit/model.json", Digest: fmt.Sprint(i), RunID: 1}, "t", "test"); err != nil {
			t.Fatal(err)
		}
	}
	for _, to := range []store.ModelState{store.ModelCanary, store.ModelProduction} {
		if _, err := registry.New(st).Transition(ctx, "churn", 1, to, "t", "test", nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := st.PutEndpoint(ctx, store.Endpoint{Name: "churn", Spec: json.RawMessage(`{"name":"churn","model":"churn","fallback":{"static":0}}`), Digest: "d"}); err != nil {
		t.Fatal(err)
	}
	s := ab("win", 0.5, 0.5)
	s.Variants[0].ModelVersion, s.Variants[1].ModelVersion = 1, 2
	s.Metrics = []string{"minutes"}
	s.Endpoint = "churn"
	s.Decision = decision
	if _, err := Apply(ctx, st, []Spec{s}); err != nil {
		t.Fatal(err)
	}
	a := assigners(t, st)["win"]
	rng := rand.New(rand.NewPCG(9, 9))
	var exps []store.Exposure
	var evs []store.MetricEvent
	now := time.Now()
	for i := range 2000 {
		u := fmt.Sprintf("u%d", i)
		as := a.Assign(u, nil)
		if as.Variant == "v1" && rng.Float64() < skip {
			continue
		}
		exps = append(exps, store.Exposure{Experiment: "win", Version: as.Version, Unit: u, Variant: as.Variant, At: now})
		m := 60 + 5*rng.NormFloat64()
		if as.Variant == "v1" {
			m += lift
		}
		evs = append(evs, store.MetricEvent{Experiment: "win", Unit: u, Metric: "minutes", Value: m, At: now})
	}
	if _, err := st.AddExposures(ctx, exps); err != nil {
		t.Fatal(err)
	}
	if err := st.AddMetricEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	l, err := Find(ctx, st, "win")
	if err != nil {
		t.Fatal(err)
	}
	return st, l
}

var fullDecision = &DecisionSpec{ExpectedLifetime: "two quarters", RetrainingTriggers: "drift of plays_1h above PSI 0.2",
	FairnessTradeoffs: "none found across markets", RegulatoryRationale: "internal ranking; no personal decisions"}

// TestPromoteStartsRollout: a treatment that won is moved to canary, not
// production, and a rollout starts on the experiment's endpoint for the
// canary judge to decide; the decision record's human fields come from
// the spec's decision block and the rest from the evidence. Before,
// promotion went registered → canary → production in one call, and the
// lifetime and retraining fields were fixed strings.
func TestPromoteStartsRollout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, l := promoteFixture(t, fullDecision, 3, 0)
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	p, err := Promote(ctx, st, l, PromoteOptions{Variant: "v1", Better: "increase", Actor: "ann", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if p.Version.State != store.ModelCanary || p.Version.Version != 2 || len(p.Forced) != 0 || len(p.MissingDecision) != 0 {
		t.Fatalf("promotion: %+v", p)
	}
	rs, _ := st.Rollouts(ctx, "churn")
	if len(rs) != 1 || rs[0].Status != store.RolloutRunning || rs[0].CanaryVersion != 2 || rs[0].BaselineVersion != 1 || !rs[0].StartedAt.Equal(now) {
		t.Fatalf("rollouts: %+v", rs)
	}
	if v1, _ := st.ModelVersion(ctx, "churn", 1); v1.State != store.ModelProduction {
		t.Fatalf("production moved before the judge: v1 %s", v1.State)
	}
	trs, _ := st.ModelTransitions(ctx, "churn", 2)
	last := trs[len(trs)-1]
	var d registry.Decision
	if err := json.Unmarshal(last.Decision, &d); err != nil || last.To != store.ModelCanary || !strings.Contains(last.Reason, "won experiment win on minutes") {
		t.Fatalf("transition: %+v %v", last, err)
	}
	if d.ExpectedLifetime != "two quarters" || d.RetrainingTriggers != fullDecision.RetrainingTriggers || d.FairnessTradeoffs != fullDecision.FairnessTradeoffs ||
		!strings.Contains(d.Explainability, `"p_value"`) || !strings.Contains(d.Explainability, `"srm_p"`) || !strings.Contains(d.Explainability, `"guardrails"`) ||
		!strings.Contains(d.DatasetCharacteristics, "units exposed") {
		t.Fatalf("decision: %+v", d)
	}
	// A second promotion finds the rollout running and says so.
	if _, err := Promote(ctx, st, l, PromoteOptions{Variant: "v1", Better: "increase", Actor: "ann", Now: now}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second promotion: %v", err)
	}
}

// TestPromoteRefusals: a loser, a paused experiment and one that fails its
// SRM check are refused, each with its own error kind; --force promotes
// anyway, and the transition and the evidence say what was forced. A spec
// without a decision block leaves those fields empty and names them.
func TestPromoteRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Now()
	opt := PromoteOptions{Variant: "v1", Better: "increase", Actor: "ann", Now: now}
	var ie *registry.InputError

	st, l := promoteFixture(t, fullDecision, 3, 0)
	if _, err := Promote(ctx, st, l, PromoteOptions{Variant: "v0", Better: "increase", Actor: "ann", Now: now}); !errors.Is(err, ErrNotWon) || !errors.As(err, &ie) {
		t.Fatalf("loser: %v", err)
	}
	if _, err := st.SetExperimentStatus(ctx, "win", []store.ExperimentStatus{store.ExperimentRunning}, store.ExperimentPaused, "guardrail latency: v1 moved +3"); err != nil {
		t.Fatal(err)
	}
	l, _ = Find(ctx, st, "win")
	if _, err := Promote(ctx, st, l, opt); !errors.Is(err, ErrPaused) || errors.Is(err, ErrNotWon) || !strings.Contains(err.Error(), "guardrail latency") {
		t.Fatalf("paused: %v", err)
	}
	if rs, _ := st.Rollouts(ctx, "churn"); len(rs) != 0 {
		t.Fatalf("a refused promotion started a rollout: %+v", rs)
	}
	forced := opt
	forced.Force = true
	p, err := Promote(ctx, st, l, forced)
	if err != nil || p.Rollout.ID == 0 || len(p.Forced) != 1 || !strings.HasPrefix(p.Forced[0], "paused") {
		t.Fatalf("forced: %+v %v", p, err)
	}
	trs, _ := st.ModelTransitions(ctx, "churn", 2)
	if last := trs[len(trs)-1]; !strings.Contains(last.Reason, "FORCED by ann past: paused") || !strings.Contains(string(last.Decision), `\"forced\":[\"paused`) {
		t.Fatalf("forced transition: %+v", last)
	}

	// A third of the treatment's exposures lost: SRM.
	st, l = promoteFixture(t, nil, 3, 0.33)
	if _, err := Promote(ctx, st, l, opt); !errors.Is(err, ErrSRM) || errors.Is(err, ErrPaused) {
		t.Fatalf("SRM: %v", err)
	}
	// No decision block: forced past SRM, the human fields stay empty and
	// are named.
	p, err = Promote(ctx, st, l, forced)
	if err != nil || strings.Join(p.MissingDecision, ",") != "decision.expected_lifetime,decision.retraining_triggers,decision.fairness_tradeoffs,decision.regulatory_rationale" ||
		p.Decision.ExpectedLifetime != "" || p.Decision.RetrainingTriggers != "" {
		t.Fatalf("missing decision: %+v %v", p, err)
	}
}

// TestPromoteMovesNothingItCannotRollOut: what the rollout needs is checked
// before the winner moves, so a refused promotion leaves no canary behind;
// and while the rollout runs, nobody moves its versions by hand.
func TestPromoteMovesNothingItCannotRollOut(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Now()
	opt := PromoteOptions{Variant: "v1", Better: "increase", Actor: "ann", Now: now}
	reg := func(st store.Store) *registry.Registry { return registry.New(st) }

	// No production version to judge against.
	st, l := promoteFixture(t, fullDecision, 3, 0)
	if _, err := reg(st).Transition(ctx, "churn", 1, store.ModelArchived, "t", "retired", nil); err != nil {
		t.Fatal(err)
	}
	before, _ := st.ModelTransitions(ctx, "churn", 2)
	var ie *registry.InputError
	if _, err := Promote(ctx, st, l, opt); !errors.As(err, &ie) || !strings.Contains(err.Error(), "no production version") {
		t.Fatalf("no baseline: %v", err)
	}
	if v, _ := st.ModelVersion(ctx, "churn", 2); v.State != store.ModelRegistered {
		t.Fatalf("refused promotion moved the winner to %s", v.State)
	}
	if after, _ := st.ModelTransitions(ctx, "churn", 2); len(after) != len(before) {
		t.Fatalf("refused promotion recorded a transition: %+v", after[len(before):])
	}

	// A canary someone else made is not taken over.
	st, l = promoteFixture(t, fullDecision, 3, 0)
	if _, err := reg(st).Transition(ctx, "churn", 2, store.ModelCanary, "bob", "trying it", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Promote(ctx, st, l, opt); !errors.As(err, &ie) || !strings.Contains(err.Error(), "already canary") {
		t.Fatalf("someone else's canary: %v", err)
	}
	if rs, _ := st.Rollouts(ctx, "churn"); len(rs) != 0 {
		t.Fatalf("rollout started: %+v", rs)
	}

	// A promotion cut short after the move (the process died) is finished
	// by promoting again.
	st, l = promoteFixture(t, fullDecision, 3, 0)
	if _, err := reg(st).Transition(ctx, "churn", 2, store.ModelCanary, "ann", "won experiment win on minutes: lift +3", nil); err != nil {
		t.Fatal(err)
	}
	p, err := Promote(ctx, st, l, opt)
	if err != nil || p.Rollout.ID == 0 {
		t.Fatalf("finishing a cut-short promotion: %+v %v", p, err)
	}
	// The rollout's versions move only with it.
	for _, tc := range []struct {
		version int
		to      store.ModelState
	}{{2, store.ModelProduction}, {2, store.ModelRegistered}, {1, store.ModelArchived}} {
		if _, err := reg(st).Transition(ctx, "churn", tc.version, tc.to, "bob", "by hand", nil); !errors.Is(err, registry.ErrInRollout) || !errors.Is(err, store.ErrConflict) || fault.Of(err) != fault.Conflict {
			t.Fatalf("version %d to %s during the rollout: %v", tc.version, tc.to, err)
		}
	}
	if _, err := reg(st).RolloutTransition(ctx, p.Rollout.ID, "churn", 2, store.ModelProduction, "rollout", "passed"); err != nil {
		t.Fatalf("the rollout's own move: %v", err)
	}
}

// TestForcedPromotionWithoutData: an experiment whose treatment nobody saw
// has no lift, interval or p-value (NaN); a forced promotion still goes
// through, with those fields null in the evidence, not an encoding error.
func TestForcedPromotionWithoutData(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, l := promoteFixture(t, fullDecision, 3, 1) // every v1 unit skipped
	p, err := Promote(ctx, st, l, PromoteOptions{Variant: "v1", Better: "increase", Actor: "ann", Force: true, Now: time.Now()})
	if err != nil || p.Rollout.ID == 0 {
		t.Fatalf("forced promotion without data: %+v %v", p, err)
	}
	if !strings.Contains(p.Decision.Explainability, `"lift_abs":null`) {
		t.Fatalf("evidence: %s", p.Decision.Explainability)
	}
}

// TestPromoteCheckedCanaryGoesToProduction: on an endpoint whose rollouts
// are canary checks (promote: false), a winner that passed its check
// before the experiment goes to production at once, with the decision
// record, archiving the version it beat; no second rollout starts.
func TestPromoteCheckedCanaryGoesToProduction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, l := promoteFixture(t, fullDecision, 3, 0)
	if _, _, err := st.PutEndpoint(ctx, store.Endpoint{Name: "churn", Digest: "d2",
		Spec: json.RawMessage(`{"name":"churn","model":"churn","fallback":{"static":0},"rollout":{"stages":[1,5],"promote":false}}`)}); err != nil {
		t.Fatal(err)
	}
	opt := PromoteOptions{Variant: "v1", Better: "increase", Actor: "ann", Now: time.Now()}
	if _, err := registry.New(st).Transition(ctx, "churn", 2, store.ModelCanary, "t", "candidate", nil); err != nil {
		t.Fatal(err)
	}
	// A canary check running: not promoted past it.
	r, err := st.StartRollout(ctx, store.Rollout{Endpoint: "churn", Model: "churn", CanaryVersion: 2, BaselineVersion: 1, Stages: []float64{1, 5}, StartedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Promote(ctx, st, l, opt); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("promoted during its check: %v", err)
	}
	if _, err := st.UpdateRollout(ctx, r.ID, 0, 1, store.RolloutPassed, json.RawMessage(`[]`)); err != nil {
		t.Fatal(err)
	}
	p, err := Promote(ctx, st, l, opt)
	if err != nil {
		t.Fatal(err)
	}
	v1, _ := st.ModelVersion(ctx, "churn", 1)
	if p.Version.State != store.ModelProduction || p.Rollout.ID != 0 || v1.State != store.ModelArchived {
		t.Fatalf("promotion: %+v, v1 %s", p, v1.State)
	}
	trs, _ := st.ModelTransitions(ctx, "churn", 2)
	last := trs[len(trs)-1]
	if last.To != store.ModelProduction || len(last.Decision) == 0 || !strings.Contains(last.Reason, "canary check") {
		t.Fatalf("transition: %+v", last)
	}
	if rs, _ := st.Rollouts(ctx, "churn"); len(rs) != 1 {
		t.Fatalf("rollouts: %+v", rs)
	}
}

// TestDecide: the daily call ships a winner (and stops the experiment),
// keeps control when a guardrail paused it (its canary back to
// registered), lets an undecided one run, and keeps control once it ran
// past MaxDuration without a winner.
func TestDecide(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Now()
	opt := DecideOptions{Better: "increase", Actor: "decider", Now: now}

	st, l := promoteFixture(t, fullDecision, 3, 0)
	d, err := Decide(ctx, st, l, opt)
	if err != nil || d.Outcome != Shipped || d.Variant != "v1" || d.Promotion == nil {
		t.Fatalf("winner: %+v %v", d, err)
	}
	if l2, _ := Find(ctx, st, "win"); l2.Status != store.ExperimentStopped {
		t.Fatalf("after shipping: %s", l2.Status)
	}

	st, l = promoteFixture(t, fullDecision, 0, 0)
	if d, err := Decide(ctx, st, l, opt); err != nil || d.Outcome != Continue {
		t.Fatalf("undecided: %+v %v", d, err)
	}
	opt.MaxDuration = time.Hour
	if d, err := Decide(ctx, st, l, opt); err != nil || d.Outcome != Continue {
		t.Fatalf("undecided within its duration: %+v %v", d, err)
	}
	opt.Now = now.Add(2 * time.Hour)
	if d, err := Decide(ctx, st, l, opt); err != nil || d.Outcome != KeptControl || !strings.Contains(d.Reason, "no winner") {
		t.Fatalf("past its duration: %+v %v", d, err)
	}

	st, l = promoteFixture(t, fullDecision, 3, 0)
	if _, err := registry.New(st).Transition(ctx, "churn", 2, store.ModelCanary, "t", "candidate", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SetExperimentStatus(ctx, "win", []store.ExperimentStatus{store.ExperimentRunning}, store.ExperimentPaused, "guardrail playback_errors"); err != nil {
		t.Fatal(err)
	}
	l, _ = Find(ctx, st, "win")
	d, err = Decide(ctx, st, l, DecideOptions{Better: "increase", Actor: "decider", Now: now})
	if err != nil || d.Outcome != KeptControl || fmt.Sprint(d.RolledBack) != "[2]" {
		t.Fatalf("paused: %+v %v", d, err)
	}
	if v2, _ := st.ModelVersion(ctx, "churn", 2); v2.State != store.ModelRegistered {
		t.Fatalf("paused treatment's version: %s", v2.State)
	}
}

// TestDecideNonInferiority: a treatment no better than control (lift 0)
// does not ship by superiority, ships by non-inferiority with a 5% margin
// once MinDuration has passed, and the record names the criterion; one
// clearly worse does not ship by it.
func TestDecideNonInferiority(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, l := promoteFixture(t, fullDecision, 0, 0)
	opt := DecideOptions{Better: "increase", Actor: "decider", Now: time.Now().Add(time.Hour), NonInferiority: 0.05, MinDuration: 2 * time.Hour}
	if d, err := Decide(ctx, st, l, opt); err != nil || d.Outcome != Continue || !strings.Contains(d.Reason, "running less than") {
		t.Fatalf("before its min duration: %+v %v", d, err)
	}
	opt.Now = opt.Now.Add(2 * time.Hour)
	d, err := Decide(ctx, st, l, opt)
	if err != nil || d.Outcome != Shipped {
		t.Fatalf("no worse: %+v %v", d, err)
	}
	trs, _ := st.ModelTransitions(ctx, "churn", 2)
	if last := trs[len(trs)-1]; !strings.Contains(last.Reason, "non-inferiority") || !strings.Contains(string(last.Decision), "non-inferiority") {
		t.Fatalf("record: %+v", last)
	}
	st, l = promoteFixture(t, fullDecision, -6, 0)
	if d, err := Decide(ctx, st, l, opt); err != nil || d.Outcome != Continue {
		t.Fatalf("worse: %+v %v", d, err)
	}
}
