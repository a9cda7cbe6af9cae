package archview

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/baton-ml/baton/internal/experiment"
	"github.com/baton-ml/baton/internal/feature"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/serve"
	"github.com/baton-ml/baton/internal/signal"
	"github.com/baton-ml/baton/internal/store"
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
