package registry_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/baton-ml/baton/internal/catalog"
	"github.com/baton-ml/baton/internal/home"
	"github.com/baton-ml/baton/internal/registry"
	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/sdk"
)

// seed runs a flow that trains a "model" and returns the opened store.
func seed(t *testing.T) store.Store {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	f := &sdk.Flow{Name: "train", Params: []sdk.Param{{Name: "lr", Type: "float", Default: 0.1}}, Steps: []sdk.Step{
		{Name: "build", Run: func(ctx context.Context, t *sdk.Task) error {
			return t.Output(ctx, "train.csv", []byte("member_id,ts,y\n"))
		}},
		{Name: "fit", Needs: []string{"build"}, Run: func(ctx context.Context, t *sdk.Task) error {
			return t.OutputJSON(ctx, "model.json", map[string]float64{"w": 0.5})
		}},
	}}
	if _, err := sdk.Run(ctx, f, sdk.Options{Home: dir}); err != nil {
		t.Fatal(err)
	}
	h, err := home.Resolve(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	st, err := h.OpenStore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestRegisterWithLineage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := seed(t)
	r := registry.New(st)
	v, err := r.Register(ctx, registry.Register{Model: "churn", Artifact: "1/fit/model.json", TrainingSet: "1/build/train.csv",
		Metrics: map[string]float64{"auc": 0.81}, Tags: map[string]string{"team": "growth"}, Actor: "ann"})
	if err != nil {
		t.Fatal(err)
	}
	if v.Version != 1 || v.State != store.ModelRegistered || v.Flow != "train" || v.FlowVersion != 1 || v.RunID != 1 || v.Size == 0 {
		t.Fatalf("version: %+v", v)
	}
	var lin registry.Lineage
	if err := json.Unmarshal(v.Lineage, &lin); err != nil || lin.TrainingSet != "1/build/train.csv" || lin.TrainingSetDigest == "" ||
		lin.Step != "fit" || string(lin.Params["lr"]) != "0.1" {
		t.Fatalf("lineage: %s %v", v.Lineage, err)
	}
	// A missing artifact fails clearly and registers nothing.
	_, err = r.Register(ctx, registry.Register{Model: "churn", Artifact: "1/fit/nope.json", Actor: "ann"})
	if !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), `no artifact "nope.json" (it has: model.json)`) {
		t.Fatalf("missing artifact: %v", err)
	}
	var ie *registry.InputError
	if _, err := r.Register(ctx, registry.Register{Model: "Bad Name", Artifact: "1/fit/model.json"}); !errors.As(err, &ie) {
		t.Fatalf("bad name: %v", err)
	}
	if _, err := r.Register(ctx, registry.Register{Model: "churn", Artifact: "fit/model.json"}); !errors.As(err, &ie) {
		t.Fatalf("bad path: %v", err)
	}
	if vs, _ := st.ModelVersions(ctx, "churn"); len(vs) != 1 {
		t.Fatalf("a failed registration stored something: %d versions", len(vs))
	}
}

// TestEveryTransition walks the whole lifecycle matrix: each legal move is
// made and recorded, each illegal one refused with the legal ones named.
func TestEveryTransition(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := seed(t)
	r := registry.New(st)
	// reach puts a fresh version in state s through legal moves.
	reach := func(s store.ModelState) store.ModelVersion {
		v, err := r.Register(ctx, registry.Register{Model: "m", Artifact: "1/fit/model.json", Actor: "t"})
		if err != nil {
			t.Fatal(err)
		}
		path := map[store.ModelState][]store.ModelState{
			store.ModelRegistered: nil,
			store.ModelShadow:     {store.ModelShadow},
			store.ModelCanary:     {store.ModelCanary},
			store.ModelProduction: {store.ModelCanary, store.ModelProduction},
			store.ModelArchived:   {store.ModelArchived},
		}[s]
		for _, to := range path {
			if v, err = r.Transition(ctx, "m", v.Version, to, "t", "setup", nil); err != nil {
				t.Fatalf("reach %s: %v", s, err)
			}
		}
		return v
	}
	for _, from := range registry.States {
		for _, to := range registry.States {
			v := reach(from)
			_, err := r.Transition(ctx, "m", v.Version, to, "ann", "test "+string(from)+"→"+string(to), nil)
			if slices.Contains(registry.Legal(from), to) {
				if err != nil {
					t.Errorf("%s → %s refused: %v", from, to, err)
					continue
				}
				trs, _ := st.ModelTransitions(ctx, "m", v.Version)
				last := trs[len(trs)-1]
				if last.From != from || last.To != to || last.Actor != "ann" || last.Reason != "test "+string(from)+"→"+string(to) || last.At.IsZero() {
					t.Errorf("%s → %s recorded as %+v", from, to, last)
				}
			} else if !errors.Is(err, registry.ErrIllegal) || !strings.Contains(err.Error(), "cannot go to "+string(to)) {
				t.Errorf("%s → %s: %v", from, to, err)
			}
		}
	}
	// The example of the issue: archived straight to production.
	v := reach(store.ModelArchived)
	if _, err := r.Transition(ctx, "m", v.Version, store.ModelProduction, "ann", "yolo", nil); !errors.Is(err, registry.ErrIllegal) {
		t.Fatalf("archived → production: %v", err)
	}
}

