// Package archview generates the architecture views of the RAD-AI method
// (pipeline, signals, lineage, models, the non-determinism boundary, the AI
// debt register and quality scenarios) as Markdown with Mermaid diagrams,
// from what is applied and recorded in a baton store. Nothing is drawn by
// hand: regenerating after an apply keeps the documentation true.
package archview

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/baton-ml/baton/internal/artifact"
	"github.com/baton-ml/baton/internal/experiment"
	"github.com/baton-ml/baton/internal/feature"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/lineage"
	"github.com/baton-ml/baton/internal/monitor"
	"github.com/baton-ml/baton/internal/registry"
	"github.com/baton-ml/baton/internal/serve"
	"github.com/baton-ml/baton/internal/signal"
	"github.com/baton-ml/baton/internal/store"
)

// BlobReader reads a blob by digest; *artifact.Store is one. The model
// kind of a version lives in its artifact, not in the store's rows.
type BlobReader interface {
	Read(ctx context.Context, digest string) ([]byte, error)
}

// Options tune Load.
type Options struct {
	// Blobs, if set, is read for each serving model version's kind.
	Blobs BlobReader
	// MaxSignals caps how many recorded signals are counted (0: 200,000),
	// so a huge history cannot stall the docs.
	MaxSignals int
}

// Snapshot is everything the views are built from, read once.
type Snapshot struct {
	Flows     []FlowDef
	Contracts signal.Contracts
	// Observed counts recorded signals by name; Capped says the count
	// stopped at MaxSignals.
	Observed    map[string]SignalStat
	Capped      bool
	Features    *feature.Catalog
	Models      []ModelDef
	Endpoints   []serve.Endpoint
	Rollouts    map[string][]store.Rollout
	Experiments []experiment.Loaded
	// Blast is the downstream lineage (lineage.OfFlow) of each flow.
	Blast map[string]lineage.Flow
	// HasRuns says which flows have recorded runs.
	HasRuns map[string]bool
	// Scenarios are the quality scenarios declared as scenario monitors,
	// each as its newest evaluation measured it.
	Scenarios []MeasuredScenario
}

// MeasuredScenario is a declared quality scenario and what the server
// last measured of it.
type MeasuredScenario = monitor.Measured

// FlowDef is the newest applied version of a flow.
type FlowDef struct {
	Version int
	Flow    *flow.Flow
}

// SignalStat is what the store recorded of one signal name.
type SignalStat struct {
	Count int
	Last  time.Time
}

// ModelDef is a registered model and its versions, oldest first.
type ModelDef struct {
	Name     string
	Versions []VersionDef
}

// VersionDef is one model version with its decoded lineage, transitions
// (oldest first) and, if its artifact was read, its kind.
type VersionDef struct {
	store.ModelVersion
	Lineage     registry.Lineage
	Transitions []store.ModelTransition
	Kind        string
	// TrainingSetFeatures names the features of the training set in the
	// lineage, as the training_set step that built it declared them; nil
	// when unknown or for an archived version.
	TrainingSetFeatures []string
}

// Features maps each feature the version's lineage records to its
// version: the feature versions of features_ready, and the features of
// its training set, whose version ("") is not recorded.
func (v VersionDef) Features() map[string]string {
	out := map[string]string{}
	for _, n := range v.TrainingSetFeatures {
		out[n] = ""
	}
	for _, fv := range v.Lineage.FeatureVersions {
		n, ver, _ := strings.Cut(fv, "@")
		out[n] = ver
	}
	return out
}

// HasDecision reports whether any transition carried a decision record.
func (v VersionDef) HasDecision() bool {
	return slices.ContainsFunc(v.Transitions, func(t store.ModelTransition) bool {
		d := strings.TrimSpace(string(t.Decision))
		return d != "" && d != "null" && d != "{}"
	})
}

// TrainingFlow is the flow that produced the version, if recorded.
func (v VersionDef) TrainingFlow() string {
	if v.Flow != "" {
		return v.Flow
	}
	return v.Lineage.Flow
}

// Load reads the store once into a Snapshot.
func Load(ctx context.Context, st store.Store, opt Options) (*Snapshot, error) {
	s := &Snapshot{}
	steps := []struct {
		what string
		fn   func(context.Context, store.Store, Options) error
	}{
		{"flows", s.loadFlows},
		{"signal contracts", s.loadContracts},
		{"signals", s.loadSignals},
		{"features", s.loadFeatures},
		{"models", s.loadModels},
		{"endpoints", s.loadServing},
		{"experiments", s.loadExperiments},
		{"lineage", s.loadBlast},
		{"quality scenarios", s.loadScenarios},
	}
	for _, step := range steps {
		if err := step.fn(ctx, st, opt); err != nil {
			return nil, fmt.Errorf("read %s: %w", step.what, err)
		}
	}
	return s, nil
}

