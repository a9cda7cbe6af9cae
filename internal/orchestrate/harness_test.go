package orchestrate_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/artifact"
	"github.com/baton-ml/baton/internal/catalog"
	"github.com/baton-ml/baton/internal/engine"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/home"
	"github.com/baton-ml/baton/internal/orchestrate"
	"github.com/baton-ml/baton/internal/orchestrate/onengine"
	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/store/pgtest"
	"github.com/baton-ml/baton/internal/store/postgres"
	"github.com/baton-ml/baton/internal/store/sqlite"
	"github.com/baton-ml/baton/internal/testwait"
)

// config is what a test varies: the engine's workers and drain, the
// shared-store configuration, the orchestrator's clock.
type config struct {
	Workers int
	Drain   time.Duration
	Reload  time.Duration
	// Queue is the shared-store configuration: PostgreSQL, tasks through
	// its queue, leadership by advisory lock.
	Queue bool
	Now   func() time.Time
	// init runs on the orchestrator before it starts (test signals).
	init func(*orchestrate.Orchestrator)
}

// harness is a store, a blob store and an orchestrator over an engine: a
// baton server without its HTTP API.
type harness struct {
	o     *orchestrate.Orchestrator
	eng   *engine.Engine
	st    store.Store
	blobs *artifact.Store
	dir   string
	db    string
	stop  func()
}

// contracts is the signals file the tests apply.
const contracts = `signals:
  - name: features_ready
    params:
      date: {type: string, required: true}
      row_count: {type: int, required: true}
      region: {type: string}
      feature_version: {type: string}
  - name: labels_ready
    params:
      date: {type: string, required: true}
      labels: {type: int}
  - name: model_trained
    params:
      model: {type: string, required: true}
`

// newHarness opens a fresh store and starts an orchestrator on it.
func newHarness(t testing.TB, cfg config) *harness {
	h := openHarness(t, cfg)
	h.start(t, cfg) // Start loads the contracts
	return h
}

