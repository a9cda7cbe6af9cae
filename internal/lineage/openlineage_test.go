package lineage_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/baton-ml/baton/internal/artifact"
	"github.com/baton-ml/baton/internal/catalog"
	"github.com/baton-ml/baton/internal/engine"
	"github.com/baton-ml/baton/internal/feature"
	"github.com/baton-ml/baton/internal/home"
	"github.com/baton-ml/baton/internal/lineage"
	"github.com/baton-ml/baton/internal/orchestrate"
	"github.com/baton-ml/baton/internal/orchestrate/onengine"
	"github.com/baton-ml/baton/internal/registry"
	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/store/pgtest"
	"github.com/baton-ml/baton/internal/store/postgres"
	"github.com/baton-ml/baton/internal/store/sqlite"
	"github.com/baton-ml/baton/internal/testwait"
)

// olSchemas are the vendored OpenLineage schemas (testdata/openlineage)
// and baton's own facet's, each under its $id.
var olSchemas = []string{
	"testdata/openlineage/OpenLineage.json",
	"testdata/openlineage/ParentRunFacet.json",
	"testdata/openlineage/DatasetVersionDatasetFacet.json",
	"testdata/openlineage/DatasourceDatasetFacet.json",
	"testdata/openlineage/DatasetTypeDatasetFacet.json",
	"testdata/openlineage/SchemaDatasetFacet.json",
	"../../docs/openlineage/BatonModelDatasetFacet.json",
}

// olValidator checks events against the OpenLineage schema, and each facet
// against the schema its _schemaURL names: the RunEvent schema only asks
// a facet for _producer and _schemaURL.
type olValidator struct {
	event *jsonschema.Schema
	// facets maps a facet schema URL to its schema and the key the facet
	// must have.
	facets map[string]facetSchema
}

type facetSchema struct {
	key    string
	schema *jsonschema.Schema
}

func newOLValidator(t *testing.T) *olValidator {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat() // uuid, uri and date-time are part of the contract
	type doc struct {
		id    string
		props map[string]any
	}
	var docs []doc
	for _, p := range olSchemas {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		v, err := jsonschema.UnmarshalJSON(strings.NewReader(string(b)))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		m := v.(map[string]any)
		id, _ := m["$id"].(string)
		if id == "" {
			t.Fatalf("%s has no $id", p)
		}
		if err := c.AddResource(id, v); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		props, _ := m["properties"].(map[string]any)
		docs = append(docs, doc{id: id, props: props})
	}
	ev, err := c.Compile("https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent")
	if err != nil {
		t.Fatal(err)
	}
	v := &olValidator{event: ev, facets: map[string]facetSchema{}}
	// A facet schema file declares its facet's key as its one property,
	// a $ref to the facet's definition.
	for _, d := range docs {
		for key, p := range d.props {
			ref, _ := p.(map[string]any)["$ref"].(string)
			url := d.id + ref
			s, err := c.Compile(url)
			if err != nil {
				t.Fatalf("%s: %v", url, err)
			}
			v.facets[url] = facetSchema{key: key, schema: s}
		}
	}
	return v
}

// validate checks one event, as JSON.
func (v *olValidator) validate(raw []byte) error {
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(string(raw)))
	if err != nil {
		return err
	}
	if err := v.event.Validate(inst); err != nil {
		return err
	}
	ev := inst.(map[string]any)
	check := func(where string, facets any) error {
		fs, _ := facets.(map[string]any)
		for key, f := range fs {
			url, _ := f.(map[string]any)["_schemaURL"].(string)
			s, ok := v.facets[url]
			if !ok {
				return fmt.Errorf("%s facet %s: _schemaURL %q is not one of the schemas the test knows", where, key, url)
			}
			if key != s.key {
				return fmt.Errorf("%s facet %s: its schema %s is the %q facet's", where, key, url, s.key)
			}
			if err := s.schema.Validate(f); err != nil {
				return fmt.Errorf("%s facet %s: %w", where, key, err)
			}
		}
		return nil
	}
	run, _ := ev["run"].(map[string]any)
	if err := check("run", run["facets"]); err != nil {
		return err
	}
	for _, side := range []string{"inputs", "outputs"} {
		ds, _ := ev[side].([]any)
		for _, d := range ds {
			dm, _ := d.(map[string]any)
			if err := check(fmt.Sprintf("%s %v", side, dm["name"]), dm["facets"]); err != nil {
				return err
			}
		}
	}
	return nil
}

