package archview

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/baton-ml/baton/internal/catalog"
	"github.com/baton-ml/baton/internal/experiment"
	"github.com/baton-ml/baton/internal/feature"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/registry"
	"github.com/baton-ml/baton/internal/serve"
	"github.com/baton-ml/baton/internal/signal"
	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/store/sqlite"
)

func flows(fs ...flow.Flow) []FlowDef {
	var out []FlowDef
	for i := range fs {
		out = append(out, FlowDef{Version: 1, Flow: &fs[i]})
	}
	return out
}

func features(fs ...feature.Feature) *feature.Catalog {
	c := &feature.Catalog{Features: map[string]*feature.Feature{}}
	for i := range fs {
		c.Features[fs[i].Name] = &fs[i]
	}
	return c
}

// withSources adds sources to a catalog of features.
func withSources(c *feature.Catalog, srcs ...feature.Source) *feature.Catalog {
	c.Sources = map[string]*feature.Source{}
	for i := range srcs {
		c.Sources[srcs[i].Name] = &srcs[i]
	}
	return c
}

// trained is a model with one version in state, whose lineage records the
// feature versions.
func trained(model string, state store.ModelState, fvs ...string) ModelDef {
	v := VersionDef{ModelVersion: store.ModelVersion{Model: model, Version: 1, State: state, Flow: "train"},
		Lineage: registry.Lineage{Flow: "train", FeatureVersions: fvs}}
	return ModelDef{Name: model, Versions: []VersionDef{v}}
}

func version(state store.ModelState, flowName string, decision bool) VersionDef {
	v := VersionDef{ModelVersion: store.ModelVersion{Model: "m", Version: 1, State: state, Flow: flowName}}
	t := store.ModelTransition{To: state, Actor: "a", Reason: "r"}
	if decision {
		t.Decision = json.RawMessage(`{"expected_lifetime":"6 months"}`)
	}
	v.Transitions = []store.ModelTransition{t}
	return v
}

func rule(t *testing.T, id string) Rule {
	t.Helper()
	for _, r := range Rules() {
		if r.ID == id {
			return r
		}
	}
	t.Fatalf("no rule %s", id)
	return Rule{}
}