// openHarness opens a fresh store with the contracts applied, and an
// orchestrator that is not started (a test drives it by hand).
func openHarness(t testing.TB, cfg config) *harness {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	var st store.Store
	var err error
	db := "sqlite://" + filepath.Join(dir, "baton.db")
	if cfg.Queue {
		db = pgtest.DSN(t)
		st, err = postgres.Open(ctx, db)
	} else {
		st, err = sqlite.Open(ctx, filepath.Join(dir, "baton.db"), sqlite.Options{})
	}
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := artifact.Open(ctx, "file://"+filepath.Join(dir, "artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{st: st, blobs: blobs, dir: dir, db: db, stop: func() {}}
	t.Cleanup(func() { h.stop(); blobs.Close(); st.Close() })
	h.o, h.eng = h.newOrchestrator(t, cfg)
	h.stop = sync.OnceFunc(h.eng.Close) // until started
	h.applyNoWait(t, contracts)
	return h
}

// newOrchestrator makes an orchestrator over an engine of its own, as a
// server process would.
func (h *harness) newOrchestrator(t testing.TB, cfg config) (*orchestrate.Orchestrator, *engine.Engine) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("BATON_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil)).With("test", t.Name())
	}
	hm := home.Home{Dir: h.dir, DB: h.db, Artifacts: "file://" + filepath.Join(h.dir, "artifacts")}
	dispatch := engine.Local
	if cfg.Queue {
		dispatch = engine.Queue
	}
	eng, err := engine.New(h.st, h.blobs, engine.Options{Workers: cfg.Workers, TempDir: hm.TempDir(), Env: hm.Env(),
		Dispatch: dispatch, DrainTasks: cfg.Drain, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	var el orchestrate.Elector = orchestrate.FileElector(filepath.Join(h.dir, "leader.lock"))
	if cfg.Queue {
		if el, err = postgres.NewLeadership(h.db, "test"); err != nil {
			t.Fatal(err)
		}
	}
	o := orchestrate.New(h.st, onengine.New(eng, log), orchestrate.Options{Poll: 50 * time.Millisecond,
		Reload: cmp(cfg.Reload, 100*time.Millisecond), Drain: cfg.Drain, Queue: cfg.Queue, Elector: el, Logger: log, Now: cfg.Now})
	if cfg.init != nil {
		cfg.init(o)
	}
	return o, eng
}

func cmp(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// start starts a new orchestrator (and engine) on the harness's store and
// waits until it leads; h.stop stops it.
func (h *harness) start(t testing.TB, cfg config) {
	t.Helper()
	if h.o == nil {
		h.o, h.eng = h.newOrchestrator(t, cfg)
	}
	h.stop = func() {}
	o, eng := h.o, h.eng
	if err := o.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.stop = sync.OnceFunc(func() {
		o.Stop()
		eng.Close()
	})
	testwait.For(t, 20*time.Second, o.Leading, "the orchestrator to lead")
}

// restart stops the orchestrator and starts another on the same store, as
// the next server process.
func (h *harness) restart(t testing.TB, cfg config) {
	t.Helper()
	h.stop()
	h.o, h.eng = nil, nil
	h.start(t, cfg)
}

// apply registers YAML documents, as `baton flow apply` does, and waits
// for the orchestrator to see them.
func (h *harness) apply(t testing.TB, docs ...string) {
	t.Helper()
	h.applyNoWait(t, docs...)
	h.o.WakeReload()
	version, err := h.st.CatalogVersion(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 5*time.Second, func() bool { return h.o.CatalogVersion() == version }, "the orchestrator to load catalog version %d", version)
}

// applyNoWait registers documents behind the orchestrator's back, as
// another process would.
func (h *harness) applyNoWait(t testing.TB, docs ...string) {
	t.Helper()
	var ds []catalog.Document
	for i, d := range docs {
		ds = append(ds, catalog.Document{Path: fmt.Sprintf("doc%d.yaml", i), Dir: h.dir, Data: []byte(d)})
	}
	if _, err := catalog.Apply(context.Background(), h.st, ds); err != nil {
		t.Fatalf("apply: %v", err)
	}
}

// publish publishes a signal as `baton signal publish` does, and reports
// whether it was new.
func (h *harness) publish(t testing.TB, name, id string, params map[string]any) (store.Signal, bool) {
	t.Helper()
	raw := map[string]json.RawMessage{}
	for k, v := range params {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		raw[k] = b
	}
	sg, created, err := h.o.Publish(context.Background(), name, id, raw, store.SignalSource{Kind: store.SourceExternal})
	if err != nil {
		t.Fatalf("publish %s %s: %v", name, id, err)
	}
	return sg, created
}

// evaluated waits until the orchestrator has evaluated signal sg (its
// cursor is past it): whatever sg fires has been fired.
func (h *harness) evaluated(t testing.TB, sg store.Signal) {
	t.Helper()
	testwait.Until(t, 10*time.Second, func() (bool, string) {
		cur, err := h.st.Cursor(context.Background(), orchestrate.SignalsCursor)
		return err == nil && cur >= sg.Seq, fmt.Sprintf("cursor %d (%v)", cur, err)
	}, "signal %s (seq %d) to be evaluated", sg.ID, sg.Seq)
}

// createRun queues a run of flow with params (typed, defaults filled), as
// `POST /api/v1/flows/NAME/runs` does, and wakes the scheduler.
func (h *harness) createRun(t testing.TB, name string, params map[string]any) store.Run {
	t.Helper()
	ctx := context.Background()
	v, err := h.st.FlowVersion(ctx, name, 0)
	if err != nil {
		t.Fatal(err)
	}
	var fl flow.Flow
	if err := json.Unmarshal(v.Spec, &fl); err != nil {
		t.Fatal(err)
	}
	typed := map[string]json.RawMessage{}
	for _, p := range fl.Params {
		typed[p.Name] = p.Default
		if given, ok := params[p.Name]; ok {
			b, _ := json.Marshal(given)
			if typed[p.Name], err = flow.CheckValue(p.Type, b); err != nil {
				t.Fatalf("param %s: %v", p.Name, err)
			}
		}
	}
	run, err := h.st.CreateRun(ctx, store.NewRun{Flow: fl.Name, FlowVersion: v.Version, Params: typed, Trigger: store.TriggerAPI})
	if err != nil {
		t.Fatal(err)
	}
	h.o.WakeSchedule()
	return run
}

func (h *harness) runs(t testing.TB, flow string) []store.Run {
	t.Helper()
	rs, err := h.st.Runs(context.Background(), store.RunFilter{Flow: flow, Oldest: true, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// waitRuns waits until flow has n runs that all ended, and returns them.
func (h *harness) waitRuns(t testing.TB, flow string, n int) []store.Run {
	t.Helper()
	var rs []store.Run
	testwait.Until(t, 20*time.Second, func() (bool, string) {
		rs = h.runs(t, flow)
		ended := 0
		for _, r := range rs {
			if r.Status.Final() {
				ended++
			}
		}
		return len(rs) >= n && ended == len(rs), fmt.Sprintf("%d runs, %d ended", len(rs), ended)
	}, "flow %s: %d finished runs", flow, n)
	return rs
}

func param(t testing.TB, r store.Run, name string) string {
	t.Helper()
	var v any
	json.Unmarshal(r.Params[name], &v)
	b, _ := json.Marshal(v)
	return strings.Trim(string(b), `"`)
}
