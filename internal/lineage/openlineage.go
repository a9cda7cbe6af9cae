package lineage

import (
	"context"
	"crypto/sha1"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/baton-ml/baton/internal/artifact"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/registry"
	"github.com/baton-ml/baton/internal/store"
)

// OpenLineage run events, as in https://openlineage.io/spec/2-0-2/OpenLineage.json.
const (
	olSchema   = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
	olProducer = "https://github.com/baton-ml/baton"
	// Namespace of baton's jobs and datasets.
	olNamespace = "baton"

	// The standard facets baton fills, at the versions their values
	// conform to (testdata holds the schemas the tests check them with).
	olParentURL  = "https://openlineage.io/spec/facets/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet"
	olVersionURL = "https://openlineage.io/spec/facets/1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet"
	olSourceURL  = "https://openlineage.io/spec/facets/1-0-1/DatasourceDatasetFacet.json#/$defs/DatasourceDatasetFacet"
	olTypeURL    = "https://openlineage.io/spec/facets/1-0-1/DatasetTypeDatasetFacet.json#/$defs/DatasetTypeDatasetFacet"
	olSchemaURL  = "https://openlineage.io/spec/facets/1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet"
	// ModelFacetURL is the schema of baton's own model version facet,
	// docs/openlineage/BatonModelDatasetFacet.json in the repository.
	ModelFacetURL = "https://raw.githubusercontent.com/baton-ml/baton/main/docs/openlineage/BatonModelDatasetFacet.json#/$defs/BatonModelDatasetFacet"
)

// Dataset name prefixes: a dataset's name says what it is, then where it
// comes from (docs/server.md lists them).
const (
	SignalPrefix      = "signal/"       // signal/NAME
	TrainingSetPrefix = "training_set/" // training_set/FLOW/STEP[/INDEX]/FILE
	FeaturePrefix     = "feature/"      // feature/NAME/VERSION
	ModelPrefix       = "model/"        // model/NAME/VERSION
)

// Event is an OpenLineage RunEvent.
type Event struct {
	EventType string    `json:"eventType"`
	EventTime time.Time `json:"eventTime"`
	Run       olRun     `json:"run"`
	Job       olJob     `json:"job"`
	Inputs    []Dataset `json:"inputs"`
	Outputs   []Dataset `json:"outputs"`
	Producer  string    `json:"producer"`
	SchemaURL string    `json:"schemaURL"`
}

type olRun struct {
	RunID  string         `json:"runId"`
	Facets map[string]any `json:"facets,omitempty"`
}

type olJob struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// Dataset is an OpenLineage dataset: the signals baton's flows exchange,
// the training sets they build, the feature versions those computed and
// the model versions registered from runs.
type Dataset struct {
	Namespace string         `json:"namespace"`
	Name      string         `json:"name"`
	Facets    map[string]any `json:"facets,omitempty"`
}

// EventStore is what OpenLineage reads: Store, and the model registry and
// feature definitions its datasets come from.
type EventStore interface {
	Store
	ModelVersion(ctx context.Context, model string, version int) (store.ModelVersion, error)
	ModelVersions(ctx context.Context, model string) ([]store.ModelVersion, error)
	Models(ctx context.Context) ([]store.ModelSummary, error)
	FeatureSpecVersions(ctx context.Context, kind, name string) ([]store.FeatureSpec, error)
}

