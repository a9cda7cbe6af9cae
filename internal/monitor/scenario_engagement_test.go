package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/catalog"
	"github.com/baton-ml/baton/internal/store"
)

// A retrained model that came in time does not pass QS-02 when engagement
// fell meanwhile: plays per impression at a quarter of the week before is
// pending while the change is open (engagement may recover) and fails
// once its deadline has passed, with the check breached.
func TestScenarioRetrainAfterEngagementFalls(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := catalog.Apply(ctx, e.st, []catalog.Document{{Path: "signals.yaml", Data: []byte(retrainSignals)}}); err != nil {
		t.Fatal(err)
	}
	e.apply(t, retrainYAML)
	n := 0
	publish := func(name string, params map[string]any) {
		n++
		p := map[string]json.RawMessage{}
		for k, v := range params {
			p[k], _ = json.Marshal(v)
		}
		if _, _, err := e.st.PublishSignal(ctx, store.Signal{ID: fmt.Sprintf("s%d", n), Name: name, Params: p, Source: store.SignalSource{Kind: "api"}}); err != nil {
			t.Fatal(err)
		}
	}
	hour := func(h int) time.Time { return t0.Add(time.Duration(h) * time.Hour) }
	// 40 plays a day for 20 impressions before the change (days 0-1), 10
	// after it (days 2-7).
	for d := range 8 {
		perDay := 40
		if d >= 2 {
			perDay = 10
		}
		e.ingest(t, "impressions", impressions(20, hour(24*d+3)))
		e.ingest(t, "plays", plays(rand.New(rand.NewPCG(uint64(d), 1)), perDay, hour(24*d+3), 30, 0))
	}
	publish("data_landed", map[string]any{"table": "catalog", "date": "d0", "rows": 300})
	scenarioOf(t, e.evaluate(t, hour(2*24)))
	publish("data_landed", map[string]any{"table": "catalog", "date": "d2", "rows": 800})
	scenarioOf(t, e.evaluate(t, hour(2*24+1)))
	publish("model_trained", map[string]any{"model": "rec"})
	r := e.evaluate(t, hour(3*24+5))
	ev := scenarioOf(t, r)
	if len(ev.Cases) != 1 || ev.Cases[0].Response == nil {
		t.Fatalf("retrained in time: %+v", ev)
	}
	if ev.Measured == nil || *ev.Measured > 0.3 {
		t.Fatalf("engagement after the change: %v, want about 0.25", ev.Measured)
	}
	if ev.Status != ScenarioPending || r.Breached {
		t.Fatalf("engagement below target within the deadline: %s (breached %v), want pending", ev.Status, r.Breached)
	}
	// The deadline (5 days after the change) has passed.
	r = e.evaluate(t, hour(7*24+2))
	ev = scenarioOf(t, r)
	if ev.Status != ScenarioFail || !r.Breached || !r.Checks[0].Judged {
		t.Fatalf("engagement below target at the deadline: %s (breached %v), want fail: %+v", ev.Status, r.Breached, ev)
	}
}
