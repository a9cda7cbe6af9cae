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

	"github.com/baton-ml/baton/internal/registry"
	"github.com/baton-ml/baton/internal/store"
)

// TestPromoteWinner: a treatment that wins on the first metric is promoted
// through the registry (registered → canary → production), the decision
// record citing the experiment; a loser is refused unless forced.
func TestPromoteWinner(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openStore(t)
	for i := range 2 {
		if _, err := st.CreateModelVersion(ctx, store.ModelVersion{Model: "churn", Artifact: "1/fit/model.json", Digest: fmt.Sprint(i), RunID: 1}, "t", "test"); err != nil {
			t.Fatal(err)
		}
	}
	s := ab("win", 0.5, 0.5)
	s.Variants[0].ModelVersion, s.Variants[1].ModelVersion = 1, 2
	s.Metrics = []string{"minutes"}
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
		exps = append(exps, store.Exposure{Experiment: "win", Version: as.Version, Unit: u, Variant: as.Variant, At: now})
		m := 60 + 5*rng.NormFloat64()
		if as.Variant == "v1" {
			m += 3
		}
		evs = append(evs, store.MetricEvent{Experiment: "win", Unit: u, Metric: "minutes", Value: m, At: now})
	}
	if _, err := st.AddExposures(ctx, exps); err != nil {
		t.Fatal(err)
	}
	if err := st.AddMetricEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	l, _ := Find(ctx, st, "win")
	// The control did not win; promoting it is refused.
	var ie *registry.InputError
	if _, _, err := Promote(ctx, st, l, "v0", "churn", "increase", "ann", false, now); !errors.As(err, &ie) || !strings.Contains(err.Error(), "has not won") {
		t.Fatalf("loser: %v", err)
	}
	v, rep, err := Promote(ctx, st, l, "v1", "churn", "increase", "ann", false, now)
	if err != nil || v.State != store.ModelProduction || v.Version != 2 {
		t.Fatalf("winner: %+v %v", v, err)
	}
	if !rep.Metrics[0].Comparisons[0].Significant {
		t.Fatalf("report: %+v", rep.Metrics[0])
	}
	trs, _ := st.ModelTransitions(ctx, "churn", 2)
	last := trs[len(trs)-1]
	var d registry.Decision
	if err := json.Unmarshal(last.Decision, &d); err != nil || !strings.Contains(last.Reason, "won experiment win on minutes") ||
		!strings.Contains(d.Explainability, `"p_value"`) || !strings.Contains(d.DatasetCharacteristics, "units exposed") || trs[len(trs)-2].To != store.ModelCanary {
		t.Fatalf("transition: %+v %+v", last, d)
	}
}
