package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/artifact"
	"github.com/baton-ml/baton/internal/canary"
	"github.com/baton-ml/baton/internal/feature"
	"github.com/baton-ml/baton/internal/registry"
	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/store/sqlite"
	"github.com/baton-ml/baton/internal/testwait"
)

type clock struct{ ns atomic.Int64 }

func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

type published struct {
	mu  sync.Mutex
	sig []string
}

func (p *published) publish(_ context.Context, name, id string, params map[string]any) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, _ := json.Marshal(params)
	p.sig = append(p.sig, name+" "+string(b))
	return nil
}

func (p *published) list() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.sig...)
}

type fixture struct {
	st    store.Store
	blobs *artifact.Store
	svc   *Service
	clk   *clock
	pub   *published
	reg   *registry.Registry
}

// staticFeatures answers every key with x = 1.
type staticFeatures struct{}

func (staticFeatures) Values(_ context.Context, key string, names []string, _ time.Time) (map[string]any, error) {
	if key == "bad" {
		return nil, errors.New("no such key")
	}
	out := map[string]any{}
	for _, n := range names {
		out[n] = 1.0
	}
	return out, nil
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "b.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := artifact.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{st: st, blobs: blobs, clk: &clock{}, pub: &published{}, reg: registry.New(st)}
	f.clk.ns.Store(time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC).UnixNano())
	f.svc = New(Deps{Store: st, Blobs: blobs, Features: staticFeatures{}, Now: f.clk.now, Publish: f.pub.publish})
	t.Cleanup(func() { f.svc.Close(); blobs.Close(); st.Close() })
	// The endpoints read feature x: it must be in the catalog to apply.
	defs, err := feature.Parse("features.yaml", []byte(fixtureFeatures))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := feature.Apply(ctx, st, "features.yaml", defs); err != nil {
		t.Fatal(err)
	}
	return f
}

const fixtureFeatures = `entities: [{name: member, key: member_id}]
sources: [{name: plays, entity: member, timestamp: ts, fields: {minutes: float}}]
features: [{name: x, source: plays, aggregate: count, window: 1h}]
`

