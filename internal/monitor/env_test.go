package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/baton-ml/baton/internal/artifact"
	"github.com/baton-ml/baton/internal/catalog"
	"github.com/baton-ml/baton/internal/feature"
	"github.com/baton-ml/baton/internal/registry"
	"github.com/baton-ml/baton/internal/serve"
	"github.com/baton-ml/baton/internal/signal"
	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/store/sqlite"
)

// The feature definitions of the tests: the demo's two sources.
const featuresYAML = `entities: [{name: member, key: member_id}]
sources:
  - {name: plays, entity: member, timestamp: ts, fields: {title_id: string, market: string, minutes: float, completed: float}}
  - {name: impressions, entity: member, timestamp: ts, fields: {market: string, items: float}}
features:
  - {name: minutes_24h, source: plays, aggregate: sum, field: minutes, window: 24h}
  - {name: last_title, source: plays, aggregate: last, field: title_id, window: 7d}
  - {name: plays_24h, source: plays, aggregate: count, window: 24h}
`

// t0 is the tests' clock at the start: a UTC midnight.
var t0 = time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)

type env struct {
	st      store.Store
	blobs   *artifact.Store
	eng     *feature.Engine
	samples *fakeSamples
	pages   *fakePages
	pub     *recorder
	reg     *prometheus.Registry
	r       *Runner
}

// docsContract is the drift_detected contract as docs/monitors.md gives
// it: the tests publish under it, so the documented contract is the one
// that works.
func docsContract(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "monitors.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "<!-- contract: drift_detected -->\n```yaml\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("docs/monitors.md has no drift_detected contract block")
	}
	return block
}

func newEnv(t testing.TB) *env {
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
	defs, err := feature.Parse("features.yaml", []byte(featuresYAML))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := feature.Apply(ctx, st, "features.yaml", defs); err != nil {
		t.Fatal(err)
	}
	cat, err := feature.Load(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	eng := feature.NewEngine(cat, t.TempDir(), feature.NewMemory(), nil)
	t.Cleanup(func() { eng.Close(); blobs.Close(); st.Close() })
	if _, err := catalog.Apply(ctx, st, []catalog.Document{{Path: "signals.yaml", Data: []byte(docsContract(t))}}); err != nil {
		t.Fatal(err)
	}
	e := &env{st: st, blobs: blobs, eng: eng, samples: &fakeSamples{}, pages: &fakePages{}, pub: &recorder{st: st}, reg: prometheus.NewRegistry()}
	e.r = e.runner()
	return e
}

// runner makes a runner over the env's readers: another one is a
// restarted server, or another leader.
func (e *env) runner() *Runner {
	return NewRunner(Deps{Store: e.st, Features: e.eng, Blobs: e.blobs, Samples: e.samples, Pages: e.pages, Publish: e.pub.publish, Reg: e.reg,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

func (e *env) ingest(t testing.TB, source string, lines []string) {
	t.Helper()
	res, err := e.eng.Ingest(context.Background(), source, strings.NewReader(strings.Join(lines, "\n")+"\n"))
	if err != nil || res.Rejected != 0 {
		t.Fatalf("ingest %s: %+v %v", source, res, err)
	}
}

// model registers a production version of model trained on the training
// set csv, and returns its number.
func (e *env) model(t testing.TB, model, csv string) int {
	t.Helper()
	ctx := context.Background()
	d, n, err := e.blobs.PutBytes(ctx, []byte(csv))
	if err != nil {
		t.Fatal(err)
	}
	lin, _ := json.Marshal(registry.Lineage{RunID: 1, Step: "build", TrainingSet: "1/build/train.csv", TrainingSetDigest: d})
	v, err := e.st.CreateModelVersion(ctx, store.ModelVersion{Model: model, Artifact: "1/fit/model.json", Digest: d, Size: n, RunID: 1, Lineage: lin}, "t", "test")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []store.ModelState{store.ModelCanary, store.ModelProduction} {
		if _, err := registry.New(e.st).Transition(ctx, model, v.Version, s, "t", "test", nil); err != nil {
			t.Fatal(err)
		}
	}
	return v.Version
}

// endpoint applies an endpoint of model (kind recommend when recommend).
func (e *env) endpoint(t testing.TB, name, model string, recommend bool) {
	t.Helper()
	ep := serve.Endpoint{Name: name, Model: model, Fallback: serve.Fallback{Static: 0}}
	if recommend {
		ep.Kind, ep.Fallback = serve.KindRecommend, serve.Fallback{Static: []any{}}
		ep.Recommend = &serve.RecommendConfig{Rows: []serve.RowConfig{{Type: serve.RowTopPicks}}}
	}
	if _, err := serve.Apply(context.Background(), e.st, []serve.Endpoint{ep}); err != nil {
		t.Fatal(err)
	}
}

// apply applies a monitors file's text.
func (e *env) apply(t testing.TB, yaml string) []Applied {
	t.Helper()
	path := filepath.Join(t.TempDir(), "monitors.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	doc, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out, err := doc.Apply(context.Background(), e.st)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// evaluate runs the one monitor due at now and returns its result.
func (e *env) evaluate(t testing.TB, now time.Time) Result {
	t.Helper()
	rs, err := e.r.EvaluateDue(context.Background(), now)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 {
		t.Fatalf("%d results at %s, want 1: %+v", len(rs), now, rs)
	}
	return rs[0]
}

func check(t testing.TB, r Result, name string) Check {
	t.Helper()
	for _, c := range r.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check %s in %+v", name, r.Checks)
	return Check{}
}

// fakeSamples holds served confidences with their times.
type fakeSamples struct {
	mu  sync.Mutex
	at  []time.Time
	ver []int
	val []float64
}

func (f *fakeSamples) add(at time.Time, version int, conf float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.at, f.ver, f.val = append(f.at, at), append(f.ver, version), append(f.val, conf)
}

func (f *fakeSamples) Metrics(_ string, version int, from, to time.Time) map[string][]float64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []float64
	for i, at := range f.at {
		if f.ver[i] == version && !at.Before(from) && at.Before(to) {
			out = append(out, f.val[i])
		}
	}
	return map[string][]float64{"confidence": out}
}

// fakePages answers every window with w, and remembers the last asked.
type fakePages struct {
	w        serve.PageWindow
	from, to time.Time
}

func (f *fakePages) Window(_ string, from, to time.Time) serve.PageWindow {
	f.from, f.to = from, to
	return f.w
}

// recorder publishes through the real contract check and store.
type recorder struct {
	st   store.Store
	mu   sync.Mutex
	sigs []store.Signal
}

func (p *recorder) publish(ctx context.Context, name, id string, params map[string]any) error {
	raw := map[string]json.RawMessage{}
	for k, v := range params {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("param %s: %w", k, err)
		}
		raw[k] = b
	}
	cs, err := signal.Load(ctx, p.st)
	if err != nil {
		return err
	}
	sg, _, err := signal.Publish(ctx, p.st, cs, name, id, raw, store.SignalSource{Kind: store.SourceExternal})
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.sigs = append(p.sigs, sg)
	p.mu.Unlock()
	return nil
}

// metric is a series' value on the env's registry, by its label values.
func (e *env) metric(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var have []string
			for _, lp := range m.GetLabel() {
				have = append(have, lp.GetValue())
			}
			if !sameSet(have, labels) {
				continue
			}
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