// The validator refuses malformed events, so that the scenario's passing
// means something: each change below breaks the spec once.
func TestOLValidatorRefusesMalformedEvents(t *testing.T) {
	t.Parallel()
	v := newOLValidator(t)
	good := `{"eventType":"COMPLETE","eventTime":"2026-01-02T03:04:05Z",
	  "run":{"runId":"6ba7b810-9dad-51d1-80b4-00c04fd430c8","facets":{"parent":{"_producer":"https://github.com/baton-ml/baton",
	    "_schemaURL":"https://openlineage.io/spec/facets/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet",
	    "run":{"runId":"6ba7b811-9dad-51d1-80b4-00c04fd430c8"},"job":{"namespace":"baton","name":"train"}}}},
	  "job":{"namespace":"baton","name":"canary"},
	  "inputs":[{"namespace":"baton","name":"model/churn/1","facets":{"baton_model":{"_producer":"https://github.com/baton-ml/baton",
	    "_schemaURL":"` + lineage.ModelFacetURL + `","model":"churn","version":1,"state":"canary","artifact":"2/fit/model.json"}}}],
	  "outputs":[{"namespace":"baton","name":"training_set/f/build/t.csv","facets":{"schema":{"_producer":"https://github.com/baton-ml/baton",
	    "_schemaURL":"https://openlineage.io/spec/facets/1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet","fields":[{"name":"plays_1h"}]}}}],
	  "producer":"https://github.com/baton-ml/baton","schemaURL":"https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"}`
	if err := v.validate([]byte(good)); err != nil {
		t.Fatalf("the well-formed event: %v", err)
	}
	for _, c := range []struct{ what, old, new string }{
		{"an unknown event type", `"COMPLETE"`, `"DONE"`},
		{"a run id that is no UUID", `"6ba7b810-9dad-51d1-80b4-00c04fd430c8"`, `"run-7"`},
		{"a time that is no date-time", `"2026-01-02T03:04:05Z"`, `"yesterday"`},
		{"a job without a name", `"name":"canary"`, `"title":"canary"`},
		{"a dataset without a namespace", `{"namespace":"baton","name":"model/churn/1"`, `{"name":"model/churn/1"`},
		{"a facet without _producer", `{"_producer":"https://github.com/baton-ml/baton",
	    "_schemaURL":"https://openlineage.io/spec/facets/1-2-0/SchemaDatasetFacet.json`, `{"_schemaURL":"https://openlineage.io/spec/facets/1-2-0/SchemaDatasetFacet.json`},
		{"a schema field without a name", `{"name":"plays_1h"}`, `{"type":"int"}`},
		{"a parent facet without its job", `,"job":{"namespace":"baton","name":"train"}}}}`, `}}}`},
		{"a model facet with an unknown state", `"state":"canary"`, `"state":"live"`},
		{"a model facet without its version", `"version":1,`, ``},
		{"a facet under another facet's key", `"facets":{"schema":`, `"facets":{"dataSource":`},
		{"a facet whose schema nobody knows", `SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet"`, `SchemaDatasetFacet.json#/$defs/Nope"`},
	} {
		bad := strings.Replace(good, c.old, c.new, 1)
		if bad == good {
			t.Fatalf("%s: the test's replacement matched nothing", c.what)
		}
		if err := v.validate([]byte(bad)); err == nil {
			t.Errorf("%s passed validation", c.what)
		}
	}
}

