// Package registry is the model registry: versions registered from run
// artifacts with their lineage, metrics, tags and aliases, and a lifecycle
// registered → shadow → canary → production → archived in which only legal
// moves are made and every move records who, when, why and, optionally,
// an AI decision record.
package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/baton-ml/baton/internal/artifact"
	"github.com/baton-ml/baton/internal/fault"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/signal"
	"github.com/baton-ml/baton/internal/store"
)

// States in lifecycle order.
var States = []store.ModelState{store.ModelRegistered, store.ModelShadow, store.ModelCanary, store.ModelProduction, store.ModelArchived}

// legal lists where each state may go. A version reaches production only
// through canary (judged against the running baseline); production only
// retires; an archived version must be registered again before it can
// climb back.
var legal = map[store.ModelState][]store.ModelState{
	store.ModelRegistered: {store.ModelShadow, store.ModelCanary, store.ModelArchived},
	store.ModelShadow:     {store.ModelCanary, store.ModelRegistered, store.ModelArchived},
	store.ModelCanary:     {store.ModelProduction, store.ModelShadow, store.ModelRegistered, store.ModelArchived},
	store.ModelProduction: {store.ModelArchived},
	store.ModelArchived:   {store.ModelRegistered},
}

// Legal returns the states a version in state from may move to.
func Legal(from store.ModelState) []store.ModelState { return slices.Clone(legal[from]) }

// ErrIllegal is returned (wrapped) for a transition the lifecycle forbids.
var ErrIllegal = fault.New(fault.Invalid, "illegal transition")

// Decision is the AI decision record a transition may carry: why this model,
// on what data, at what cost, for how long.
type Decision struct {
	AlternativesConsidered string `json:"alternatives_considered,omitempty"`
	DatasetCharacteristics string `json:"dataset_characteristics,omitempty"`
	FairnessTradeoffs      string `json:"fairness_tradeoffs,omitempty"`
	ExpectedLifetime       string `json:"expected_lifetime,omitempty"`
	RetrainingTriggers     string `json:"retraining_triggers,omitempty"`
	Explainability         string `json:"explainability,omitempty"`
	RegulatoryRationale    string `json:"regulatory_rationale,omitempty"`
}

// DecisionFields names the record's fields, as in JSON.
var DecisionFields = []string{"alternatives_considered", "dataset_characteristics", "fairness_tradeoffs",
	"expected_lifetime", "retraining_triggers", "explainability", "regulatory_rationale"}

// ParseDecision reads a decision record, refusing unknown fields so that a
// misspelt one is not silently lost.
func ParseDecision(b []byte) (*Decision, error) {
	var d Decision
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("decision record: %v (fields: %s)", err, strings.Join(DecisionFields, ", "))
	}
	if d == (Decision{}) {
		return nil, errors.New("decision record: every field is empty")
	}
	return &d, nil
}

// Registry is the model registry over a store.
type Registry struct {
	st Store
}

// Store is what the registry needs of the store: versions and their
// transitions, the runs they came from, and the signals those runs
// published (features_ready) or that it publishes (model_trained).
type Store interface {
	store.ModelStore
	store.RunReader
	store.SignalStore
	// Rollouts: a running rollout's versions move only with it.
	Rollouts(ctx context.Context, endpoint string) ([]store.Rollout, error)
}

// New returns the registry of st.
func New(st Store) *Registry { return &Registry{st: st} }

// Register asks for a new version.
type Register struct {
	Model string
	// Artifact is the run artifact holding the model: RUN/STEP[/INDEX]/NAME.
	Artifact string
	// TrainingSet optionally names the artifact it was trained on.
	TrainingSet string
	Metrics     map[string]float64
	Tags        map[string]string
	Description string
	Actor       string
	Reason      string
}

// Lineage is where a version came from.
type Lineage struct {
	RunID       int64                      `json:"run_id"`
	Flow        string                     `json:"flow"`
	FlowVersion int                        `json:"flow_version"`
	Step        string                     `json:"step"`
	Params      map[string]json.RawMessage `json:"params,omitempty"`
	TrainingSet string                     `json:"training_set,omitempty"`
	// TrainingSetDigest pins the training data's content.
	TrainingSetDigest string `json:"training_set_digest,omitempty"`
	// FeatureVersions comes from the features_ready signals the runs
	// involved published (feature@version,...).
	FeatureVersions []string `json:"feature_versions,omitempty"`
}

