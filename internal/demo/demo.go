// Package demo is `baton demo`: a simulated streaming service whose
// members respond to what baton serves them, driving a real baton server
// (in this process, over its HTTP API) on a simulated clock, through the
// reference platform's files (examples/platform) applied as any user
// applies them. Nothing in it decides what the platform does: flows,
// signals, the canary judge, guardrails and monitors do; the demo plays
// the apps (page requests, events), the warehouse (daily partitions), the
// metrics pipeline (experiment metrics) and an operator (the first
// training, and the scripted episodes).
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/baton-ml/baton/internal/artifact"
	"github.com/baton-ml/baton/internal/atomicfile"
	"github.com/baton-ml/baton/internal/catalog"
	"github.com/baton-ml/baton/internal/fault"
	"github.com/baton-ml/baton/internal/feature"
	"github.com/baton-ml/baton/internal/home"
	"github.com/baton-ml/baton/internal/monitor"
	"github.com/baton-ml/baton/internal/search"
	"github.com/baton-ml/baton/internal/serve"
	"github.com/baton-ml/baton/internal/server"
	"github.com/baton-ml/baton/internal/store"
)

// Options configure a demo. Zero values take the defaults noted.
type Options struct {
	Days    int    // simulated days, default 30
	Members int    // members, default 1500 (a fifth join with the launched market)
	Titles  int    // titles at the start, default 800 (500 more arrive with the expansion)
	Seed    uint64 // default 1
	Home    home.Home
	// Platform holds the reference platform's files (signals, features,
	// flows, endpoints); the demo copies them into HOME/platform and
	// applies them from there.
	Platform fs.FS
	// Addr is where the server listens (default 127.0.0.1:0).
	Addr string
	// Progress receives a line per simulated day; nil for none.
	Progress io.Writer
	// Logger receives the server's log; nil writes it to HOME/demo.log.
	Logger *slog.Logger
	// Monitors applies the platform's monitors.yaml (drift and
	// responsible-AI monitors whose breaches publish drift_detected).
	Monitors bool
	// Report, when set, is where the HTML report is written.
	Report string
	// Workers is how many members' sessions run at once (default 2).
	Workers int
}

// Episodes are the scripted days (0: not within the demo's days).
type Episodes struct {
	Outage     int `json:"outage"`
	Expansion  int `json:"catalog_expansion"`
	Launch     int `json:"market_launch"`
	Regression int `json:"injected_regression"`
}

func episodes(days int) Episodes {
	at := func(share float64, least int) int {
		d := max(least, int(math.Round(float64(days)*share)))
		if d > days {
			return 0
		}
		return d
	}
	return Episodes{Outage: at(0.13, 2), Expansion: at(0.27, 3), Launch: at(0.4, 4), Regression: at(0.83, 6)}
}

// ExpansionTitles is how many titles the catalog expansion adds.
const ExpansionTitles = 500

// historyDays of interactions exist before the first simulated day.
const historyDays = 28

// start is the first simulated day (a Monday: the weekly retrain runs on
// Mondays' features). It lies ahead of the real clock: a server started
// on the home later judges experiments on the real clock and finds their
// data in its future (docs/demo.md, "Not yet").
var start = time.Date(2027, 1, 4, 0, 0, 0, 0, time.UTC)

// endpoint is the recommend endpoint of the platform's endpoints.yaml,
// recModel the model it serves.
const (
	endpoint = "home"
	recModel = "rec-als"
)

// clock is the simulated time: it moves only when the demo moves it.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.t) {
		c.t = t
	}
}

// Demo is one running simulation.
type Demo struct {
	o     Options
	st    store.Store
	blobs *artifact.Store
	srv   *server.Server
	c     *client
	clk   *clock
	w     *world
	ep    Episodes
	wh    string // the warehouse folder

	dayStarts []time.Time // wall time each simulated day began (to date records)
	stats     []dayStats
	served    map[string]bool // titles ever shown
	mu        sync.Mutex
	latencies []float64
	outage    struct{ requests, fallback int }
}