// version registers a model version whose artifact is spec, moved to state.
func (f *fixture) version(t *testing.T, model string, spec any, state ...store.ModelState) int {
	t.Helper()
	ctx := context.Background()
	b, _ := json.Marshal(spec)
	d, n, err := f.blobs.PutBytes(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	v, err := f.st.CreateModelVersion(ctx, store.ModelVersion{Model: model, Artifact: "1/fit/model.json", Digest: d, Size: n, RunID: 1}, "t", "test")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range state {
		if _, err := f.reg.Transition(ctx, model, v.Version, s, "t", "test", nil); err != nil {
			t.Fatal(err)
		}
	}
	return v.Version
}

func (f *fixture) endpoint(t *testing.T, e Endpoint) {
	t.Helper()
	if _, err := Apply(context.Background(), f.st, []Endpoint{e}); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func logistic(bias float64) map[string]any {
	return map[string]any{"kind": "logistic", "bias": bias, "weights": map[string]float64{"x": 0}}
}

func TestEveryPath(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	hang := make(chan struct{})
	var mode atomic.Value
	mode.Store("ok")
	ext := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Reading the body lets the server notice a client that gave up.
		_, _ = io.Copy(io.Discard, r.Body)
		switch mode.Load() {
		case "ok":
			fmt.Fprint(w, `{"prediction": 0.9, "confidence": 0.9}`)
		case "unsure":
			fmt.Fprint(w, `{"prediction": 0.55, "confidence": 0.55}`)
		case "500":
			http.Error(w, "boom", 500)
		case "garbage":
			fmt.Fprint(w, `<html>`)
		case "hang":
			select {
			case <-hang:
			case <-r.Context().Done():
			}
		}
	}))
	t.Cleanup(ext.Close)
	t.Cleanup(func() { close(hang) }) // runs first: frees a hanging handler
	f.version(t, "churn", map[string]any{"kind": "http", "url": ext.URL}, store.ModelCanary, store.ModelProduction)
	f.version(t, "popular", map[string]any{"kind": "ranking", "items": []string{"t1", "t2"}}, store.ModelCanary, store.ModelProduction)
	// 500 ms: far above a loaded machine's stall for the answering
	// cases, far below the hang.
	f.endpoint(t, Endpoint{Name: "churn", Model: "churn", Features: []string{"x"}, Timeout: Duration(500 * time.Millisecond),
		MinConfidence: 0.6, Fallback: Fallback{Model: "popular", Static: []string{"t0"}}})
	cases := []struct {
		mode, path, reason string
		prediction         string
	}{
		{"ok", PathModel, ReasonModel, "0.9"},
		{"unsure", PathFallback, ReasonLowConfidence, `["t1","t2"]`},
		{"500", PathFallback, ReasonError, `["t1","t2"]`},
		{"garbage", PathFallback, ReasonError, `["t1","t2"]`},
		{"hang", PathFallback, ReasonTimeout, `["t1","t2"]`},
	}
	for _, c := range cases {
		mode.Store(c.mode)
		start := time.Now()
		r, err := f.svc.Predict(ctx, "churn", Request{Key: "m1"})
		if err != nil {
			t.Fatalf("%s: %v", c.mode, err)
		}
		p, _ := json.Marshal(r.Prediction)
		if r.Path != c.path || r.Reason != c.reason || string(p) != c.prediction {
			t.Errorf("%s: %+v", c.mode, r)
		}
		if c.mode == "hang" && time.Since(start) > 5*time.Second {
			t.Errorf("a hanging model held the request %s", time.Since(start))
		}
		if c.path == PathFallback && (r.Model != "popular" || r.Detail == "") {
			t.Errorf("%s: fallback not recorded: %+v", c.mode, r)
		}
	}
	// No production version (one registered, not promoted): the static
	// fallback of a fresh endpoint.
	f.version(t, "nothing", logistic(0))
	f.endpoint(t, Endpoint{Name: "empty", Model: "nothing", Fallback: Fallback{Static: 0.0}})
	r, err := f.svc.Predict(ctx, "empty", Request{Key: "m1"})
	if err != nil || r.Path != PathFallback || r.Reason != ReasonNoModel || r.Prediction != 0.0 {
		t.Fatalf("no model: %+v %v", r, err)
	}
	// A failing fallback model falls back to the static value.
	f.version(t, "broken", map[string]any{"kind": "http", "url": "http://127.0.0.1:1/"}, store.ModelCanary, store.ModelProduction)
	f.endpoint(t, Endpoint{Name: "double", Model: "broken", Fallback: Fallback{Model: "broken", Static: "safe"}})
	r, _ = f.svc.Predict(ctx, "double", Request{Key: "m1"})
	if r.Path != PathFallback || r.Reason != ReasonError || r.Prediction != "safe" || !strings.Contains(r.Detail, "fallback model") {
		t.Fatalf("double failure: %+v", r)
	}
	// Requests that cannot be served at all are errors, not fallbacks.
	var br *BadRequest
	if _, err := f.svc.Predict(ctx, "churn", Request{}); !errors.As(err, &br) {
		t.Fatalf("empty request: %v", err)
	}
	if _, err := f.svc.Predict(ctx, "nope", Request{Key: "m1"}); !errors.Is(err, ErrUnknownEndpoint) {
		t.Fatalf("unknown endpoint: %v", err)
	}
}

func TestCommandModelAndGarbage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.version(t, "cmd", map[string]any{"kind": "command", "argv": []string{"sh", "-c", `read x; echo '{"prediction": 1, "confidence": 0.8}'`}}, store.ModelCanary, store.ModelProduction)
	f.version(t, "junk", map[string]any{"kind": "command", "argv": []string{"sh", "-c", `echo not json`}}, store.ModelCanary, store.ModelProduction)
	f.version(t, "slow", map[string]any{"kind": "command", "argv": []string{"sleep", "10"}}, store.ModelCanary, store.ModelProduction)
	for _, e := range []Endpoint{
		{Name: "cmd", Model: "cmd", Fallback: Fallback{Static: 0}, Timeout: Duration(2 * time.Second)},
		{Name: "junk", Model: "junk", Fallback: Fallback{Static: 0}, Timeout: Duration(2 * time.Second)},
		{Name: "slow", Model: "slow", Fallback: Fallback{Static: 0}, Timeout: Duration(100 * time.Millisecond)},
	} {
		f.endpoint(t, e)
	}
	want := map[string]string{"cmd": ReasonModel, "junk": ReasonError, "slow": ReasonTimeout}
	for ep, reason := range want {
		start := time.Now()
		r, err := f.svc.Predict(ctx, ep, Request{Key: "k"})
		if err != nil || r.Reason != reason {
			t.Errorf("%s: %+v %v", ep, r, err)
		}
		if time.Since(start) > 2*time.Second {
			t.Errorf("%s took %s", ep, time.Since(start))
		}
	}
}