// InputError is a request the registry refuses (exit 2, HTTP 400).
type InputError struct {
	Msg string
	// Field, if known, is the input field at fault ("metrics.auc").
	Field string
	// Err, if any, is the kind of refusal (errors.Is sees it).
	Err error
}

func (e *InputError) Error() string { return e.Msg }

// ErrField names the input field at fault, for an API answer's "field".
func (e *InputError) ErrField() string { return e.Field }

// Is sorts the error as invalid input.
func (e *InputError) Is(target error) bool { return target == fault.Invalid }

func (e *InputError) Unwrap() error { return e.Err }

func inputErr(format string, args ...any) error {
	return &InputError{Msg: fmt.Sprintf(format, args...)}
}

// Update sets metrics and tags of a version (an empty tag value deletes
// the tag). It is the one use case behind `baton model update`.
func (r *Registry) Update(ctx context.Context, model string, version int, metrics map[string]float64, tags map[string]string) (store.ModelVersion, error) {
	if err := finiteMetrics(metrics); err != nil {
		return store.ModelVersion{}, err
	}
	return r.st.UpdateModelVersion(ctx, model, version, metrics, tags)
}

// finiteMetrics refuses NaN and infinities: a metric is compared, charted
// and stored as JSON, which has no form for them.
func finiteMetrics(m map[string]float64) error {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		if x := m[k]; math.IsNaN(x) || math.IsInf(x, 0) {
			return &InputError{Msg: fmt.Sprintf("metrics.%s: %v is not a finite number", k, x), Field: "metrics." + k}
		}
	}
	return nil
}

// Register records a new version from a run's artifact, with its lineage:
// the run, its flow version and params, the training set and the feature
// versions behind it.
func (r *Registry) Register(ctx context.Context, req Register) (store.ModelVersion, error) {
	if !flow.ValidName(req.Model) {
		return store.ModelVersion{}, &InputError{Field: "name", Msg: fmt.Sprintf("model name %q: use lowercase letters, digits, _ and -, starting with a letter or digit", req.Model)}
	}
	if err := finiteMetrics(req.Metrics); err != nil {
		return store.ModelVersion{}, err
	}
	if strings.TrimSpace(req.Reason) == "" {
		req.Reason = "registered"
	}
	a, path, err := r.resolve(ctx, req.Artifact, "artifact")
	if err != nil {
		return store.ModelVersion{}, err
	}
	run, err := r.st.Run(ctx, a.RunID)
	if err != nil {
		return store.ModelVersion{}, err
	}
	lin := Lineage{RunID: run.ID, Flow: run.Flow, FlowVersion: run.FlowVersion, Step: a.Step, Params: run.Params}
	runs := []int64{run.ID}
	if req.TrainingSet != "" {
		ts, tsPath, err := r.resolve(ctx, req.TrainingSet, "training_set")
		if err != nil {
			return store.ModelVersion{}, err
		}
		lin.TrainingSet, lin.TrainingSetDigest = tsPath, ts.Digest
		if ts.RunID != run.ID {
			runs = append(runs, ts.RunID)
		}
	}
	for _, id := range runs {
		sigs, err := r.st.Signals(ctx, store.SignalFilter{Name: "features_ready", SourceRun: id, Limit: 100})
		if err != nil {
			return store.ModelVersion{}, err
		}
		for _, sg := range sigs {
			var fv string
			if json.Unmarshal(sg.Params["feature_version"], &fv) == nil && fv != "" {
				for _, f := range strings.Split(fv, ",") {
					if !slices.Contains(lin.FeatureVersions, f) {
						lin.FeatureVersions = append(lin.FeatureVersions, f)
					}
				}
			}
		}
	}
	slices.Sort(lin.FeatureVersions)
	lb, _ := json.Marshal(lin)
	return r.st.CreateModelVersion(ctx, store.ModelVersion{
		Model: req.Model, Artifact: path, Digest: a.Digest, Size: a.Size, RunID: run.ID, Flow: run.Flow, FlowVersion: run.FlowVersion,
		Lineage: lb, Metrics: req.Metrics, Tags: req.Tags, Description: req.Description,
	}, req.Actor, req.Reason)
}

