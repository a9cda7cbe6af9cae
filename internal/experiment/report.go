package experiment

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/baton-ml/baton/internal/abtest"
	"github.com/baton-ml/baton/internal/registry"
	"github.com/baton-ml/baton/internal/store"
)

// Report is an experiment's results from its stored exposures and metric
// events: per metric and variant, Welch and the sequential interval, and
// the sequential interval over time.
type Report struct {
	Experiment string           `json:"experiment"`
	Version    int              `json:"version"`
	Status     string           `json:"status"`
	Reason     string           `json:"reason,omitempty"`
	Control    string           `json:"control"`
	SRM        abtest.SRMResult `json:"srm"`
	Metrics    []MetricReport   `json:"metrics"`
	At         time.Time        `json:"at"`
}

// MetricReport is one metric's results.
type MetricReport struct {
	Name        string                    `json:"name"`
	Guardrail   bool                      `json:"guardrail,omitempty"`
	Variants    map[string]abtest.Summary `json:"variants"`
	Comparisons []abtest.Comparison       `json:"comparisons"`
	// Timeline is the sequential interval of each treatment over time.
	Timeline []Point `json:"timeline"`
}

// Point is an interval at one time.
type Point struct {
	At      time.Time `json:"at"`
	Variant string    `json:"variant"`
	Lift    float64   `json:"lift"`
	Low     float64   `json:"low"`
	High    float64   `json:"high"`
	N       int       `json:"n"`
}

// timelinePoints is how many times the timeline samples.
const timelinePoints = 12

// BuildReport computes the report of a loaded experiment as of now.
func BuildReport(ctx context.Context, st store.ExperimentStore, l Loaded, now time.Time) (Report, error) {
	s := l.Spec.WithDefaults()
	r := Report{Experiment: s.Name, Version: l.Version, Status: l.Status, Reason: l.Reason, Control: s.Control, At: now}
	metrics := append([]string(nil), s.Metrics...)
	guard := map[string]bool{}
	for _, g := range s.Guardrails {
		guard[g.Metric] = true
		if !slices.Contains(metrics, g.Metric) {
			metrics = append(metrics, g.Metric)
		}
	}
	exps, err := st.Exposures(ctx, s.Name, l.Version)
	if err != nil {
		return r, err
	}
	counts := make([]int, len(s.Variants))
	weights := make([]float64, len(s.Variants))
	idx := map[string]int{}
	for i, v := range s.Variants {
		idx[v.Name], weights[i] = i, v.Weight
	}
	var first time.Time
	for _, e := range exps {
		if i, ok := idx[e.Variant]; ok {
			counts[i]++
		}
		if first.IsZero() || e.At.Before(first) {
			first = e.At
		}
	}
	r.SRM = abtest.SRM(counts, weights)
	for _, m := range metrics {
		evs, err := st.MetricEvents(ctx, s.Name, m)
		if err != nil {
			return r, err
		}
		data := DataFrom(exps, evs, time.Time{})
		mr := MetricReport{Name: m, Guardrail: guard[m], Variants: map[string]abtest.Summary{}}
		for _, v := range s.Variants {
			mr.Variants[v.Name] = abtest.Summarize(data[v.Name])
		}
		ctl := mr.Variants[s.Control]
		for _, v := range s.Variants {
			if v.Name == s.Control {
				continue
			}
			w := abtest.Welch(ctl, mr.Variants[v.Name], s.Alpha)
			w.Variant = v.Name
			q := abtest.Sequential(ctl, mr.Variants[v.Name], s.Alpha, Tuning)
			q.Variant = v.Name
			mr.Comparisons = append(mr.Comparisons, w, q)
		}
		if !first.IsZero() && now.After(first) {
			step := now.Sub(first) / timelinePoints
			for k := 1; k <= timelinePoints; k++ {
				at := first.Add(step * time.Duration(k))
				d := DataFrom(exps, evs, at)
				c := abtest.Summarize(d[s.Control])
				for _, v := range s.Variants {
					if v.Name == s.Control {
						continue
					}
					t := abtest.Summarize(d[v.Name])
					if c.N < 2 || t.N < 2 {
						continue
					}
					lo, hi := abtest.SequentialInterval(c, t, s.Alpha, Tuning)
					mr.Timeline = append(mr.Timeline, Point{At: at, Variant: v.Name, Lift: t.Mean - c.Mean, Low: lo, High: hi, N: c.N + t.N})
				}
			}
		}
		r.Metrics = append(r.Metrics, mr)
	}
	return r, nil
}