// TestLinearPredictionIsBitForBitDeterministic asks a linear model the
// same question again and again: its score used to be summed over the
// weights in Go's random map order, a rounding apart from one answer to
// the next.
func TestLinearPredictionIsBitForBitDeterministic(t *testing.T) {
	t.Parallel()
	weights, features := map[string]float64{}, map[string]any{}
	for i, w := range []float64{1.1, -2.3, 3.7, 0.9, -4.1, 5.3, 0.7, -6.1, 1.3, 2.9, 0.3, -7.9} {
		f := fmt.Sprintf("f%02d", i)
		weights[f], features[f] = w, 0.1*float64(i+1)
	}
	b, err := json.Marshal(map[string]any{"kind": "linear", "bias": 0.5, "weights": weights})
	if err != nil {
		t.Fatal(err)
	}
	m, err := Load(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	score := func() uint64 {
		out, err := m.Predict(t.Context(), Input{Key: "u", Features: features})
		if err != nil {
			t.Fatal(err)
		}
		return math.Float64bits(out.Prediction.(float64))
	}
	want := score()
	for range 200 {
		if got := score(); got != want {
			t.Fatalf("score %v, then %v: the same request answered twice differs", math.Float64frombits(want), math.Float64frombits(got))
		}
	}
}

// TestShadowStatsInVersionOrder: an endpoint's shadows are listed by
// version, not in Go's random map order.
func TestShadowStatsInVersionOrder(t *testing.T) {
	t.Parallel()
	r := &shadowRunner{st: map[collectKey]*ShadowStats{}}
	for v := 1; v <= 8; v++ {
		r.st[collectKey{"e", v}] = &ShadowStats{Version: v}
		r.st[collectKey{"other", v}] = &ShadowStats{Version: v}
	}
	for range 20 {
		var got []int
		for _, st := range r.stats("e") {
			got = append(got, st.Version)
		}
		if want := []int{1, 2, 3, 4, 5, 6, 7, 8}; !slices.Equal(got, want) {
			t.Fatalf("shadow versions %v, want %v", got, want)
		}
	}
}

func TestShadowGetsCopies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.version(t, "m", logistic(2), store.ModelCanary, store.ModelProduction) // p = 0.88
	f.version(t, "m", logistic(1), store.ModelShadow)                        // p = 0.73: same class, differs
	f.version(t, "m", logistic(-2), store.ModelShadow)                       // p = 0.12: other class
	f.endpoint(t, Endpoint{Name: "m", Model: "m", Fallback: Fallback{Static: 0}})
	for i := range 50 {
		r, err := f.svc.Predict(ctx, "m", Request{Key: fmt.Sprint(i)})
		if err != nil || r.Version != 1 || r.Path != PathModel {
			t.Fatalf("served %+v %v", r, err)
		}
	}
	var st Status
	testwait.Until(t, 10*time.Second, func() (bool, string) {
		st = f.svc.Statuses()[0]
		done := len(st.Shadow) == 2
		for _, s := range st.Shadow {
			done = done && s.Requests+s.Dropped == 50
		}
		return done, fmt.Sprintf("shadow stats %+v", st.Shadow)
	}, "both shadows to account for the 50 requests")
	for _, s := range st.Shadow {
		switch s.Version {
		case 2:
			if s.Agreed != s.Requests || s.MeanAbs < 0.14 || s.MeanAbs > 0.16 {
				t.Errorf("shadow 2: %+v", s)
			}
		case 3:
			if s.Agreed != 0 || s.Requests == 0 || len(s.Recent) == 0 || s.Recent[0].Agreed {
				t.Errorf("shadow 3: %+v", s)
			}
		}
	}
}

// rolloutFixture has a production version 1 and a canary version 2 of m
// whose behaviour the test picks.
func rolloutFixture(t *testing.T, canarySpec any, cfg *RolloutConfig) *fixture {
	f := newFixture(t)
	f.version(t, "m", logistic(2), store.ModelCanary, store.ModelProduction)
	f.version(t, "m", canarySpec, store.ModelCanary)
	if cfg.Judge == nil {
		// Wall-clock latency on a shared test machine is noise between
		// two identical in-process models: judge it, but allow any
		// increase, so a scheduler stall cannot decide a test.
		cfg.Judge = DefaultJudge()
		cfg.Judge.Metrics["latency_ms"] = canary.MetricConfig{Direction: canary.Increase, AllowedIncrease: ptr(1e9)}
	}
	// The timeout is far above any stall for the same reason; the tests
	// that want timeouts set their own endpoints.
	f.endpoint(t, Endpoint{Name: "m", Model: "m", Features: []string{"x"}, Timeout: Duration(10 * time.Second),
		MinConfidence: 0.6, Fallback: Fallback{Static: 0.0}, Rollout: cfg})
	if _, err := f.svc.StartRollout(context.Background(), "m"); err != nil {
		t.Fatal(err)
	}
	return f
}

