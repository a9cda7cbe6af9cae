// Package bench is `baton bench`: reproducible throughput and latency
// measurements of the engine and the server on either store, printed as a
// table and JSON. Each benchmark runs in a scratch home (and, on
// PostgreSQL, a scratch schema) that is removed afterwards.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/baton-ml/baton/internal/artifact"
	"github.com/baton-ml/baton/internal/catalog"
	"github.com/baton-ml/baton/internal/engine"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/home"
	"github.com/baton-ml/baton/internal/server"
	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/store/postgres"
)

// Config says what to measure and where.
type Config struct {
	// DB is the store: "" for the embedded SQLite store (in a scratch
	// home), or postgres://... (a scratch schema is made in it).
	DB      string
	Tasks   int // no-op Go tasks
	Shell   int // tiny shell tasks
	Signals int // signals for the latency benchmark
	Fanout  int // subscribing flows for the fan-out benchmark
	// Rate is how many signals a second the latency benchmark publishes
	// (each triggers a run of one shell task).
	Rate int
	// Procs is how many processes work the queue (PostgreSQL): this one
	// and Procs-1 children.
	Procs int
	// Only lists the benchmarks to run (tasks, shell, triggers, fanout);
	// empty means all.
	Only []string
	// Exe is the baton binary started for the extra processes.
	Exe string
	Log io.Writer
}

// Result is one measurement.
type Result struct {
	Name   string             `json:"name"`
	Store  string             `json:"store"`
	Procs  int                `json:"procs"`
	N      int                `json:"n"`
	Values map[string]float64 `json:"values"`
	Note   string             `json:"note,omitempty"`
}

// Noop is the flow of the task benchmark: a foreach of no-op Go steps.
func Noop(n int) (*flow.Flow, map[string]engine.GoFunc) {
	items := make([]json.RawMessage, n)
	for i := range items {
		items[i] = json.RawMessage(strconv.Itoa(i))
	}
	fl := &flow.Flow{Name: "bench-noop", Steps: []flow.Step{{Name: "work", Foreach: &flow.Foreach{Items: items}}}}
	return fl, map[string]engine.GoFunc{"work": func(context.Context, *engine.Task) error { return nil }}
}

// NoopFuncs are the Go steps a worker process of the task benchmark runs.
func NoopFuncs() map[string]map[string]engine.GoFunc {
	_, f := Noop(0)
	return map[string]map[string]engine.GoFunc{"bench-noop": f}
}

// scratch is a home (and schema) a benchmark runs in.
type scratch struct {
	h      home.Home
	st     store.Store
	blobs  *artifact.Store
	schema string
	base   string
}

func newScratch(ctx context.Context, db string) (*scratch, error) {
	dir, err := os.MkdirTemp("", "baton-bench-")
	if err != nil {
		return nil, err
	}
	sc := &scratch{base: db}
	dsn := ""
	if db != "" {
		var b [5]byte
		rand.Read(b[:])
		sc.schema = "baton_bench_" + hex.EncodeToString(b[:])
		pdb, err := postgres.DB(db)
		if err != nil {
			return nil, err
		}
		_, err = pdb.ExecContext(ctx, "CREATE SCHEMA "+sc.schema)
		pdb.Close()
		if err != nil {
			return nil, fmt.Errorf("create scratch schema: %w", err)
		}
		u, err := url.Parse(db)
		if err != nil {
			return nil, err
		}
		q := u.Query()
		q.Set("search_path", sc.schema)
		u.RawQuery = q.Encode()
		dsn = u.String()
	}
	if sc.h, err = home.Resolve(dir, dsn); err != nil {
		return nil, err
	}
	if sc.st, sc.blobs, err = sc.h.Open(ctx); err != nil {
		sc.close()
		return nil, err
	}
	return sc, nil
}

func (sc *scratch) close() {
	if sc.blobs != nil {
		sc.blobs.Close()
	}
	if sc.st != nil {
		sc.st.Close()
	}
	os.RemoveAll(sc.h.Dir)
	if sc.schema != "" {
		if pdb, err := postgres.DB(sc.base); err == nil {
			pdb.ExecContext(context.Background(), "DROP SCHEMA "+sc.schema+" CASCADE")
			pdb.Close()
		}
	}
}

func (sc *scratch) storeName() string {
	if sc.h.Postgres() {
		return "postgres"
	}
	return "sqlite"
}

