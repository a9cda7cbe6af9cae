package experiment

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/store"
)

type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// simulate exposes n new units through the assigner and records one
// observation of metric each: Normal(mean, sd), times (1 + harm) for the
// treatment.
func simulate(t *testing.T, st store.Store, a *Assigner, rng *rand.Rand, from, n int, metric string, mean, sd, harm float64, at time.Time) {
	t.Helper()
	var exps []store.Exposure
	var evs []store.MetricEvent
	for i := from; i < from+n; i++ {
		u := fmt.Sprintf("u%d", i)
		as := a.Assign(u, nil)
		if !as.In {
			continue
		}
		exps = append(exps, store.Exposure{Experiment: as.Experiment, Version: as.Version, Unit: u, Variant: as.Variant, At: at})
		x := mean + sd*rng.NormFloat64()
		if as.Variant != a.Spec().Control {
			x *= 1 + harm
		}
		evs = append(evs, store.MetricEvent{Experiment: as.Experiment, Unit: u, Metric: metric, Value: x, At: at})
	}
	ctx := context.Background()
	if _, err := st.AddExposures(ctx, exps); err != nil {
		t.Fatal(err)
	}
	if err := st.AddMetricEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
}

// TestGuardrailPausesWithinOneInterval injects a 1% degradation of a
// guardrail metric (a tolerance of 0.5%) and checks that the monitor
// pauses the experiment at the first evaluation, publishes
// experiment_paused and calls the webhook; a healthy treatment is never
// paused through many evaluations.
func TestGuardrailPausesWithinOneInterval(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var hooks []map[string]any
	var mu sync.Mutex
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		mu.Lock()
		hooks = append(hooks, m)
		mu.Unlock()
	}))
	t.Cleanup(hook.Close)
	for _, c := range []struct {
		name  string
		harm  float64
		pause bool
	}{{"harmful", 0.01, true}, {"healthy", 0, false}} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			st := openStore(t)
			s := ab("exp", 0.5, 0.5)
			s.Guardrails = []Guardrail{{Metric: "latency", Direction: "increase"}}
			s.Metrics = []string{"latency"}
			s.Interval = Duration(5 * time.Minute)
			s.Webhook = hook.URL
			if _, err := Apply(ctx, st, []Spec{s}); err != nil {
				t.Fatal(err)
			}
			clk := &fakeClock{}
			clk.ns.Store(time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC).UnixNano())
			var sigs []string
			m := NewMonitor(st, clk.now, func(_ context.Context, name, id string, params map[string]any) error {
				b, _ := json.Marshal(params)
				sigs = append(sigs, name+" "+string(b))
				return nil
			}, nil)
			if p, _ := m.Tick(ctx); len(p) != 0 {
				t.Fatal("the first sight paused")
			}
			a := assigners(t, st)["exp"]
			rng := rand.New(rand.NewPCG(7, 8))
			paused := -1
			// The race detector slows the store twentyfold: a healthy run
			// is watched for three intervals, which is enough to show it
			// is left alone.
			for interval := range 3 {
				// One interval of traffic: 20,000 units.
				simulate(t, st, a, rng, interval*20_000, 20_000, "latency", 100, 5, c.harm, clk.now())
				clk.advance(5 * time.Minute)
				ps, err := m.Tick(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if len(ps) > 0 {
					paused = interval
					break
				}
			}
			if !c.pause {
				if paused >= 0 {
					t.Fatalf("a healthy treatment was paused at interval %d", paused)
				}
				return
			}
			if paused != 0 {
				t.Fatalf("paused at interval %d, want the first", paused)
			}
			ls, _ := Load(ctx, st)
			if ls[0].Status != store.ExperimentPaused || !strings.Contains(ls[0].Reason, "guardrail latency") {
				t.Fatalf("experiment: %+v", ls[0])
			}
			if len(sigs) != 1 || !strings.HasPrefix(sigs[0], "experiment_paused ") {
				t.Fatalf("signals %v", sigs)
			}
			mu.Lock()
			n := len(hooks)
			mu.Unlock()
			if n != 1 || hooks[0]["experiment"] != "exp" {
				t.Fatalf("webhook calls: %v", hooks)
			}
			// Paused: every unit gets control.
			p := assigners(t, st)["exp"]
			for i := range 100 {
				if as := p.Assign(fmt.Sprint(i), nil); as.In || as.Variant != "v0" {
					t.Fatalf("after the pause: %+v", as)
				}
			}
			// The report shows it, as text and HTML with a plot.
			rep, err := BuildReport(ctx, st, ls[0], clk.now())
			if err != nil {
				t.Fatal(err)
			}
			var txt, html bytes.Buffer
			rep.Text(&txt)
			if err := rep.HTML(&html); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(txt.String(), "latency (guardrail)") || !strings.Contains(txt.String(), "significant") ||
				!strings.Contains(html.String(), "<svg") || !strings.Contains(html.String(), "<polyline") {
				t.Fatalf("report:\n%s", txt.String())
			}
		})
	}
}

// TestGuardrailClockSurvivesRestart: the guardrail clock is in the store,
// so a monitor that replaces another (a restart, a new leader) evaluates
// at the interval the first one started, not an interval after its own
// first sight, nor at once. Before, every new monitor started the clock
// over, so restarts more often than the interval meant guardrails never
// ran.
func TestGuardrailClockSurvivesRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openStore(t)
	s := ab("exp", 0.5, 0.5)
	s.Guardrails = []Guardrail{{Metric: "latency", Direction: "increase"}}
	s.Interval = Duration(5 * time.Minute)
	if _, err := Apply(ctx, st, []Spec{s}); err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{}
	clk.ns.Store(time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC).UnixNano())
	if p, err := NewMonitor(st, clk.now, nil, nil).Tick(ctx); err != nil || len(p) != 0 {
		t.Fatalf("first sight: %v %v", p, err)
	}
	start := clk.now().UnixMicro()
	simulate(t, st, assigners(t, st)["exp"], rand.New(rand.NewPCG(3, 4)), 0, 20_000, "latency", 100, 5, 0.01, clk.now())
	// A new monitor before the interval's end: the data would pause the
	// experiment, but the stored clock says the interval has not passed,
	// so it neither evaluates nor moves the clock.
	clk.advance(2 * time.Minute)
	if p, err := NewMonitor(st, clk.now, nil, nil).Tick(ctx); err != nil || len(p) != 0 {
		t.Fatalf("a new monitor evaluated before the interval's end: %v %v", p, err)
	}
	if at, _ := st.Cursor(ctx, GuardrailClock("exp")); at != start {
		t.Fatalf("clock moved to %d before the interval's end, want %d", at, start)
	}
	clk.advance(3 * time.Minute)
	// A new monitor: its first tick is the interval's end, and it pauses.
	p, err := NewMonitor(st, clk.now, nil, nil).Tick(ctx)
	if err != nil || len(p) != 1 {
		t.Fatalf("after the restart: %v %v", p, err)
	}
	if at, _ := st.Cursor(ctx, GuardrailClock("exp")); at != clk.now().UnixMicro() {
		t.Fatalf("clock %d, want %d", at, clk.now().UnixMicro())
	}
}