// traffic sends n requests from distinct units, then lets an interval pass.
func (f *fixture) traffic(t *testing.T, n int, interval time.Duration) (canary int) {
	t.Helper()
	for i := range n {
		r, err := f.svc.Predict(context.Background(), "m", Request{Key: fmt.Sprintf("u%d-%d", f.clk.ns.Load(), i)})
		if err != nil {
			t.Fatal(err)
		}
		if r.Canary {
			canary++
		}
	}
	f.clk.advance(interval)
	return canary
}

func TestRolloutAdvancesAndPromotes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := rolloutFixture(t, logistic(2), &RolloutConfig{Stages: []float64{10, 50, 100}, Interval: Duration(time.Minute), MinRequests: 20})
	c := NewController(f.svc)
	if steps, _ := c.Tick(ctx); len(steps) != 0 {
		t.Fatalf("first tick acted: %+v", steps)
	}
	var shares []float64
	for range 3 {
		st := f.svc.Statuses()[0]
		shares = append(shares, st.CanaryShare)
		n := f.traffic(t, 400, time.Minute)
		// The canary gets about its share of units.
		if want := st.CanaryShare / 100 * 400; float64(n) < want*0.6 || float64(n) > want*1.4 {
			t.Errorf("canary served %d of 400 at %g%%", n, st.CanaryShare)
		}
		steps, err := c.Tick(ctx)
		if err != nil || len(steps) != 1 || steps[0].Result != "pass" {
			t.Fatalf("tick: %+v %v", steps, err)
		}
	}
	if fmt.Sprint(shares) != "[10 50 100]" {
		t.Fatalf("shares %v", shares)
	}
	v2, _ := f.st.ModelVersion(ctx, "m", 2)
	v1, _ := f.st.ModelVersion(ctx, "m", 1)
	if v2.State != store.ModelProduction || v1.State != store.ModelArchived {
		t.Fatalf("after the rollout: v1 %s, v2 %s", v1.State, v2.State)
	}
	rs, _ := f.st.Rollouts(ctx, "m")
	if rs[0].Status != store.RolloutPassed || !strings.Contains(string(rs[0].History), `"action":"promote"`) {
		t.Fatalf("rollout: %+v", rs[0])
	}
	if sig := f.pub.list(); len(sig) != 1 || !strings.HasPrefix(sig[0], "canary_passed ") || !strings.Contains(sig[0], `"version":"2"`) {
		t.Fatalf("signals: %v", sig)
	}
	trs, _ := f.st.ModelTransitions(ctx, "m", 2)
	if last := trs[len(trs)-1]; last.Actor != rolloutActor || !strings.Contains(last.Reason, "passed every stage") {
		t.Fatalf("promotion: %+v", last)
	}
	if st := f.svc.Statuses()[0]; st.Production != 2 || st.Canary != 0 {
		t.Fatalf("serving after promotion: %+v", st)
	}
}

// TestRolloutRollsBackDegradedCanary: a canary whose model server fails
// half the time is judged against the baseline at the first stage and
// rolled back at that tick; from then on no unit gets it.
func TestRolloutRollsBackDegradedCanary(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var n atomic.Int64
	ext := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%2 == 0 {
			http.Error(w, "overloaded", 503)
			return
		}
		fmt.Fprint(w, `{"prediction": 0.9, "confidence": 0.9}`)
	}))
	t.Cleanup(ext.Close)
	f := rolloutFixture(t, map[string]any{"kind": "http", "url": ext.URL}, &RolloutConfig{Stages: []float64{50, 100}, Interval: Duration(time.Minute), MinRequests: 20})
	c := NewController(f.svc)
	c.Tick(ctx)
	if got := f.traffic(t, 300, time.Minute); got == 0 {
		t.Fatal("the canary got no traffic")
	}
	steps, err := c.Tick(ctx)
	if err != nil || len(steps) != 1 || steps[0].Result != "fail" || steps[0].Action != "rollback" {
		t.Fatalf("tick: %+v %v", steps, err)
	}
	if !strings.Contains(steps[0].Detail, "error High") {
		t.Fatalf("detail: %s", steps[0].Detail)
	}
	// The rollback took effect at that tick: no canary traffic since.
	if got := f.traffic(t, 200, 0); got != 0 {
		t.Fatalf("%d requests still went to the canary", got)
	}
	v2, _ := f.st.ModelVersion(ctx, "m", 2)
	if v2.State != store.ModelRegistered {
		t.Fatalf("canary is %s after rollback", v2.State)
	}
	if sig := f.pub.list(); len(sig) != 1 || !strings.HasPrefix(sig[0], "canary_failed ") {
		t.Fatalf("signals: %v", sig)
	}
}

func TestRolloutHoldsThenRollsBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// Too little traffic: the stage holds (no data), forever.
	f := rolloutFixture(t, logistic(2), &RolloutConfig{Stages: []float64{50, 100}, Interval: Duration(time.Minute), MinRequests: 1000})
	c := NewController(f.svc)
	c.Tick(ctx)
	for range 3 {
		f.traffic(t, 50, time.Minute)
		steps, _ := c.Tick(ctx)
		if len(steps) != 1 || steps[0].Result != "nodata" || steps[0].Action != "hold" {
			t.Fatalf("tick: %+v", steps)
		}
	}
	if st := f.svc.Statuses()[0]; st.CanaryShare != 50 {
		t.Fatalf("share after holds: %g", st.CanaryShare)
	}
	// A marginal canary (one non-critical metric off, of two counted)
	// holds MaxHolds times, then rolls back.
	judge := &canary.Config{Metrics: map[string]canary.MetricConfig{
		"confidence": {Direction: canary.Decrease}, "latency_ms": {Direction: canary.Increase, AllowedIncrease: ptr(100.0)},
		"error": {Muted: true}, "fallback": {Muted: true}}}
	cfg := &RolloutConfig{Stages: []float64{50, 100}, Interval: Duration(time.Minute), MinRequests: 20, MaxHolds: 2, Judge: judge}
	g := rolloutFixture(t, logistic(0.7), cfg) // p = 0.67: less confident than 0.88
	g2 := NewController(g.svc)
	g2.Tick(ctx)
	var actions []string
	for range 2 {
		g.traffic(t, 300, time.Minute)
		steps, _ := g2.Tick(ctx)
		if len(steps) != 1 {
			t.Fatalf("steps %+v", steps)
		}
		actions = append(actions, steps[0].Result+"/"+steps[0].Action)
	}
	if fmt.Sprint(actions) != "[marginal/hold marginal/rollback]" {
		t.Fatalf("actions %v", actions)
	}
}

func ptr[T any](v T) *T { return &v }

func TestSpecValidation(t *testing.T) {
	t.Parallel()
	bad := Endpoint{Name: "Bad", Model: "", MinConfidence: 2, Rollout: &RolloutConfig{Stages: []float64{5, 1, 50}}}
	msg := bad.Problems("endpoints[0]").Error()
	for _, want := range []string{"endpoints[0].name", "endpoints[0].model", "min_confidence", "deterministic fallback", "stages[1]", "the last stage is 100"} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
	for _, spec := range []string{`{"kind":"magic"}`, `{"kind":"logistic"}`, `{"kind":"http","url":"ftp://x"}`, `{"kind":"command"}`, `not json`, `{"kind":"ranking","items":[1],"extra":1}`} {
		if _, err := Load([]byte(spec), http.DefaultClient); err == nil {
			t.Errorf("loaded %s", spec)
		}
	}
}

func TestExampleEndpoints(t *testing.T) {
	t.Parallel()
	eps, err := ParseFile("../../examples/models/endpoints.yaml")
	if err != nil || len(eps) != 1 || eps[0].Timeout.D() != 50*time.Millisecond || eps[0].Rollout.Interval.D() != time.Minute {
		t.Fatalf("example: %+v %v", eps, err)
	}
}

// failingRollouts is the real store with Rollouts failing on demand: a
// read error for one endpoint in the middle of a refresh.
type failingRollouts struct {
	store.Store
	fail atomic.Bool
}

func (f *failingRollouts) Rollouts(ctx context.Context, endpoint string) ([]store.Rollout, error) {
	if f.fail.Load() {
		return nil, errors.New("injected: database is locked")
	}
	return f.Store.Rollouts(ctx, endpoint)
}