// Text writes the report as a terminal table.
func (r Report) Text(w io.Writer) {
	fmt.Fprintf(w, "experiment %s (allocation v%d): %s", r.Experiment, r.Version, r.Status)
	if r.Reason != "" {
		fmt.Fprintf(w, ": %s", r.Reason)
	}
	fmt.Fprintf(w, "\nSRM chi2 %.3f p %.4f ok %t\n", r.SRM.Chi2, r.SRM.PValue, r.SRM.OK)
	for _, m := range r.Metrics {
		tag := ""
		if m.Guardrail {
			tag = " (guardrail)"
		}
		fmt.Fprintf(w, "\n%s%s\n  %-14s %8s %12s %12s\n", m.Name, tag, "VARIANT", "N", "MEAN", "VARIANCE")
		for _, name := range sortedVariantNames(m.Variants, r.Control) {
			s := m.Variants[name]
			fmt.Fprintf(w, "  %-14s %8d %12.5g %12.5g\n", name, s.N, s.Mean, s.Variance)
		}
		fmt.Fprintf(w, "  %-14s %-10s %11s %11s %22s %9s %s\n", "VS "+r.Control, "METHOD", "LIFT", "LIFT %", "INTERVAL", "P", "")
		for _, c := range m.Comparisons {
			sig := ""
			if c.Significant {
				sig = "significant"
			}
			p := "-"
			if !math.IsNaN(c.PValue) && c.Method != "sequential" {
				p = fmt.Sprintf("%.4f", c.PValue)
			}
			fmt.Fprintf(w, "  %-14s %-10s %11.4g %10.2f%% [%9.4g, %9.4g] %9s %s\n", c.Variant, c.Method, c.LiftAbs, c.LiftRel*100, c.CILow, c.CIHigh, p, sig)
		}
	}
}

func sortedVariantNames(m map[string]abtest.Summary, control string) []string {
	rest := slices.DeleteFunc(slices.Sorted(maps.Keys(m)), func(k string) bool { return k == control })
	return append([]string{control}, rest...)
}

// HTML writes a self-contained report page: the tables and, per metric,
// the sequential interval of each treatment over time as an SVG plot.
func (r Report) HTML(w io.Writer) error {
	var txt strings.Builder
	r.Text(&txt)
	type plot struct {
		Name string
		SVG  template.HTML
	}
	var plots []plot
	for _, m := range r.Metrics {
		plots = append(plots, plot{Name: m.Name, SVG: template.HTML(svgTimeline(m.Timeline))})
	}
	return reportTmpl.Execute(w, map[string]any{"R": r, "Text": txt.String(), "Plots": plots})
}