const olContracts = `signals:
  - name: data_landed
    params:
      date: {type: string, required: true}
  - name: features_ready
    params:
      feature_version: {type: string, required: true}
      date: {type: string, required: true}
      row_count: {type: int, required: true}
      quality: {type: json}
      training_set: {type: string}
  - name: model_trained
    params:
      model: {type: string, required: true}
      version: {type: string, required: true}
      run_id: {type: int}
      metrics: {type: json}
`

// The platform's chain, small: a day lands, its features are built into a
// training set, a model is trained on it and registered, and its canary
// check starts.
const olFlows = `name: member-features
triggers:
  - signal: data_landed
params:
  date: {type: string}
steps:
  - name: labels
    run: |
      printf 'member_id,ts,label\nm1,%sT12:00:00Z,1\nm2,%sT12:00:00Z,0\n' "$BATON_PARAM_DATE" "$BATON_PARAM_DATE" > "$BATON_OUTPUT_DIR/labels.csv"
  - name: build
    needs: [labels]
    training_set:
      labels: labels/labels.csv
      features: [plays_1h, minutes_24h]
      out: members.csv
    publish: [features_ready]
---
name: snapshot
triggers:
  - signal: data_landed
params:
  date: {type: string}
steps:
  - name: labels
    run: |
      printf 'member_id,ts\nm1,%sT18:00:00Z\n' "$BATON_PARAM_DATE" > "$BATON_OUTPUT_DIR/labels.csv"
  - name: build
    needs: [labels]
    training_set: {labels: labels/labels.csv, features: [plays_1h], out: audit.csv}
---
name: train
triggers:
  - signal: features_ready
params:
  training_set: {type: string, default: ""}
steps:
  - name: fit
    run: |
      printf '{"w": 0.5}' > "$BATON_OUTPUT_DIR/model.json"
---
name: canary
triggers:
  - signal: model_trained
params:
  model: {type: string}
  version: {type: string}
steps:
  - name: check
    run: 'true'
`

const olFeatures = `entities:
  - {name: member, key: member_id}
sources:
  - name: plays
    entity: member
    timestamp: ts
    fields: {minutes: float}
features:
  - {name: plays_1h, source: plays, aggregate: count, window: 1h}
  - {name: minutes_24h, source: plays, aggregate: sum, field: minutes, window: 24h}
`

// Every event of a realistic chain (a flow triggered by a signal building
// a training set, a flow training on it whose artifact is registered as a
// model version, a flow checking that version) is valid OpenLineage, and
// carries the datasets that link the chain: the training set as the
// builder's output and the trainer's input (same version), the feature
// versions as the builder's inputs, the model version as the trainer's
// output and the canary's input.
func TestOpenLineageEventsCarryTheChainsDatasets(t *testing.T) {
	t.Parallel()
	v := newOLValidator(t)
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			t.Parallel()
			olScenario(t, v, db)
		})
	}
}

