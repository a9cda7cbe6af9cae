package experiment

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/store/sqlite"
)

func openStore(t testing.TB) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "b.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func ab(name string, w ...float64) Spec {
	s := Spec{Name: name}
	for i, x := range w {
		s.Variants = append(s.Variants, Variant{Name: fmt.Sprintf("v%d", i), Weight: x})
	}
	return s
}

func assigners(t testing.TB, st store.Store) map[string]*Assigner {
	t.Helper()
	ls, err := Load(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	out, err := NewAssigners(ls)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// chiSquareP is the goodness-of-fit p-value of counts against shares.
func chiSquareP(counts []float64, shares []float64) float64 {
	n := 0.0
	for _, c := range counts {
		n += c
	}
	chi := 0.0
	for i, c := range counts {
		e := shares[i] * n
		chi += (c - e) * (c - e) / e
	}
	return 1 - distuv.ChiSquared{K: float64(len(counts) - 1)}.CDF(chi)
}

func TestAllocationUniformAndSticky(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openStore(t)
	if _, err := Apply(ctx, st, []Spec{ab("x", 0.5, 0.3, 0.2)}); err != nil {
		t.Fatal(err)
	}
	a := assigners(t, st)["x"]
	counts := make([]float64, 3)
	first := map[string]string{}
	for i := range 100_000 {
		u := fmt.Sprintf("unit-%d", i)
		as := a.Assign(u, nil)
		if !as.In {
			t.Fatalf("%s not in: %+v", u, as)
		}
		counts[as.Variant[1]-'0']++
		first[u] = as.Variant
	}
	if p := chiSquareP(counts, []float64{0.5, 0.3, 0.2}); p < 0.001 {
		t.Fatalf("allocation not as weighted: %v, p = %g", counts, p)
	}
	// Sticky: a fresh assigner (another process, a restart) agrees.
	b := assigners(t, st)["x"]
	for i := range 1000 {
		u := fmt.Sprintf("unit-%d", i)
		if got := b.Assign(u, nil).Variant; got != first[u] {
			t.Fatalf("%s moved from %s to %s", u, first[u], got)
		}
	}
	// New weights: a new allocation version re-randomizes.
	out, err := Apply(ctx, st, []Spec{ab("x", 0.5, 0.25, 0.25)})
	if err != nil || out[0].Version != 2 {
		t.Fatalf("reweight: %+v %v", out, err)
	}
	c := assigners(t, st)["x"]
	moved := 0
	for i := range 10_000 {
		u := fmt.Sprintf("unit-%d", i)
		if c.Assign(u, nil).Variant != first[u] {
			moved++
		}
	}
	// Independent draws from 0.5/0.3/0.2 and 0.5/0.25/0.25 differ about
	// 63% of the time.
	if moved < 5500 || moved > 7000 {
		t.Fatalf("%d of 10000 units moved after re-randomization", moved)
	}
	// A change that keeps the allocation keeps the version.
	s := ab("x", 0.5, 0.25, 0.25)
	s.Metrics = []string{"minutes"}
	if out, _ := Apply(ctx, st, []Spec{s}); out[0].Version != 2 {
		t.Fatalf("non-allocation change bumped the version: %+v", out)
	}
}

func TestLayersExcludeAndOrthogonal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openStore(t)
	e1, e2, e3 := ab("e1", 0.5, 0.5), ab("e2", 0.5, 0.5), ab("e3", 0.5, 0.5)
	e1.Layer, e1.Holdout, e1.Traffic = "ranking", 0.1, 0.4
	e2.Layer, e2.Holdout, e2.Traffic = "ranking", 0.1, 0.5
	e3.Layer = "ui"
	if _, err := Apply(ctx, st, []Spec{e1, e2, e3}); err != nil {
		t.Fatal(err)
	}
	as := assigners(t, st)
	var in1, in2, held, both float64
	cross := [2][2]float64{}
	const n = 100_000
	for i := range n {
		u := fmt.Sprintf("u%d", i)
		a1, a2, a3 := as["e1"].Assign(u, nil), as["e2"].Assign(u, nil), as["e3"].Assign(u, nil)
		if a1.In && a2.In {
			both++
		}
		if a1.In {
			in1++
		}
		if a2.In {
			in2++
		}
		if a1.Why == "holdout" {
			held++
			if a2.Why != "holdout" {
				t.Fatalf("%s held out of e1 but not e2", u)
			}
		}
		if a1.In {
			cross[a1.Variant[1]-'0'][a3.Variant[1]-'0']++
		}
	}
	if both != 0 {
		t.Fatalf("%g units in two experiments of one layer", both)
	}
	for _, c := range []struct {
		got, want float64
	}{{held / n, 0.1}, {in1 / n, 0.4}, {in2 / n, 0.5}} {
		if math.Abs(c.got-c.want) > 0.01 {
			t.Fatalf("share %g, want %g", c.got, c.want)
		}
	}
	// Orthogonal layers: e1's and e3's variants are independent.
	rows := []float64{cross[0][0] + cross[0][1], cross[1][0] + cross[1][1]}
	cols := []float64{cross[0][0] + cross[1][0], cross[0][1] + cross[1][1]}
	chi := 0.0
	for i := range 2 {
		for j := range 2 {
			e := rows[i] * cols[j] / in1
			chi += (cross[i][j] - e) * (cross[i][j] - e) / e
		}
	}
	if p := 1 - (distuv.ChiSquared{K: 1}).CDF(chi); p < 0.001 {
		t.Fatalf("layers not orthogonal: %v p=%g", cross, p)
	}
	// A third experiment that does not fit in the layer is refused, naming
	// what is taken; nothing is stored.
	e4 := ab("e4", 0.5, 0.5)
	e4.Layer, e4.Holdout, e4.Traffic = "ranking", 0.1, 0.2
	_, err := Apply(ctx, st, []Spec{e4})
	if err == nil || !strings.Contains(err.Error(), "layer ranking has no free 20.00% left") || !strings.Contains(err.Error(), "e1 40.00%") {
		t.Fatalf("overlap: %v", err)
	}
	if ls, _ := Load(ctx, st); len(ls) != 3 {
		t.Fatalf("%d experiments stored", len(ls))
	}
	e5 := ab("e5", 0.5, 0.5)
	e5.Layer, e5.Holdout, e5.Traffic = "ranking", 0.2, 0.1
	if _, err := Apply(ctx, st, []Spec{e5}); err == nil || !strings.Contains(err.Error(), "layer ranking has holdout 0.1") {
		t.Fatalf("holdout mismatch: %v", err)
	}
	// A stopped experiment gives its buckets back: e4 fits once e1 stops.
	if _, err := SetStatus(ctx, st, "e1", store.ExperimentStopped, "done"); err != nil {
		t.Fatal(err)
	}
	if _, err := Apply(ctx, st, []Spec{e4}); err != nil {
		t.Fatalf("after e1 stopped: %v", err)
	}
}

func TestTargetingAndPause(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openStore(t)
	s := ab("t", 0.5, 0.5)
	s.Targeting = `attrs.market in ["US", "CA"]`
	s.Variants[1].ModelVersion = 7
	if _, err := Apply(ctx, st, []Spec{s}); err != nil {
		t.Fatal(err)
	}
	a := assigners(t, st)["t"]
	if as := a.Assign("u1", map[string]any{"market": "BR"}); as.In || as.Why != "not_targeted" || as.Variant != "v0" {
		t.Fatalf("BR: %+v", as)
	}
	if as := a.Assign("u1", nil); as.In {
		t.Fatalf("no attributes: %+v", as)
	}
	seen7 := false
	for i := range 100 {
		as := a.Assign(fmt.Sprint(i), map[string]any{"market": "US"})
		if !as.In {
			t.Fatalf("US: %+v", as)
		}
		seen7 = seen7 || as.ModelVersion == 7
	}
	if !seen7 {
		t.Fatal("no unit got the treatment's model version")
	}
	if _, err := st.SetExperimentStatus(ctx, "t", []store.ExperimentStatus{store.ExperimentRunning}, store.ExperimentPaused, "test"); err != nil {
		t.Fatal(err)
	}
	p := assigners(t, st)["t"]
	for i := range 100 {
		if as := p.Assign(fmt.Sprint(i), map[string]any{"market": "US"}); as.In || as.Variant != "v0" || as.Why != string(store.ExperimentPaused) {
			t.Fatalf("paused: %+v", as)
		}
	}
}

func TestBadSpecs(t *testing.T) {
	t.Parallel()
	bad := ab("x", 0.6, 0.6)
	bad.Guardrails = []Guardrail{{Metric: "errors", Direction: "up"}}
	bad.Targeting = "attrs.market ==="
	bad.Control = "nope"
	msg := bad.Problems("experiments[0]").Error()
	for _, want := range []string{"the weights sum to 1.2, not 1", `guardrails[0].direction: "up"`, "targeting: CEL", `control: "nope" is not one of the variants`} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
}

// BenchmarkAssign is the per-request cost of placing a unit: without
// targeting (target: under 1 µs and no allocation), and with a CEL
// targeting rule over the request's attributes, the path an endpoint's
// targeted experiment takes (half the units' markets match). The targeted
// run fails unless both outcomes occur, so it measures the rule's
// evaluation, not a short cut around it.
func BenchmarkAssign(b *testing.B) {
	for _, tc := range []struct {
		name, targeting string
	}{
		{"untargeted", ""},
		{"targeted", `attrs.market in ["US", "CA"]`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			st := openStore(b)
			s := ab("x", 0.5, 0.5)
			s.Layer, s.Holdout, s.Traffic, s.Targeting = "l", 0.05, 0.9, tc.targeting
			if _, err := Apply(context.Background(), st, []Spec{s}); err != nil {
				b.Fatal(err)
			}
			a := assigners(b, st)["x"]
			units := make([]string, 1024)
			attrs := make([]map[string]any, 1024)
			markets := []string{"US", "DE", "CA", "FR"}
			for i := range units {
				units[i] = fmt.Sprintf("member-%d", i*7919)
				if tc.targeting != "" {
					attrs[i] = map[string]any{"market": markets[i%4], "plan": "premium"}
				}
			}
			in, out := 0, 0 // targeted in, and left out by the rule
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				as := a.Assign(units[i&1023], attrs[i&1023])
				if as.In {
					in++
				} else if as.Why == "not_targeted" {
					out++
				}
				i++
			}
			if tc.targeting != "" && (in == 0 || out == 0) {
				b.Fatalf("the targeting rule did not decide both ways: %d in, %d left out", in, out)
			}
		})
	}
}