// TestRefreshKeepsServingOnFailure: a refresh that cannot read an
// endpoint's state, or that is cancelled, leaves the endpoint serving its
// model as before, rather than turning it into a 404 or a fallback.
func TestRefreshKeepsServingOnFailure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.version(t, "m", logistic(2), store.ModelCanary, store.ModelProduction)
	f.endpoint(t, Endpoint{Name: "m", Model: "m", Features: []string{"x"}, Timeout: Duration(10 * time.Second), Fallback: Fallback{Static: 0.0}})
	fs := &failingRollouts{Store: f.st}
	svc := New(Deps{Store: fs, Blobs: f.blobs, Features: staticFeatures{}, Now: f.clk.now})
	t.Cleanup(svc.Close)
	if err := svc.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	fs.fail.Store(true)
	if err := svc.Refresh(ctx); err == nil || !strings.Contains(err.Error(), "endpoint m: rollouts: injected") {
		t.Fatalf("refresh error: %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	fs.fail.Store(false)
	if err := svc.Refresh(cancelled); err == nil {
		t.Fatal("a cancelled refresh reported no error")
	}
	r, err := svc.Predict(ctx, "m", Request{Key: "u1"})
	if err != nil || r.Path != PathModel || r.Version != 1 {
		t.Fatalf("after failed refreshes: %+v %v", r, err)
	}
}

// TestRolloutStateSurvivesRestart: a controller that replaces another (a
// restart, a new leader) carries on the rollout's clock and its streak of
// marginal results from the stored history: its first tick after an
// interval judges, and the third marginal in a row rolls back though this
// controller saw only one. Before, a new controller started the clock
// over and forgot the streak. A corrupt history is an error, not a reset.
func TestRolloutStateSurvivesRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// A marginal canary (one non-critical metric off, of two counted),
	// as in TestRolloutHoldsThenRollsBack.
	judge := &canary.Config{Metrics: map[string]canary.MetricConfig{
		"confidence": {Direction: canary.Decrease}, "latency_ms": {Direction: canary.Increase, AllowedIncrease: ptr(1e9)},
		"error": {Muted: true}, "fallback": {Muted: true}}}
	f := rolloutFixture(t, logistic(0.7), &RolloutConfig{Stages: []float64{50, 100}, Interval: Duration(time.Minute), MinRequests: 20, MaxHolds: 3, Judge: judge})
	c1 := NewController(f.svc)
	if steps, _ := c1.Tick(ctx); len(steps) != 0 {
		t.Fatalf("first tick acted: %+v", steps)
	}
	for i := range 2 {
		f.traffic(t, 300, time.Minute)
		steps, err := c1.Tick(ctx)
		if err != nil || len(steps) != 1 || steps[0].Result != "marginal" || steps[0].Action != "hold" {
			t.Fatalf("hold %d: %+v %v", i, steps, err)
		}
	}
	c2 := NewController(f.svc)
	f.traffic(t, 300, time.Minute)
	steps, err := c2.Tick(ctx)
	if err != nil || len(steps) != 1 || steps[0].Action != "rollback" || !strings.Contains(steps[0].Detail, "marginal 3 times in a row") {
		t.Fatalf("after the restart: %+v %v", steps, err)
	}

	// A corrupt stored history stops the evaluation with an error.
	g := rolloutFixture(t, logistic(2), &RolloutConfig{Stages: []float64{50, 100}, Interval: Duration(time.Minute), MinRequests: 20})
	rs, _ := g.st.Rollouts(ctx, "m")
	if _, err := g.st.UpdateRollout(ctx, rs[0].ID, 0, 0, store.RolloutRunning, json.RawMessage(`[{"at": 7}]`)); err != nil {
		t.Fatal(err)
	}
	g.traffic(t, 300, time.Minute)
	if steps, err := NewController(g.svc).Tick(ctx); !errors.Is(err, ErrCorruptHistory) || len(steps) != 0 {
		t.Fatalf("corrupt history: %+v %v", steps, err)
	}
}

// TestRolloutWindowFromHistoryAfterRestart: a controller that replaces
// another judges the next window from the rollout's last evaluation, not
// from its start: a tick before an interval has passed since that
// evaluation does nothing, though more than an interval has passed since
// the rollout started; and the next evaluation counts only the samples of
// its own window, not those the last one judged.
func TestRolloutWindowFromHistoryAfterRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := rolloutFixture(t, logistic(2), &RolloutConfig{Stages: []float64{10, 50, 100}, Interval: Duration(time.Minute), MinRequests: 20})
	c1 := NewController(f.svc)
	f.traffic(t, 400, time.Minute)
	steps, err := c1.Tick(ctx)
	if err != nil || len(steps) != 1 || steps[0].Action != "advance" {
		t.Fatalf("first evaluation: %+v %v", steps, err)
	}
	judged := f.clk.now()

	// A restart: a new controller over the same store and samples. Half an
	// interval after the last evaluation (an interval and a half after
	// the start), with new traffic, it waits.
	c2 := NewController(f.svc)
	const later = 300
	f.traffic(t, later, 30*time.Second)
	if steps, err := c2.Tick(ctx); err != nil || len(steps) != 0 {
		t.Errorf("a tick half an interval after the last evaluation acted: %+v %v", steps, err)
	}
	f.clk.advance(30 * time.Second)
	steps, err = c2.Tick(ctx)
	if err != nil || len(steps) != 1 {
		t.Fatalf("a tick an interval after the last evaluation: %+v %v", steps, err)
	}
	// Its window is [last evaluation, now): the later requests only.
	if got := steps[0].Canary + steps[0].Baseline; got != later || steps[0].Stage != 1 {
		t.Fatalf("judged %d requests at stage %d, want the %d since %s at stage 1: %+v", got, steps[0].Stage, later, judged, steps[0])
	}
}

