package feature

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/baton-ml/baton/internal/dur"
	"github.com/baton-ml/baton/internal/flow"
)

// Engine is the streaming path: it validates events, appends them to their
// source's log, and applies them to the online store. It also answers
// online look-ups.
type Engine struct {
	cat    *Catalog // guarded by mu; swapped whole by SetCatalog
	dir    string
	online OnlineStore
	now    func() time.Time
	logger *slog.Logger

	mu   sync.Mutex
	logs map[string]*Log
	// pos is how far into each source's log the online store has been
	// fed: it follows the log, whoever appended.
	pos map[string]Pos
	// reset marks sources whose field layout changed: their online data
	// is dropped and rebuilt from the log at the next Tail.
	reset map[string]bool
	// newest event time and last ingest of each source (unix µs).
	newest     map[string]int64
	lastIngest map[string]int64

	Metrics *Metrics
}

// Metrics are the streaming path's Prometheus collectors.
type Metrics struct {
	Events    *prometheus.CounterVec
	Rejected  *prometheus.CounterVec
	Late      *prometheus.CounterVec
	Freshness prometheus.Histogram
	Stale     *prometheus.GaugeVec
	// OnlineErrors counts batches logged but not yet applied online.
	OnlineErrors *prometheus.CounterVec
}

// NewMetrics makes (and, with reg, registers) the collectors.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_feature_events_total",
			Help: "Events accepted into a source's log."}, []string{"source"}),
		Rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_feature_events_rejected_total",
			Help: "Malformed events, kept in the dead-letter log."}, []string{"source"}),
		Late: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_feature_events_late_total",
			Help: "Events behind the watermark: logged for the batch path, not applied online."}, []string{"source"}),
		Freshness: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "baton_feature_freshness_seconds",
			Help:    "From an event accepted to its value visible online.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1}}),
		Stale: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "baton_feature_stale",
			Help: "1 while a streaming feature is staler than its freshness SLA."}, []string{"feature"}),
		OnlineErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_feature_online_errors_total",
			Help: "Batches logged but not applied to the online store (applied later by catch-up)."}, []string{"source"}),
	}
	if reg != nil {
		reg.MustRegister(m.Events, m.Rejected, m.Late, m.Freshness, m.Stale, m.OnlineErrors)
	}
	return m
}

// NewEngine makes the streaming path over the definitions in cat, with
// event logs under dir (the home's features folder) and the online store
// online.
func NewEngine(cat *Catalog, dir string, online OnlineStore, m *Metrics) *Engine {
	if m == nil {
		m = NewMetrics(nil)
	}
	return &Engine{cat: cat, dir: dir, online: online, now: time.Now, logger: slog.Default(), logs: map[string]*Log{}, pos: map[string]Pos{}, reset: map[string]bool{},
		newest: map[string]int64{}, lastIngest: map[string]int64{}, Metrics: m}
}

// SetClock sets the clock events are stamped with on ingest and
// staleness is judged by (default time.Now): a server on a simulated
// clock (baton demo) gives its own. Call before ingesting.
func (e *Engine) SetClock(now func() time.Time) { e.now = now }

// Catalog returns the engine's definitions.
func (e *Engine) Catalog() *Catalog {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cat
}

// SetCatalog swaps in newly applied definitions; logs of sources whose
// fields changed are reopened, so new segments use the new layout.
func (e *Engine) SetCatalog(c *Catalog) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for name, l := range e.logs {
		if s := c.Sources[name]; s == nil || !sameHeader(headerOf(s), l.hdr) {
			l.Close()
			delete(e.logs, name)
			// Online events hold values by position in the old layout.
			e.reset[name] = true
		}
	}
	e.cat = c
}

// LogDir is where the event logs live.
func (e *Engine) LogDir() string { return filepath.Join(e.dir, "log") }

// DeadLetterDir is where rejected events are kept.
func (e *Engine) DeadLetterDir() string { return filepath.Join(e.dir, "deadletter") }

func (e *Engine) log(name string) (*Log, *Source, error) {
	src := e.cat.Sources[name]
	if src == nil {
		return nil, nil, flow.Errors{{Field: "source", Msg: fmt.Sprintf("unknown source %q; baton feature list shows the registered ones", name)}}
	}
	if l := e.logs[name]; l != nil {
		return l, src, nil
	}
	l, err := OpenLog(e.LogDir(), src)
	if err != nil {
		return nil, nil, err
	}
	e.logs[name] = l
	return l, src, nil
}