// runUUID makes a stable RFC 4122 (version 5 style) id for a baton run.
func runUUID(id int64) string {
	h := sha1.Sum([]byte(fmt.Sprintf("baton/run/%d", id)))
	h[6] = (h[6] & 0x0f) | 0x50
	h[8] = (h[8] & 0x3f) | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// facet makes fields a facet: every facet names its producer and the
// schema it conforms to, which is how consumers validate or skip it.
func facet(schemaURL string, fields map[string]any) map[string]any {
	fields["_producer"] = olProducer
	fields["_schemaURL"] = schemaURL
	return fields
}

// datasets is a set of datasets by name, in the order first added.
type datasets struct {
	list []Dataset
	at   map[string]int
}

// add keeps one dataset per name, seen from several records (a training
// set a features_ready names and a training_set step stored); a later
// sighting adds only the facets the first lacked.
func (d *datasets) add(ds Dataset) {
	if d.at == nil {
		d.at = map[string]int{}
	}
	i, ok := d.at[ds.Name]
	if !ok {
		d.at[ds.Name] = len(d.list)
		d.list = append(d.list, ds)
		return
	}
	for k, v := range ds.Facets {
		if d.list[i].Facets == nil {
			d.list[i].Facets = map[string]any{}
		}
		if _, ok := d.list[i].Facets[k]; !ok {
			d.list[i].Facets[k] = v
		}
	}
}

// sorted returns the datasets by name (never nil: the events always carry
// the arrays).
func (d *datasets) sorted() []Dataset {
	out := append([]Dataset{}, d.list...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// builder gathers one run's datasets from what the store records.
type builder struct {
	st              EventStore
	run             store.Run
	inputs, outputs datasets
	runs            map[int64]store.Run
	foreach         map[int64]map[string]bool
	ready           map[int64][]readySignal
}

// OpenLineage returns the run events of run id: START once it started, and
// COMPLETE, FAIL or ABORT once it ended. Inputs are the signals that
// triggered it, the training set and model version its params name, the
// training sets of the versions registered from it, and the feature
// versions of the features_ready signals it published; outputs are the
// signals it published, the training sets its steps built and the model
// versions registered from its artifacts. A run started by another run
// carries the parent facet. Only what the store records is exported:
// nothing is guessed from names.
func OpenLineage(ctx context.Context, st EventStore, id int64) ([]Event, error) {
	r, err := st.Run(ctx, id)
	if err != nil {
		return nil, err
	}
	b := &builder{st: st, run: r, runs: map[int64]store.Run{id: r}, foreach: map[int64]map[string]bool{},
		ready: map[int64][]readySignal{}}
	run := olRun{RunID: runUUID(id), Facets: map[string]any{}}
	if err := b.triggers(ctx, &run); err != nil {
		return nil, err
	}
	if err := b.params(ctx); err != nil {
		return nil, err
	}
	if err := b.signals(ctx); err != nil {
		return nil, err
	}
	if err := b.steps(ctx); err != nil {
		return nil, err
	}
	if err := b.models(ctx); err != nil {
		return nil, err
	}
	inputs, outputs := b.inputs.sorted(), b.outputs.sorted()
	job := olJob{Namespace: olNamespace, Name: r.Flow}
	var evs []Event
	if !r.StartedAt.IsZero() {
		evs = append(evs, Event{EventType: "START", EventTime: r.StartedAt, Run: run, Job: job, Inputs: inputs,
			Outputs: []Dataset{}, Producer: olProducer, SchemaURL: olSchema})
	}
	if r.Status.Final() {
		typ := map[store.RunStatus]string{store.RunSucceeded: "COMPLETE", store.RunFailed: "FAIL", store.RunCancelled: "ABORT"}[r.Status]
		evs = append(evs, Event{EventType: typ, EventTime: r.FinishedAt, Run: run, Job: job, Inputs: inputs,
			Outputs: outputs, Producer: olProducer, SchemaURL: olSchema})
	}
	if evs == nil {
		evs = []Event{}
	}
	return evs, nil
}

// triggers adds the signals that started the run as inputs, and the
// parent facet for a run another run started.
func (b *builder) triggers(ctx context.Context, run *olRun) error {
	fires, err := b.st.Fires(ctx, store.FireFilter{RunID: b.run.ID})
	if err != nil {
		return err
	}
	if b.run.Trigger == store.TriggerSubflow {
		// A subflow's child: its parent is the run whose task started it
		// (TriggerDetail: the parent task's id, after any grandparents').
		detail := b.run.TriggerDetail
		if i := strings.LastIndex(detail, " > "); i >= 0 {
			detail = detail[i+3:]
		}
		if id, _, ok := strings.Cut(detail, "/"); ok {
			if pid, err := strconv.ParseInt(id, 10, 64); err == nil {
				if parent, err := b.runOf(ctx, pid); err == nil {
					run.Facets["parent"] = facet(olParentURL, map[string]any{
						"run": map[string]string{"runId": runUUID(parent.ID)},
						"job": olJob{Namespace: olNamespace, Name: parent.Flow},
					})
				} else if !errors.Is(err, store.ErrNotFound) {
					return err
				}
			}
		}
	}
	for _, f := range fires {
		if f.SignalID != "" {
			sg, err := b.st.Signal(ctx, f.SignalID)
			if err == nil {
				b.inputs.add(signalDataset(sg.Name))
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		if f.SourceRun != 0 {
			parent, err := b.runOf(ctx, f.SourceRun)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			run.Facets["parent"] = facet(olParentURL, map[string]any{
				"run": map[string]string{"runId": runUUID(parent.ID)},
				"job": olJob{Namespace: olNamespace, Name: parent.Flow},
			})
		}
	}
	return nil
}

// params adds what the run was told to work on: a training set (the
// training_set param, an artifact path, as features_ready hands it on) and
// a model version (model and version params, as model_trained and the
// canary signals hand them on). A param naming nothing the store holds
// adds nothing.
func (b *builder) params(ctx context.Context) error {
	if path, ok := stringParam(b.run.Params, "training_set"); ok && path != "" && !b.own(path) {
		ds, ok, err := b.trainingSet(ctx, path)
		if err != nil {
			return err
		}
		if ok {
			b.inputs.add(ds)
		}
	}
	model, ok := stringParam(b.run.Params, "model")
	if !ok || model == "" {
		return nil
	}
	ver, ok := stringParam(b.run.Params, "version")
	if !ok {
		return nil
	}
	n, err := strconv.Atoi(ver)
	if err != nil || n <= 0 {
		return nil // a state or an alias names a version only at one moment
	}
	v, err := b.st.ModelVersion(ctx, model, n)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	b.inputs.add(modelDataset(v))
	return nil
}

// stringParam reads a param given as a JSON string or number.
func stringParam(p map[string]json.RawMessage, name string) (string, bool) {
	raw, ok := p[name]
	if !ok {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, true
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String(), true
	}
	return "", false
}

// own says whether artifact path is one of this run's: a run that reads a
// training set it built shows it as its output only, since an edge from a
// job to itself says nothing.
func (b *builder) own(path string) bool {
	p, err := artifact.ParsePath(path)
	return err == nil && p.RunID == b.run.ID
}

// readySignal is what a features_ready signal records of the training set
// a step built.
type readySignal struct {
	step, trainingSet string
	features          []string // NAME@VERSION
}

// readyOf returns the features_ready signals run id published.
func (b *builder) readyOf(ctx context.Context, id int64) ([]readySignal, error) {
	if rs, ok := b.ready[id]; ok {
		return rs, nil
	}
	sigs, err := b.st.Signals(ctx, store.SignalFilter{Name: "features_ready", SourceRun: id, Limit: 1000})
	if err != nil {
		return nil, err
	}
	rs := []readySignal{}
	for _, sg := range sigs {
		r := readySignal{step: sg.Source.Step}
		r.trainingSet, _ = stringParam(sg.Params, "training_set")
		if fv, _ := stringParam(sg.Params, "feature_version"); fv != "" {
			r.features = strings.Split(fv, ",")
		}
		rs = append(rs, r)
	}
	b.ready[id] = rs
	return rs, nil
}

// featuresOf returns the feature versions in training set a: those of the
// features_ready its task published, the one naming it or the step's only
// one; nil when none says.
func (b *builder) featuresOf(ctx context.Context, a store.Artifact, foreach bool) ([]string, error) {
	rs, err := b.readyOf(ctx, a.RunID)
	if err != nil {
		return nil, err
	}
	path := artifact.PathOf(a, foreach)
	var feats []string
	n := 0
	for _, r := range rs {
		if r.trainingSet == path || (r.trainingSet == "" && r.step == a.Step && !foreach) {
			feats = r.features
			n++
		}
	}
	if n != 1 {
		return nil, nil
	}
	return feats, nil
}

// signals adds the signals the run published as outputs; the feature
// versions of its features_ready signals as inputs (what it computed) and
// the training sets they name as outputs.
func (b *builder) signals(ctx context.Context) error {
	sigs, err := b.st.Signals(ctx, store.SignalFilter{SourceRun: b.run.ID, Limit: 1000})
	if err != nil {
		return err
	}
	for _, sg := range sigs {
		b.outputs.add(signalDataset(sg.Name))
	}
	ready, err := b.readyOf(ctx, b.run.ID)
	if err != nil {
		return err
	}
	for _, r := range ready {
		for _, f := range r.features {
			ds, ok, err := b.feature(ctx, f)
			if err != nil {
				return err
			}
			if ok {
				b.inputs.add(ds)
			}
		}
		if !b.own(r.trainingSet) {
			continue
		}
		ds, ok, err := b.trainingSet(ctx, r.trainingSet)
		if err != nil {
			return err
		}
		if ok {
			b.outputs.add(ds)
		}
	}
	return nil
}

// steps adds the training sets the run's training_set steps stored.
func (b *builder) steps(ctx context.Context) error {
	v, err := b.st.FlowVersion(ctx, b.run.Flow, b.run.FlowVersion)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	fl, err := flow.Stored(b.run.Flow, v.Version, v.Spec)
	if err != nil {
		return err
	}
	for _, s := range fl.Steps {
		if s.TrainingSet == nil {
			continue
		}
		arts, err := b.st.Artifacts(ctx, store.ArtifactFilter{RunID: b.run.ID, Step: s.Name, Index: -1})
		if err != nil {
			return err
		}
		for _, a := range arts {
			if a.Name != s.TrainingSet.Out {
				continue
			}
			ds, err := b.trainingSetOf(ctx, a, s.Foreach != nil)
			if err != nil {
				return err
			}
			b.outputs.add(ds)
		}
	}
	return nil
}

// models adds the model versions registered from the run's artifacts as
// outputs and the training sets they were registered with as inputs; a
// version registered elsewhere whose training set this run built makes
// that training set an output.
func (b *builder) models(ctx context.Context) error {
	ms, err := b.st.Models(ctx)
	if err != nil {
		return err
	}
	for _, m := range ms {
		vs, err := b.st.ModelVersions(ctx, m.Name)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		for _, v := range vs {
			mine := v.RunID == b.run.ID
			if mine {
				b.outputs.add(modelDataset(v))
			}
			var lin registry.Lineage
			_ = json.Unmarshal(v.Lineage, &lin) // a version without lineage has no training set
			builtHere := b.own(lin.TrainingSet)
			if lin.TrainingSet == "" || !mine && !builtHere {
				continue
			}
			ds, ok, err := b.trainingSet(ctx, lin.TrainingSet)
			switch {
			case err != nil:
				return err
			case !ok:
			case builtHere:
				b.outputs.add(ds)
			default:
				b.inputs.add(ds)
			}
		}
	}
	return nil
}

func (b *builder) runOf(ctx context.Context, id int64) (store.Run, error) {
	if r, ok := b.runs[id]; ok {
		return r, nil
	}
	r, err := b.st.Run(ctx, id)
	if err != nil {
		return r, err
	}
	b.runs[id] = r
	return r, nil
}

// isForeach says whether step of run id fans out (its artifacts' paths,
// and so their dataset names, carry the task index).
func (b *builder) isForeach(ctx context.Context, id int64, step string) (bool, error) {
	m, ok := b.foreach[id]
	if !ok {
		steps, err := b.st.Steps(ctx, id)
		if err != nil {
			return false, err
		}
		m = map[string]bool{}
		for _, s := range steps {
			m[s.Name] = s.Foreach
		}
		b.foreach[id] = m
	}
	return m[step], nil
}

// trainingSet is the dataset of the training set at artifact path; ok is
// false when the path names no stored artifact.
func (b *builder) trainingSet(ctx context.Context, path string) (Dataset, bool, error) {
	p, err := artifact.ParsePath(path)
	if err != nil {
		return Dataset{}, false, nil
	}
	a, err := artifact.Resolve(ctx, b.st, p)
	if errors.Is(err, store.ErrNotFound) {
		return Dataset{}, false, nil
	}
	if err != nil {
		return Dataset{}, false, err
	}
	fe, err := b.isForeach(ctx, a.RunID, a.Step)
	if err != nil {
		return Dataset{}, false, err
	}
	ds, err := b.trainingSetOf(ctx, a, fe)
	return ds, err == nil, err
}

// trainingSetOf is training set a, named after the flow and step that
// built it so that each build is a new version (its digest) of one
// dataset, with its feature columns when a features_ready says them.
func (b *builder) trainingSetOf(ctx context.Context, a store.Artifact, foreach bool) (Dataset, error) {
	r, err := b.runOf(ctx, a.RunID)
	if err != nil {
		return Dataset{}, err
	}
	name := TrainingSetPrefix + r.Flow + "/" + a.Step + "/"
	if foreach {
		name += strconv.Itoa(a.Index) + "/"
	}
	name += a.Name
	fs := map[string]any{
		"version":     facet(olVersionURL, map[string]any{"datasetVersion": a.Digest}),
		"dataSource":  facet(olSourceURL, map[string]any{"name": "baton artifacts"}),
		"datasetType": facet(olTypeURL, map[string]any{"datasetType": "FILE"}),
	}
	features, err := b.featuresOf(ctx, a, foreach)
	if err != nil {
		return Dataset{}, err
	}
	if len(features) > 0 {
		// The feature columns follow the label file's own, which baton
		// does not record: the schema lists what is known.
		fields := make([]map[string]any, 0, len(features))
		for _, f := range features {
			n, v, _ := strings.Cut(f, "@")
			fields = append(fields, map[string]any{"name": n, "description": "feature " + n + ", version " + v})
		}
		fs["schema"] = facet(olSchemaURL, map[string]any{"fields": fields})
	}
	return Dataset{Namespace: olNamespace, Name: name, Facets: fs}, nil
}

// feature is the dataset of a feature version NAME@VERSION; ok is false for
// a malformed one.
func (b *builder) feature(ctx context.Context, fv string) (Dataset, bool, error) {
	name, ver, ok := strings.Cut(fv, "@")
	n, err := strconv.Atoi(ver)
	if !ok || name == "" || err != nil || n <= 0 {
		return Dataset{}, false, nil
	}
	fs := map[string]any{"dataSource": facet(olSourceURL, map[string]any{"name": "baton features"})}
	specs, err := b.st.FeatureSpecVersions(ctx, store.FeatureDef, name)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return Dataset{}, false, err
	}
	for _, s := range specs {
		if s.Version == n {
			fs["version"] = facet(olVersionURL, map[string]any{"datasetVersion": s.Digest})
		}
	}
	return Dataset{Namespace: olNamespace, Name: FeaturePrefix + name + "/" + ver, Facets: fs}, true, nil
}

func signalDataset(name string) Dataset {
	return Dataset{Namespace: olNamespace, Name: SignalPrefix + name}
}

// modelDataset is a model version, with baton's facet: its state now (at
// export), metrics and artifact.
func modelDataset(v store.ModelVersion) Dataset {
	m := map[string]any{"model": v.Model, "version": v.Version, "state": string(v.State), "artifact": v.Artifact}
	if len(v.Metrics) > 0 {
		m["metrics"] = v.Metrics
	}
	if len(v.Aliases) > 0 {
		m["aliases"] = v.Aliases
	}
	fs := map[string]any{
		"dataSource":  facet(olSourceURL, map[string]any{"name": "baton model registry"}),
		"datasetType": facet(olTypeURL, map[string]any{"datasetType": "MODEL"}),
		"baton_model": facet(ModelFacetURL, m),
	}
	if v.Digest != "" {
		fs["version"] = facet(olVersionURL, map[string]any{"datasetVersion": v.Digest})
	}
	return Dataset{Namespace: olNamespace, Name: ModelPrefix + v.Model + "/" + strconv.Itoa(v.Version), Facets: fs}
}