// TestDebtRules gives every rule a snapshot it fires on and one it does
// not.
func TestDebtRules(t *testing.T) {
	t.Parallel()
	gate := []feature.Check{{Check: feature.CheckNotNullRate, Action: feature.ActionBlock}}
	sla := feature.Duration(60e9)
	pub := flow.Flow{Name: "p", Steps: []flow.Step{{Name: "s", Run: "x", Publish: []string{"c"}}}}
	sub := flow.Flow{Name: "q", Triggers: []flow.Trigger{{Signal: "c"}}, Steps: []flow.Step{{Name: "s", Run: "x"}}}
	contract := signal.Contracts{"c": {Name: "c"}}
	ts := func(feats ...string) flow.Flow {
		return flow.Flow{Name: "t", Steps: []flow.Step{{Name: "build", TrainingSet: &flow.TrainingSet{Labels: "l.csv", Out: "o.csv", Features: feats}}}}
	}
	exp := func(g ...experiment.Guardrail) []experiment.Loaded {
		return []experiment.Loaded{{Spec: experiment.Spec{Name: "e", Guardrails: g}, Status: store.ExperimentRunning}}
	}
	plays := feature.Feature{Name: "plays_1d", Source: "plays"}
	loop := func(respondsTo ...string) Snapshot {
		return Snapshot{
			Features:  withSources(features(plays), feature.Source{Name: "plays", RespondsTo: respondsTo}),
			Endpoints: []serve.Endpoint{{Name: "home", Model: "rec"}},
			Models:    []ModelDef{trained("rec", store.ModelProduction, "plays_1d@1")},
		}
	}
	cases := []struct {
		rule       string
		fires, not Snapshot
		item       string
	}{
		{"production-without-decision",
			Snapshot{Models: []ModelDef{{Name: "m", Versions: []VersionDef{version(store.ModelProduction, "f", false)}}}},
			Snapshot{Models: []ModelDef{{Name: "m", Versions: []VersionDef{version(store.ModelProduction, "f", true), version(store.ModelCanary, "f", false)}}}},
			"model m v1"},
		{"model-without-lineage",
			Snapshot{Models: []ModelDef{{Name: "m", Versions: []VersionDef{version(store.ModelRegistered, "", false)}}}},
			Snapshot{Models: []ModelDef{{Name: "m", Versions: []VersionDef{version(store.ModelRegistered, "train", false), version(store.ModelArchived, "", false)}}}},
			"model m v1"},
		{"endpoint-without-rollout",
			Snapshot{Endpoints: []serve.Endpoint{{Name: "e"}}},
			Snapshot{Endpoints: []serve.Endpoint{{Name: "e", Rollout: &serve.RolloutConfig{}}}},
			"endpoint e"},
		{"endpoint-without-confidence-gate",
			Snapshot{Endpoints: []serve.Endpoint{{Name: "e"}}},
			Snapshot{Endpoints: []serve.Endpoint{{Name: "e", MinConfidence: 0.5}}},
			"endpoint e"},
		{"feature-without-freshness-sla",
			Snapshot{Features: features(feature.Feature{Name: "f"})},
			Snapshot{Features: features(feature.Feature{Name: "f", FreshnessSLA: sla})},
			"feature f"},
		{"feature-without-gates",
			Snapshot{Features: features(feature.Feature{Name: "f"})},
			Snapshot{Features: features(feature.Feature{Name: "f", Quality: gate})},
			"feature f"},
		{"training-set-without-gates",
			Snapshot{Flows: flows(ts("a")), Features: features(feature.Feature{Name: "a"}, feature.Feature{Name: "b", Quality: gate})},
			Snapshot{Flows: flows(ts()), Features: features(feature.Feature{Name: "a"}, feature.Feature{Name: "b", Quality: gate})},
			"flow t / step build"},
		{"experiment-without-guardrails",
			Snapshot{Experiments: exp()},
			Snapshot{Experiments: exp(experiment.Guardrail{Metric: "errors", Direction: "increase"})},
			"experiment e"},
		{"contract-without-publisher",
			Snapshot{Contracts: contract, Flows: flows(sub)},
			Snapshot{Contracts: contract, Flows: flows(pub)},
			"signal c"},
		{"contract-without-subscriber",
			Snapshot{Contracts: contract, Flows: flows(pub)},
			Snapshot{Contracts: contract, Flows: flows(sub)},
			"signal c"},
		{"trigger-without-contract",
			Snapshot{Flows: flows(sub)},
			Snapshot{Flows: flows(sub), Contracts: contract},
			"flow q trigger on signal c"},
		{"hidden-feedback-loop",
			loop("home"),
			loop("search"),
			"model rec v1 → endpoint home → source plays → feature plays_1d → model rec"},
		{"shared-feature-entanglement",
			Snapshot{Models: []ModelDef{trained("a", store.ModelProduction, "plays_1d@1"), trained("b", store.ModelShadow, "plays_1d@1")}},
			Snapshot{Models: []ModelDef{trained("a", store.ModelProduction, "plays_1d@1"), trained("b", store.ModelRegistered, "plays_1d@1")}},
			"feature plays_1d@1 used by models a v1, b v1"},
		{"responds-to-unknown-endpoint",
			loop("search"),
			loop("home"),
			"source plays responds to endpoint search"},
	}
	tested := map[string]bool{}
	for _, c := range cases {
		tested[c.rule] = true
		r := rule(t, c.rule)
		if got := r.check(&c.fires); !slices.Contains(got, c.item) {
			t.Errorf("%s: fired on %v, want %q", c.rule, got, c.item)
		}
		if got := r.check(&c.not); len(got) != 0 {
			t.Errorf("%s: fired on %v, want nothing", c.rule, got)
		}
	}
	for _, r := range Rules() {
		if !tested[r.ID] {
			t.Errorf("rule %s has no test case", r.ID)
		}
	}
}

// TestContractRecordedCountsAsPublished: a signal published from outside
// the flows (recorded in the store) has a publisher.
func TestContractRecordedCountsAsPublished(t *testing.T) {
	t.Parallel()
	s := Snapshot{Contracts: signal.Contracts{"c": {Name: "c"}}, Observed: map[string]SignalStat{"c": {Count: 3}}}
	if got := contractWithoutPublisher(&s); len(got) != 0 {
		t.Fatalf("fired on %v", got)
	}
}

const loopFeaturesYAML = `
entities:
  - {name: member, key: member_id}
sources:
  - name: plays
    entity: member
    timestamp: ts
    fields: {minutes: float}
    responds_to: [home, browse, rank]
  - name: ratings
    entity: member
    timestamp: ts
    fields: {stars: float}
    responds_to: [gone]
features:
  - {name: plays_1d, source: plays, aggregate: count, window: 1d}
  - {name: minutes_7d, source: plays, aggregate: sum, field: minutes, window: 7d}
  - {name: stars_7d, source: ratings, aggregate: avg, field: stars, window: 7d}
`

const rankTrainYAML = `
name: rank-train
steps:
  - name: build
    training_set: {labels: labels.csv, features: [minutes_7d], out: train.csv}
  - name: fit
    needs: [build]
    run: echo fit
`

