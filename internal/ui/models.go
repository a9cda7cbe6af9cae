package ui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/baton-ml/baton/internal/experiment"
	"github.com/baton-ml/baton/internal/fault"
	"github.com/baton-ml/baton/internal/serve"
	"github.com/baton-ml/baton/internal/store"
)

func (u *UI) modelsPage(w http.ResponseWriter, r *http.Request, v Viewer) error {
	ms, err := u.d.Store.Models(r.Context())
	if err != nil {
		return err
	}
	es, err := experiment.Load(r.Context(), u.d.Store)
	if err != nil {
		return err
	}
	u.render(w, http.StatusOK, "models", v, "Models and experiments", struct {
		Models      []store.ModelSummary
		Experiments []experiment.Loaded
	}{ms, es})
	return nil
}

type modelData struct {
	Name        string
	Versions    []versionRow
	Stages      []statusCount
	Transitions []transitionRow
	Rollouts    []rolloutRow
}

type versionRow struct {
	store.ModelVersion
	Metrics []kv
	Lineage string
	RunURL  string
}

type transitionRow struct {
	store.ModelTransition
	Decision string
}

type rolloutRow struct {
	store.Rollout
	Stages string
	Steps  []serve.Step
	Err    string
	Chart  string // uPlot data: the judge's score per evaluation
}

func (u *UI) modelPage(w http.ResponseWriter, r *http.Request, v Viewer) error {
	ctx := r.Context()
	name := r.PathValue("name")
	vs, err := u.d.Store.ModelVersions(ctx, name)
	if err != nil {
		return err
	}
	if len(vs) == 0 {
		return fault.Errorf(fault.NotFound, "no model %q", name)
	}
	d := modelData{Name: name}
	stages := map[store.ModelState]int{}
	for i := len(vs) - 1; i >= 0; i-- {
		mv := vs[i]
		row := versionRow{ModelVersion: mv, Lineage: pretty(mv.Lineage)}
		for _, k := range sortedKeys(mv.Metrics) {
			row.Metrics = append(row.Metrics, kv{k, strconv.FormatFloat(mv.Metrics[k], 'g', 6, 64)})
		}
		if mv.RunID > 0 {
			row.RunURL = "/runs/" + strconv.FormatInt(mv.RunID, 10)
		}
		d.Versions = append(d.Versions, row)
		stages[mv.State]++
	}
	for _, k := range sortedKeys(stages) {
		d.Stages = append(d.Stages, statusCount{k, stages[store.ModelState(k)]})
	}
	ts, err := u.d.Store.ModelTransitions(ctx, name, 0)
	if err != nil {
		return err
	}
	for i := len(ts) - 1; i >= 0; i-- {
		d.Transitions = append(d.Transitions, transitionRow{ModelTransition: ts[i], Decision: pretty(ts[i].Decision)})
	}
	rs, err := u.d.Store.Rollouts(ctx, "")
	if err != nil {
		return err
	}
	for _, ro := range rs {
		if ro.Model != name {
			continue
		}
		row := rolloutRow{Rollout: ro}
		var parts []string
		for _, s := range ro.Stages {
			// Stages are percents (serve.RolloutConfig), as is each step's Share.
			parts = append(parts, strconv.FormatFloat(s, 'g', 4, 64)+"%")
		}
		row.Stages = strings.Join(parts, " → ")
		if len(ro.History) > 0 && string(ro.History) != "null" {
			if err := json.Unmarshal(ro.History, &row.Steps); err != nil {
				row.Err = "the history cannot be read: " + err.Error()
			}
		}
		row.Chart = scoreChart(row.Steps)
		d.Rollouts = append(d.Rollouts, row)
	}
	u.render(w, http.StatusOK, "model", v, "Model "+name, d)
	return nil
}

// pretty indents JSON for a <pre>; "" for none.
func pretty(b json.RawMessage) string {
	if len(b) == 0 || string(b) == "null" {
		return ""
	}
	var out bytes.Buffer
	if json.Indent(&out, b, "", "  ") != nil {
		return string(b)
	}
	return out.String()
}

// chart is what charts.js draws with uPlot: x (Unix seconds) and named
// series, NaN as null (a gap).
type chart struct {
	Title  string     `json:"title"`
	X      []float64  `json:"x"`
	Series []series   `json:"series"`
	Bands  [][2]int   `json:"bands,omitempty"` // pairs of series indexes (low, high) to fill between
	YRange [2]float64 `json:"-"`
}

type series struct {
	Label string     `json:"label"`
	Y     []*float64 `json:"y"`
	Dash  bool       `json:"dash,omitempty"`
}

func num64(f float64) *float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil
	}
	return &f
}

func (c chart) encode() string {
	// One point is no line, and uPlot stretches a single time over years
	// of axis; the table beside the chart shows it.
	if len(c.X) < 2 {
		return ""
	}
	b, err := json.Marshal(c)
	if err != nil {
		return ""
	}
	return string(b)
}