func (r *Registry) resolve(ctx context.Context, p, field string) (store.Artifact, string, error) {
	ap, err := artifact.ParsePath(p)
	if err != nil {
		return store.Artifact{}, "", inputErr("%s: %v", field, err)
	}
	a, err := artifact.Resolve(ctx, r.st, ap)
	if err != nil {
		return a, "", fmt.Errorf("%s %s: %w", field, p, err)
	}
	steps, err := r.st.Steps(ctx, a.RunID)
	if err != nil {
		return a, "", err
	}
	var step store.Step
	for _, s := range steps {
		if s.Name == a.Step {
			step = s
		}
	}
	return a, artifact.PathIn(a, step), nil
}

// Transition moves a version to state to, if the lifecycle allows it from
// where the version is. A version entering production archives the one
// it replaces, in the same transaction.
func (r *Registry) Transition(ctx context.Context, model string, version int, to store.ModelState, actor, reason string, d *Decision) (store.ModelVersion, error) {
	return r.transition(ctx, 0, model, version, to, actor, reason, d)
}

// RolloutTransition is a running rollout's move of its own canary (to
// production when it passes, back to registered when it is rolled back):
// the one move of that model's versions a running rollout allows.
func (r *Registry) RolloutTransition(ctx context.Context, rollout int64, model string, version int, to store.ModelState, actor, reason string) (store.ModelVersion, error) {
	return r.transition(ctx, rollout, model, version, to, actor, reason, nil)
}

// ErrInRollout is returned (wrapped) for a move that would pull a running
// rollout's versions from under it.
var ErrInRollout error = inRollout{}

type inRollout struct{}

func (inRollout) Error() string { return "a rollout is running" }

// Is sorts the refusal as the store's conflict (409, exit 1).
func (inRollout) Is(target error) bool {
	return target == store.ErrConflict || target == fault.Conflict
}

// CheckRollouts refuses a move of model's version to state to that a
// running rollout other than rollout forbids: moving its canary or its
// baseline, or making another version canary or production (which would
// archive the baseline the canary is judged against).
func (r *Registry) CheckRollouts(ctx context.Context, rollout int64, model string, version int, to store.ModelState) error {
	rs, err := r.st.Rollouts(ctx, "")
	if err != nil {
		return err
	}
	for _, ro := range rs {
		if ro.Status != store.RolloutRunning || ro.Model != model || ro.ID == rollout {
			continue
		}
		var what string
		switch {
		case version == ro.CanaryVersion:
			what = fmt.Sprintf("version %d is the canary of rollout %d on endpoint %s, which moves it", version, ro.ID, ro.Endpoint)
		case version == ro.BaselineVersion:
			what = fmt.Sprintf("version %d is the baseline of rollout %d on endpoint %s, which judges its canary against it", version, ro.ID, ro.Endpoint)
		case to == store.ModelProduction || to == store.ModelCanary:
			what = fmt.Sprintf("rollout %d on endpoint %s is judging version %d against version %d", ro.ID, ro.Endpoint, ro.CanaryVersion, ro.BaselineVersion)
		default:
			continue
		}
		return fmt.Errorf("model %s: %s; wait for it to pass or roll back (baton rollout status %s): %w", model, what, ro.Endpoint, ErrInRollout)
	}
	return nil
}