// TestRolloutCanaryCheckStaysCanary: with promote: false the rollout is a
// canary check: it stops below 100%, publishes canary_passed and leaves
// the version canary (production unchanged) for an experiment to promote;
// a second check of the same version is refused.
func TestRolloutCanaryCheckStaysCanary(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	no := false
	f := rolloutFixture(t, logistic(2), &RolloutConfig{Stages: []float64{10, 25}, Interval: Duration(time.Minute), MinRequests: 20, Promote: &no})
	c := NewController(f.svc)
	var actions []string
	for range 2 {
		f.traffic(t, 400, time.Minute)
		steps, err := c.Tick(ctx)
		if err != nil || len(steps) != 1 {
			t.Fatalf("tick: %+v %v", steps, err)
		}
		actions = append(actions, steps[0].Action)
	}
	if fmt.Sprint(actions) != "[advance checked]" {
		t.Fatalf("actions %v", actions)
	}
	v2, _ := f.st.ModelVersion(ctx, "m", 2)
	v1, _ := f.st.ModelVersion(ctx, "m", 1)
	if v2.State != store.ModelCanary || v1.State != store.ModelProduction {
		t.Fatalf("after the check: v1 %s, v2 %s", v1.State, v2.State)
	}
	if sig := f.pub.list(); len(sig) != 1 || !strings.HasPrefix(sig[0], "canary_passed ") {
		t.Fatalf("signals: %v", sig)
	}
	if st := f.svc.Statuses()[0]; st.Production != 1 || st.CanaryShare != 0 {
		t.Fatalf("serving after the check: %+v", st)
	}
	r, ok, err := PassedCheck(ctx, f.st, "m", "m", 2)
	if err != nil || !ok || r.Status != store.RolloutPassed {
		t.Fatalf("passed check: %+v %v %v", r, ok, err)
	}
	var br *BadRequest
	if _, err := f.svc.StartRollout(ctx, "m"); !errors.As(err, &br) || !strings.Contains(err.Error(), "waits in canary") {
		t.Fatalf("second check: %v", err)
	}
}

// TestRolloutCheckStagesMayStopBelow100: only a promoting rollout must end
// at 100%.
func TestRolloutCheckStagesMayStopBelow100(t *testing.T) {
	no := false
	e := Endpoint{Name: "m", Model: "m", Fallback: Fallback{Static: 0.0}, Rollout: &RolloutConfig{Stages: []float64{1, 5}}}
	if errs := e.Problems("endpoints[0]"); len(errs) == 0 {
		t.Fatal("stages ending at 5 accepted for a promoting rollout")
	}
	e.Rollout.Promote = &no
	if errs := e.Problems("endpoints[0]"); len(errs) != 0 {
		t.Fatalf("canary check refused: %v", errs)
	}
}