func scoreChart(steps []serve.Step) string {
	c := chart{Title: "judge's score per evaluation", Series: []series{{Label: "score"}, {Label: "canary share %"}}}
	for _, s := range steps {
		if s.Result == "nodata" {
			continue
		}
		c.X = append(c.X, float64(s.At.Unix())+float64(s.At.Nanosecond())/1e9)
		c.Series[0].Y = append(c.Series[0].Y, num64(s.Score))
		c.Series[1].Y = append(c.Series[1].Y, num64(s.Share))
	}
	return c.encode()
}

type experimentData struct {
	L       experiment.Loaded
	Report  experiment.Report
	Checks  []checkRow
	CheckOK bool
	// NoData is when no guardrail has the two units a side its interval
	// needs: "no guardrail is violated" would claim what was not checked.
	NoData  bool
	Charts  []namedChart
	Metrics []metricRows
	Now     time.Time
}

// checkRow is a guardrail check as the page shows it.
type checkRow struct {
	experiment.Check
	NoData bool
}

type namedChart struct {
	Metric string
	Data   string
}

type metricRows struct {
	Name      string
	Guardrail bool
	Rows      []kv
	Compare   []comparisonRow
}

type comparisonRow struct {
	Variant, Method string
	Lift, CI, P     string
	Significant     bool
}

func (u *UI) experimentPage(w http.ResponseWriter, r *http.Request, v Viewer) error {
	ctx := r.Context()
	l, err := experiment.Find(ctx, u.d.Store, r.PathValue("name"))
	if err != nil {
		return err
	}
	now := u.d.Now()
	rep, err := experiment.BuildReport(ctx, u.d.Store, l, now)
	if err != nil {
		return err
	}
	checks, err := experiment.Evaluate(ctx, u.d.Store, l, now)
	if err != nil {
		return err
	}
	d := experimentData{L: l, Report: rep, CheckOK: true, NoData: true, Now: now}
	for _, c := range checks {
		if c.Violated {
			d.CheckOK = false
		}
		// Evaluate leaves the interval unbounded when a side has fewer
		// than two units.
		row := checkRow{Check: c, NoData: math.IsInf(c.Low, -1) && math.IsInf(c.High, 1)}
		if !row.NoData {
			d.NoData = false
		}
		d.Checks = append(d.Checks, row)
	}
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', 4, 64) }
	for _, m := range rep.Metrics {
		mr := metricRows{Name: m.Name, Guardrail: m.Guardrail}
		for _, vr := range l.Spec.Variants {
			s := m.Variants[vr.Name]
			mr.Rows = append(mr.Rows, kv{vr.Name, fmt.Sprintf("n %s · mean %s", num(s.N), f(s.Mean))})
		}
		for _, c := range m.Comparisons {
			mr.Compare = append(mr.Compare, comparisonRow{Variant: c.Variant, Method: c.Method, Lift: f(c.LiftAbs),
				CI: "[" + f(c.CILow) + ", " + f(c.CIHigh) + "]", P: f(c.PValue), Significant: c.Significant})
		}
		d.Metrics = append(d.Metrics, mr)
		if data := intervalChart(m); data != "" {
			d.Charts = append(d.Charts, namedChart{Metric: m.Name, Data: data})
		}
	}
	u.render(w, http.StatusOK, "experiment", v, "Experiment "+l.Spec.Name, d)
	return nil
}

// intervalChart is a metric's anytime-valid interval over time, per
// treatment: lift with its low and high bounds.
func intervalChart(m experiment.MetricReport) string {
	var variants []string
	seen := map[string]bool{}
	times := map[time.Time]bool{}
	var xs []time.Time
	for _, p := range m.Timeline {
		if !seen[p.Variant] {
			seen[p.Variant] = true
			variants = append(variants, p.Variant)
		}
		if !times[p.At] {
			times[p.At] = true
			xs = append(xs, p.At)
		}
	}
	if len(xs) == 0 {
		return ""
	}
	c := chart{Title: m.Name + ": lift over time, anytime-valid interval"}
	at := map[time.Time]int{}
	for i, t := range xs {
		c.X = append(c.X, float64(t.UnixMilli())/1000)
		at[t] = i
	}
	for _, vn := range variants {
		base := len(c.Series)
		lift := series{Label: vn + " lift", Y: make([]*float64, len(xs))}
		lo := series{Label: vn + " low", Y: make([]*float64, len(xs)), Dash: true}
		hi := series{Label: vn + " high", Y: make([]*float64, len(xs)), Dash: true}
		for _, p := range m.Timeline {
			if p.Variant != vn {
				continue
			}
			i := at[p.At]
			lift.Y[i], lo.Y[i], hi.Y[i] = num64(p.Lift), num64(p.Low), num64(p.High)
		}
		c.Series = append(c.Series, lift, lo, hi)
		c.Bands = append(c.Bands, [2]int{base + 1, base + 2})
	}
	return c.encode()
}
