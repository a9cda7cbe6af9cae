// Package server is `baton server`: the daemon that wires the orchestrator
// (package orchestrate: triggers, cron, scheduling, leadership) to the
// engine that executes runs, the features, serving, experiments and
// monitors, and serves the JSON HTTP API, /healthz and Prometheus /metrics.
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

	"github.com/baton-ml/baton/internal/archview"
	"github.com/baton-ml/baton/internal/artifact"
	"github.com/baton-ml/baton/internal/engine"
	"github.com/baton-ml/baton/internal/feature"
	"github.com/baton-ml/baton/internal/feature/ingest"
	"github.com/baton-ml/baton/internal/feature/parquet"
	"github.com/baton-ml/baton/internal/home"
	"github.com/baton-ml/baton/internal/monitor"
	"github.com/baton-ml/baton/internal/orchestrate"
	"github.com/baton-ml/baton/internal/orchestrate/onengine"
	"github.com/baton-ml/baton/internal/serve"
	"github.com/baton-ml/baton/internal/startstop"
	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/ui"
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
	// Now is the server's clock: of cron, feature windows and freshness,
	// exposures and metric events, rollouts' and guardrails' intervals,
	// serving's samples and pages, the monitors' windows and schedules;
	// default time.Now. A simulation (baton demo) gives its own.
	Now func() time.Time
	// Manual leaves the periodic judges (rollouts, guardrails, freshness)
	// to Step, and the monitors to EvaluateMonitors: a driver on a
	// simulated clock runs them at the moments it chooses, so a run of the
	// simulation is repeatable. Triggers and the scheduler still run by
	// themselves.
	Manual bool
}

// docs renders the architecture views for the web UI, as `baton docs`
// does (one snapshot of the store per page).
func (s *Server) docs(ctx context.Context) ([]ui.DocFile, error) {
	snap, err := archview.Load(ctx, s.st, archview.Options{Blobs: s.blobs})
	if err != nil {
		return nil, err
	}
	var out []ui.DocFile
	for _, f := range archview.Render(snap, archview.Views(), false, s.opt.Now()) {
		out = append(out, ui.DocFile{Name: f.Name, Content: f.Content})
	}
	return out, nil
}

// Elector is a campaign to lead among the servers of one store.
type Elector = orchestrate.Elector

// Server is a running baton server.
type Server struct {
	st    store.Store
	blobs *artifact.Store
	home  home.Home
	eng   *engine.Engine
	opt   Options
	log   *slog.Logger
	m     *metrics
	orch  *orchestrate.Orchestrator

	// wakeReload makes the features' reload look now.
	wakeReload chan struct{}

	// homeToken is the home's own API secret (admin), see home.APIToken.
	homeToken string
	sessions  sessions
	ln        net.Listener
	http      *http.Server
	loopback  bool
	stopping  atomic.Bool

	serving       *serve.Service
	answerBufs    sync.Pool    // predict's answer buffers (a page is about 10 KB)
	decisions     *decisionLog // the bandit decision log of personalized endpoints
	exps          *experiments
	rollouts      *serve.Controller
	monitors      *monitor.Runner
	features      *feature.Engine
	featuresPrint string
	nats          *ingest.NATS
	kafka         *ingest.Kafka
	ui            *ui.UI

	staleMu sync.Mutex
	stale   map[string]bool // features in breach of their SLA, as last warned
}

