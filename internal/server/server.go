// Package server is `baton server`: the daemon that evaluates triggers
// (signals, joins, on_finish, cron), schedules triggered runs under each
// flow's concurrency strategy, executes them, and serves the JSON HTTP API,
// /healthz and Prometheus /metrics.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-ml/baton/internal/artifact"
	"github.com/baton-ml/baton/internal/engine"
	"github.com/baton-ml/baton/internal/feature"
	"github.com/baton-ml/baton/internal/feature/ingest"
	"github.com/baton-ml/baton/internal/feature/parquet"
	"github.com/baton-ml/baton/internal/home"
	"github.com/baton-ml/baton/internal/serve"
	"github.com/baton-ml/baton/internal/store"
)

// Options configure a Server.
type Options struct {
	// Addr is where the API listens; default 127.0.0.1:8765.
	Addr string
	// Workers caps the tasks running at once; default the number of CPUs.
	Workers int
	// Poll is how often the loops look for work nothing announced (signals
	// published by another process); default 250ms.
	Poll time.Duration
	// Reload is how often applied flows and contracts are looked for;
	// default 1s.
	Reload time.Duration
	// Drain bounds how long SIGTERM waits for running tasks; default 30s.
	Drain time.Duration
	// RunLease and TaskLease are the engine's lease TTLs (see
	// engine.Options): how soon a dead server's runs and tasks are taken
	// over. Defaults 15s and 30s.
	RunLease, TaskLease time.Duration
	// RequireAuth accepts only stored tokens: the home's own token (which
	// the CLI on this home and the login URL use) is refused. Every API
	// route needs a token either way, on loopback too.
	RequireAuth bool
	// AllowedHosts are host names (besides IP addresses and localhost) by
	// which clients may reach the server, e.g. behind a load balancer. A
	// request naming any other host is refused (DNS rebinding).
	AllowedHosts []string
	// ReadTimeout and WriteTimeout bound how long a client may take to send
	// a request and to take its answer (defaults 1m and 2m; an artifact
	// download extends its own write deadline).
	ReadTimeout, WriteTimeout time.Duration
	// AllowedOrigins are web origins (scheme://host[:port]) besides the
	// server's own whose pages may call the API.
	AllowedOrigins []string
	// Dispatch says how tasks reach processes: engine.Local (this server
	// runs the tasks of the runs it coordinates) or engine.Queue (any
	// server or `baton worker` on the store runs them).
	Dispatch engine.Dispatch
	// Elector decides which of several servers on one store leads: runs
	// the triggers, the cron, the scheduler and the take-overs. Default:
	// this server leads alone (a lock file in the home).
	Elector Elector
	// Online is the features' online store: "memory" (the default,
	// rebuilt from the event logs at start) or a redis:// URL.
	Online string
	// NATS, when set, is a NATS URL whose JetStream stream NATSStream
	// (default baton_events) feeds every feature source, on subjects
	// STREAM.SOURCE.
	NATS, NATSStream string
	// Kafka, when set, lists Kafka brokers whose topics PREFIX.SOURCE
	// (KafkaTopicPrefix, default baton_events) feed every feature source,
	// consumed by the group "baton".
	Kafka            []string
	KafkaTopicPrefix string
	Logger           *slog.Logger
	// Now is the clock of the cron scheduler (tests); default time.Now.
	Now func() time.Time
}

// Elector is a campaign to lead among the servers of one store.
type Elector interface {
	// Campaign blocks until this process leads (or ctx ends) and returns
	// a channel closed when it stops leading.
	Campaign(ctx context.Context) (<-chan struct{}, error)
}

// Server is a running baton server.
type Server struct {
	st    store.Store
	blobs *artifact.Store
	home  home.Home
	eng   *engine.Engine
	opt   Options
	log   *slog.Logger
	m     *metrics

	defs     atomic.Pointer[defs]
	reloadMu sync.Mutex

	wakeSignals chan struct{}
	wakeFinish  chan struct{}
	wakeSched   chan struct{}
	wakeReload  chan struct{}
	wakeAdopt   chan struct{}

	mu       sync.Mutex
	starting map[int64]string    // runs handed to the engine (by flow), not yet returned
	causes   map[int64]time.Time // when what triggered a run happened
	wg       sync.WaitGroup

	// upSince is when the cron loop started: ticks before it were missed.
	upSince time.Time
	// homeToken is the home's own API secret (admin), see home.APIToken.
	homeToken string
	sessions  sessions
	ln        net.Listener
	http      *http.Server
	loopback  bool
	stopping  atomic.Bool
	leading   atomic.Bool

	serving       *serve.Service
	exps          *experiments
	rollouts      *serve.Controller
	features      *feature.Engine
	featuresPrint string
	nats          *ingest.NATS
	kafka         *ingest.Kafka
}