// TestInjectedFault: while a fault lasts the model's calls fail for real
// and the fallback answers (reason error, or timeout after the endpoint's
// timeout); at its end the model answers again; percent hits that share
// of units; bad faults are refused.
func TestInjectedFault(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	f.version(t, "m", logistic(2), store.ModelCanary, store.ModelProduction)
	f.endpoint(t, Endpoint{Name: "m", Model: "m", Features: []string{"x"}, Timeout: Duration(20 * time.Millisecond),
		Fallback: Fallback{Static: 0.0}})
	ask := func(unit string) Response {
		r, err := f.svc.Predict(ctx, "m", Request{Key: unit, Features: map[string]any{"x": 1.0}})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := ask("u"); r.Path != PathModel {
		t.Fatalf("before: %+v", r)
	}
	var br *BadRequest
	for _, bad := range []Fault{{Kind: "boom", Until: f.clk.now().Add(time.Hour)}, {Kind: FaultError, Until: f.clk.now()}, {Kind: FaultError, Until: f.clk.now().Add(time.Hour), Percent: 101}} {
		if err := f.svc.InjectFault("m", bad); !errors.As(err, &br) {
			t.Errorf("%+v accepted: %v", bad, err)
		}
	}
	if err := f.svc.InjectFault("nope", Fault{Kind: FaultError, Until: f.clk.now().Add(time.Hour)}); !errors.Is(err, ErrUnknownEndpoint) {
		t.Errorf("unknown endpoint: %v", err)
	}
	if err := f.svc.InjectFault("m", Fault{Kind: FaultError, Until: f.clk.now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if r := ask("u"); r.Path != PathFallback || r.Reason != ReasonError || !strings.Contains(r.Detail, "injected fault") {
		t.Fatalf("during the fault: %+v", r)
	}
	if err := f.svc.InjectFault("m", Fault{Kind: FaultTimeout, Until: f.clk.now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if r := ask("u"); r.Path != PathFallback || r.Reason != ReasonTimeout {
		t.Fatalf("timeout fault: %+v", r)
	}
	if err := f.svc.InjectFault("m", Fault{Kind: FaultError, Until: f.clk.now().Add(time.Hour), Percent: 30}); err != nil {
		t.Fatal(err)
	}
	hit := 0
	for i := range 1000 {
		if ask(fmt.Sprintf("u%d", i)).Path == PathFallback {
			hit++
		}
	}
	if hit < 240 || hit > 360 {
		t.Fatalf("30%% fault hit %d of 1000 units", hit)
	}
	f.clk.advance(2 * time.Hour)
	if r := ask("u"); r.Path != PathModel || len(f.svc.Faults()) != 0 {
		t.Fatalf("after the fault: %+v %v", r, f.svc.Faults())
	}
}

// panicky is a model with a bug: it panics on every call.
type panicky struct{}

func (panicky) Predict(context.Context, Input) (Output, error) { panic("boom: index out of range") }

// A model that panics fails its request, which falls back, and is logged
// with its stack; the process lives on. In process (builtin), in the
// guard goroutine of an outside model, and as a shadow on the shadow
// workers' goroutines: a panic there, not recovered, ended the server
// and every endpoint it served.
func TestModelPanicFallsBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	var logs lockedBuffer
	f.svc.d.Log = slog.New(slog.NewTextHandler(&logs, nil))
	// Each version's loaded model is the panicking one: the service loads
	// a digest once, so storing it first is what serves.
	inject := func(model string, n int, builtin bool) {
		v, err := f.st.ModelVersion(ctx, model, n)
		if err != nil {
			t.Fatal(err)
		}
		f.svc.models.Store(v.Digest, &version{v: v, m: panicky{}, builtin: builtin})
	}
	inject("inline", f.version(t, "inline", logistic(3), store.ModelCanary, store.ModelProduction), true)
	inject("outside", f.version(t, "outside", map[string]any{"kind": "command", "argv": []string{"/bin/true"}}, store.ModelCanary, store.ModelProduction), false)
	f.version(t, "shadowed", logistic(2), store.ModelCanary, store.ModelProduction)
	inject("shadowed", f.version(t, "shadowed", logistic(-1), store.ModelShadow), true)
	for _, name := range []string{"inline", "outside", "shadowed"} {
		f.endpoint(t, Endpoint{Name: name, Model: name, Features: []string{"x"}, Timeout: Duration(time.Second), Fallback: Fallback{Static: "safe"}})
	}
	for _, name := range []string{"inline", "outside"} {
		r, err := f.svc.Predict(ctx, name, Request{Key: "m1"})
		if err != nil || r.Path != PathFallback || r.Reason != ReasonError || r.Prediction != "safe" ||
			!strings.Contains(r.Detail, "the model panicked: boom") {
			t.Errorf("%s: %+v %v, want the static fallback for a model that panicked", name, r, err)
		}
	}
	for i := range 5 {
		if r, err := f.svc.Predict(ctx, "shadowed", Request{Key: fmt.Sprint(i)}); err != nil || r.Path != PathModel {
			t.Fatalf("shadowed: %+v %v", r, err)
		}
	}
	testwait.Until(t, 10*time.Second, func() (bool, string) {
		for _, st := range f.svc.Statuses() {
			if st.Endpoint == "shadowed" && len(st.Shadow) == 1 && st.Shadow[0].Errors+st.Shadow[0].Dropped == 5 {
				return true, ""
			}
		}
		return false, fmt.Sprintf("statuses %+v", f.svc.Statuses())
	}, "the panicking shadow's 5 copies to count as errors")
	out := logs.String()
	for _, want := range []string{"model=inline version=1", "model=outside version=1", "model=shadowed version=2", "panic=\"boom: index out of range\"", "serve_test.go"} {
		if !strings.Contains(out, want) {
			t.Errorf("the log has no %q:\n%s", want, out)
		}
	}
}

// lockedBuffer is a log sink written from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