func (s *Snapshot) loadScenarios(ctx context.Context, st store.Store, _ Options) (err error) {
	s.Scenarios, err = monitor.LoadScenarios(ctx, st)
	return err
}

func (s *Snapshot) loadFlows(ctx context.Context, st store.Store, _ Options) error {
	sums, err := st.Flows(ctx)
	if err != nil {
		return err
	}
	for _, sum := range sums {
		v, err := st.FlowVersion(ctx, sum.Name, 0)
		if err != nil {
			return fmt.Errorf("flow %s: %w", sum.Name, err)
		}
		f, err := flow.Stored(sum.Name, v.Version, v.Spec)
		if err != nil {
			return err
		}
		s.Flows = append(s.Flows, FlowDef{Version: v.Version, Flow: f})
	}
	slices.SortFunc(s.Flows, func(a, b FlowDef) int { return strings.Compare(a.Flow.Name, b.Flow.Name) })
	return nil
}

func (s *Snapshot) loadContracts(ctx context.Context, st store.Store, _ Options) error {
	c, err := signal.Load(ctx, st)
	s.Contracts = c
	return err
}

// loadSignals pages through the recorded signals oldest first (Since
// selects ascending order; AfterSeq continues), counting per name.
func (s *Snapshot) loadSignals(ctx context.Context, st store.Store, opt Options) error {
	limit := opt.MaxSignals
	if limit <= 0 {
		limit = 200_000
	}
	const page = 5000
	s.Observed = map[string]SignalStat{}
	f := store.SignalFilter{Since: time.Unix(0, 0), Limit: page}
	for seen := 0; ; {
		sigs, err := st.Signals(ctx, f)
		if err != nil {
			return err
		}
		for _, sg := range sigs {
			stat := s.Observed[sg.Name]
			stat.Count++
			if sg.CreatedAt.After(stat.Last) {
				stat.Last = sg.CreatedAt
			}
			s.Observed[sg.Name] = stat
		}
		seen += len(sigs)
		if len(sigs) < page {
			return nil
		}
		if seen >= limit {
			s.Capped = true
			return nil
		}
		f = store.SignalFilter{AfterSeq: sigs[len(sigs)-1].Seq, Limit: page}
	}
}

func (s *Snapshot) loadFeatures(ctx context.Context, st store.Store, _ Options) error {
	c, err := feature.Load(ctx, st)
	s.Features = c
	return err
}

func (s *Snapshot) loadModels(ctx context.Context, st store.Store, opt Options) error {
	sums, err := st.Models(ctx)
	if err != nil {
		return err
	}
	for _, m := range sums {
		vs, err := st.ModelVersions(ctx, m.Name)
		if err != nil {
			return fmt.Errorf("model %s: %w", m.Name, err)
		}
		md := ModelDef{Name: m.Name}
		for _, v := range vs {
			vd, err := loadVersion(ctx, st, opt, s.Features, v)
			if err != nil {
				return err
			}
			md.Versions = append(md.Versions, vd)
		}
		slices.SortFunc(md.Versions, func(a, b VersionDef) int { return a.Version - b.Version })
		s.Models = append(s.Models, md)
	}
	slices.SortFunc(s.Models, func(a, b ModelDef) int { return strings.Compare(a.Name, b.Name) })
	return nil
}

func loadVersion(ctx context.Context, st store.Store, opt Options, cat *feature.Catalog, v store.ModelVersion) (VersionDef, error) {
	vd := VersionDef{ModelVersion: v}
	if len(v.Lineage) > 0 && string(v.Lineage) != "null" {
		if err := json.Unmarshal(v.Lineage, &vd.Lineage); err != nil {
			return vd, fmt.Errorf("model %s version %d lineage: %w", v.Model, v.Version, err)
		}
	}
	ts, err := st.ModelTransitions(ctx, v.Model, v.Version)
	if err != nil {
		return vd, fmt.Errorf("model %s version %d transitions: %w", v.Model, v.Version, err)
	}
	slices.SortStableFunc(ts, func(a, b store.ModelTransition) int { return int(a.ID - b.ID) })
	vd.Transitions = ts
	// Only versions that serve (or may) need their kind; reading every
	// archived artifact would cost the blob store for nothing.
	if opt.Blobs != nil && v.State != store.ModelArchived && v.Digest != "" {
		vd.Kind = modelKind(ctx, opt.Blobs, v.Digest)
	}
	if v.State != store.ModelArchived && vd.Lineage.TrainingSet != "" {
		if vd.TrainingSetFeatures, err = trainingSetFeatures(ctx, st, vd.Lineage.TrainingSet, cat); err != nil {
			return vd, fmt.Errorf("model %s version %d training set %s: %w", v.Model, v.Version, vd.Lineage.TrainingSet, err)
		}
	}
	return vd, nil
}