// dayStats is what the apps saw on one day.
type dayStats struct {
	Day, Sessions, Plays, Completions, Errors, Fallback, Requests, Timeouts int
	PlaysByMarket, CompletionsByMarket, SessionsByMarket                    map[string]int
	Items, NewCreatorItems                                                  int
	// Plays and sessions by experiment arm ("no experiment" outside any).
	ArmPlays, ArmSessions map[string]int
	// The search box: searches answered, refused, answered by BM25 alone
	// (the endpoint's fallback), timed out; the plays they led to.
	Searches, SearchErrors, SearchFallback, SearchTimeouts, SearchPlays int
}

// Validate checks the options and fills the defaults.
func (o *Options) Validate() error {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.Days, 30)
	def(&o.Members, 1500)
	def(&o.Titles, 800)
	def(&o.Workers, 2)
	if o.Seed == 0 {
		o.Seed = 1
	}
	switch {
	case o.Days < 1 || o.Days > 3650:
		return fault.Invalidf("--days", "%d: between 1 and 3650", o.Days)
	case o.Members < 100 || o.Members > 10_000_000:
		return fault.Invalidf("--members", "%d: between 100 and 10,000,000", o.Members)
	case o.Titles < 100 || o.Titles > 1_000_000:
		return fault.Invalidf("--titles", "%d: between 100 and 1,000,000", o.Titles)
	case o.Platform == nil:
		return fault.Invalidf("platform", "no platform files")
	}
	return nil
}

// Run runs the demo to its last day and returns its summary. The server
// keeps serving until ctx ends when serve is set (the summary is returned
// through done first).
func Run(ctx context.Context, o Options, serveAfter func(addr, loginURL string, s Summary) error) (Summary, error) {
	if err := o.Validate(); err != nil {
		return Summary{}, err
	}
	began := time.Now()
	d := &Demo{o: o, clk: &clock{t: start.Add(-time.Hour)}, ep: episodes(o.Days), served: map[string]bool{}}
	st, err := o.Home.OpenStore(ctx)
	if err != nil {
		return Summary{}, fmt.Errorf("open the store: %w", err)
	}
	defer st.Close()
	d.st = st
	if fl, err := st.Flows(ctx); err != nil {
		return Summary{}, err
	} else if len(fl) > 0 {
		return Summary{}, fault.Invalidf("--home", "%s already holds %d flows (an earlier demo?): run the demo in a new home (--home DIR), or remove that one", o.Home.Dir, len(fl))
	}
	if d.blobs, err = o.Home.OpenArtifacts(ctx); err != nil {
		return Summary{}, err
	}
	defer d.blobs.Close()
	if err := d.applyPlatform(ctx); err != nil {
		return Summary{}, err
	}
	if d.w, err = newWorld(o.Seed, o.Members, o.Titles, ExpansionTitles, historyDays, start); err != nil {
		return Summary{}, err
	}
	d.wh = filepath.Join(o.Home.Dir, "warehouse")
	if err := d.w.writeTables(d.wh); err != nil {
		return Summary{}, err
	}
	hist := d.w.history()
	histClicks, err := d.w.historySearches(ctx, hist)
	if err != nil {
		return Summary{}, fmt.Errorf("the history's searches: %w", err)
	}
	for day, rows := range hist {
		if err := d.w.writePartition(d.wh, day, rows); err != nil {
			return Summary{}, err
		}
		if err := writeClicks(d.wh, day, histClicks[day]); err != nil {
			return Summary{}, err
		}
	}

	logger := o.Logger
	if logger == nil {
		f, err := os.OpenFile(filepath.Join(o.Home.Dir, "demo.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return Summary{}, err
		}
		defer f.Close()
		logger = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelInfo}))
		d.o.Logger = logger
	}
	addr := o.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	d.srv, err = server.New(st, d.blobs, o.Home, server.Options{Addr: addr, Now: d.clk.Now, Manual: true,
		Poll: 20 * time.Millisecond, Reload: 100 * time.Millisecond, Logger: logger})
	if err != nil {
		return Summary{}, err
	}
	if err := d.srv.Listen(); err != nil {
		return Summary{}, err
	}
	// Flow steps reach the server (baton rollout start) through the home's
	// announcement, as with baton server.
	if err := o.Home.AnnounceServer(home.Server{Addr: d.srv.Addr(), PID: os.Getpid(), Started: time.Now()}); err != nil {
		return Summary{}, err
	}
	defer o.Home.WithdrawServer()
	srvCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	served := make(chan error, 1)
	go func() { served <- d.srv.Run(srvCtx) }()
	defer func() {
		stop()
		<-served
	}()
	tok, err := o.Home.EnsureAPIToken()
	if err != nil {
		return Summary{}, err
	}
	d.c = newClient(d.srv.Addr(), tok)
	if err := d.waitHealthy(ctx, served); err != nil {
		return Summary{}, err
	}

	if err := d.bootstrap(ctx, hist); err != nil {
		return Summary{}, fmt.Errorf("bootstrap: %w", err)
	}
	for day := 1; day <= o.Days; day++ {
		if err := d.day(ctx, day); err != nil {
			return Summary{}, fmt.Errorf("day %d: %w", day, err)
		}
	}
	sum, err := d.summary(ctx)
	sum.WallSeconds = round(time.Since(began).Seconds(), 1)
	if err == nil && o.Report != "" {
		err = atomicfile.Write(o.Report, func(w io.Writer) error { return d.Report(ctx, w, sum) })
	}
	if err != nil {
		return sum, err
	}
	if serveAfter != nil {
		return sum, serveAfter(d.srv.Addr(), d.srv.LoginURL(), sum)
	}
	return sum, nil
}

