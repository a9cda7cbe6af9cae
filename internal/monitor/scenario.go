package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/baton-ml/baton/internal/experiment"
	"github.com/baton-ml/baton/internal/feature"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/signal"
	"github.com/baton-ml/baton/internal/store"
)

// A scenario monitor measures a quality attribute scenario (RAD-AI's
// QS-01..03: a stimulus, the response the platform owes, a deadline) from
// what happened, each evaluation, on the server's clock: the measured
// response, and pass, fail or pending (still within its deadline).
//
// Times come from two places only: event times (feature events, exposures,
// experiment metric events, stamped on the server's clock when they came
// in without one) and the evaluations themselves. A signal's own time is
// the clock of whichever process published it, so a signal counts as
// happened when an evaluation first sees it (by its sequence number): the
// resolution is the monitor's every.

// The measures a scenario monitor can take.
const (
	// MeasureNewGroupQuality: a group of events (a market) that appears
	// after the monitor started reaches min_relative of the global
	// quality within `within` of its first event.
	MeasureNewGroupQuality = "new_group_quality"
	// MeasureRetrainAfter: after a change (a signal whose param grew by
	// min_increase), a response signal (a retrained model) comes within
	// `within`, and engagement meanwhile stays at min_relative of the
	// window before the change.
	MeasureRetrainAfter = "retrain_after"
	// MeasureGuardrailPause: a treatment whose guardrail metric is worse
	// than control's by more than its max_degradation (seen with
	// hindsight from the exposures and metric events) is paused within
	// `within`.
	MeasureGuardrailPause = "guardrail_pause"
)

// Measures lists the measures, for messages.
var Measures = []string{MeasureNewGroupQuality, MeasureRetrainAfter, MeasureGuardrailPause}

// Scenario is what a scenario monitor measures.
type Scenario struct {
	// ID names the scenario in the architecture views (QS-01).
	ID string `json:"id" yaml:"id"`
	// Target says the scenario in words, for people.
	Target  string `json:"target,omitempty" yaml:"target"`
	Measure string `json:"measure" yaml:"measure"`
	// Within is the deadline of the response.
	Within Duration `json:"within" yaml:"within"`
	// Window (new_group_quality, retrain_after) is the span a quality is
	// measured over (default 7d).
	Window Duration `json:"window,omitzero" yaml:"window"`
	// Quality (new_group_quality): the ratio, its by (the groups) and
	// min_relative (a new group's share of the global ratio to reach).
	Quality *Ratio `json:"quality,omitempty" yaml:"quality"`
	// Change and Response (retrain_after): the stimulus and the answer.
	Change   *SignalMatch `json:"change,omitempty" yaml:"change"`
	Response *SignalMatch `json:"response,omitempty" yaml:"response"`
	// Engagement (retrain_after): the ratio whose value after the change
	// must stay at min_relative of the window before it.
	Engagement *Ratio `json:"engagement,omitempty" yaml:"engagement"`
	// MinUnits (guardrail_pause) is the fewest exposed units per arm a
	// breach is seen on (default 20).
	MinUnits int `json:"min_units,omitempty" yaml:"min_units"`
}

// SignalMatch picks signals: by name, a CEL condition over params (as a
// trigger's when) and, for a change, a numeric param that must grow by at
// least MinIncrease over the previous matching signal's.
type SignalMatch struct {
	Signal      string  `json:"signal" yaml:"signal"`
	When        string  `json:"when,omitempty" yaml:"when"`
	Param       string  `json:"param,omitempty" yaml:"param"`
	MinIncrease float64 `json:"min_increase,omitempty" yaml:"min_increase"`
}

// Scenario defaults.
const (
	DefaultScenarioWindow = 7 * 24 * time.Hour
	DefaultMinUnits       = 20
)

