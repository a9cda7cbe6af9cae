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
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
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
	// Workers is how many tasks the engine runs at once in the shell
	// benchmark's parallel sides (and goroutines its parallel loop
	// runs); 0 means the number of CPUs.
	Workers int
	// Rounds is how many times the shell benchmark runs each side.
	Rounds int
	// Dir is where scratch homes go; "" means the system's temporary
	// folder (often a tmpfs: pass a folder on a disk to measure one).
	Dir string
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

func newScratch(ctx context.Context, db, parent string) (*scratch, error) {
	dir, err := os.MkdirTemp(parent, "baton-bench-")
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

// scratchParent names the folder scratch homes go in.
func scratchParent(dir string) string {
	if dir == "" {
		return os.TempDir()
	}
	return dir
}

// engine opens an engine on the scratch home with workers slots (0: the
// number of CPUs).
func (sc *scratch) engine(workers int) (*engine.Engine, error) {
	opt := engine.Options{TempDir: sc.h.TempDir(), Env: sc.h.Env(), Workers: workers}
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

// runFlow registers fl and runs it to its end with the Go funcs and
// workers slots (0: the number of CPUs), working the queue here (and in
// procs-1 child processes on PostgreSQL).
func runFlow(ctx context.Context, sc *scratch, cfg Config, fl *flow.Flow, funcs map[string]engine.GoFunc, workers int) (store.Run, error) {
	eng, err := sc.engine(workers)
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
	sc, err := newScratch(ctx, cfg.DB, cfg.Dir)
	if err != nil {
		return Result{}, err
	}
	defer sc.close()
	fl, funcs := Noop(cfg.Tasks)
	run, err := runFlow(ctx, sc, cfg, fl, funcs, 0)
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

// ShellCommand is what every task and loop command of the shell benchmark
// runs: write one small file.
const ShellCommand = `printf '%s' "$ITEM" > "$OUT"`

// shellSide is one side of the shell comparison.
type shellSide struct {
	key     string // prefix of its values
	workers int
	baton   bool
}

// shell compares baton with loops that do the same work, like with like:
// the same task count, the same command (each writes one file) and the same
// parallelism: baton with W workers against W goroutines each exec'ing the
// commands, and baton with 1 worker against a sequential loop. The sides
// run interleaved, in a rotating order, cfg.Rounds times, so load from
// elsewhere on the machine hits them alike; the values are medians.
func shell(ctx context.Context, cfg Config) (Result, error) {
	w := cfg.Workers
	if w <= 0 {
		w = runtime.NumCPU()
	}
	sides := []shellSide{
		{key: "baton_parallel", workers: w, baton: true},
		{key: "loop_parallel", workers: w},
		{key: "baton_1_worker", workers: 1, baton: true},
		{key: "loop_sequential", workers: 1},
	}
	rounds := max(cfg.Rounds, 1)
	took := make(map[string][]time.Duration)
	storeName := ""
	for r := range rounds {
		for i := range sides {
			sd := sides[(i+r)%len(sides)]
			sc, err := newScratch(ctx, cfg.DB, cfg.Dir)
			if err != nil {
				return Result{}, err
			}
			storeName = sc.storeName()
			var d time.Duration
			if sd.baton {
				d, err = shellBaton(ctx, sc, cfg.Shell, sd.workers)
			} else {
				d, err = shellLoop(ctx, filepath.Join(sc.h.Dir, "loop"), cfg.Shell, sd.workers)
			}
			sc.close()
			if err != nil {
				return Result{}, fmt.Errorf("%s: %w", sd.key, err)
			}
			took[sd.key] = append(took[sd.key], d)
			if cfg.Log != nil {
				fmt.Fprintf(cfg.Log, "  round %d %-16s %7.0f tasks/s\n", r+1, sd.key, float64(cfg.Shell)/d.Seconds())
			}
		}
	}
	v := map[string]float64{}
	for _, sd := range sides {
		v[sd.key+"_per_s"] = float64(cfg.Shell) / median(took[sd.key]).Seconds()
	}
	v["ratio_parallel"] = v["baton_parallel_per_s"] / v["loop_parallel_per_s"]
	v["ratio_1_worker"] = v["baton_1_worker_per_s"] / v["loop_sequential_per_s"]
	return Result{Name: "tiny shell tasks", Store: storeName, Procs: 1, N: cfg.Shell, Values: v,
		Note: fmt.Sprintf("each task and loop command runs sh -c and writes one file; baton with %d workers vs %d goroutines running the commands, "+
			"baton with 1 worker vs a sequential loop; medians of %d interleaved rounds, in %s", w, w, rounds, scratchParent(cfg.Dir))}, nil
}

// shellBaton runs n shell tasks through the engine with workers slots and
// returns how long it took, from the engine's start to its close.
func shellBaton(ctx context.Context, sc *scratch, n, workers int) (time.Duration, error) {
	items := make([]json.RawMessage, n)
	for i := range items {
		items[i] = json.RawMessage(strconv.Itoa(i))
	}
	fl := &flow.Flow{Name: "bench-shell", Steps: []flow.Step{{Name: "work", Foreach: &flow.Foreach{Items: items},
		Run: `ITEM=$BATON_FOREACH_ITEM OUT=$BATON_OUTPUT_DIR/out.txt; ` + ShellCommand}}}
	t0 := time.Now()
	run, err := runFlow(ctx, sc, Config{Procs: 1}, fl, nil, workers)
	d := time.Since(t0)
	if err != nil {
		return 0, err
	}
	if run.Status != store.RunSucceeded {
		return 0, fmt.Errorf("run %s: %s", run.Status, run.Error)
	}
	arts, err := sc.st.Artifacts(ctx, store.ArtifactFilter{RunID: run.ID, Step: "work", Index: -1})
	if err != nil {
		return 0, err
	}
	if len(arts) != n {
		return 0, fmt.Errorf("%d of %d tasks wrote their file", len(arts), n)
	}
	return d, nil
}

// shellLoop runs the same command n times with workers goroutines, each
// command writing its own file under dir, keeping no state, and checks that
// every file was written.
func shellLoop(ctx context.Context, dir string, n, workers int) (time.Duration, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	next := make(chan int)
	errs := make(chan error, workers)
	t0 := time.Now()
	for range workers {
		go func() {
			for i := range next {
				c := exec.CommandContext(ctx, "/bin/sh", "-c", ShellCommand)
				c.Env = append(os.Environ(), "ITEM="+strconv.Itoa(i), "OUT="+filepath.Join(dir, strconv.Itoa(i)+".txt"))
				if err := c.Run(); err != nil {
					errs <- err
					for range next {
					}
					return
				}
			}
			errs <- nil
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	var err error
	for range workers {
		err = errors.Join(err, <-errs)
	}
	d := time.Since(t0)
	if err != nil {
		return 0, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	if len(entries) != n {
		return 0, fmt.Errorf("loop: %d of %d files written", len(entries), n)
	}
	return d, nil
}

func median(d []time.Duration) time.Duration { return pct(d, 0.5) }

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

// publish sends a signal through the server's API, as the home's owner.
func publish(srv *server.Server, id string, n int) error {
	body := fmt.Sprintf(`{"name": "bench_ready", "id": %q, "params": {"n": %d}}`, id, n)
	req, err := http.NewRequest("POST", "http://"+srv.Addr()+"/api/v1/signals", strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+srv.HomeToken())
	resp, err := http.DefaultClient.Do(req)
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
	sc, err := newScratch(ctx, cfg.DB, cfg.Dir)
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
		if err := publish(srv, fmt.Sprintf("lat-%d", i), i); err != nil {
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
	sc, err := newScratch(ctx, cfg.DB, cfg.Dir)
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
	if err := publish(srv, "fan", 1); err != nil {
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
