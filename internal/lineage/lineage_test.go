package lineage_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/baton-ml/baton/internal/lineage"
	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/store/sqlite"
)

// A run started by a signal published outside any run used to show no
// upstream at all; a chain through a flow's signal names the signal and
// the step that published it.
func TestOfRunShowsTheStartingSignal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "baton.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, name := range []string{"etl", "train"} {
		if _, _, err := st.PutFlowVersion(ctx, store.FlowVersion{Flow: name, Digest: name,
			Spec: json.RawMessage(`{"name":"` + name + `","steps":[{"name":"a","run":"true"}]}`)}); err != nil {
			t.Fatal(err)
		}
	}
	fire := func(key, flow, sig string, source int64) int64 {
		t.Helper()
		res, err := st.FireRuns(ctx, []store.Firing{{Fire: store.Fire{Key: key, Kind: "signal", Flow: flow, SignalID: sig, SourceRun: source},
			Run: store.NewRun{Flow: flow, FlowVersion: 1, Trigger: store.TriggerSignal, TriggerDetail: sig}}})
		if err != nil {
			t.Fatal(err)
		}
		return res[0].Run.ID
	}
	// An external signal starts etl; etl's step "load" publishes one
	// that starts train.
	if _, _, err := st.PublishSignal(ctx, store.Signal{ID: "s1", Name: "raw_ready", Source: store.SignalSource{Kind: store.SourceExternal}}); err != nil {
		t.Fatal(err)
	}
	etl := fire("k1", "etl", "s1", 0)
	if _, _, err := st.PublishSignal(ctx, store.Signal{ID: "s2", Name: "features_ready",
		Source: store.SignalSource{Kind: store.SourceFlow, Flow: "etl", RunID: etl, Step: "load"}}); err != nil {
		t.Fatal(err)
	}
	train := fire("k2", "train", "s2", etl)

	l, err := lineage.OfRun(ctx, st, etl)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Upstream) != 1 || l.Upstream[0].From.ID != 0 || l.Upstream[0].SignalName != "raw_ready" ||
		l.Upstream[0].Source == nil || l.Upstream[0].Source.Kind != store.SourceExternal || l.Upstream[0].To.ID != etl {
		t.Fatalf("upstream of etl: %+v", l.Upstream)
	}
	if got := l.Upstream[0].Up(); got != "signal raw_ready s1 (published by external) -> run 1" {
		t.Fatalf("text: %q", got)
	}
	b, _ := json.Marshal(l.Upstream[0])
	if strings.Contains(string(b), `"from"`) || !strings.Contains(string(b), `"signal":"raw_ready"`) {
		t.Fatalf("json: %s", b)
	}
	if len(l.Downstream) != 1 || l.Downstream[0].To.ID != train || l.Downstream[0].SignalName != "features_ready" {
		t.Fatalf("downstream of etl: %+v", l.Downstream)
	}

	l, err = lineage.OfRun(ctx, st, train)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Upstream) != 2 || l.Upstream[0].From.ID != etl || l.Upstream[0].Source.Step != "load" || l.Upstream[1].From.ID != 0 ||
		l.Upstream[1].SignalName != "raw_ready" || l.Upstream[1].Depth != 2 {
		t.Fatalf("upstream of train: %+v", l.Upstream)
	}
	if got := l.Upstream[0].Up(); got != "run 1 (etl, step load) -[signal:features_ready s2]-> run 2" {
		t.Fatalf("text: %q", got)
	}
}