var scenarioID = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]{0,31}$`)

func (sc *Scenario) withDefaults() *Scenario {
	if sc == nil {
		return nil
	}
	c := *sc
	if c.Window <= 0 && c.Measure != MeasureGuardrailPause {
		c.Window = Duration(DefaultScenarioWindow)
	}
	if c.MinUnits == 0 && c.Measure == MeasureGuardrailPause {
		c.MinUnits = DefaultMinUnits
	}
	for _, r := range []**Ratio{&c.Quality, &c.Engagement} {
		if *r != nil && (*r).MinEvents == 0 {
			x := **r
			x.MinEvents = DefaultMinEvents
			*r = &x
		}
	}
	return &c
}

func (sc *Scenario) problems(at string) flow.Errors {
	var errs flow.Errors
	add := func(field, format string, args ...any) {
		errs = append(errs, &flow.Error{Field: at + ".scenario" + field, Msg: fmt.Sprintf(format, args...)})
	}
	if sc == nil {
		return flow.Errors{{Field: at + ".scenario", Msg: "say what is measured: {id, target, measure, within, ...} (docs/monitors.md, scenario)"}}
	}
	if !scenarioID.MatchString(sc.ID) {
		add(".id", "%q: a short name such as QS-01 (a letter, then letters, digits, . _ -)", sc.ID)
	}
	if sc.Within <= 0 {
		add(".within", "give the response's deadline (30d, 14d, 1h)")
	}
	if sc.Window < 0 {
		add(".window", "%s: must be positive", sc.Window)
	}
	if sc.MinUnits < 0 {
		add(".min_units", "%d: must be positive", sc.MinUnits)
	}
	own := map[string][]string{
		MeasureNewGroupQuality: {"window", "quality"},
		MeasureRetrainAfter:    {"window", "change", "response", "engagement"},
		MeasureGuardrailPause:  {"min_units"},
	}
	fields, ok := own[sc.Measure]
	if !ok {
		add(".measure", "%q: one of %s", sc.Measure, strings.Join(Measures, ", "))
		return errs
	}
	for _, f := range []struct {
		name string
		on   bool
	}{{"window", sc.Window != 0}, {"quality", sc.Quality != nil}, {"change", sc.Change != nil}, {"response", sc.Response != nil},
		{"engagement", sc.Engagement != nil}, {"min_units", sc.MinUnits != 0}} {
		if f.on && !slices.Contains(fields, f.name) {
			add("."+f.name, "is not a field of the %s measure", sc.Measure)
		}
	}
	match := func(field string, m *SignalMatch, change bool) {
		if m == nil {
			if change {
				add(field, "say which signal is the change: {signal: data_landed, when: 'params.table == \"catalog\"', param: rows, min_increase: 500}")
			} else {
				add(field, "say which signal is the response: {signal: model_trained, when: 'params.model == \"rec-als\"'}")
			}
			return
		}
		if !flow.ValidName(m.Signal) {
			add(field+".signal", "%q is not a signal name", m.Signal)
		}
		if m.When != "" {
			if _, err := signal.Compile(m.When, true); err != nil {
				add(field+".when", "%v", err)
			}
		}
		switch {
		case change && m.Param == "":
			add(field+".param", "name the numeric param whose growth is the change (rows)")
		case change && (!(m.MinIncrease > 0) || math.IsInf(m.MinIncrease, 0)):
			add(field+".min_increase", "%g: how much the param must grow over the previous signal's, above 0", m.MinIncrease)
		case !change && (m.Param != "" || m.MinIncrease != 0):
			add(field, "a response is a signal and its when: param and min_increase belong to the change")
		}
	}
	ratio := func(field string, r *Ratio, needBy bool, share string) {
		if r == nil {
			add(field, "give the ratio: {numerator: {source, field}, denominator: {source}, min_relative: %s}", share)
			return
		}
		x := *r
		if x.MinRelative == nil {
			add(field+".min_relative", "give the share to reach (%s)", share)
			x.MinRelative = ptr(1.0)
		}
		if r.Min != nil || r.Max != nil || r.MaxRelative != nil {
			add(field, "a scenario judges min_relative only")
		}
		if !needBy {
			if r.By != "" {
				add(field+".by", "engagement is measured over all events, against the window before the change: no by")
			}
			x.By = "-" // its min_relative is against the past, not a group's
		}
		errs = append(errs, x.problems(at, ".scenario"+field, true, true)...)
	}
	switch sc.Measure {
	case MeasureNewGroupQuality:
		ratio(".quality", sc.Quality, true, "0.9 of the global")
	case MeasureRetrainAfter:
		match(".change", sc.Change, true)
		match(".response", sc.Response, false)
		ratio(".engagement", sc.Engagement, false, "0.95 of the window before the change")
	}
	return errs
}

// ScenarioEvidence is what a scenario evaluation found: the measured
// response and its status, what it was measured on, and the state the
// next evaluation carries on from (what earlier ones saw).
type ScenarioEvidence struct {
	ID      string `json:"id"`
	Target  string `json:"target,omitempty"`
	Measure string `json:"measure"`
	// Status is pass, fail, pending (a stimulus whose deadline has not
	// come and whose response has not either) or none (no stimulus yet).
	Status   string   `json:"status"`
	Measured *float64 `json:"measured"`
	Unit     string   `json:"unit"`
	Detail   string   `json:"detail"`
	// Cases are the stimuli measured (a new group, a change, an
	// experiment's breach), each with its own status.
	Cases []ScenarioCase `json:"cases"`
	State ScenarioState  `json:"state"`
}

// Scenario statuses.
const (
	ScenarioPass    = "pass"
	ScenarioFail    = "fail"
	ScenarioPending = "pending"
	ScenarioNone    = "none"
)

// ScenarioCase is one stimulus and its response.
type ScenarioCase struct {
	Subject   string     `json:"subject"`
	Stimulus  time.Time  `json:"stimulus"`
	Deadline  time.Time  `json:"deadline"`
	Response  *time.Time `json:"response,omitempty"`
	Measured  *float64   `json:"measured"`
	Status    string     `json:"status"`
	Detail    string     `json:"detail"`
	Reference *float64   `json:"reference,omitempty"`
}

// ScenarioState is what evaluations carry on from one to the next.
type ScenarioState struct {
	// Started is the first evaluation's time: what was there before it
	// is history, not a stimulus.
	Started time.Time `json:"started"`
	// Seq is the newest signal seen (retrain_after).
	Seq int64 `json:"seq,omitempty"`
	// Established are the groups seen at the first evaluation;
	// FirstSeen the first event time of each group that came after
	// (new_group_quality).
	Established []string             `json:"established,omitempty"`
	FirstSeen   map[string]time.Time `json:"first_seen,omitempty"`
	// Reached is when a new group first measured at its target.
	Reached map[string]time.Time `json:"reached,omitempty"`
	// ScannedTo is how far the events were read for new groups; Origin
	// the first event time seen.
	ScannedTo time.Time `json:"scanned_to,omitzero"`
	Origin    time.Time `json:"origin,omitzero"`
	// Last is the change param's newest value; Changes the changes seen,
	// each with its response when one came (retrain_after).
	Last    *float64         `json:"last,omitempty"`
	Changes []observedChange `json:"changes,omitempty"`
	// Paused is when each experiment was first seen paused by a
	// guardrail, by experiment@version (guardrail_pause).
	Paused map[string]time.Time `json:"paused,omitempty"`
	// Breach caches each experiment's breach time once found, and
	// BreachOf what breached.
	Breach   map[string]time.Time `json:"breach,omitempty"`
	BreachOf map[string]string    `json:"breach_of,omitempty"`
}

type observedChange struct {
	Seq      int64      `json:"seq"`
	Signal   string     `json:"signal"`
	At       time.Time  `json:"at"`
	From     float64    `json:"from"`
	To       float64    `json:"to"`
	Response *time.Time `json:"response,omitempty"`
	RespSig  string     `json:"response_signal,omitempty"`
	// Engagement: measured once a day while open, kept once closed.
	Engagement   *float64  `json:"engagement,omitempty"`
	EngagementAt time.Time `json:"engagement_at,omitzero"`
	Closed       bool      `json:"closed,omitempty"`
}

// ScenarioReader is what scenario monitors read beyond the monitors'
// store: signals and experiments.
type ScenarioReader interface {
	Signals(ctx context.Context, f store.SignalFilter) ([]store.Signal, error)
	store.ExperimentStore
}

// previousState is the scenario state of the monitor's newest result.
func (r *Runner) previousState(ctx context.Context, name string) (*ScenarioState, error) {
	last, err := r.d.Store.MonitorResults(ctx, store.MonitorResultFilter{Monitor: name, Limit: 1})
	if err != nil || len(last) == 0 {
		return nil, err
	}
	var ev ScenarioEvidence
	if err := json.Unmarshal(last[0].Evidence, &ev); err != nil || ev.State.Started.IsZero() {
		// An evaluation that failed before it had a state: start again.
		return nil, nil
	}
	return &ev.State, nil
}

func (r *Runner) scenario(ctx context.Context, s Spec, now time.Time) (evaluation, error) {
	sc := s.Scenario.withDefaults()
	ev := &ScenarioEvidence{ID: sc.ID, Target: sc.Target, Measure: sc.Measure, Status: ScenarioNone, Cases: []ScenarioCase{}}
	prev, err := r.previousState(ctx, s.Name)
	if err != nil {
		return evaluation{evidence: ev}, err
	}
	if prev != nil {
		ev.State = *prev
	} else {
		ev.State.Started = now.UTC()
	}
	switch sc.Measure {
	case MeasureNewGroupQuality:
		err = r.newGroupQuality(ctx, sc, now, ev, prev == nil)
	case MeasureRetrainAfter:
		err = r.retrainAfter(ctx, sc, now, ev, prev == nil)
	case MeasureGuardrailPause:
		err = r.guardrailPause(ctx, sc, now, ev)
	default:
		err = fmt.Errorf("unknown measure %q", sc.Measure)
	}
	summarize(sc, ev)
	c := Check{Name: sc.ID, Value: ev.Measured, Note: ev.Status}
	switch sc.Measure {
	case MeasureGuardrailPause:
		c.Max = ptr(sc.Within.D().Hours())
	case MeasureNewGroupQuality:
		c.Min = sc.Quality.MinRelative
	case MeasureRetrainAfter:
		c.Min = sc.Engagement.MinRelative
	}
	c.Judged = ev.Status == ScenarioPass || ev.Status == ScenarioFail
	c.Breached = ev.Status == ScenarioFail
	return evaluation{checks: []Check{c}, evidence: ev}, err
}

// summarize makes the scenario's status and measured value from its
// cases: the worst case decides (a failure, then a pending one, then
// the slowest or lowest pass).
func summarize(sc *Scenario, ev *ScenarioEvidence) {
	rank := map[string]int{ScenarioFail: 3, ScenarioPending: 2, ScenarioPass: 1}
	var worst *ScenarioCase
	for i := range ev.Cases {
		c := &ev.Cases[i]
		if worst == nil || rank[c.Status] > rank[worst.Status] || rank[c.Status] == rank[worst.Status] && worse(sc, c, worst) {
			worst = c
		}
	}
	switch sc.Measure {
	case MeasureGuardrailPause:
		ev.Unit = "hours"
	case MeasureNewGroupQuality:
		ev.Unit = "ratio to global"
	case MeasureRetrainAfter:
		ev.Unit = "ratio to baseline"
	}
	if worst == nil {
		if ev.Detail == "" {
			ev.Detail = "nothing to measure yet"
		}
		return
	}
	ev.Status, ev.Measured = worst.Status, worst.Measured
	ev.Detail = worst.Subject + ": " + worst.Detail
	if n := len(ev.Cases); n > 1 {
		ev.Detail += fmt.Sprintf(" (the worst of %d)", n)
	}
}

func worse(sc *Scenario, a, b *ScenarioCase) bool {
	if a.Measured == nil || b.Measured == nil {
		return a.Measured == nil && b.Measured != nil
	}
	if sc.Measure == MeasureGuardrailPause {
		return *a.Measured > *b.Measured
	}
	return *a.Measured < *b.Measured
}

// newGroupQuality finds the groups that appeared after the first
// evaluation and measures each one's quality against the global over the
// window ending at its deadline (or now, before it).
func (r *Runner) newGroupQuality(ctx context.Context, sc *Scenario, now time.Time, ev *ScenarioEvidence, first bool) error {
	if r.d.Features == nil {
		return errors.New("this process has no feature engine")
	}
	q := *sc.Quality
	st := &ev.State
	seen := map[string]bool{}
	for _, g := range st.Established {
		seen[g] = true
	}
	for g := range st.FirstSeen {
		seen[g] = true
	}
	if st.FirstSeen == nil {
		st.FirstSeen = map[string]time.Time{}
	}
	// A group appears with its first event on either side of the ratio.
	// Groups there at the first evaluation, or within a window of the
	// first event the monitor saw (a platform that starts empty), are
	// established: the rest are launches.
	sources := []string{q.Numerator.Source}
	if q.Denominator.Source != q.Numerator.Source {
		sources = append(sources, q.Denominator.Source)
	}
	cat := r.d.Features.Catalog()
	for _, src := range sources {
		s := cat.Sources[src]
		if s == nil {
			return fmt.Errorf("source %s is not in the feature catalog", src)
		}
		by := slices.Index(s.FieldOrder(), q.By)
		if by < 0 {
			return fmt.Errorf("source %s has no field %s", src, q.By)
		}
		err := r.d.Features.Events(ctx, src, st.ScannedTo, now, func(e *feature.Event) error {
			at := time.UnixMicro(e.Time).UTC()
			if st.Origin.IsZero() || at.Before(st.Origin) {
				st.Origin = at
			}
			g := groupKey(e.Vals[by])
			if g == "" {
				return nil
			}
			if f, ok := st.FirstSeen[g]; ok && at.Before(f) {
				st.FirstSeen[g] = at // the other source saw it earlier
			}
			if seen[g] {
				return nil
			}
			seen[g] = true
			if first {
				st.Established = append(st.Established, g)
			} else {
				st.FirstSeen[g] = at
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	for g, at := range st.FirstSeen {
		if at.Before(st.Origin.Add(sc.Window.D())) {
			st.Established = append(st.Established, g)
			delete(st.FirstSeen, g)
		}
	}
	slices.Sort(st.Established)
	st.ScannedTo = now.UTC()
	if st.Reached == nil {
		st.Reached = map[string]time.Time{}
	}
	for _, g := range slices.Sorted(maps.Keys(st.FirstSeen)) {
		launched := st.FirstSeen[g]
		deadline := launched.Add(sc.Within.D())
		end := now
		if end.After(deadline) {
			end = deadline
		}
		from := end.Add(-sc.Window.D())
		if from.Before(launched) {
			from = launched
		}
		c := ScenarioCase{Subject: q.By + " " + g, Stimulus: launched, Deadline: deadline}
		if reached, ok := st.Reached[g]; ok {
			c.Response = &reached
		}
		qe, _, err := quality(ctx, r.d.Features, q, "", from, end)
		if err != nil {
			return err
		}
		var gr *GroupRatio
		for i := range qe.Groups {
			if qe.Groups[i].Value == g {
				gr = &qe.Groups[i]
			}
		}
		days := end.Sub(launched).Hours() / 24
		switch {
		case gr == nil || !gr.Judged:
			c.Status = ScenarioPending
			c.Detail = fmt.Sprintf("first seen %s; too few events to judge yet", launched.Format(time.DateTime))
			if !now.Before(deadline) {
				c.Status = ScenarioFail
				c.Detail = fmt.Sprintf("first seen %s; too few events to judge by the deadline", launched.Format(time.DateTime))
			}
		default:
			c.Measured = gr.Relative
			ok := *gr.Relative >= *q.MinRelative
			if ok && c.Response == nil {
				t := end.UTC()
				st.Reached[g], c.Response = t, &t
			}
			c.Detail = fmt.Sprintf("first seen %s; %.3g of the global %s/%s over %s to %s (%.1f days after)",
				launched.Format(time.DateTime), *gr.Relative, ratioName(q.Numerator), ratioName(q.Denominator),
				from.Format(time.DateTime), end.Format(time.DateTime), days)
			switch {
			case c.Response != nil:
				c.Status = ScenarioPass
				c.Detail += fmt.Sprintf("; reached %.2g on %s", *q.MinRelative, c.Response.Format(time.DateOnly))
			case !now.Before(deadline):
				c.Status = ScenarioFail
			default:
				c.Status = ScenarioPending
				c.Detail += fmt.Sprintf("; %.1f of %.0f days left", deadline.Sub(now).Hours()/24, sc.Within.D().Hours()/24)
			}
		}
		ev.Cases = append(ev.Cases, c)
	}
	if len(ev.Cases) == 0 {
		ev.Detail = fmt.Sprintf("no new %s since %s (established: %s)", q.By, st.Started.Format(time.DateTime), strings.Join(st.Established, ", "))
	}
	return nil
}

func groupKey(v feature.Value) string {
	switch v.Kind {
	case feature.KindStr:
		return v.Str
	case feature.KindNum:
		return strconv.FormatFloat(v.Num, 'g', -1, 64)
	}
	return ""
}

func ratioName(m Measure) string {
	if m.Field == "" {
		return m.Source
	}
	return m.Source + "." + m.Field
}

// retrainAfter follows the change and response signals since the last
// evaluation; a change is measured by when its response came and by
// engagement from the change to its response's deadline against the
// window before it.
func (r *Runner) retrainAfter(ctx context.Context, sc *Scenario, now time.Time, ev *ScenarioEvidence, first bool) error {
	sr := r.d.Store
	st := &ev.State
	change, err := compileMatch(sc.Change)
	if err != nil {
		return err
	}
	response, err := compileMatch(sc.Response)
	if err != nil {
		return err
	}
	for {
		sigs, err := sr.Signals(ctx, store.SignalFilter{AfterSeq: st.Seq, Limit: 1000})
		if err != nil {
			return err
		}
		for _, sg := range sigs {
			st.Seq = max(st.Seq, sg.Seq)
			if ok, v := change.match(sg); ok && v != nil {
				if !first && st.Last != nil && *v-*st.Last >= sc.Change.MinIncrease {
					st.Changes = append(st.Changes, observedChange{Seq: sg.Seq, Signal: sg.ID, At: now.UTC(), From: *st.Last, To: *v})
				}
				st.Last = v
			}
			if ok, _ := response.match(sg); ok && !first {
				for i := range st.Changes {
					c := &st.Changes[i]
					if c.Response == nil && sg.Seq > c.Seq {
						t := now.UTC()
						c.Response, c.RespSig = &t, sg.ID
					}
				}
			}
		}
		if len(sigs) < 1000 {
			break
		}
	}
	for i := range st.Changes {
		c := &st.Changes[i]
		deadline := c.At.Add(sc.Within.D())
		end := now
		if end.After(deadline) {
			end = deadline
		}
		closed := !now.Before(deadline)
		// Engagement reads the events' whole log: once a day while the
		// change is open, and once more when it closes.
		if !c.Closed && (c.Engagement == nil || now.Sub(c.EngagementAt) >= 24*time.Hour || closed) {
			e, err := r.engagement(ctx, sc, c.At, end)
			if err != nil {
				return err
			}
			c.Engagement, c.EngagementAt = e, now.UTC()
			c.Closed = closed
		}
		cs := ScenarioCase{Subject: fmt.Sprintf("%s %s %g → %g", sc.Change.Signal, sc.Change.Param, c.From, c.To), Stimulus: c.At,
			Deadline: deadline, Response: c.Response, Measured: c.Engagement}
		eng := "engagement not measured (too few events)"
		if c.Engagement != nil {
			eng = fmt.Sprintf("engagement %.3g of the %s before", *c.Engagement, sc.Window)
		}
		kept := c.Engagement != nil && *c.Engagement >= *sc.Engagement.MinRelative
		switch {
		case c.Response != nil:
			h := c.Response.Sub(c.At).Hours()
			cs.Detail = fmt.Sprintf("changed %s; %s (%s) %.1f days after; %s", c.At.Format(time.DateTime), sc.Response.Signal, c.RespSig, h/24, eng)
			cs.Status = ScenarioPass
			if !kept {
				cs.Status = ScenarioFail
				if c.Engagement != nil && !closed {
					cs.Status = ScenarioPending
				}
			}
		case closed:
			cs.Status = ScenarioFail
			cs.Detail = fmt.Sprintf("changed %s; no %s within %s; %s", c.At.Format(time.DateTime), sc.Response.Signal, sc.Within, eng)
		default:
			cs.Status = ScenarioPending
			cs.Detail = fmt.Sprintf("changed %s; waiting for %s (%.1f of %.0f days left); %s", c.At.Format(time.DateTime), sc.Response.Signal,
				deadline.Sub(now).Hours()/24, sc.Within.D().Hours()/24, eng)
		}
		ev.Cases = append(ev.Cases, cs)
	}
	if len(ev.Cases) == 0 {
		last := "none seen yet"
		if st.Last != nil {
			last = strconv.FormatFloat(*st.Last, 'g', -1, 64)
		}
		ev.Detail = fmt.Sprintf("no %s with %s grown by %g since %s (last %s)", sc.Change.Signal, sc.Change.Param, sc.Change.MinIncrease,
			st.Started.Format(time.DateTime), last)
	}
	return nil
}

// engagement is the ratio over [at, end) against the window before at.
func (r *Runner) engagement(ctx context.Context, sc *Scenario, at, end time.Time) (*float64, error) {
	if r.d.Features == nil {
		return nil, errors.New("this process has no feature engine")
	}
	q := *sc.Engagement
	q.By = ""
	before, _, err := quality(ctx, r.d.Features, q, "", at.Add(-sc.Window.D()), at)
	if err != nil {
		return nil, err
	}
	after, _, err := quality(ctx, r.d.Features, q, "", at, end)
	if err != nil {
		return nil, err
	}
	if before.Ratio == nil || after.Ratio == nil || before.Denominator.Events < q.MinEvents || after.Denominator.Events < q.MinEvents {
		return nil, nil
	}
	return finite(round6(*after.Ratio / *before.Ratio)), nil
}

type matcher struct {
	m   *SignalMatch
	prg *signal.Program
}

func compileMatch(m *SignalMatch) (*matcher, error) {
	out := &matcher{m: m}
	if m.When != "" {
		p, err := signal.Compile(m.When, true)
		if err != nil {
			return nil, err
		}
		out.prg = p
	}
	return out, nil
}

// match says whether sg is one of the matcher's signals and, with a
// param, its numeric value.
func (m *matcher) match(sg store.Signal) (bool, *float64) {
	if sg.Name != m.m.Signal {
		return false, nil
	}
	if m.prg != nil {
		ok, err := m.prg.Bool(signal.Input{Signal: sg.Name, Params: sg.Params})
		if err != nil || !ok {
			return false, nil
		}
	}
	if m.m.Param == "" {
		return true, nil
	}
	var v float64
	if err := json.Unmarshal(sg.Params[m.m.Param], &v); err != nil {
		return true, nil
	}
	return true, &v
}

// guardrailPause measures, for each experiment with guardrails, when its
// treatment first breached one (with hindsight, no statistics) and when
// it was first seen paused.
func (r *Runner) guardrailPause(ctx context.Context, sc *Scenario, now time.Time, ev *ScenarioEvidence) error {
	sr := r.d.Store
	st := &ev.State
	if st.Paused == nil {
		st.Paused = map[string]time.Time{}
	}
	if st.Breach == nil {
		st.Breach, st.BreachOf = map[string]time.Time{}, map[string]string{}
	}
	ls, err := experiment.Load(ctx, sr)
	if err != nil {
		return err
	}
	sort.Slice(ls, func(i, j int) bool { return ls[i].Spec.Name < ls[j].Spec.Name })
	for _, l := range ls {
		spec := l.Spec.WithDefaults()
		if len(spec.Guardrails) == 0 {
			continue
		}
		key := fmt.Sprintf("%s@%d", spec.Name, l.Version)
		paused := l.Status == store.ExperimentPaused
		if _, ok := st.Paused[key]; !ok && paused {
			st.Paused[key] = now.UTC()
		}
		breach, found := st.Breach[key]
		if !found {
			// Data after the pause changes nothing: the breach is looked
			// for among what came before it; once paused or stopped the
			// answer is final and kept.
			until := now
			if p, ok := st.Paused[key]; ok {
				until = p
			}
			b, what, err := firstBreach(ctx, sr, spec, l.Version, sc.MinUnits, until)
			if err != nil {
				return err
			}
			if l.Status != store.ExperimentRunning {
				st.Breach[key] = b // zero: none, for good
			}
			breach, st.BreachOf[key] = b, what
		}
		if breach.IsZero() {
			if _, ok := st.Paused[key]; ok {
				ev.Cases = append(ev.Cases, ScenarioCase{Subject: "experiment " + key, Status: ScenarioPass, Measured: ptr(0.0),
					Detail: "paused with no real breach of its tolerance in its data (a false alarm, or a pause by hand)"})
			}
			continue
		}
		c := ScenarioCase{Subject: "experiment " + key, Stimulus: breach, Deadline: breach.Add(sc.Within.D())}
		if p, ok := st.Paused[key]; ok {
			h := round6(math.Max(0, p.Sub(breach).Hours()))
			c.Response, c.Measured = &p, &h
			c.Status = ScenarioPass
			if h > sc.Within.D().Hours() {
				c.Status = ScenarioFail
			}
			c.Detail = fmt.Sprintf("breached %s (%s), paused by %s (%.2f h)", breach.Format(time.DateTime), st.BreachOf[key], p.Format(time.DateTime), h)
		} else {
			h := round6(now.Sub(breach).Hours())
			c.Measured = &h
			c.Status = ScenarioPending
			c.Detail = fmt.Sprintf("breached %s (%s), not paused after %.2f h", breach.Format(time.DateTime), st.BreachOf[key], h)
			if !now.Before(c.Deadline) {
				c.Status = ScenarioFail
			}
			if l.Status == store.ExperimentStopped {
				c.Status = ScenarioFail
				c.Detail = fmt.Sprintf("breached %s (%s), stopped without a pause (%s)", breach.Format(time.DateTime), st.BreachOf[key], l.Reason)
			}
		}
		ev.Cases = append(ev.Cases, c)
	}
	if len(ev.Cases) == 0 {
		ev.Detail = "no experiment's treatment breached a guardrail"
	}
	return nil
}

// firstBreach looks, with hindsight, for a real breach of an
// experiment's guardrails in what came before until, and returns when it
// began (zero if there was none). Real: on all that data a treatment's
// mean per exposed unit (units without an event count 0, as in the
// guardrail's analysis) is worse than control's by more than the
// tolerance (max_degradation × |control mean|), at the experiment's
// alpha shared by its guardrails and treatment arms (Bonferroni;
// one-sided, normal approximation, at least minUnits units a side). Began: the first instant from which the running means stayed
// beyond the tolerance until then, so early noise that came back is not
// the start.
func firstBreach(ctx context.Context, sr ScenarioReader, spec experiment.Spec, version, minUnits int, until time.Time) (time.Time, string, error) {
	ex, err := sr.Exposures(ctx, spec.Name, version)
	if err != nil {
		return time.Time{}, "", err
	}
	variant := make(map[string]string, len(ex))
	for _, e := range ex {
		if !e.At.After(until) {
			variant[e.Unit] = e.Variant
		}
	}
	type point struct {
		at   time.Time
		unit string
		v    float64
		exp  bool
	}
	alpha := spec.Alpha
	if alpha <= 0 {
		alpha = experiment.DefaultAlpha
	}
	// Bonferroni over the guardrails and the treatment arms: each is a
	// test, and an experiment with three guardrails would otherwise be
	// called harmful by chance one time in seven.
	arms := 0
	for _, v := range spec.Variants {
		if v.Name != spec.Control {
			arms++
		}
	}
	z := distuv.UnitNormal.Quantile(1 - alpha/float64(max(1, arms*len(spec.Guardrails))))
	var best time.Time
	var what string
	for _, g := range spec.Guardrails {
		ms, err := sr.MetricEvents(ctx, spec.Name, g.Metric)
		if err != nil {
			return time.Time{}, "", err
		}
		harmOf := func(t, c float64) float64 {
			if g.Direction == "decrease" {
				return c - t
			}
			return t - c
		}
		// The judgement on all the data: which arms were really worse.
		perUnit := map[string]float64{}
		for _, m := range ms {
			if _, ok := variant[m.Unit]; ok && !m.At.After(until) {
				perUnit[m.Unit] += m.Value
			}
		}
		type moments struct{ n, sum, sq float64 }
		byArm := map[string]*moments{}
		// Units in their order, not the map's: sums in Go's random order
		// would leave two evaluations of the same data a rounding apart,
		// and a test at its threshold could go either way.
		for _, u := range slices.Sorted(maps.Keys(variant)) {
			arm := variant[u]
			a := byArm[arm]
			if a == nil {
				a = &moments{}
				byArm[arm] = a
			}
			v := perUnit[u]
			a.n++
			a.sum += v
			a.sq += v * v
		}
		ctl := byArm[spec.Control]
		if ctl == nil || ctl.n < float64(minUnits) {
			continue
		}
		mean := func(a *moments) float64 { return a.sum / a.n }
		vari := func(a *moments) float64 { return math.Max(0, (a.sq-a.sum*a.sum/a.n)/math.Max(1, a.n-1)) }
		var worseArms []string
		for _, arm := range slices.Sorted(maps.Keys(byArm)) {
			a := byArm[arm]
			if arm == spec.Control || a.n < float64(minUnits) {
				continue
			}
			tol := g.MaxDegradation * math.Abs(mean(ctl))
			se := math.Sqrt(vari(a)/a.n + vari(ctl)/ctl.n)
			harm := harmOf(mean(a), mean(ctl))
			if harm > tol && (se == 0 || (harm-tol)/se > z) {
				worseArms = append(worseArms, arm)
			}
		}
		if len(worseArms) == 0 {
			continue
		}
		// When it began: walk the data in time order.
		pts := make([]point, 0, len(variant)+len(ms))
		for _, e := range ex {
			if _, ok := variant[e.Unit]; ok && !e.At.After(until) {
				pts = append(pts, point{at: e.At, unit: e.Unit, exp: true})
			}
		}
		for _, m := range ms {
			if _, ok := variant[m.Unit]; ok && !m.At.After(until) {
				pts = append(pts, point{at: m.At, unit: m.Unit, v: m.Value})
			}
		}
		// Exposures first at equal times: a metric of a unit exposed in
		// the same instant counts.
		sort.SliceStable(pts, func(i, j int) bool {
			if !pts[i].at.Equal(pts[j].at) {
				return pts[i].at.Before(pts[j].at)
			}
			return pts[i].exp && !pts[j].exp
		})
		units := map[string]int{}
		sums := map[string]float64{}
		for _, arm := range worseArms {
			var onset time.Time
			for i, p := range pts {
				a := variant[p.unit]
				if p.exp {
					units[a]++
				} else {
					sums[a] += p.v
				}
				if i+1 < len(pts) && pts[i+1].at.Equal(p.at) {
					continue // judge at the end of each instant
				}
				nc, nt := units[spec.Control], units[arm]
				beyond := false
				if nc >= minUnits && nt >= minUnits {
					cm, tm := sums[spec.Control]/float64(nc), sums[arm]/float64(nt)
					beyond = harmOf(tm, cm) > g.MaxDegradation*math.Abs(cm)
				}
				switch {
				case !beyond:
					onset = time.Time{}
				case onset.IsZero():
					onset = p.at.UTC()
				}
			}
			clear(units)
			clear(sums)
			if !onset.IsZero() && (best.IsZero() || onset.Before(best)) {
				a := byArm[arm]
				best, what = onset, fmt.Sprintf("%s of %s: %.4g a unit against control's %.4g over %.0f and %.0f units",
					g.Metric, arm, mean(a), mean(ctl), a.n, ctl.n)
			}
		}
	}
	return best, what, ctx.Err()
}

// Measured is a declared quality scenario and what the server last
// measured of it: its monitor's newest result, if it has one.
type Measured struct {
	Monitor string
	Spec    Scenario
	// Evaluated is false until the monitor has a result; then Evidence is
	// its newest, evaluated at EvaluatedAt, with Error if it failed.
	Evaluated   bool
	EvaluatedAt time.Time
	Evidence    ScenarioEvidence
	Error       string
}

// LoadScenarios reads every scenario monitor with its newest result, by
// scenario id: what `baton docs`, the overview page and baton demo's
// summary show.
func LoadScenarios(ctx context.Context, st store.MonitorStore) ([]Measured, error) {
	specs, err := Load(ctx, st)
	if err != nil {
		return nil, err
	}
	var out []Measured
	for _, sp := range specs {
		if sp.Kind != KindScenario || sp.Scenario == nil {
			continue
		}
		m := Measured{Monitor: sp.Name, Spec: *sp.Scenario}
		rs, err := Results(ctx, st, sp.Name, 1)
		if err != nil {
			return nil, err
		}
		if len(rs) > 0 {
			m.Evaluated, m.EvaluatedAt, m.Error = true, rs[0].EvaluatedAt, rs[0].Error
			if err := json.Unmarshal(rs[0].Evidence, &m.Evidence); err != nil {
				return nil, fmt.Errorf("monitor %s: its newest result's evidence: %w", sp.Name, err)
			}
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Measured) int { return strings.Compare(a.Spec.ID, b.Spec.ID) })
	return out, nil
}