func (d *Demo) waitHealthy(ctx context.Context, served <-chan error) error {
	for range 500 {
		select {
		case err := <-served:
			return fmt.Errorf("the server stopped: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if d.c.healthy(ctx) {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return errors.New("the server did not answer /healthz within 5 s")
}

// applyPlatform copies the platform's files into HOME/platform and applies
// the signals, flows and features there with the code of `baton flow
// apply` and `baton feature apply`. Endpoints wait for the first models.
func (d *Demo) applyPlatform(ctx context.Context) error {
	dir := filepath.Join(d.o.Home.Dir, "platform")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	names, err := fs.Glob(d.o.Platform, "*")
	if err != nil {
		return err
	}
	var docs []catalog.Document
	for _, n := range names {
		b, err := fs.ReadFile(d.o.Platform, n)
		if err != nil {
			return err
		}
		p := filepath.Join(dir, n)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return err
		}
		switch n {
		case "features.yaml", "endpoints.yaml", "monitors.yaml", "scenarios.yaml":
		default:
			if strings.HasSuffix(n, ".yaml") {
				docs = append(docs, catalog.FileDocument(p, b))
			}
		}
	}
	if _, err := catalog.Apply(ctx, d.st, docs); err != nil {
		return fmt.Errorf("apply the platform's flows: %w", err)
	}
	fp := filepath.Join(dir, "features.yaml")
	b, err := os.ReadFile(fp)
	if err != nil {
		return err
	}
	fd, err := feature.ParseWith(fp, b, nil)
	if err != nil {
		return err
	}
	if _, err := feature.Apply(ctx, d.st, fp, fd); err != nil {
		return fmt.Errorf("apply the platform's features: %w", err)
	}
	return nil
}

// settle runs the server's judges at the current simulated time and waits
// until the orchestrator has nothing left to do; when runs happened, it
// runs the judges again (serving reloads what those runs changed: a
// version put in production by one flow while another started a
// rollout), until a pass starts nothing. Then what serves next does not
// depend on which of two concurrent flows finished first.
func (d *Demo) settle(ctx context.Context) error {
	for {
		if err := errors.Join(d.srv.Step(ctx), d.srv.EvaluateMonitors(ctx)); err != nil {
			// The judges say what they could not do; the demo goes on, as
			// a server would, and the log keeps it.
			d.o.Logger.Warn("step", "err", err)
		}
		busy := false
		for {
			idle, err := d.srv.Idle(ctx)
			if err != nil {
				return err
			}
			if idle {
				break
			}
			busy = true
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(5 * time.Millisecond):
			}
		}
		if !busy {
			return nil
		}
	}
}

// bootstrap makes the platform's first state: the history's events on the
// streaming path, the last history day landed (features), the first
// training (an operator's), the endpoints.
func (d *Demo) bootstrap(ctx context.Context, hist map[string][]interaction) error {
	days := make([]string, 0, len(hist))
	for day := range hist {
		days = append(days, day)
	}
	sort.Strings(days)
	type mt struct{ m, t int }
	done := map[mt]bool{}
	for _, rows := range hist {
		for _, r := range rows {
			if r.complete {
				done[mt{r.member, r.title}] = true
			}
		}
	}
	// The history goes to the streaming path a batch at a time, each
	// source in the order of its days (impressions, then plays), so that
	// a large history never sits in memory as events.
	d.clk.set(start.Add(-time.Minute))
	var batch []map[string]any
	flush := func(source string) error {
		if len(batch) == 0 {
			return nil
		}
		err := d.c.events(ctx, source, batch)
		batch = batch[:0]
		return err
	}
	add := func(source string, ev map[string]any) error {
		batch = append(batch, ev)
		if len(batch) >= 5000 {
			return flush(source)
		}
		return nil
	}
	for _, day := range days {
		// A member's plays of a day were one session: its page view
		// (impression) came a minute before the first. The number of
		// items it showed is not known: left out.
		first := map[int]int64{}
		for _, r := range hist[day] {
			if f, ok := first[r.member]; !ok || r.ts < f {
				first[r.member] = r.ts
			}
		}
		for _, m := range slices.Sorted(maps.Keys(first)) {
			mb := d.w.w.Data.Members[m]
			if err := add("impressions", map[string]any{"member_id": mb.ID, "ts": time.Unix(first[m]-60, 0).UTC().Format(time.RFC3339Nano), "market": mb.Market}); err != nil {
				return err
			}
		}
	}
	if err := flush("impressions"); err != nil {
		return err
	}
	for _, day := range days {
		for _, r := range hist[day] {
			if !r.complete {
				mins := 20.0
				if done[mt{r.member, r.title}] {
					mins = 70
				}
				if err := add("plays", d.playEvent(r.member, r.title, time.Unix(r.ts, 0), mins, done[mt{r.member, r.title}])); err != nil {
					return err
				}
			}
		}
	}
	if err := flush("plays"); err != nil {
		return err
	}
	last := days[len(days)-1]
	if _, err := d.c.startRun(ctx, "ingest", map[string]any{"date": last}); err != nil {
		return err
	}
	if err := d.settle(ctx); err != nil {
		return err
	}
	sigs, err := d.st.Signals(ctx, store.SignalFilter{Name: "features_ready", Limit: 1})
	if err != nil {
		return err
	}
	if len(sigs) == 0 {
		return errors.New("the last history day's features were not ready: see baton runs --flow member-features")
	}
	params := map[string]any{"date": last}
	if ts, ok := sigs[0].Params["training_set"]; ok {
		params["training_set"] = ts
	}
	if _, err := d.c.startRun(ctx, "train-recommender", params); err != nil {
		return err
	}
	if err := d.settle(ctx); err != nil {
		return err
	}
	// The history's last day is a Sunday: its features started the first
	// re-ranker's training on the history's click log, and that flow
	// applied the search endpoint.
	trained, err := d.st.Runs(ctx, store.RunFilter{Flow: "train-search", Limit: 1})
	if err != nil {
		return err
	}
	if len(trained) == 0 || trained[0].Status != store.RunSucceeded {
		return errors.New("the first search training did not succeed: see baton runs --flow train-search")
	}
	ep := filepath.Join(d.o.Home.Dir, "platform", "endpoints.yaml")
	doc, err := serve.ReadFile(ep)
	if err != nil {
		return err
	}
	if _, err := doc.Apply(ctx, d.st); err != nil {
		return fmt.Errorf("apply %s: %w", ep, err)
	}
	// Monitors name the endpoint and the model in production: last. The
	// quality scenarios always (they measure, they publish nothing); the
	// drift and responsible-AI monitors unless left out (Options.Monitors).
	files := []string{"scenarios.yaml"}
	if d.o.Monitors {
		files = append(files, "monitors.yaml")
	}
	for _, f := range files {
		mp := filepath.Join(d.o.Home.Dir, "platform", f)
		if _, err := os.Stat(mp); err != nil {
			continue
		}
		mdoc, err := monitor.ReadFile(mp)
		if mdoc == nil {
			return err
		}
		if _, err := mdoc.Apply(ctx, d.st); err != nil {
			return fmt.Errorf("apply %s: %w", mp, err)
		}
	}
	return d.settle(ctx)
}

// playEvent is a plays event of the streaming path.
func (d *Demo) playEvent(m, t int, at time.Time, minutes float64, complete bool) map[string]any {
	w := d.w.w.Data
	age := at.Sub(time.Unix(w.Titles[t].Released, 0)).Hours() / 24
	c := 0.0
	if complete {
		c = 1
	}
	return map[string]any{"member_id": w.Members[m].ID, "ts": at.UTC().Format(time.RFC3339Nano), "title_id": w.Titles[t].ID,
		"market": w.Members[m].Market, "minutes": math.Round(minutes*10) / 10, "completed": c, "title_age_days": math.Max(0, math.Round(age))}
}

// visit is one member's session of one day: the home page, and in some
// sessions a search after it.
type visit struct {
	member int
	minute int // of the day
	page   page
	s      session
	err    error
	query  string // "" when the member does not search
	found  searchPage
	hits   []string
	ss     session // the response to the search page
	serr   error
}

// day simulates one day: the episodes that start it, the members' sessions
// hour by hour (each hour: pages served, events and experiment metrics
// posted, then the server's judges and the signal chain settle), and the
// day's partition landing at midnight.
func (d *Demo) day(ctx context.Context, day int) error {
	d.dayStarts = append(d.dayStarts, time.Now())
	t0 := start.AddDate(0, 0, day-1)
	date := t0.Format(time.DateOnly)
	d.clk.set(t0)
	st := dayStats{Day: day, PlaysByMarket: map[string]int{}, CompletionsByMarket: map[string]int{}, SessionsByMarket: map[string]int{},
		ArmPlays: map[string]int{}, ArmSessions: map[string]int{}}
	if err := d.episodeStart(ctx, day, t0); err != nil {
		return err
	}
	// Who visits today, and when.
	var visits []visit
	for m := range d.w.memberOpen {
		if !d.w.memberOpen[m] || d.w.cancelled[m] {
			continue
		}
		r := d.w.rng(day, m, 1)
		if r.Float64() >= d.w.activity[m] {
			continue
		}
		// Evenings are busier.
		h := int(math.Mod(20+r.NormFloat64()*4, 24))
		if h < 0 {
			h += 24
		}
		v := visit{member: m, minute: h*60 + r.IntN(60)}
		v.query, _ = d.w.query(day, m)
		visits = append(visits, v)
	}
	sort.Slice(visits, func(i, j int) bool {
		if visits[i].minute != visits[j].minute {
			return visits[i].minute < visits[j].minute
		}
		return visits[i].member < visits[j].member
	})
	var rows []interaction
	var clicks []search.Click
	for h := range 24 {
		lo := sort.Search(len(visits), func(i int) bool { return visits[i].minute >= h*60 })
		hi := sort.Search(len(visits), func(i int) bool { return visits[i].minute >= (h+1)*60 })
		hour := visits[lo:hi]
		d.clk.set(t0.Add(time.Duration(h)*time.Hour + 30*time.Minute))
		d.serveAll(ctx, day, hour)
		d.clk.set(t0.Add(time.Duration(h+1) * time.Hour))
		var plays, imps []map[string]any
		exp := map[string][]map[string]any{}
		for i := range hour {
			v := &hour[i]
			at := t0.Add(time.Duration(v.minute) * time.Minute)
			if v.query != "" {
				p, r, c := d.searched(&st, v, at)
				plays, rows, clicks = append(plays, p...), append(rows, r...), append(clicks, c...)
			}
			if v.err != nil {
				st.Errors++
				continue
			}
			m := d.w.w.Data.Members[v.member]
			st.Sessions++
			st.Requests++
			st.SessionsByMarket[m.Market]++
			if v.page.Path == "fallback" {
				st.Fallback++
			}
			if v.page.Reason == "timeout" || strings.Contains(v.page.Detail, "fallback model") {
				st.Timeouts++
			}
			items := 0
			for _, r := range v.page.Prediction.Rows {
				for _, it := range r.Items {
					items++
					if it.NewCreator {
						st.NewCreatorItems++
					}
				}
			}
			st.Items += items
			imps = append(imps, map[string]any{"member_id": m.ID, "ts": at.Format(time.RFC3339Nano), "market": m.Market, "items": float64(items)})
			for k, e := range v.s.events {
				pat := at.Add(time.Duration(k+1) * time.Minute)
				plays = append(plays, d.playEvent(v.member, e.title, pat, e.minutes, e.complete))
				rows = append(rows, interaction{member: v.member, title: e.title, ts: pat.Unix()})
				if e.complete {
					rows = append(rows, interaction{member: v.member, title: e.title, ts: pat.Unix() + 60, complete: true})
				}
			}
			st.Plays += v.s.plays
			arm := "no experiment"
			if _, variant, ok := strings.Cut(v.page.Experiment, "/"); ok {
				arm = variant
			}
			st.ArmPlays[arm] += v.s.plays
			st.ArmSessions[arm]++
			st.Completions += v.s.completions
			st.PlaysByMarket[m.Market] += v.s.plays
			st.CompletionsByMarket[m.Market] += v.s.completions
			if v.s.cancelled {
				d.w.cancelled[v.member] = true
			}
			if name, _, ok := strings.Cut(v.page.Experiment, "/"); ok {
				for _, mv := range []struct {
					metric string
					v      float64
				}{{"plays", float64(v.s.plays)}, {"completions", float64(v.s.completions)}, {"playback_errors", float64(v.s.errors)},
					{"cancellations", b2f(v.s.cancelled)}, {"support_contacts", float64(v.s.support)}} {
					exp[name] = append(exp[name], map[string]any{"unit": m.ID, "metric": mv.metric, "value": mv.v})
				}
			}
		}
		if err := d.c.events(ctx, "plays", plays); err != nil {
			return err
		}
		if err := d.c.events(ctx, "impressions", imps); err != nil {
			return err
		}
		names := make([]string, 0, len(exp))
		for n := range exp {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if err := d.c.metrics(ctx, n, exp[n]); err != nil {
				return err
			}
		}
		if err := d.settle(ctx); err != nil {
			return err
		}
	}
	d.stats = append(d.stats, st)
	// Midnight: tomorrow's catalog and members are in the warehouse (an
	// expansion, a launch), and the day's partition lands with them.
	d.clk.set(t0.AddDate(0, 0, 1))
	if err := d.tablesFor(day+1, t0.AddDate(0, 0, 1)); err != nil {
		return err
	}
	if err := d.w.writePartition(d.wh, date, rows); err != nil {
		return err
	}
	if err := writeClicks(d.wh, date, clicks); err != nil {
		return err
	}
	if _, err := d.c.startRun(ctx, "ingest", map[string]any{"date": date}); err != nil {
		return err
	}
	if err := d.settle(ctx); err != nil {
		return err
	}
	if d.o.Progress != nil {
		fmt.Fprintf(d.o.Progress, "day %2d %s: %4d sessions, %4d plays (%.2f a session), fallback %5.1f%%, %3d searches%s\n", day, date, st.Sessions, st.Plays,
			float64(st.Plays)/math.Max(1, float64(st.Sessions)), 100*float64(st.Fallback)/math.Max(1, float64(st.Requests)), st.Searches, d.episodeNote(day))
	}
	return nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (d *Demo) episodeNote(day int) string {
	var notes []string
	switch day {
	case d.ep.Outage:
		notes = append(notes, "model outage")
	}
	if day == d.ep.Expansion {
		notes = append(notes, fmt.Sprintf("catalog +%d titles", ExpansionTitles))
	}
	if day == d.ep.Launch {
		notes = append(notes, "market "+launchMarket+" opens")
	}
	if day == d.ep.Regression {
		notes = append(notes, "candidate with an injected regression")
	}
	if len(notes) == 0 {
		return ""
	}
	return "  [" + strings.Join(notes, "; ") + "]"
}

// tablesFor changes the world for day (starting at t0) where its
// episode changes the catalog or the members, and writes the tables; it
// runs at the midnight before, so that the night's ingest lands them.
func (d *Demo) tablesFor(day int, t0 time.Time) error {
	changed := false
	if day == d.ep.Expansion {
		for t := range d.w.expansion {
			d.w.titleOpen[t] = true
			d.w.w.Data.Titles[t].Released = t0.Unix()
		}
		changed = true
	}
	if day == d.ep.Launch {
		for m, mb := range d.w.w.Data.Members {
			if mb.Market == launchMarket {
				d.w.memberOpen[m] = true
				d.w.w.Data.Members[m].Joined = t0.Unix()
			}
		}
		changed = true
	}
	if changed {
		if err := d.w.refreshQueries(); err != nil {
			return err
		}
		return d.w.writeTables(d.wh)
	}
	return nil
}

// episodeStart begins the day's scripted episode, if any.
func (d *Demo) episodeStart(ctx context.Context, day int, t0 time.Time) error {
	if day == d.ep.Outage {
		if err := d.c.fault(ctx, endpoint, serve.FaultError, "1d"); err != nil {
			return err
		}
	}
	if day == d.ep.Regression {
		return d.regression(ctx, t0)
	}
	return nil
}

// regression plays an operator who trains a candidate by hand (with the
// injected regression) and has it tested now: the platform's canary flow
// tests one candidate at a time, so the operator stops the experiment
// running, if any, sends its candidate back to registered and starts the
// canary flow for the new version, all through the API.
func (d *Demo) regression(ctx context.Context, t0 time.Time) error {
	prev := t0.AddDate(0, 0, -1).Format(time.DateOnly)
	if _, err := d.c.startRun(ctx, "train-recommender", map[string]any{"date": prev, "regression": true}); err != nil {
		return err
	}
	if err := d.settle(ctx); err != nil {
		return err
	}
	vs, err := d.st.ModelVersions(ctx, recModel)
	if err != nil || len(vs) == 0 {
		return fmt.Errorf("the regression's training registered no %s version: %v", recModel, err)
	}
	v := vs[len(vs)-1]
	if v.State != store.ModelRegistered {
		return nil // the slot was free: its canary check started
	}
	const why = "stopped by the operator to test a hand-trained candidate now"
	rs, err := d.st.Rollouts(ctx, endpoint)
	if err != nil {
		return err
	}
	for _, r := range rs {
		// A candidate still in its canary check: the rollout is aborted
		// (its version goes back to registered).
		if r.Status == store.RolloutRunning {
			if err := d.c.abortRollout(ctx, endpoint, why); err != nil {
				return err
			}
		}
	}
	if vs, err = d.st.ModelVersions(ctx, recModel); err != nil {
		return err
	}
	for _, old := range vs {
		if old.State != store.ModelCanary {
			continue
		}
		// A candidate in its A/B test: the experiment stops and the
		// version goes back to registered.
		if err := d.c.experimentStatus(ctx, fmt.Sprintf("home-v%d", old.Version), string(store.ExperimentStopped), why); err != nil && !isNotFound(err) {
			return err
		}
		if err := d.c.transition(ctx, recModel, old.Version, string(store.ModelRegistered), why); err != nil {
			return err
		}
	}
	if _, err := d.c.startRun(ctx, "canary", map[string]any{"model": recModel, "version": strconv.Itoa(v.Version)}); err != nil {
		return err
	}
	return d.settle(ctx)
}

// serveAll runs an hour's sessions, a few at a time: each member asks for
// the home page and responds to it. A member's behaviour depends only on
// the seed, the day and the member, so the order does not matter.
func (d *Demo) serveAll(ctx context.Context, day int, vs []visit) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range d.o.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				d.serveHome(ctx, day, &vs[i])
				if vs[i].query != "" {
					d.serveSearch(ctx, day, &vs[i])
				}
			}
		}()
	}
	for i := range vs {
		next <- i
	}
	close(next)
	wg.Wait()
}