func (r *Registry) transition(ctx context.Context, rollout int64, model string, version int, to store.ModelState, actor, reason string, d *Decision) (store.ModelVersion, error) {
	if !slices.Contains(States, to) {
		return store.ModelVersion{}, inputErr("state %q: use one of %s", to, joinStates(States))
	}
	if strings.TrimSpace(reason) == "" {
		return store.ModelVersion{}, inputErr("reason: a transition needs one: say why")
	}
	if strings.TrimSpace(actor) == "" {
		return store.ModelVersion{}, inputErr("actor: a transition needs one: who made it")
	}
	cur, err := r.st.ModelVersion(ctx, model, version)
	if err != nil {
		return cur, err
	}
	if !slices.Contains(legal[cur.State], to) {
		return cur, fmt.Errorf("model %s version %d is %s and cannot go to %s (from %s: %s): %w",
			model, version, cur.State, to, cur.State, joinStates(legal[cur.State]), ErrIllegal)
	}
	if err := r.CheckRollouts(ctx, rollout, model, version, to); err != nil {
		return cur, err
	}
	var raw json.RawMessage
	if d != nil {
		raw, _ = json.Marshal(d)
	}
	return r.st.TransitionModel(ctx, store.ModelTransition{Model: model, Version: version, From: cur.State, To: to,
		Actor: actor, Reason: reason, Decision: raw}, to == store.ModelProduction)
}

func joinStates(ss []store.ModelState) string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return strings.Join(out, ", ")
}

// Resolve finds a version by reference: a number, a state that one version
// holds (production, canary, shadow), or an alias.
func (r *Registry) Resolve(ctx context.Context, model, ref string) (store.ModelVersion, error) {
	if n, err := strconv.Atoi(ref); err == nil {
		return r.st.ModelVersion(ctx, model, n)
	}
	vs, err := r.st.ModelVersions(ctx, model)
	if err != nil {
		return store.ModelVersion{}, err
	}
	var found []store.ModelVersion
	for _, v := range vs {
		if string(v.State) == ref || slices.Contains(v.Aliases, ref) {
			found = append(found, v)
		}
	}
	switch len(found) {
	case 0:
		return store.ModelVersion{}, fmt.Errorf("model %s has no version %q (a number, a state or an alias): %w", model, ref, store.ErrNotFound)
	case 1:
		return found[0], nil
	}
	// Several versions may share a state such as archived; the newest wins.
	return found[len(found)-1], nil
}

// TrainedParams are the params of a model_trained signal for a version.
func TrainedParams(v store.ModelVersion) map[string]json.RawMessage {
	m := func(x any) json.RawMessage { b, _ := json.Marshal(x); return b }
	p := map[string]json.RawMessage{"model": m(v.Model), "version": m(strconv.Itoa(v.Version)), "run_id": m(v.RunID)}
	if len(v.Metrics) > 0 {
		p["metrics"] = m(v.Metrics)
	}
	return p
}

// Registered is a version just registered and, when asked for, the
// model_trained signal published for it.
type Registered struct {
	Version store.ModelVersion `json:"version"`
	Signal  *store.Signal      `json:"signal"`
}

// ErrPublish marks a version that was registered but whose model_trained
// signal could not be published: the registration stands, and publishing
// again is safe (the signal id names the version).
var ErrPublish = errors.New("the version is registered, but publishing model_trained failed")

// RegisterAndPublish registers req's version and, when publish is set,
// publishes model_trained for it. It is the one use case behind `baton
// model register [--publish]` and POST /api/v1/models/{name}/versions.
func (r *Registry) RegisterAndPublish(ctx context.Context, req Register, publish bool) (Registered, error) {
	v, err := r.Register(ctx, req)
	if err != nil {
		return Registered{}, err
	}
	out := Registered{Version: v}
	if !publish {
		return out, nil
	}
	sg, err := r.PublishTrained(ctx, v)
	if err != nil {
		return out, fmt.Errorf("%w (version %d; publishing it again is safe): %w", ErrPublish, v.Version, err)
	}
	out.Signal = &sg
	return out, nil
}

// PublishTrained publishes model_trained for a version (once: the signal id
// names the version), under the signal's contract.
func (r *Registry) PublishTrained(ctx context.Context, v store.ModelVersion) (store.Signal, error) {
	c, err := signal.Load(ctx, r.st)
	if err != nil {
		return store.Signal{}, err
	}
	sg, _, err := signal.Publish(ctx, r.st, c, "model_trained", fmt.Sprintf("model_trained/%s/%d", v.Model, v.Version), TrainedParams(v),
		store.SignalSource{Kind: store.SourceFlow, Flow: v.Flow, RunID: v.RunID})
	return sg, err
}