// trainingSetFeatures reads the features a training set was built with
// from the training_set step of the run that stored it, in the flow
// version that run ran (every registered feature when the step names
// none). The lineage records the set's path, not its columns, and a set
// built without publishing features_ready leaves no feature versions: this
// is what still links the model to its features. A path that is not a run
// artifact, a run or flow version no longer stored, or a step that is not
// a training_set step leaves them unknown rather than failing the docs.
func trainingSetFeatures(ctx context.Context, st store.Store, path string, cat *feature.Catalog) ([]string, error) {
	p, err := artifact.ParsePath(path)
	if err != nil {
		return nil, nil
	}
	run, err := st.Run(ctx, p.RunID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("run %d: %w", p.RunID, err)
	}
	fv, err := st.FlowVersion(ctx, run.Flow, run.FlowVersion)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("flow %s version %d: %w", run.Flow, run.FlowVersion, err)
	}
	f, err := flow.Stored(run.Flow, fv.Version, fv.Spec)
	if err != nil {
		return nil, err
	}
	for _, step := range f.Steps {
		if step.Name != p.Step || step.TrainingSet == nil {
			continue
		}
		if len(step.TrainingSet.Features) == 0 && cat != nil {
			return cat.FeatureNames(), nil
		}
		return slices.Clone(step.TrainingSet.Features), nil
	}
	return nil, nil
}

// modelKind classifies a model artifact by its serve.Spec kind; an artifact
// that is not a model document says so rather than failing the docs.
func modelKind(ctx context.Context, blobs BlobReader, digest string) string {
	b, err := blobs.Read(ctx, digest)
	if err != nil {
		return "unreadable artifact"
	}
	var spec serve.Spec
	if err := json.Unmarshal(b, &spec); err != nil || spec.Kind == "" {
		return "not a model document"
	}
	switch spec.Kind {
	case "http", "command":
		return spec.Kind
	}
	return "built-in (" + spec.Kind + ")"
}

func (s *Snapshot) loadServing(ctx context.Context, st store.Store, _ Options) error {
	eps, err := st.Endpoints(ctx)
	if err != nil {
		return err
	}
	for _, e := range eps {
		ep, err := serve.Raw(e)
		if err != nil {
			return err
		}
		s.Endpoints = append(s.Endpoints, ep)
	}
	slices.SortFunc(s.Endpoints, func(a, b serve.Endpoint) int { return strings.Compare(a.Name, b.Name) })
	rs, err := st.Rollouts(ctx, "")
	if err != nil {
		return fmt.Errorf("rollouts: %w", err)
	}
	s.Rollouts = map[string][]store.Rollout{}
	for _, r := range rs {
		s.Rollouts[r.Endpoint] = append(s.Rollouts[r.Endpoint], r)
	}
	return nil
}

func (s *Snapshot) loadExperiments(ctx context.Context, st store.Store, _ Options) error {
	es, err := experiment.Load(ctx, st)
	if err != nil {
		return err
	}
	slices.SortFunc(es, func(a, b experiment.Loaded) int { return strings.Compare(a.Spec.Name, b.Spec.Name) })
	s.Experiments = es
	return nil
}

// loadBlast loads the lineage graph once and asks it for every flow's
// downstream; it also notes which flows have recorded runs, since only
// they can show observed paths.
func (s *Snapshot) loadBlast(ctx context.Context, st store.Store, _ Options) error {
	s.Blast = map[string]lineage.Flow{}
	s.HasRuns = map[string]bool{}
	g, err := lineage.Load(ctx, st)
	if err != nil {
		return fmt.Errorf("lineage: %w", err)
	}
	for _, f := range s.Flows {
		runs, err := st.Runs(ctx, store.RunFilter{Flow: f.Flow.Name, Limit: 1})
		if err != nil {
			return fmt.Errorf("runs of %s: %w", f.Flow.Name, err)
		}
		s.HasRuns[f.Flow.Name] = len(runs) > 0
		l, err := g.OfFlow(f.Flow.Name, lineage.Downstream)
		if err != nil {
			return fmt.Errorf("flow %s: %w", f.Flow.Name, err)
		}
		s.Blast[f.Flow.Name] = l
	}
	return nil
}