// serveHome asks the home page for v's member and responds to it.
func (d *Demo) serveHome(ctx context.Context, day int, v *visit) {
	m := d.w.w.Data.Members[v.member]
	t := time.Now()
	p, err := d.c.recommend(ctx, endpoint, m.ID, m.Market)
	lat := float64(time.Since(t).Microseconds()) / 1000
	if err != nil {
		v.err = err
		return
	}
	v.page = p
	var titles []string
	for _, r := range p.Prediction.Rows {
		for _, it := range r.Items {
			titles = append(titles, it.Title)
		}
	}
	v.s = d.w.respond(d.w.rng(day, v.member, 2), v.member, titles)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.latencies = append(d.latencies, lat)
	for _, t := range titles {
		d.served[t] = true
	}
	if day == d.ep.Outage {
		d.outage.requests++
		if p.Path == "fallback" {
			d.outage.fallback++
		}
	}
}

// serveSearch sends v's query to the search endpoint, with the member so
// that the re-ranker knows their tastes, and responds to the hits.
func (d *Demo) serveSearch(ctx context.Context, day int, v *visit) {
	m := d.w.w.Data.Members[v.member]
	p, err := d.c.search(ctx, searchEndpoint, v.query, m.ID)
	if err != nil {
		v.serr = err
		return
	}
	v.found = p
	for _, h := range p.Prediction.Hits {
		v.hits = append(v.hits, h.Title)
	}
	v.ss = d.w.respondSearch(day, v.member, v.hits)
}