func TestProductionReplacesAndDecisionRecord(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := seed(t)
	r := registry.New(st)
	for range 2 {
		if _, err := r.Register(ctx, registry.Register{Model: "m", Artifact: "1/fit/model.json", Actor: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	d, err := registry.ParseDecision([]byte(`{"alternatives_considered":"GBM, logistic","dataset_characteristics":"90 days of plays","fairness_tradeoffs":"equal recall across markets",
		"expected_lifetime":"90d","retraining_triggers":"PSI > 0.2","explainability":"SHAP","regulatory_rationale":"no personal data"}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, ver := range []int{1, 2} {
		for _, to := range []store.ModelState{store.ModelCanary, store.ModelProduction} {
			if _, err := r.Transition(ctx, "m", ver, to, "ann", "promote", d); err != nil {
				t.Fatal(err)
			}
		}
	}
	v1, _ := st.ModelVersion(ctx, "m", 1)
	if v1.State != store.ModelArchived {
		t.Fatalf("v1 is %s after v2 went to production", v1.State)
	}
	got, err := r.Resolve(ctx, "m", "production")
	if err != nil || got.Version != 2 {
		t.Fatalf("resolve production: %+v %v", got, err)
	}
	trs, _ := st.ModelTransitions(ctx, "m", 2)
	var rec registry.Decision
	if err := json.Unmarshal(trs[len(trs)-1].Decision, &rec); err != nil || rec.ExpectedLifetime != "90d" || rec.RegulatoryRationale == "" {
		t.Fatalf("decision: %s %v", trs[len(trs)-1].Decision, err)
	}
	if _, err := registry.ParseDecision([]byte(`{"expected_lifetme":"1y"}`)); err == nil || !strings.Contains(err.Error(), "expected_lifetme") {
		t.Fatalf("misspelt field: %v", err)
	}
	var ie *registry.InputError
	if _, err := r.Transition(ctx, "m", 2, store.ModelArchived, "ann", "", nil); !errors.As(err, &ie) {
		t.Fatalf("no reason: %v", err)
	}
	if err := st.SetModelAlias(ctx, "m", "champion", 2); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.Resolve(ctx, "m", "champion"); got.Version != 2 {
		t.Fatalf("alias: %+v", got)
	}
}

func TestRegisterAndPublish(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := seed(t)
	if _, err := catalog.Apply(ctx, st, []catalog.Document{{Path: "signals.yaml", Data: []byte(`signals:
  - name: model_trained
    params:
      model: {type: string, required: true}
      version: {type: string, required: true}
      run_id: {type: int}
      metrics: {type: json}
`)}}); err != nil {
		t.Fatal(err)
	}
	r := registry.New(st)
	quiet, err := r.RegisterAndPublish(ctx, registry.Register{Model: "churn", Artifact: "1/fit/model.json", Actor: "ann"}, false)
	if err != nil || quiet.Signal != nil || quiet.Version.Version != 1 {
		t.Fatalf("without publish: %+v, %v", quiet, err)
	}
	got, err := r.RegisterAndPublish(ctx, registry.Register{Model: "churn", Artifact: "1/fit/model.json", Actor: "ann",
		Metrics: map[string]float64{"auc": 0.8}}, true)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version.Version != 2 || got.Signal == nil || got.Signal.Name != "model_trained" || got.Signal.ID != "model_trained/churn/2" {
		t.Fatalf("with publish: %+v", got)
	}
	sigs, err := st.Signals(ctx, store.SignalFilter{Name: "model_trained", Limit: 10})
	if err != nil || len(sigs) != 1 || string(sigs[0].Params["version"]) != `"2"` {
		t.Fatalf("stored signals: %+v, %v", sigs, err)
	}
	// Publishing the same version again is the same signal, not a second one.
	if _, err := r.PublishTrained(ctx, got.Version); err != nil {
		t.Fatal(err)
	}
	if sigs, _ := st.Signals(ctx, store.SignalFilter{Name: "model_trained", Limit: 10}); len(sigs) != 1 {
		t.Fatalf("republished: %d signals", len(sigs))
	}
}
