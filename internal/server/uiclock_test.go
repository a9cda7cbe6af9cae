package server

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/experiment"
	"github.com/baton-ml/baton/internal/store"
)

// TestUIOnTheServersClock: the web UI reads time from the server's clock,
// as its judges do. baton demo --serve keeps its server on the simulated
// clock, whose days may lie ahead of the real one: an experiment page on
// the real clock would find no exposure yet and claim that no guardrail
// is violated, beside the status its guardrail's breach set.
func TestUIOnTheServersClock(t *testing.T) {
	t.Parallel()
	now := time.Date(2100, 1, 4, 12, 0, 0, 0, time.UTC)
	h := newHarness(t, Options{Manual: true, Now: func() time.Time { return now }})
	ctx := context.Background()
	exp := []experiment.Spec{{Name: "ahead", Metrics: []string{"clicks"},
		Variants:   []experiment.Variant{{Name: "control", Weight: 0.5}, {Name: "treatment", Weight: 0.5}},
		Guardrails: []experiment.Guardrail{{Metric: "errors", Direction: "increase", MaxDegradation: 0.005}}}}
	if r := h.do(t, "POST", "/api/v1/experiments", exp, ""); r.code != 200 {
		t.Fatalf("apply: %d %s", r.code, r.body)
	}
	var exps []store.Exposure
	var evs []store.MetricEvent
	for i := range 200 {
		at := now.Add(-2*time.Hour + time.Duration(i)*30*time.Second)
		unit, variant := fmt.Sprintf("u%d", i), "control"
		if i%2 == 1 {
			variant = "treatment"
		}
		exps = append(exps, store.Exposure{Experiment: "ahead", Version: 1, Unit: unit, Variant: variant, At: at})
		evs = append(evs, store.MetricEvent{Experiment: "ahead", Unit: unit, Metric: "clicks", Value: float64(i % 5), At: at.Add(time.Second)},
			store.MetricEvent{Experiment: "ahead", Unit: unit, Metric: "errors", Value: float64(i % 2), At: at.Add(time.Second)})
	}
	if _, err := h.st.AddExposures(ctx, exps); err != nil {
		t.Fatal(err)
	}
	if err := h.st.AddMetricEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	r := h.do(t, "GET", "/experiments/ahead", nil, "")
	if r.code != 200 {
		t.Fatalf("GET /experiments/ahead: %d\n%s", r.code, r.body)
	}
	body := string(r.body)
	for _, w := range []string{`data-chart="{&#34;title&#34;:&#34;clicks: lift`, `<td>errors</td><td>treatment</td><td>0</td><td>1</td>`, "A guardrail is violated."} {
		if !strings.Contains(body, w) {
			t.Errorf("no %q in the experiment page:\n%s", w, body[strings.Index(body, "<main"):])
		}
	}
}