func (sc *scratch) engine() (*engine.Engine, error) {
	opt := engine.Options{TempDir: sc.h.TempDir(), Env: sc.h.Env()}
	if sc.h.Postgres() {
		opt.Dispatch = engine.Queue
		opt.QueuePoll = 200 * time.Millisecond
	}
	return engine.New(sc.st, sc.blobs, opt)
}

// Run runs the benchmarks of cfg.
func Run(ctx context.Context, cfg Config) ([]Result, error) {
	want := func(name string) bool {
		if len(cfg.Only) == 0 {
			return true
		}
		for _, o := range cfg.Only {
			if o == name {
				return true
			}
		}
		return false
	}
	var out []Result
	for _, b := range []struct {
		name string
		fn   func(context.Context, Config) (Result, error)
	}{
		{"tasks", tasks}, {"shell", shell}, {"triggers", triggers}, {"fanout", fanout},
	} {
		if !want(b.name) {
			continue
		}
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, "bench %s...\n", b.name)
		}
		r, err := b.fn(ctx, cfg)
		if err != nil {
			return out, fmt.Errorf("bench %s: %w", b.name, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// runFlow registers fl and runs it to its end with the Go funcs, working
// the queue here (and in procs-1 child processes on PostgreSQL).
func runFlow(ctx context.Context, sc *scratch, cfg Config, fl *flow.Flow, funcs map[string]engine.GoFunc) (store.Run, error) {
	eng, err := sc.engine()
	if err != nil {
		return store.Run{}, err
	}
	defer eng.Close()
	spec, _ := json.Marshal(fl)
	v, _, err := sc.st.PutFlowVersion(ctx, store.FlowVersion{Flow: fl.Name, Digest: fl.VersionDigest("", ""), Spec: spec})
	if err != nil {
		return store.Run{}, err
	}
	run, err := sc.st.CreateRun(ctx, store.NewRun{Flow: fl.Name, FlowVersion: v.Version, Trigger: "bench", Owner: eng.Owner()})
	if err != nil {
		return run, err
	}
	if sc.h.Postgres() {
		wctx, stop := context.WithCancel(ctx)
		defer stop()
		var fs map[string]map[string]engine.GoFunc
		if funcs != nil {
			fs = map[string]map[string]engine.GoFunc{fl.Name: funcs}
		}
		done := make(chan struct{})
		go func() { defer close(done); eng.Work(wctx, engine.WorkOptions{Funcs: fs}) }()
		defer func() { stop(); <-done }()
		for i := 1; i < cfg.Procs; i++ {
			child, err := startWorker(cfg.Exe, sc.h)
			if err != nil {
				return run, err
			}
			defer func() { child.Process.Signal(os.Interrupt); child.Wait() }()
		}
	}
	return eng.Execute(ctx, run.ID, engine.ExecOptions{Funcs: funcs})
}

// startWorker starts a child `baton bench-worker` on the scratch home.
func startWorker(exe string, h home.Home) (*exec.Cmd, error) {
	cmd := exec.Command(exe, "bench-worker")
	cmd.Env = append(os.Environ(), h.Env()...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start a worker process: %w", err)
	}
	return cmd, nil
}

func tasks(ctx context.Context, cfg Config) (Result, error) {
	sc, err := newScratch(ctx, cfg.DB)
	if err != nil {
		return Result{}, err
	}
	defer sc.close()
	fl, funcs := Noop(cfg.Tasks)
	run, err := runFlow(ctx, sc, cfg, fl, funcs)
	if err != nil {
		return Result{}, err
	}
	if run.Status != store.RunSucceeded {
		return Result{}, fmt.Errorf("run %s: %s", run.Status, run.Error)
	}
	took := run.FinishedAt.Sub(run.StartedAt)
	return Result{Name: "no-op Go tasks", Store: sc.storeName(), Procs: procs(sc, cfg), N: cfg.Tasks, Values: map[string]float64{
		"tasks_per_s": float64(cfg.Tasks) / took.Seconds(),
		"run_s":       took.Seconds(),
	}}, nil
}

func procs(sc *scratch, cfg Config) int {
	if sc.h.Postgres() {
		return max(cfg.Procs, 1)
	}
	return 1
}

func shell(ctx context.Context, cfg Config) (Result, error) {
	sc, err := newScratch(ctx, cfg.DB)
	if err != nil {
		return Result{}, err
	}
	defer sc.close()
	items := make([]json.RawMessage, cfg.Shell)
	for i := range items {
		items[i] = json.RawMessage(strconv.Itoa(i))
	}
	fl := &flow.Flow{Name: "bench-shell", Steps: []flow.Step{{Name: "work", Foreach: &flow.Foreach{Items: items},
		Run: `printf '%s' "$BATON_FOREACH_ITEM" > "$BATON_OUTPUT_DIR/out.txt"`}}}
	run, err := runFlow(ctx, sc, cfg, fl, nil)
	if err != nil {
		return Result{}, err
	}
	if run.Status != store.RunSucceeded {
		return Result{}, fmt.Errorf("run %s: %s", run.Status, run.Error)
	}
	took := run.FinishedAt.Sub(run.StartedAt)
	// The yardstick: the same commands in a loop with nothing recorded.
	dir := filepath.Join(sc.h.Dir, "naive")
	os.MkdirAll(dir, 0o755)
	n := min(cfg.Shell, 500)
	t0 := time.Now()
	for i := range n {
		c := exec.Command("/bin/sh", "-c", `printf '%s' "$ITEM" > "$OUT/out.txt"`)
		c.Env = append(os.Environ(), "ITEM="+strconv.Itoa(i), "OUT="+dir)
		if err := c.Run(); err != nil {
			return Result{}, err
		}
	}
	naive := float64(n) / time.Since(t0).Seconds()
	rate := float64(cfg.Shell) / took.Seconds()
	return Result{Name: "tiny shell tasks", Store: sc.storeName(), Procs: procs(sc, cfg), N: cfg.Shell, Values: map[string]float64{
		"tasks_per_s": rate, "naive_loop_per_s": naive, "ratio_to_naive": rate / naive,
	}, Note: "naive: the same command in a sequential os/exec loop, recording nothing"}, nil
}

// serve starts an in-process server on the scratch home.
func serve(ctx context.Context, sc *scratch) (*server.Server, func(), error) {
	opt := server.Options{Addr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)}
	if sc.h.Postgres() {
		opt.Dispatch = engine.Queue
		l, err := postgres.NewLeadership(sc.h.DB, "bench")
		if err != nil {
			return nil, nil, err
		}
		opt.Elector = l
	}
	srv, err := server.New(sc.st, sc.blobs, sc.h, opt)
	if err != nil {
		return nil, nil, err
	}
	if err := srv.Listen(); err != nil {
		return nil, nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); srv.Run(sctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for !srv.Leading() {
		if time.Now().After(deadline) {
			cancel()
			<-done
			return nil, nil, fmt.Errorf("the bench server never led")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return srv, func() { cancel(); <-done }, nil
}

const benchSignals = `signals:
  - name: bench_ready
    params:
      n: {type: int, required: true}
`

func subscriber(name string) string {
	return fmt.Sprintf("name: %s\ntriggers:\n  - signal: bench_ready\nsteps:\n  - name: a\n    run: 'true'\n", name)
}

func publish(addr string, id string, n int) error {
	body := fmt.Sprintf(`{"name": "bench_ready", "id": %q, "params": {"n": %d}}`, id, n)
	resp, err := http.Post("http://"+addr+"/api/v1/signals", "application/json", strings.NewReader(body))
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("publish: HTTP %d", resp.StatusCode)
	}
	return nil
}

func triggers(ctx context.Context, cfg Config) (Result, error) {
	sc, err := newScratch(ctx, cfg.DB)
	if err != nil {
		return Result{}, err
	}
	defer sc.close()
	if _, err := catalog.Apply(ctx, sc.st, []catalog.Document{{Path: "signals.yaml", Data: []byte(benchSignals)},
		{Path: "sub.yaml", Dir: sc.h.Dir, Data: []byte(subscriber("bench-sub"))}}); err != nil {
		return Result{}, err
	}
	srv, stop, err := serve(ctx, sc)
	if err != nil {
		return Result{}, err
	}
	defer stop()
	// Publish at a steady pace without watching (watching would load the
	// store and slow what it measures), then read the times back.
	pace := time.Second / time.Duration(max(cfg.Rate, 1))
	next := time.Now()
	for i := range cfg.Signals {
		if err := publish(srv.Addr(), fmt.Sprintf("lat-%d", i), i); err != nil {
			return Result{}, err
		}
		next = next.Add(pace)
		time.Sleep(time.Until(next))
	}
	var lat []time.Duration
	for i := range cfg.Signals {
		id := fmt.Sprintf("lat-%d", i)
		deadline := time.Now().Add(30 * time.Second)
		for {
			fires, err := sc.st.Fires(ctx, store.FireFilter{SignalID: id})
			if err != nil {
				return Result{}, err
			}
			if len(fires) == 1 {
				run, err := sc.st.Run(ctx, fires[0].RunID)
				if err != nil {
					return Result{}, err
				}
				if !run.StartedAt.IsZero() {
					sg, err := sc.st.Signal(ctx, id)
					if err != nil {
						return Result{}, err
					}
					lat = append(lat, run.StartedAt.Sub(sg.CreatedAt))
					break
				}
			}
			if time.Now().After(deadline) {
				return Result{}, fmt.Errorf("signal %s: no run started in 30s", id)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return Result{Name: "signal to run started", Store: sc.storeName(), Procs: 1, N: cfg.Signals, Values: map[string]float64{
		"p50_ms": ms(pct(lat, 0.5)), "p99_ms": ms(pct(lat, 0.99)), "max_ms": ms(pct(lat, 1)),
	}, Note: fmt.Sprintf("%d signals/s, each starting a run of one shell task", cfg.Rate)}, nil
}

func fanout(ctx context.Context, cfg Config) (Result, error) {
	sc, err := newScratch(ctx, cfg.DB)
	if err != nil {
		return Result{}, err
	}
	defer sc.close()
	docs := []catalog.Document{{Path: "signals.yaml", Data: []byte(benchSignals)}}
	for i := range cfg.Fanout {
		docs = append(docs, catalog.Document{Path: fmt.Sprintf("sub%d.yaml", i), Dir: sc.h.Dir, Data: []byte(subscriber(fmt.Sprintf("sub-%05d", i)))})
	}
	if _, err := catalog.Apply(ctx, sc.st, docs); err != nil {
		return Result{}, err
	}
	srv, stop, err := serve(ctx, sc)
	if err != nil {
		return Result{}, err
	}
	defer stop()
	t0 := time.Now()
	if err := publish(srv.Addr(), "fan", 1); err != nil {
		return Result{}, err
	}
	started, finished, err := awaitFanout(ctx, sc.st, "fan", cfg.Fanout, t0, 10*time.Minute)
	if err != nil {
		return Result{}, err
	}
	return Result{Name: "one signal, many flows", Store: sc.storeName(), Procs: 1, N: cfg.Fanout, Values: map[string]float64{
		"all_started_s": started.Seconds(), "all_finished_s": finished.Seconds(),
	}}, nil
}

// awaitFanout waits until signal id has fired n runs and every run has
// started, then ended, and says when each happened (since t0). A failed
// query fails the measurement: read as "nothing pending" it would end the
// wait early with a figure that measures nothing.
func awaitFanout(ctx context.Context, st store.Store, id string, n int, t0 time.Time, limit time.Duration) (started, finished time.Duration, err error) {
	for {
		fires, err := st.Fires(ctx, store.FireFilter{SignalID: id})
		if err != nil {
			return 0, 0, fmt.Errorf("fan-out: firings of signal %s: %w", id, err)
		}
		if len(fires) == n {
			pending, err := st.Runs(ctx, store.RunFilter{Status: store.RunPending, Limit: n + 1})
			if err != nil {
				return 0, 0, fmt.Errorf("fan-out: pending runs: %w", err)
			}
			running, err := st.Runs(ctx, store.RunFilter{Status: store.RunRunning, Limit: n + 1})
			if err != nil {
				return 0, 0, fmt.Errorf("fan-out: running runs: %w", err)
			}
			if len(pending) == 0 && started == 0 {
				started = time.Since(t0)
			}
			if len(pending) == 0 && len(running) == 0 {
				return started, time.Since(t0), nil
			}
		}
		if time.Since(t0) > limit {
			return 0, 0, fmt.Errorf("fan-out did not finish in %s: %d of %d fired", limit, len(fires), n)
		}
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(float64(len(s)-1)*p)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Table prints results for people.
func Table(w io.Writer, rs []Result) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BENCHMARK\tSTORE\tPROCS\tN\tRESULT")
	for _, r := range rs {
		keys := make([]string, 0, len(r.Values))
		for k := range r.Values {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s=%.4g", k, r.Values[k]))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", r.Name, r.Store, r.Procs, r.N, strings.Join(parts, " "))
	}
	return tw.Flush()
}