// New prepares a server over an opened home.
func New(st store.Store, blobs *artifact.Store, h home.Home, opt Options) (*Server, error) {
	if opt.Addr == "" {
		opt.Addr = "127.0.0.1:8765"
	}
	if opt.Poll <= 0 {
		opt.Poll = orchestrate.DefaultPoll
	}
	if opt.Reload <= 0 {
		opt.Reload = orchestrate.DefaultReload
	}
	if opt.Drain <= 0 {
		opt.Drain = orchestrate.DefaultDrain
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
		opt.Elector = orchestrate.FileElector(filepath.Join(h.Dir, "leader.lock"))
	}
	eng, err := engine.New(st, blobs, engine.Options{Workers: opt.Workers, TempDir: h.TempDir(), Env: h.Env(), CodeDir: h.CodeDir(),
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
		st: st, blobs: blobs, home: h, eng: eng, opt: opt, log: opt.Logger, homeToken: tok, m: newMetrics(),
		wakeReload: make(chan struct{}, 1),
		sessions:   sessions{active: map[string]session{}, links: map[string]time.Time{}},
	}
	s.orch = orchestrate.New(st, onengine.New(eng, opt.Logger), orchestrate.Options{Poll: opt.Poll, Reload: opt.Reload,
		Drain: opt.Drain, Queue: opt.Dispatch == engine.Queue, Elector: opt.Elector, Logger: opt.Logger, Now: opt.Now,
		Metrics: s.m})
	// The UI reads the server's clock, as the judges do: under baton demo
	// it is the simulated one, and an experiment's interval or a feature's
	// freshness on another clock would describe a different moment.
	if s.ui, err = ui.New(ui.Deps{Store: st, Blobs: blobs, Authorize: s.uiViewer, Freshness: s.freshness, Docs: s.docs, Logger: opt.Logger, Poll: opt.Poll,
		Now: opt.Now, LiveLog: eng.LiveLog}); err != nil {
		return nil, err
	}
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
	api := &apiService{s: s}
	services := s.services(api)
	if err := startstop.StartAll(ctx, services...); err != nil {
		// The API never served: its port must not stay open.
		s.ln.Close()
		return err
	}
	s.log.Info("baton server ready", "addr", s.Addr(), "home", s.home.Dir, "auth", s.authMode(), "dispatch", s.dispatchName())
	var err error
	select {
	case <-ctx.Done():
	case err = <-api.served:
		err = fmt.Errorf("serve: %w", err)
	}
	s.log.Info("stopping: no new work; waiting for running tasks", "drain", s.opt.Drain)
	s.stopping.Store(true)
	startstop.StopAll(services...)
	if err == nil {
		err = api.err
	}
	s.log.Info("stopped")
	return err
}

// services are the server's parts in the order they start; StopAll stops
// them in reverse, which is the order of a graceful stop: the loops, then
// the orchestrator's drain (the API still answers meanwhile: /healthz says
// "stopping", a cancel reaches a running run), then the API, then what
// the API used, and the engine last. The long-lived parts are started
// without ctx's cancellation: they stop in that order, not all at once
// when ctx ends.
func (s *Server) services(api *apiService) []startstop.Service {
	loop := func(fn func(context.Context)) startstop.Service {
		return startstop.WithoutCancel(startstop.Func(func(ctx context.Context) error { fn(ctx); return nil }))
	}
	services := []startstop.Service{
		// Made by New; closed once nothing runs on it.
		startstop.Hooks{OnStop: s.eng.Close},
		// The API's handlers need the contracts before the orchestrator
		// starts.
		startstop.Hooks{OnStart: func(ctx context.Context) error {
			if err := s.orch.Reload(ctx); err != nil {
				return fmt.Errorf("load flows: %w", err)
			}
			return nil
		}},
		startstop.Hooks{OnStart: s.openFeatures, OnStop: func() { s.features.Close() }},
		startstop.Hooks{OnStart: s.startNATS, OnStop: func() {
			if s.nats != nil {
				s.nats.Close()
			}
		}},
		startstop.Hooks{OnStart: s.startKafka, OnStop: func() {
			if s.kafka != nil {
				s.kafka.Close()
			}
		}},
		// Requests served during the drain logged exposures after the
		// loops stopped: the last flush comes after the API's.
		startstop.Hooks{OnStart: s.startExperiments, OnStop: func() { s.exps.flush(context.Background()) }},
		startstop.Hooks{OnStart: s.openServing, OnStop: func() { s.serving.Close(); s.decisions.close() }},
		startstop.Hooks{OnStart: s.startMonitors},
		api,
		startstop.WithoutCancel(s.orch),
		loop(s.reloadLoop),
	}
	if s.opt.Manual {
		return services
	}
	return append(services,
		loop(s.freshnessLoop),
		loop(s.servingLoop),
		loop(func(ctx context.Context) { s.exps.loop(ctx) }),
		loop(s.monitorLoop))
}

// Step runs, once and in order, what the periodic loops of a server run
// (Options.Manual leaves them to it): feature freshness, serving's reload
// and the rollout judge, the exposures' flush, the experiments' reload and
// their guardrails. The judges act only on the leader.
func (s *Server) Step(ctx context.Context) error {
	s.freshnessPass(ctx)
	return errors.Join(s.servingPass(ctx), s.exps.pass(ctx))
}

// Idle reports whether the orchestrator has nothing left to do (every
// signal and ended run evaluated, no run pending or running).
func (s *Server) Idle(ctx context.Context) (bool, error) { return s.orch.Idle(ctx) }

// startNATS consumes feature events from NATS JetStream, when configured.
func (s *Server) startNATS(ctx context.Context) error {
	if s.opt.NATS == "" {
		return nil
	}
	stream := s.opt.NATSStream
	if stream == "" {
		stream = "baton_events"
	}
	n, err := ingest.StartNATS(ctx, s.features, s.opt.NATS, stream, s.featureSources())
	if err != nil {
		return fmt.Errorf("NATS ingest: %w", err)
	}
	s.nats = n
	return nil
}

// startKafka consumes feature events from Kafka, when configured.
func (s *Server) startKafka(ctx context.Context) error {
	if len(s.opt.Kafka) == 0 {
		return nil
	}
	k, err := ingest.StartKafka(ctx, s.features, s.opt.Kafka, s.opt.KafkaTopicPrefix, "baton", s.featureSources())
	if err != nil {
		return fmt.Errorf("Kafka ingest: %w", err)
	}
	s.kafka = k
	return nil
}

func (s *Server) featureSources() []string {
	var sources []string
	for name := range s.features.Catalog().Sources {
		sources = append(sources, name)
	}
	return sources
}

// startExperiments opens the experiments (and writes the exposures a
// previous run spilled) and loads the running ones.
func (s *Server) startExperiments(ctx context.Context) error {
	if err := s.openExperiments(); err != nil {
		return err
	}
	if err := s.exps.refresh(ctx); err != nil {
		s.log.Warn("experiments", "err", err)
	}
	return nil
}

// apiService serves the HTTP API on the server's listener.
type apiService struct {
	s *Server
	// served receives what Serve returned, should it end by itself.
	served chan error
	// err is what the graceful shutdown failed with.
	err error
}

func (a *apiService) Start(context.Context) error {
	s := a.s
	s.http = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second,
		// A client must send its request, and take the answer, in
		// bounded time: a stalled one holds no goroutine for ever. An
		// artifact download extends its own write deadline.
		ReadTimeout: s.opt.ReadTimeout, WriteTimeout: s.opt.WriteTimeout, IdleTimeout: 2 * time.Minute,
		MaxHeaderBytes: 64 << 10}
	// Pages left open on a live run hold a stream: end them when the
	// server shuts down rather than wait out the drain.
	s.http.RegisterOnShutdown(s.ui.CloseStreams)
	a.served = make(chan error, 1)
	go func() { a.served <- s.http.Serve(s.ln) }()
	return nil
}

func (a *apiService) Stop() {
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.s.http.Shutdown(shutCtx); errors.Is(err, context.DeadlineExceeded) {
		// Connections still open are ones a client opened and never used
		// (net/http waits 5 s for those) or requests past the drain: close
		// them; a graceful stop is not a failure.
		a.s.log.Warn("closing connections still open after the drain")
		_ = a.s.http.Close()
	} else if err != nil && !errors.Is(err, http.ErrServerClosed) {
		a.err = err
	}
}

func (s *Server) dispatchName() string {
	if s.opt.Dispatch == engine.Queue {
		return "queue"
	}
	return "local"
}

// Leading reports whether this server leads (its trigger, cron and
// scheduling loops run).
func (s *Server) Leading() bool { return s.orch.Leading() }

// reloadNow makes the orchestrator and the features look for applied
// definitions now.
func (s *Server) reloadNow() {
	s.orch.WakeReload()
	wake(s.wakeReload)
}

func (s *Server) authMode() string {
	if s.opt.RequireAuth {
		return "stored tokens only"
	}
	return "stored tokens and the home's token"
}

// reloadLoop picks up feature definitions applied while the server runs
// (the orchestrator picks up flows and contracts itself).
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
		s.reloadFeatures(ctx)
	}
}