// loopFixture is a real store where models train on features of sources
// that respond to the endpoints serving them, or not:
//
//   - rec (production, served by home) records plays and ratings features;
//     plays responds to home (a loop), ratings only to an endpoint that
//     was never applied (none);
//   - other (production, served by browse) records a ratings feature
//     only: plays responds to browse, but other does not train on it;
//   - ranker (canary, served by rank) records no feature versions, only
//     a training set built by a training_set step of minutes_7d: a loop
//     through the training set's features;
//   - idle (registered, serving nothing) records plays_1d, which no
//     other serving model shares.
func loopFixture(t *testing.T) store.Store {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "b.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := catalog.Apply(ctx, st, []catalog.Document{catalog.FileDocument(filepath.Join(dir, "rank-train.yaml"), []byte(rankTrainYAML))}); err != nil {
		t.Fatal(err)
	}
	defs, err := feature.Parse("features.yaml", []byte(loopFeaturesYAML))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := feature.Apply(ctx, st, "features.yaml", defs); err != nil {
		t.Fatal(err)
	}
	run, err := st.CreateRun(ctx, store.NewRun{Flow: "rank-train", FlowVersion: 1, Trigger: store.TriggerManual})
	if err != nil {
		t.Fatal(err)
	}
	lineage := func(l registry.Lineage) json.RawMessage {
		b, _ := json.Marshal(l)
		return b
	}
	for _, m := range []struct {
		model string
		lin   registry.Lineage
		to    []store.ModelState
	}{
		{"rec", registry.Lineage{Flow: "train", FeatureVersions: []string{"minutes_7d@1", "plays_1d@1", "stars_7d@1"}}, []store.ModelState{store.ModelProduction}},
		{"other", registry.Lineage{Flow: "train", FeatureVersions: []string{"stars_7d@1"}}, []store.ModelState{store.ModelProduction}},
		{"ranker", registry.Lineage{RunID: run.ID, Flow: "rank-train", FlowVersion: 1, Step: "fit", TrainingSet: fmt.Sprintf("%d/build/train.csv", run.ID)}, []store.ModelState{store.ModelCanary}},
		{"idle", registry.Lineage{Flow: "train", FeatureVersions: []string{"plays_1d@1"}}, nil},
	} {
		v, err := st.CreateModelVersion(ctx, store.ModelVersion{Model: m.model, Artifact: "1/fit/model.json", Flow: m.lin.Flow, Lineage: lineage(m.lin)}, "ci", "test")
		if err != nil {
			t.Fatal(err)
		}
		for _, to := range m.to {
			if v, err = st.TransitionModel(ctx, store.ModelTransition{Model: m.model, Version: v.Version, From: v.State, To: to, Actor: "ada", Reason: "test"}, true); err != nil {
				t.Fatal(err)
			}
		}
	}
	var eps []serve.Endpoint
	for ep, model := range map[string]string{"home": "rec", "browse": "other", "rank": "ranker"} {
		eps = append(eps, serve.Endpoint{Name: ep, Model: model, Fallback: serve.Fallback{Static: 0.0}})
	}
	if _, err := serve.Apply(ctx, st, eps); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestLoopAndEntanglementFromLineage reads the loops and the shared
// features from a real store's applied definitions and recorded lineage.
func TestLoopAndEntanglementFromLineage(t *testing.T) {
	t.Parallel()
	s, err := Load(context.Background(), loopFixture(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	items := func(id string) []string { return rule(t, id).check(s) }
	want := []string{
		"model ranker v1 → endpoint rank → source plays → feature minutes_7d → model ranker",
		"model rec v1 → endpoint home → source plays → features minutes_7d, plays_1d → model rec",
	}
	if got := items("hidden-feedback-loop"); !slices.Equal(got, want) {
		t.Errorf("hidden-feedback-loop fired on\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	want = []string{
		"feature minutes_7d used by models ranker v1, rec v1",
		"feature stars_7d@1 used by models other v1, rec v1",
	}
	if got := items("shared-feature-entanglement"); !slices.Equal(got, want) {
		t.Errorf("shared-feature-entanglement fired on\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got, want := items("responds-to-unknown-endpoint"), []string{"source ratings responds to endpoint gone"}; !slices.Equal(got, want) {
		t.Errorf("responds-to-unknown-endpoint fired on %v, want %v", got, want)
	}
	var d strings.Builder
	for _, f := range Findings(s) {
		fmt.Fprintf(&d, "%s | %s | %s\n", f.Severity, f.Rule, f.Item)
	}
	wantIn(t, "findings", d.String(), "high | hidden-feedback-loop | model rec v1", "medium | shared-feature-entanglement | feature stars_7d@1")
}