// searched accounts for v's search (its session began at at): its plays
// go to the streaming path and the day's interactions as the home page's
// do, a minute apart after them; every title shown goes to the day's
// click log.
func (d *Demo) searched(st *dayStats, v *visit, at time.Time) ([]map[string]any, []interaction, []search.Click) {
	if v.serr != nil {
		st.SearchErrors++
		return nil, nil, nil
	}
	st.Searches++
	if v.found.Path == "fallback" {
		st.SearchFallback++
	}
	if v.found.Reason == "timeout" {
		st.SearchTimeouts++
	}
	st.SearchPlays += v.ss.plays
	var plays []map[string]any
	var rows []interaction
	from := at.Add(time.Duration(len(v.s.events)+1) * time.Minute)
	for k, e := range v.ss.events {
		pat := from.Add(time.Duration(k+1) * time.Minute)
		plays = append(plays, d.playEvent(v.member, e.title, pat, e.minutes, e.complete))
		rows = append(rows, interaction{member: v.member, title: e.title, ts: pat.Unix()})
		if e.complete {
			rows = append(rows, interaction{member: v.member, title: e.title, ts: pat.Unix() + 60, complete: true})
		}
	}
	return plays, rows, d.w.clickRows(v.member, v.query, v.hits, v.ss)
}

// quantile of xs (sorted in place).
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	return xs[min(len(xs)-1, int(q*float64(len(xs))))]
}