func TestExampleExperiments(t *testing.T) {
	t.Parallel()
	specs, err := ParseFile("../../examples/experiments/experiments.yaml")
	if err != nil || len(specs) != 1 || specs[0].Interval.D().Minutes() != 5 {
		t.Fatalf("example: %+v %v", specs, err)
	}
	ctx := context.Background()
	st := openStore(t)
	// The example names endpoint churn and versions 1 and 2 of its model.
	if _, err := Apply(ctx, st, specs); err == nil || !strings.Contains(err.Error(), `endpoint "churn" is not applied`) {
		t.Fatalf("dangling endpoint: %v", err)
	}
	putEndpoint(t, st, "churn", "churn", 2)
	if _, err := Apply(ctx, st, specs); err != nil {
		t.Fatal(err)
	}
}

// putEndpoint stores an endpoint serving model, with versions 1..n.
func putEndpoint(t testing.TB, st store.Store, name, model string, n int) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		if _, err := st.CreateModelVersion(ctx, store.ModelVersion{Model: model, Artifact: "1/fit/model.json", Digest: fmt.Sprint(i), RunID: 1}, "t", "test"); err != nil {
			t.Fatal(err)
		}
	}
	spec := fmt.Sprintf(`{"name":%q,"model":%q,"fallback":{"static":0}}`, name, model)
	if _, _, err := st.PutEndpoint(ctx, store.Endpoint{Name: name, Spec: []byte(spec), Digest: name}); err != nil {
		t.Fatal(err)
	}
}