// New prepares a server over an opened home.
func New(st store.Store, blobs *artifact.Store, h home.Home, opt Options) (*Server, error) {
	if opt.Addr == "" {
		opt.Addr = "127.0.0.1:8765"
	}
	if opt.Poll <= 0 {
		opt.Poll = 250 * time.Millisecond
	}
	if opt.Reload <= 0 {
		opt.Reload = time.Second
	}
	if opt.Drain <= 0 {
		opt.Drain = 30 * time.Second
	}
	if opt.ReadTimeout <= 0 {
		opt.ReadTimeout = time.Minute
	}
	if opt.WriteTimeout <= 0 {
		opt.WriteTimeout = 2 * time.Minute
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Elector == nil {
		opt.Elector = &fileElector{path: filepath.Join(h.Dir, "leader.lock")}
	}
	eng, err := engine.New(st, blobs, engine.Options{Workers: opt.Workers, TempDir: h.TempDir(), Env: h.Env(),
		Dispatch: opt.Dispatch, DrainTasks: opt.Drain, LeaseTTL: opt.RunLease, TaskLeaseTTL: opt.TaskLease, Log: opt.Logger,
		TrainingSet: feature.StepFunc(st, filepath.Join(h.Dir, "features"), parquet.Write)})
	if err != nil {
		return nil, err
	}
	tok, err := h.EnsureAPIToken()
	if err != nil {
		return nil, err
	}
	s := &Server{
		st: st, blobs: blobs, home: h, eng: eng, opt: opt, log: opt.Logger, homeToken: tok,
		wakeSignals: make(chan struct{}, 1), wakeFinish: make(chan struct{}, 1),
		wakeSched: make(chan struct{}, 1), wakeReload: make(chan struct{}, 1), wakeAdopt: make(chan struct{}, 1),
		starting: map[int64]string{},
		sessions: sessions{active: map[string]session{}, links: map[string]time.Time{}},
	}
	s.m = newMetrics(s)
	return s, nil
}

func wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Listen binds the API address; Addr then reports it (useful with port 0).
func (s *Server) Listen() error {
	ln, err := net.Listen("tcp", s.opt.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.opt.Addr, err)
	}
	s.ln = ln
	s.loopback = isLoopback(ln.Addr())
	return nil
}

// Addr is the address the API listens on.
func (s *Server) Addr() string {
	if s.ln == nil {
		return s.opt.Addr
	}
	return s.ln.Addr().String()
}

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// Run serves until ctx ends, then shuts down gracefully: it stops taking
// work, lets running tasks finish (up to Options.Drain), hands unfinished
// runs back (a later server resumes them) and returns.
func (s *Server) Run(ctx context.Context) error {
	if s.ln == nil {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	if err := s.reload(ctx); err != nil {
		return fmt.Errorf("load flows: %w", err)
	}
	if err := s.openFeatures(ctx); err != nil {
		return err
	}
	defer s.features.Close()
	if s.opt.NATS != "" {
		stream := s.opt.NATSStream
		if stream == "" {
			stream = "baton_events"
		}
		var sources []string
		for name := range s.features.Catalog().Sources {
			sources = append(sources, name)
		}
		n, err := ingest.StartNATS(ctx, s.features, s.opt.NATS, stream, sources)
		if err != nil {
			return fmt.Errorf("NATS ingest: %w", err)
		}
		s.nats = n
		defer n.Close()
	}
	if len(s.opt.Kafka) > 0 {
		var sources []string
		for name := range s.features.Catalog().Sources {
			sources = append(sources, name)
		}
		k, err := ingest.StartKafka(ctx, s.features, s.opt.Kafka, s.opt.KafkaTopicPrefix, "baton", sources)
		if err != nil {
			return fmt.Errorf("Kafka ingest: %w", err)
		}
		s.kafka = k
		defer k.Close()
	}
	if err := s.openExperiments(); err != nil {
		return err
	}
	if err := s.exps.refresh(ctx); err != nil {
		s.log.Warn("experiments", "err", err)
	}
	if err := s.openServing(ctx); err != nil {
		return err
	}
	defer s.serving.Close()
	s.http = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second,
		// A client must send its request, and take the answer, in
		// bounded time: a stalled one holds no goroutine for ever. An
		// artifact download extends its own write deadline.
		ReadTimeout: s.opt.ReadTimeout, WriteTimeout: s.opt.WriteTimeout, IdleTimeout: 2 * time.Minute,
		MaxHeaderBytes: 64 << 10}
	serveErr := make(chan error, 1)
	go func() { serveErr <- s.http.Serve(s.ln) }()
	loops, stopLoops := context.WithCancel(context.WithoutCancel(ctx))
	var lw sync.WaitGroup
	lw.Go(func() { s.reloadLoop(loops) })
	lw.Go(func() { s.listen(loops) })
	lw.Go(func() { s.lead(loops) })
	lw.Go(func() { s.freshnessLoop(loops) })
	lw.Go(func() { s.servingLoop(loops) })
	lw.Go(func() { s.exps.loop(loops) })
	workDone := make(chan struct{})
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	if s.opt.Dispatch == engine.Queue {
		go func() {
			defer close(workDone)
			if err := s.eng.Work(workCtx, engine.WorkOptions{Log: s.log}); err != nil {
				s.log.Error("worker", "err", err)
			}
		}()
	} else {
		close(workDone)
	}
	s.log.Info("baton server ready", "addr", s.Addr(), "home", s.home.Dir, "auth", s.authMode(), "dispatch", s.dispatchName())

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		err = fmt.Errorf("serve: %w", err)
	}
	s.log.Info("stopping: no new work; waiting for running tasks", "drain", s.opt.Drain)
	s.stopping.Store(true)
	stopLoops()
	lw.Wait()
	s.eng.Drain()
	stopWork()
	<-workDone
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(s.opt.Drain):
		s.log.Warn("drain timed out: cancelling what still runs")
		for _, id := range s.eng.Running() {
			s.eng.Cancel(id)
		}
		<-done
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if serr := s.http.Shutdown(shutCtx); errors.Is(serr, context.DeadlineExceeded) {
		// Connections still open are ones a client opened and never used
		// (net/http waits 5 s for those) or requests past the drain: close
		// them; a graceful stop is not a failure.
		s.log.Warn("closing connections still open after the drain")
		_ = s.http.Close()
	} else if serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	// Requests served during the drain logged exposures after the loops
	// stopped.
	s.exps.flush(context.Background())
	s.eng.Close()
	s.log.Info("stopped")
	return err
}