// Close closes the logs and the online store.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var errs []error
	for _, l := range e.logs {
		errs = append(errs, l.Close())
	}
	errs = append(errs, e.online.Close())
	return errors.Join(errs...)
}

// Replay rebuilds the online store from the event logs: the embedded
// store's persistence is the log itself. It is Tail from the start.
func (e *Engine) Replay(ctx context.Context) error { return e.Tail(ctx) }

// Tail feeds the online store what the logs hold beyond its position:
// events other processes (a CLI ingest beside a server) appended. The
// server calls it often, so their events reach its look-ups too.
func (e *Engine) Tail(ctx context.Context) error {
	// A look at the files without the engine's lock first: look-ups wait
	// on that lock, and most ticks find nothing new.
	e.mu.Lock()
	var todo []string
	for name := range e.cat.Sources {
		todo = append(todo, name)
	}
	pos := maps.Clone(e.pos)
	reset := len(e.reset) > 0
	e.mu.Unlock()
	grew := false
	for _, name := range todo {
		if _, seen := pos[name]; !seen || logGrew(filepath.Join(e.LogDir(), name), pos[name]) {
			grew = true
			break
		}
	}
	if !grew && !reset {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for name := range e.cat.Sources {
		l, _, err := e.log(name)
		if err != nil {
			return err
		}
		if e.reset[name] {
			if err := e.online.Reset(ctx, name); err != nil {
				return fmt.Errorf("reset the online store of %s: %w", name, err)
			}
			e.pos[name], e.newest[name] = Pos{}, 0
			delete(e.reset, name)
		}
		if _, err := e.catchUp(ctx, name, l); err != nil {
			return fmt.Errorf("read the event log of %s: %w", name, err)
		}
	}
	return nil
}

// SkipToEnd marks every log as already applied: for an online store that
// outlives the process (Redis), which holds what the logs hold.
func (e *Engine) SkipToEnd(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for name := range e.cat.Sources {
		l, _, err := e.log(name)
		if err != nil {
			return err
		}
		end, err := l.ReadFrom(e.pos[name], func(*Event) error { return nil })
		if err != nil {
			return err
		}
		e.pos[name] = end
	}
	return nil
}

// catchUp reads source's log from the engine's position to its end and
// applies those events (in log order, through the watermark); it returns
// how many were late. e.mu is held.
func (e *Engine) catchUp(ctx context.Context, source string, l *Log) (int, error) {
	late := 0
	var batch []Event
	flush := func() error {
		n, err := e.applyOnline(ctx, source, batch)
		late += n
		batch = batch[:0]
		return err
	}
	end, err := l.ReadFrom(e.pos[source], func(ev *Event) error {
		c := *ev
		c.Vals = append([]Value(nil), ev.Vals...)
		batch = append(batch, c)
		if c.Ingested > e.lastIngest[source] {
			e.lastIngest[source] = c.Ingested
		}
		if len(batch) == 4096 {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return late, err
	}
	e.pos[source] = end
	return late, nil
}

// IngestResult says what happened to an ingested batch.
type IngestResult struct {
	Source   string      `json:"source"`
	Accepted int         `json:"accepted"`
	Rejected int         `json:"rejected"`
	Late     int         `json:"late"`
	Errors   []Rejection `json:"rejections,omitempty"`
}

// maxReported bounds the rejections an ingest reports back; the dead-letter
// log keeps them all.
const maxReported = 20

// batchSize is how many events share one fsync.
const batchSize = 8192

// Ingest reads events (CSV or JSON lines) of source from r: good events are
// logged and applied, bad ones dead-lettered, and the rest of the input
// proceeds either way.
func (e *Engine) Ingest(ctx context.Context, source string, r io.Reader) (IngestResult, error) {
	res := IngestResult{Source: source}
	cat := e.Catalog()
	src := cat.Sources[source]
	if src == nil {
		return res, flow.Errors{{Field: "source", Msg: fmt.Sprintf("unknown source %q; baton feature list shows the registered ones", source)}}
	}
	dec := NewDecoder(src, cat.KeyOf(src))
	var batch []Event
	var rejects []Rejection
	flush := func() error {
		if err := DeadLetter(e.DeadLetterDir(), source, rejects); err != nil {
			return err
		}
		res.Rejected += len(rejects)
		e.Metrics.Rejected.WithLabelValues(source).Add(float64(len(rejects)))
		for _, r := range rejects {
			if len(res.Errors) < maxReported {
				res.Errors = append(res.Errors, r)
			}
		}
		rejects = rejects[:0]
		late, err := e.Apply(ctx, source, batch)
		if err != nil {
			return err
		}
		res.Accepted += len(batch)
		res.Late += late
		batch = batch[:0]
		return nil
	}
	err := dec.ReadEvents(r, func(ev Event) error {
		batch = append(batch, ev)
		if len(batch) >= batchSize {
			return flush()
		}
		return nil
	}, func(rj Rejection) error {
		rj.Source = source
		rejects = append(rejects, rj)
		if len(rejects) >= batchSize {
			return flush()
		}
		return nil
	})
	if ferr := flush(); err == nil {
		err = ferr
	}
	return res, err
}

// Apply logs decoded events of source and applies them online; it returns
// how many were late (behind the watermark: logged, not applied online).
func (e *Engine) Apply(ctx context.Context, source string, evs []Event) (late int, err error) {
	if len(evs) == 0 {
		return 0, nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	l, _, err := e.log(source)
	if err != nil {
		return 0, err
	}
	now := e.now().UnixMicro()
	wall := time.Now()
	for i := range evs {
		evs[i].Ingested = now
	}
	start, end, err := l.Append(evs)
	if err != nil {
		return 0, err
	}
	// The events are durable now: whatever happens to the online store,
	// the call succeeds, or a retrying caller would log them twice. If the
	// store fails, the position stays behind and Tail applies them later.
	if e.pos[source] == start {
		// Nothing appended by others since the online store's position:
		// apply these events from memory.
		if late, err = e.applyOnline(ctx, source, evs); err == nil {
			e.pos[source] = end
		}
	} else {
		late, err = e.catchUp(ctx, source, l)
	}
	if err != nil {
		e.Metrics.OnlineErrors.WithLabelValues(source).Inc()
		e.logger.Warn("online store: events are logged and will be applied by the next catch-up", "source", source, "err", err)
	}
	done := e.now()
	e.lastIngest[source] = done.UnixMicro()
	e.Metrics.Events.WithLabelValues(source).Add(float64(len(evs)))
	if late > 0 {
		e.Metrics.Late.WithLabelValues(source).Add(float64(late))
	}
	// Freshness is real time, whatever the clock of record is.
	e.Metrics.Freshness.Observe(time.Since(wall).Seconds())
	return late, nil
}

// applyOnline applies events (in log order) ahead of the watermark to the
// online store and returns how many were late: behind the newest event
// seen so far, in arrival order, by more than the allowed lateness. e.mu
// is held.
func (e *Engine) applyOnline(ctx context.Context, source string, evs []Event) (late int, err error) {
	if len(evs) == 0 {
		return 0, nil
	}
	ret := e.cat.Retention(source).Microseconds()
	lateness := e.cat.Lateness(source).Microseconds()
	newest := e.newest[source]
	onTime := evs
	for i := range evs {
		if newest != 0 && evs[i].Time <= newest-lateness {
			late++
		}
		newest = max(newest, evs[i].Time)
	}
	if late > 0 {
		onTime = make([]Event, 0, len(evs)-late)
		wm := e.newest[source]
		for _, ev := range evs {
			if wm == 0 || ev.Time > wm-lateness {
				onTime = append(onTime, ev)
			}
			wm = max(wm, ev.Time)
		}
	}
	if err := e.online.Apply(ctx, source, onTime, ret); err != nil {
		return late, err
	}
	e.newest[source] = newest
	return late, nil
}

// Vector is one key's online feature values.
type Vector struct {
	Key      string         `json:"key"`
	Features map[string]any `json:"features"`
	Versions map[string]int `json:"versions"`
	AsOf     time.Time      `json:"as_of"`
}

// Get returns the online values of feats for key as of at.
func (e *Engine) Get(ctx context.Context, key string, feats []*Feature, at time.Time) (Vector, error) {
	cat := e.Catalog()
	v := Vector{Key: key, Features: make(map[string]any, len(feats)), Versions: make(map[string]int, len(feats)), AsOf: at.UTC()}
	t := at.UnixMicro()
	// Features of one source share one range read: its longest window.
	type need struct {
		from int64
		fs   []*Feature
	}
	bySource := map[string]*need{}
	for _, f := range feats {
		n := bySource[f.Source]
		if n == nil {
			n = &need{from: t}
			bySource[f.Source] = n
		}
		n.from = min(n.from, t-f.Window.D().Microseconds())
		n.fs = append(n.fs, f)
	}
	for source, n := range bySource {
		evs, err := e.online.Range(ctx, source, key, n.from, t)
		if err != nil {
			return v, fmt.Errorf("online look-up of %s in %s: %w", key, source, err)
		}
		src := cat.Sources[source]
		if src == nil {
			return v, fmt.Errorf("source %s is no longer defined", source)
		}
		for _, f := range n.fs {
			fi := fieldIndex(f, src)
			v.Features[f.Name] = windowValue(f, fi, evs, t).JSON(outType(f, src))
			v.Versions[f.Name] = f.Version
		}
	}
	return v, nil
}

// Staleness returns, for each feature with a freshness SLA, how long since
// its source last received an event, and whether that breaks the SLA.
func (e *Engine) Staleness(now time.Time) []Stale {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Stale
	for _, name := range e.cat.FeatureNames() {
		f := e.cat.Features[name]
		if f.FreshnessSLA <= 0 {
			continue
		}
		last := e.lastIngest[f.Source]
		age := time.Duration(now.UnixMicro()-last) * time.Microsecond
		if last == 0 {
			age = -1
		}
		s := Stale{Feature: name, Source: f.Source, SLA: f.FreshnessSLA.D(), Age: age, Signal: f.StaleSignal}
		s.Breached = last == 0 || age > s.SLA
		if s.Breached {
			e.Metrics.Stale.WithLabelValues(name).Set(1)
		} else {
			e.Metrics.Stale.WithLabelValues(name).Set(0)
		}
		out = append(out, s)
	}
	return out
}

// Stale is one feature's freshness against its SLA. Age is -1 when the
// source has had no event since the engine started.
type Stale struct {
	Feature  string        `json:"feature"`
	Source   string        `json:"source"`
	SLA      time.Duration `json:"sla"`
	Age      time.Duration `json:"age"`
	Breached bool          `json:"breached"`
	Signal   bool          `json:"signal"`
}

// staleJSON is how the API writes a Stale: durations as "1s" or "7d", and
// no age when the source has had no event.
type staleJSON struct {
	Feature  string        `json:"feature"`
	Source   string        `json:"source"`
	SLA      dur.Duration  `json:"sla"`
	Age      *dur.Duration `json:"age,omitempty"`
	Breached bool          `json:"breached"`
	Signal   bool          `json:"signal"`
}

// MarshalJSON writes durations readably ("sla": "1s", not nanoseconds).
func (s Stale) MarshalJSON() ([]byte, error) {
	j := staleJSON{Feature: s.Feature, Source: s.Source, SLA: dur.Duration(s.SLA), Breached: s.Breached, Signal: s.Signal}
	if s.Age >= 0 {
		a := dur.Duration(s.Age)
		j.Age = &a
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *Stale) UnmarshalJSON(b []byte) error {
	var j staleJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*s = Stale{Feature: j.Feature, Source: j.Source, SLA: j.SLA.D(), Age: -1, Breached: j.Breached, Signal: j.Signal}
	if j.Age != nil {
		s.Age = j.Age.D()
	}
	return nil
}

// logGrew says whether a log holds anything beyond p (a stat, no reading).
func logGrew(dir string, p Pos) bool {
	segs, err := segments(dir)
	if err != nil || len(segs) == 0 {
		return false
	}
	last := segs[len(segs)-1]
	if last != p.Seg {
		return last > p.Seg
	}
	st, err := os.Stat(segPath(dir, last))
	return err == nil && st.Size() > p.Off
}