// TestAssignWhyOut: a unit outside an experiment's range is said to be in
// another experiment only when one of the layer's experiments has its
// bucket, and that one is named; otherwise it is outside the traffic.
// Before, every such unit read other_experiment, also in a layer of one.
func TestAssignWhyOut(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openStore(t)
	alone := ab("alone", 0.5, 0.5)
	alone.Holdout, alone.Traffic = 0.1, 0.3
	a1, a2 := ab("a1", 0.5, 0.5), ab("a2", 0.5, 0.5)
	a1.Layer, a2.Layer, a1.Traffic, a2.Traffic = "shared", "shared", 0.4, 0.4
	if _, err := Apply(ctx, st, []Spec{alone, a1, a2}); err != nil {
		t.Fatal(err)
	}
	as := assigners(t, st)
	counts := map[string]int{}
	for i := range 3000 {
		u := fmt.Sprint("u", i)
		x := as["alone"].Assign(u, nil)
		if x.Why == WhyOtherExperiment {
			t.Fatalf("alone in its layer, yet %s is said to be in another experiment: %+v", u, x)
		}
		counts["alone/"+x.Why]++
		y := as["a1"].Assign(u, nil)
		switch {
		case y.Bucket >= 4000 && y.Bucket < 8000:
			if y.Why != WhyOtherExperiment || y.Other != "a2" {
				t.Fatalf("bucket %d is a2's: %+v", y.Bucket, y)
			}
		case y.Bucket >= 8000:
			if y.Why != WhyUnallocated || y.Other != "" {
				t.Fatalf("bucket %d is no one's: %+v", y.Bucket, y)
			}
		}
		counts["a1/"+y.Why]++
	}
	if counts["alone/"+WhyUnallocated] == 0 || counts["alone/"+WhyHoldout] == 0 || counts["a1/"+WhyOtherExperiment] == 0 || counts["a1/"+WhyUnallocated] == 0 {
		t.Fatalf("reasons: %v", counts)
	}
}

// A condition that loops over request data keeps the cost limit even
// though constant conditions run without the tracker: a request cannot
// make targeting expensive. Over 2,000 items the nested loop costs
// millions and is cut off (no match); over 2 it matches.
func TestTargetingCostLimitOnRequestData(t *testing.T) {
	tg, err := compileTargeting(`attrs.l.all(a, attrs.l.all(b, true))`)
	if err != nil {
		t.Fatal(err)
	}
	if !tg.Match(map[string]any{"l": []any{1, 2}}) {
		t.Fatal("a small list does not match")
	}
	big := make([]any, 2000)
	for i := range big {
		big[i] = i
	}
	if tg.Match(map[string]any{"l": big}) {
		t.Fatal("a request's 2,000 items ran a nested loop past the cost limit")
	}
	c, err := compileTargeting(`attrs.market in ["US", "CA"]`)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Match(map[string]any{"market": "CA"}) || c.Match(map[string]any{"market": "DE"}) || c.Match(nil) {
		t.Fatal("a constant condition decides wrongly")
	}
}