func olScenario(t *testing.T, v *olValidator, db string) {
	ctx := context.Background()
	dir := t.TempDir()
	var st store.Store
	var err error
	dsn := "sqlite://" + filepath.Join(dir, "baton.db")
	if db == "postgres" {
		dsn = pgtest.DSN(t)
		st, err = postgres.Open(ctx, dsn)
	} else {
		st, err = sqlite.Open(ctx, filepath.Join(dir, "baton.db"), sqlite.Options{})
	}
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := artifact.Open(ctx, "file://"+filepath.Join(dir, "artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { blobs.Close(); st.Close() })

	// The features, with a few events in their log.
	defs, err := feature.Parse("features.yaml", []byte(olFeatures))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := feature.Apply(ctx, st, "features.yaml", defs); err != nil {
		t.Fatal(err)
	}
	cat, err := feature.Load(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	featureDir := filepath.Join(dir, "features")
	fe := feature.NewEngine(cat, featureDir, feature.NewMemory(), nil)
	if _, err := fe.Ingest(ctx, "plays", strings.NewReader(`{"member_id":"m1","ts":"2026-03-02T11:30:00Z","minutes":12}
{"member_id":"m2","ts":"2026-03-02T11:45:00Z","minutes":3}
`)); err != nil {
		t.Fatal(err)
	}
	fe.Close()

	var ds []catalog.Document
	for i, d := range append([]string{olContracts}, strings.Split(olFlows, "---\n")...) {
		ds = append(ds, catalog.Document{Path: fmt.Sprintf("doc%d.yaml", i), Dir: dir, Data: []byte(d)})
	}
	if _, err := catalog.Apply(ctx, st, ds); err != nil {
		t.Fatal(err)
	}

	// A server without its HTTP API: the engine building training sets
	// as the server's does, the orchestrator firing the triggers.
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	hm := home.Home{Dir: dir, DB: dsn, Artifacts: "file://" + filepath.Join(dir, "artifacts")}
	eng, err := engine.New(st, blobs, engine.Options{Workers: 2, TempDir: hm.TempDir(), Env: hm.Env(), Log: log,
		TrainingSet: feature.StepFunc(st, featureDir, nil)})
	if err != nil {
		t.Fatal(err)
	}
	o := orchestrate.New(st, onengine.New(eng, log), orchestrate.Options{Poll: 50 * time.Millisecond, Reload: 100 * time.Millisecond,
		Elector: orchestrate.FileElector(filepath.Join(dir, "leader.lock")), Logger: log})
	if err := o.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Stop(); eng.Close() })
	testwait.For(t, 20*time.Second, o.Leading, "the orchestrator to lead")

	date, _ := json.Marshal("2026-03-02")
	if _, _, err := o.Publish(ctx, "data_landed", "landed-2026-03-02", map[string]json.RawMessage{"date": date},
		store.SignalSource{Kind: store.SourceExternal}); err != nil {
		t.Fatal(err)
	}
	done := func(flow string) store.Run {
		t.Helper()
		var run store.Run
		testwait.Until(t, 60*time.Second, func() (bool, string) {
			rs, err := st.Runs(ctx, store.RunFilter{Flow: flow})
			if err != nil || len(rs) == 0 {
				return false, fmt.Sprint("no run yet ", err)
			}
			run = rs[0]
			return run.Status.Final(), string(run.Status)
		}, "a run of %s to end", flow)
		if run.Status != store.RunSucceeded {
			t.Fatalf("run %d of %s: %s %s", run.ID, flow, run.Status, run.Error)
		}
		return run
	}
	build := done("member-features")
	snap := done("snapshot")
	train := done("train")
	// The trainer's register step, as `baton model register --publish`
	// does it.
	var tsPath string
	if err := json.Unmarshal(train.Params["training_set"], &tsPath); err != nil || tsPath != fmt.Sprintf("%d/build/members.csv", build.ID) {
		t.Fatalf("train's training_set param: %s %v", train.Params["training_set"], err)
	}
	reg, err := registry.New(st).RegisterAndPublish(ctx, registry.Register{Model: "churn", Artifact: fmt.Sprintf("%d/fit/model.json", train.ID),
		TrainingSet: tsPath, Metrics: map[string]float64{"auc": 0.81}, Actor: "ci"}, true)
	if err != nil {
		t.Fatal(err)
	}
	check := done("canary")
	// A model fitted in the run that built its training set: the training
	// set is that run's output, never also its input.
	if _, err := registry.New(st).Register(ctx, registry.Register{Model: "baseline", Artifact: fmt.Sprintf("%d/build/quality.json", build.ID),
		TrainingSet: tsPath, Actor: "ci"}); err != nil {
		t.Fatal(err)
	}

	tsArt, err := st.Artifact(ctx, store.TaskKey{RunID: build.ID, Step: "build"}, "members.csv")
	if err != nil {
		t.Fatal(err)
	}
	const tsName = "training_set/member-features/build/members.csv"
	for _, c := range []struct {
		run             store.Run
		inputs, outputs []string
	}{
		{build, []string{"feature/minutes_24h/1", "feature/plays_1h/1", "signal/data_landed"},
			[]string{"model/baseline/1", "signal/features_ready", tsName}},
		// A training set whose step publishes no features_ready: nothing
		// records its feature versions, so it has no schema and its run
		// no feature inputs.
		{snap, []string{"signal/data_landed"}, []string{"training_set/snapshot/build/audit.csv"}},
		{train, []string{"signal/features_ready", tsName},
			[]string{"model/churn/1", "signal/model_trained"}},
		{check, []string{"model/churn/1", "signal/model_trained"}, []string{}},
	} {
		evs, err := lineage.OpenLineage(ctx, st, c.run.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 2 || evs[0].EventType != "START" || evs[1].EventType != "COMPLETE" {
			t.Fatalf("run %d (%s): %d events", c.run.ID, c.run.Flow, len(evs))
		}
		for _, ev := range evs {
			raw, err := json.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			if err := v.validate(raw); err != nil {
				t.Fatalf("run %d (%s) %s event is not valid OpenLineage: %v\n%s", c.run.ID, c.run.Flow, ev.EventType, err, raw)
			}
			if got := names(ev.Inputs); !slices.Equal(got, c.inputs) {
				t.Errorf("run %d (%s) %s inputs %v, want %v", c.run.ID, c.run.Flow, ev.EventType, got, c.inputs)
			}
		}
		if got := names(evs[1].Outputs); !slices.Equal(got, c.outputs) {
			t.Errorf("run %d (%s) outputs %v, want %v", c.run.ID, c.run.Flow, got, c.outputs)
		}
		if len(evs[0].Outputs) != 0 {
			t.Errorf("run %d (%s): START has outputs %v", c.run.ID, c.run.Flow, names(evs[0].Outputs))
		}
		// The training set is one version of one dataset on both sides,
		// and its schema names the features it carries on both.
		for _, d := range slices.Concat(evs[1].Inputs, evs[1].Outputs) {
			switch d.Name {
			case tsName:
				if ver := facetField(t, d, "version", "datasetVersion"); ver != tsArt.Digest {
					t.Errorf("run %d: training set version %v, want the artifact's digest %s", c.run.ID, ver, tsArt.Digest)
				}
				b, _ := json.Marshal(d.Facets["schema"])
				if !strings.Contains(string(b), `{"description":"feature minutes_24h, version 1","name":"minutes_24h"},{"description":"feature plays_1h, version 1","name":"plays_1h"}`) {
					t.Errorf("run %d: training set schema %s", c.run.ID, b)
				}
			case "training_set/snapshot/build/audit.csv":
				if _, ok := d.Facets["schema"]; ok || facetField(t, d, "version", "datasetVersion") == "" {
					t.Errorf("the snapshot's training set: %v", d.Facets)
				}
			case "model/churn/1":
				if ver := facetField(t, d, "version", "datasetVersion"); ver != reg.Version.Digest {
					t.Errorf("run %d: model version %v, want %s", c.run.ID, ver, reg.Version.Digest)
				}
				if m := facetField(t, d, "baton_model", "metrics"); fmt.Sprint(m) != "map[auc:0.81]" {
					t.Errorf("run %d: model metrics %v", c.run.ID, m)
				}
			}
		}
	}
	evs, err := lineage.OpenLineage(ctx, st, check.ID)
	if err != nil {
		t.Fatal(err)
	}
	parent, _ := json.Marshal(evs[1].Run.Facets["parent"])
	if !strings.Contains(string(parent), `"name":"train"`) {
		t.Errorf("the canary run's parent facet: %s", parent)
	}
	if _, err := lineage.OpenLineage(ctx, st, 999); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a run that does not exist: %v", err)
	}
}

func names(ds []lineage.Dataset) []string {
	out := []string{}
	for _, d := range ds {
		out = append(out, d.Name)
	}
	return out
}

func facetField(t *testing.T, d lineage.Dataset, facet, field string) any {
	t.Helper()
	f, ok := d.Facets[facet].(map[string]any)
	if !ok {
		t.Fatalf("dataset %s has no %s facet: %v", d.Name, facet, d.Facets)
	}
	return f[field]
}