var reportTmpl = template.Must(template.New("r").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>baton experiment {{.R.Experiment}}</title>
<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:60em}pre{background:#f6f6f6;padding:1em;overflow:auto}
h2{margin-top:1.5em}svg{border:1px solid #ddd;background:#fff}</style></head>
<body><h1>Experiment {{.R.Experiment}}</h1>
<p>Allocation version {{.R.Version}}, {{.R.Status}}{{if .R.Reason}}: {{.R.Reason}}{{end}}. Control: {{.R.Control}}. Report of {{.R.At.Format "2006-01-02 15:04:05 MST"}}.</p>
<pre>{{.Text}}</pre>
{{range .Plots}}<h2>{{.Name}}: lift over time (anytime-valid interval)</h2>{{.SVG}}{{end}}
</body></html>
`))

// svgTimeline draws each treatment's lift and interval over time, with the
// zero line.
func svgTimeline(pts []Point) string {
	const W, H, pad = 640.0, 240.0, 40.0
	if len(pts) == 0 {
		return `<p>Not enough data yet.</p>`
	}
	t0, t1 := pts[0].At, pts[0].At
	lo, hi := 0.0, 0.0
	for _, p := range pts {
		if p.At.Before(t0) {
			t0 = p.At
		}
		if p.At.After(t1) {
			t1 = p.At
		}
		if !math.IsInf(p.Low, 0) && !math.IsNaN(p.Low) {
			lo = math.Min(lo, p.Low)
		}
		if !math.IsInf(p.High, 0) && !math.IsNaN(p.High) {
			hi = math.Max(hi, p.High)
		}
	}
	if hi == lo {
		hi, lo = hi+1, lo-1
	}
	span := t1.Sub(t0).Seconds()
	if span == 0 {
		span = 1
	}
	x := func(t time.Time) float64 { return pad + (W-2*pad)*t.Sub(t0).Seconds()/span }
	y := func(v float64) float64 {
		v = math.Max(lo, math.Min(hi, v))
		return H - pad - (H-2*pad)*(v-lo)/(hi-lo)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" viewBox="0 0 %g %g">`, W, H, W, H)
	fmt.Fprintf(&b, `<line x1="%g" y1="%.1f" x2="%g" y2="%.1f" stroke="#999" stroke-dasharray="4"/>`, pad, y(0), W-pad, y(0))
	fmt.Fprintf(&b, `<text x="4" y="%.1f" font-size="10">0</text><text x="4" y="%.1f" font-size="10">%.3g</text><text x="4" y="%.1f" font-size="10">%.3g</text>`, y(0)+3, y(hi)+3, hi, y(lo)+3, lo)
	colors := []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd"}
	byVariant := map[string][]Point{}
	var order []string
	for _, p := range pts {
		if _, ok := byVariant[p.Variant]; !ok {
			order = append(order, p.Variant)
		}
		byVariant[p.Variant] = append(byVariant[p.Variant], p)
	}
	for i, v := range order {
		c := colors[i%len(colors)]
		var line, band strings.Builder
		ps := byVariant[v]
		for _, p := range ps {
			fmt.Fprintf(&line, "%.1f,%.1f ", x(p.At), y(p.Lift))
			fmt.Fprintf(&band, "%.1f,%.1f ", x(p.At), y(p.High))
		}
		for k := len(ps) - 1; k >= 0; k-- {
			fmt.Fprintf(&band, "%.1f,%.1f ", x(ps[k].At), y(ps[k].Low))
		}
		fmt.Fprintf(&b, `<polygon points="%s" fill="%s" fill-opacity="0.15"/>`, band.String(), c)
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`, line.String(), c)
		fmt.Fprintf(&b, `<text x="%g" y="%d" font-size="11" fill="%s">%s</text>`, W-pad-100, 14+14*i, c, template.HTMLEscapeString(v))
	}
	fmt.Fprintf(&b, `<text x="%g" y="%g" font-size="10">%s</text><text x="%g" y="%g" font-size="10" text-anchor="end">%s</text>`,
		pad, H-8, t0.Format("01-02 15:04"), W-pad, H-8, t1.Format("01-02 15:04"))
	b.WriteString(`</svg>`)
	return b.String()
}

// Promote makes the winning variant's model version production through
// the registry, the transitions' decision record citing the experiment's
// evidence on its first metric. Unless force, the variant must have won:
// an anytime-valid interval clear of zero in the direction the caller
// names as better.
func Promote(ctx context.Context, st store.Store, l Loaded, variant, endpointModel, better, actor string, force bool, now time.Time) (store.ModelVersion, Report, error) {
	s := l.Spec.WithDefaults()
	var v *Variant
	for i := range s.Variants {
		if s.Variants[i].Name == variant {
			v = &s.Variants[i]
		}
	}
	switch {
	case v == nil:
		return store.ModelVersion{}, Report{}, &registry.InputError{Msg: fmt.Sprintf("experiment %s has no variant %q", s.Name, variant)}
	case v.ModelVersion == 0:
		return store.ModelVersion{}, Report{}, &registry.InputError{Msg: fmt.Sprintf("variant %s names no model_version to promote", variant)}
	case len(s.Metrics) == 0:
		return store.ModelVersion{}, Report{}, &registry.InputError{Msg: fmt.Sprintf("experiment %s has no metrics to judge the winner on", s.Name)}
	case endpointModel == "":
		return store.ModelVersion{}, Report{}, &registry.InputError{Msg: "the model to promote in is unknown: give the experiment an endpoint (or --model)"}
	}
	rep, err := BuildReport(ctx, st, l, now)
	if err != nil {
		return store.ModelVersion{}, rep, err
	}
	primary := rep.Metrics[0]
	// The decision uses the anytime-valid interval: the report was open to
	// peeking all along, which a fixed-horizon test does not allow for.
	var ev abtest.Comparison
	for _, c := range primary.Comparisons {
		if c.Variant == variant && c.Method == "sequential" {
			ev = c
		}
	}
	won := ev.Significant && (better == "increase" && ev.LiftAbs > 0 || better == "decrease" && ev.LiftAbs < 0)
	if !won && !force {
		return store.ModelVersion{}, rep, &registry.InputError{Msg: fmt.Sprintf("variant %s has not won on %s: lift %.4g, interval [%.4g, %.4g], p %.4g (use --force to promote anyway)",
			variant, primary.Name, ev.LiftAbs, ev.CILow, ev.CIHigh, ev.PValue)}
	}
	evidence, _ := json.Marshal(map[string]any{"metric": primary.Name, "lift_abs": ev.LiftAbs, "lift_rel": ev.LiftRel, "ci": []float64{ev.CILow, ev.CIHigh}, "p_value": ev.PValue})
	ctl := primary.Variants[s.Control]
	trt := primary.Variants[variant]
	d := &registry.Decision{
		AlternativesConsidered: fmt.Sprintf("experiment %s: variants %s against control %s", s.Name, variantNames(s), s.Control),
		DatasetCharacteristics: fmt.Sprintf("allocation v%d: %d control and %d %s units exposed; SRM p %.4g", l.Version, ctl.N, trt.N, variant, rep.SRM.PValue),
		ExpectedLifetime:       "until the next experiment on this endpoint",
		RetrainingTriggers:     "guardrail violation or drift of its features",
		Explainability:         "evidence: " + string(evidence),
		RegulatoryRationale:    fmt.Sprintf("promoted by %s on the experiment's evidence (won=%t, forced=%t)", actor, won, force),
	}
	reg := registry.New(st)
	cur, err := st.ModelVersion(ctx, endpointModel, v.ModelVersion)
	if err != nil {
		return cur, rep, err
	}
	reason := fmt.Sprintf("won experiment %s on %s: lift %+.4g (%+.2f%%), p %.4g", s.Name, primary.Name, ev.LiftAbs, ev.LiftRel*100, ev.PValue)
	if cur.State == store.ModelRegistered || cur.State == store.ModelShadow {
		if cur, err = reg.Transition(ctx, endpointModel, v.ModelVersion, store.ModelCanary, actor, reason, d); err != nil {
			return cur, rep, err
		}
	}
	cur, err = reg.Transition(ctx, endpointModel, v.ModelVersion, store.ModelProduction, actor, reason, d)
	return cur, rep, err
}

func variantNames(s Spec) string {
	var out []string
	for _, v := range s.Variants {
		out = append(out, v.Name)
	}
	return strings.Join(out, ", ")
}