func (s *Server) dispatchName() string {
	if s.opt.Dispatch == engine.Queue {
		return "queue"
	}
	return "local"
}

// listen turns notes from other processes into wake-ups of the loops.
func (s *Server) listen(ctx context.Context) {
	notes, err := s.st.Listen(ctx)
	if err != nil {
		s.log.Warn("listen for notes: polling only", "err", err)
		return
	}
	for n := range notes {
		switch n {
		case store.NoteSignals:
			wake(s.wakeSignals)
		case store.NoteRuns:
			wake(s.wakeSched)
			wake(s.wakeFinish)
			wake(s.wakeAdopt)
		}
	}
}

// Leading reports whether this server leads (its trigger, cron and
// scheduling loops run).
func (s *Server) Leading() bool { return s.leading.Load() }

// lead campaigns to lead and, while it does, runs the loops that must run
// once per store: triggers, cron, scheduling, reaping and take-overs.
func (s *Server) lead(ctx context.Context) {
	for ctx.Err() == nil {
		lost, err := s.opt.Elector.Campaign(ctx)
		if err != nil {
			return
		}
		s.log.Info("leading: triggers, cron and scheduling run here")
		s.leading.Store(true)
		lctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-lost:
				s.log.Warn("lost the lead")
			case <-lctx.Done():
			}
			cancel()
		}()
		s.upSince = s.opt.Now()
		if s.opt.Dispatch == engine.Local {
			if err := s.adopt(lctx); err != nil {
				s.log.Error("take over unfinished runs", "err", err)
			}
		}
		var lw sync.WaitGroup
		loops := []func(context.Context){s.signalLoop, s.finishLoop, s.cronLoop, s.schedLoop}
		if s.opt.Dispatch == engine.Queue {
			loops = append(loops, s.reapLoop, s.adoptLoop)
		}
		for _, loop := range loops {
			lw.Go(func() { loop(lctx) })
		}
		lw.Wait()
		s.leading.Store(false)
		cancel()
	}
}

func (s *Server) authMode() string {
	if s.opt.RequireAuth {
		return "stored tokens only"
	}
	return "stored tokens and the home's token"
}

// reloadLoop picks up flows and contracts applied while the server runs.
func (s *Server) reloadLoop(ctx context.Context) {
	t := time.NewTicker(s.opt.Reload)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.wakeReload:
		}
		if err := s.reload(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("reload flows", "err", err)
		}
		s.reloadFeatures(ctx)
	}
}

func (s *Server) reload(ctx context.Context) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	print, err := fingerprint(ctx, s.st)
	if err != nil {
		return err
	}
	if cur := s.defs.Load(); cur != nil && cur.fingerprint == print {
		return nil
	}
	d, err := loadDefs(ctx, s.st, print)
	if err != nil {
		return err
	}
	for _, p := range d.problems {
		s.log.Warn("trigger skipped", "problem", p)
	}
	s.defs.Store(d)
	s.log.Info("flows loaded", "flows", len(d.flows), "contracts", len(d.contracts), "cron", len(d.crons))
	wake(s.wakeSignals)
	wake(s.wakeFinish)
	wake(s.wakeSched)
	return nil
}

// current returns definitions at least as new as what the store holds now.
func (s *Server) current(ctx context.Context) (*defs, error) {
	if err := s.reload(ctx); err != nil {
		return nil, err
	}
	return s.defs.Load(), nil
}

// every runs fn whenever woken, and every poll interval.
func (s *Server) every(ctx context.Context, ch chan struct{}, fn func(context.Context) error, what string) {
	t := time.NewTicker(s.opt.Poll)
	defer t.Stop()
	for {
		if err := fn(ctx); err != nil && ctx.Err() == nil {
			s.log.Error(what, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-ch:
		}
	}
}
