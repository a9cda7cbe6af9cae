package experiment

import (
	"context"
	"encoding/json"
	"errors"
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
	"github.com/baton-ml/baton/internal/serve"
	"github.com/baton-ml/baton/internal/store"
)

// Report is an experiment's results from its stored exposures and metric
// events: per metric and variant, Welch and the sequential interval, and
// the sequential interval over time.
type Report struct {
	Experiment string                 `json:"experiment"`
	Version    int                    `json:"version"`
	Status     store.ExperimentStatus `json:"status"`
	Reason     string                 `json:"reason,omitempty"`
	Control    string                 `json:"control"`
	SRM        abtest.SRMResult       `json:"srm"`
	Metrics    []MetricReport         `json:"metrics"`
	At         time.Time              `json:"at"`
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

// TimelineSVG draws each treatment's lift and anytime-valid interval over
// time (a metric's Timeline) as an SVG plot, for pages of other packages.
func TimelineSVG(pts []Point) template.HTML { return template.HTML(svgTimeline(pts)) }

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

// Promotion refusals (each a registry.InputError that wraps one of these,
// so callers tell them apart with errors.Is). --force overrides them, and
// the transition and decision record say it was forced past which.
var (
	// ErrPaused: the experiment is paused (a guardrail, or a person).
	ErrPaused = errors.New("experiment is paused")
	// ErrSRM: the exposures' split does not match the weights, so the
	// comparison is not trustworthy.
	ErrSRM = errors.New("sample ratio mismatch")
	// ErrNotWon: the variant has not won on the first metric.
	ErrNotWon = errors.New("variant has not won")
)

// PromoteOptions are a promotion's inputs besides the experiment.
type PromoteOptions struct {
	Variant string
	// Better is which way the first metric improves: increase or
	// decrease.
	Better string
	Actor  string
	// Force promotes past a missing win, a pause or a failed SRM check;
	// the record says which.
	Force bool
	// NonInferiority, when above 0, wins a variant whose first metric is
	// shown not worse than control's by more than this share of control's
	// mean (the anytime-valid interval's worse end beyond -margin), not
	// only one shown better: the criterion of a model refresh, where the
	// question is "no worse", and the one the record states.
	NonInferiority float64
	Now            time.Time
}

// Promotion is what Promote did.
type Promotion struct {
	// Version is the winner's model version, now in state canary.
	Version store.ModelVersion `json:"version"`
	// Rollout is the rollout started on the experiment's endpoint: the
	// leading server's rollout controller judges it stage by stage and
	// moves the version to production only if it passes. Empty when the
	// winner had passed the endpoint's canary check (rollout.promote
	// false) before the experiment: it went to production at once.
	Rollout store.Rollout `json:"rollout"`
	// Forced lists the checks --force overrode.
	Forced []string `json:"forced,omitempty"`
	// MissingDecision names the spec fields (decision.*) that were left
	// out, so their part of the decision record is empty.
	MissingDecision []string           `json:"missing_decision,omitempty"`
	Decision        *registry.Decision `json:"decision"`
	Report          Report             `json:"-"`
}

// PromoteStore is what promotion needs: the experiment's evidence, the
// registry (which records the transition and its decision) and serving
// (which starts the rollout).
type PromoteStore interface {
	store.ExperimentStore
	registry.Store
	store.ServeStore
}

// Promote rolls out the winning variant's model version on the
// experiment's endpoint: it moves the version to canary (the decision
// record citing the evidence) and starts a rollout that the canary judge
// decides, stage by stage, as any other. Unless forced, it refuses an
// experiment that is paused or fails its SRM check, and a variant that has
// not won (an anytime-valid interval clear of zero in the better
// direction on the first metric).
func Promote(ctx context.Context, st PromoteStore, l Loaded, o PromoteOptions) (Promotion, error) {
	s := l.Spec.WithDefaults()
	var out Promotion
	var v *Variant
	for i := range s.Variants {
		if s.Variants[i].Name == o.Variant {
			v = &s.Variants[i]
		}
	}
	switch {
	case v == nil:
		return out, &registry.InputError{Msg: fmt.Sprintf("experiment %s has no variant %q", s.Name, o.Variant)}
	case v.ModelVersion == 0:
		return out, &registry.InputError{Msg: fmt.Sprintf("variant %s names no model_version to promote", o.Variant)}
	case len(s.Metrics) == 0:
		return out, &registry.InputError{Msg: fmt.Sprintf("experiment %s has no metrics to judge the winner on", s.Name)}
	case s.Endpoint == "":
		return out, &registry.InputError{Msg: fmt.Sprintf("experiment %s has no endpoint: a promotion is a rollout on the endpoint the variants served", s.Name)}
	case o.Better != "increase" && o.Better != "decrease":
		return out, &registry.InputError{Msg: fmt.Sprintf("better %q: increase or decrease", o.Better)}
	}
	ep, err := serve.LoadEndpoint(ctx, st, s.Endpoint)
	if err != nil {
		return out, err
	}
	rep, err := BuildReport(ctx, st, l, o.Now)
	out.Report = rep
	if err != nil {
		return out, err
	}
	primary := rep.Metrics[0]
	// The decision uses the anytime-valid interval: the report was open to
	// peeking all along, which a fixed-horizon test does not allow for.
	var ev abtest.Comparison
	for _, c := range primary.Comparisons {
		if c.Variant == o.Variant && c.Method == "sequential" {
			ev = c
		}
	}
	won := ev.Significant && (o.Better == "increase" && ev.LiftAbs > 0 || o.Better == "decrease" && ev.LiftAbs < 0)
	criterion := "superiority"
	if o.NonInferiority > 0 && !won {
		margin := o.NonInferiority * math.Abs(primary.Variants[s.Control].Mean)
		criterion = fmt.Sprintf("non-inferiority (margin %g of control's mean: %.4g)", o.NonInferiority, margin)
		won = ev.NTotal > 0 && (o.Better == "increase" && ev.CILow > -margin || o.Better == "decrease" && ev.CIHigh < margin)
	}
	var refusals []error
	if l.Status == store.ExperimentPaused {
		refusals = append(refusals, fmt.Errorf("%w: %s", ErrPaused, l.Reason))
		out.Forced = append(out.Forced, "paused: "+l.Reason)
	}
	if !rep.SRM.OK {
		refusals = append(refusals, fmt.Errorf("%w: chi2 %.4g, p %.4g", ErrSRM, rep.SRM.Chi2, rep.SRM.PValue))
		out.Forced = append(out.Forced, fmt.Sprintf("sample ratio mismatch (p %.4g)", rep.SRM.PValue))
	}
	if !won {
		refusals = append(refusals, fmt.Errorf("%w on %s by %s: lift %.4g, interval [%.4g, %.4g], p %.4g", ErrNotWon, primary.Name, criterion, ev.LiftAbs, ev.CILow, ev.CIHigh, ev.PValue))
		out.Forced = append(out.Forced, "no significant win on "+primary.Name)
	}
	if len(refusals) > 0 && !o.Force {
		return out, &registry.InputError{Msg: fmt.Sprintf("variant %s of experiment %s is not promoted: %v (force the promotion to promote anyway)", o.Variant, s.Name, errors.Join(refusals...)),
			Err: errors.Join(refusals...)}
	}
	if !o.Force {
		out.Forced = nil
	}
	checks, err := Evaluate(ctx, st, l, time.Time{})
	if err != nil {
		return out, err
	}
	var guards []map[string]any
	for _, c := range checks {
		if c.Variant == o.Variant {
			guards = append(guards, map[string]any{"metric": c.Metric, "control_mean": finite(c.Control), "treatment_mean": finite(c.Treatment),
				"ci": []any{finite(c.Low), finite(c.High)}, "tolerance": finite(c.Tolerance), "violated": c.Violated})
		}
	}
	evidence, err := json.Marshal(map[string]any{"metric": primary.Name, "better": o.Better, "lift_abs": finite(ev.LiftAbs), "lift_rel": finite(ev.LiftRel),
		"ci": []any{finite(ev.CILow), finite(ev.CIHigh)}, "p_value": finite(ev.PValue), "method": "sequential", "won": won, "criterion": criterion,
		"srm_p": finite(rep.SRM.PValue), "srm_ok": rep.SRM.OK, "guardrails": guards, "forced": out.Forced})
	if err != nil {
		return out, fmt.Errorf("experiment %s evidence: %w", s.Name, err)
	}
	ctl := primary.Variants[s.Control]
	trt := primary.Variants[o.Variant]
	d := &registry.Decision{
		AlternativesConsidered: fmt.Sprintf("experiment %s: variants %s against control %s", s.Name, variantNames(s), s.Control),
		DatasetCharacteristics: fmt.Sprintf("allocation v%d: %d control and %d %s units exposed; SRM p %.4g", l.Version, ctl.N, trt.N, o.Variant, rep.SRM.PValue),
		Explainability:         "evidence: " + string(evidence),
	}
	// The human fields come from the spec's decision block, never made up.
	h := DecisionSpec{}
	if s.Decision != nil {
		h = *s.Decision
	}
	d.ExpectedLifetime, d.RetrainingTriggers, d.FairnessTradeoffs, d.RegulatoryRationale = h.ExpectedLifetime, h.RetrainingTriggers, h.FairnessTradeoffs, h.RegulatoryRationale
	for _, f := range []struct{ name, v string }{{"expected_lifetime", h.ExpectedLifetime}, {"retraining_triggers", h.RetrainingTriggers},
		{"fairness_tradeoffs", h.FairnessTradeoffs}, {"regulatory_rationale", h.RegulatoryRationale}} {
		if strings.TrimSpace(f.v) == "" {
			out.MissingDecision = append(out.MissingDecision, "decision."+f.name)
		}
	}
	out.Decision = d
	cur, err := st.ModelVersion(ctx, ep.Model, v.ModelVersion)
	if err != nil {
		return out, err
	}
	reason := fmt.Sprintf("won %s%s: lift %+.4g (%+.2f%%), interval [%.4g, %.4g], p %.4g, by %s; rolled out on endpoint %s", promotedBy(s.Name), primary.Name, ev.LiftAbs, ev.LiftRel*100, ev.CILow, ev.CIHigh, ev.PValue, criterion, s.Endpoint)
	if len(out.Forced) > 0 {
		reason = fmt.Sprintf("FORCED by %s past: %s; %s%s: lift %+.4g, p %.4g; rolled out on endpoint %s",
			o.Actor, strings.Join(out.Forced, "; "), promotedBy(s.Name), primary.Name, ev.LiftAbs, ev.PValue, s.Endpoint)
	}
	reg := registry.New(st)
	if cur.State == store.ModelCanary && !ep.Rollout.Promotes() {
		// The endpoint checks canaries before experiments: a winner
		// that passed its check goes to production now (archiving the
		// version it beat), with the decision record.
		check, ok, err := serve.PassedCheck(ctx, st, ep.Name, ep.Model, cur.Version)
		if err != nil {
			return out, err
		}
		if ok {
			reason = strings.Replace(reason, "rolled out on endpoint", fmt.Sprintf("canary check %d passed on endpoint", check.ID), 1)
			if out.Version, err = reg.Transition(ctx, ep.Model, v.ModelVersion, store.ModelProduction, o.Actor, reason, d); err != nil {
				return out, err
			}
			return out, nil
		}
	}
	if err := promotable(ctx, st, reg, s.Name, ep.Model, cur); err != nil {
		return out, err
	}
	switch cur.State {
	case store.ModelRegistered, store.ModelShadow:
		if cur, err = reg.Transition(ctx, ep.Model, v.ModelVersion, store.ModelCanary, o.Actor, reason, d); err != nil {
			return out, err
		}
	case store.ModelCanary:
	default:
		return out, &registry.InputError{Msg: fmt.Sprintf("model %s version %d is %s: only a registered, shadow or canary version is rolled out", ep.Model, v.ModelVersion, cur.State)}
	}
	out.Version = cur
	r, err := serve.BeginRollout(ctx, st, ep, o.Now)
	if err != nil {
		return out, fmt.Errorf("model %s version %d is canary, but its rollout did not start: %w", ep.Model, v.ModelVersion, err)
	}
	out.Rollout = r
	return out, nil
}

// promotedBy is how a promotion's transition reason names its experiment:
// written by Promote and read by promotable, so the two cannot drift.
func promotedBy(exp string) string { return "experiment " + exp + " on " }

// promotable checks, before anything moves, what the rollout after the
// move needs: no running rollout of the model in the way, a production
// version to judge the canary against, and no other canary. A version
// already canary goes on only if a promotion of this experiment moved it
// (one cut short before its rollout started); a refused promotion leaves
// nothing behind.
func promotable(ctx context.Context, st PromoteStore, reg *registry.Registry, exp, model string, cur store.ModelVersion) error {
	if err := reg.CheckRollouts(ctx, 0, model, cur.Version, store.ModelCanary); err != nil {
		return err
	}
	vs, err := st.ModelVersions(ctx, model)
	if err != nil {
		return err
	}
	production := false
	for _, v := range vs {
		switch {
		case v.Version == cur.Version:
		case v.State == store.ModelProduction:
			production = true
		case v.State == store.ModelCanary:
			return &registry.InputError{Msg: fmt.Sprintf("model %s version %d is already canary: roll out one version at a time", model, v.Version)}
		}
	}
	if !production {
		return &registry.InputError{Msg: fmt.Sprintf("model %s has no production version to judge version %d against: move one to production first", model, cur.Version)}
	}
	if cur.State != store.ModelCanary {
		return nil
	}
	trs, err := st.ModelTransitions(ctx, model, cur.Version)
	if err != nil {
		return err
	}
	if n := len(trs); n > 0 && trs[n-1].To == store.ModelCanary && strings.Contains(trs[n-1].Reason, promotedBy(exp)) {
		return nil
	}
	return &registry.InputError{Msg: fmt.Sprintf("model %s version %d is already canary, moved by something other than a promotion of experiment %s: start its rollout with baton rollout start, or move it back to registered first", model, cur.Version, exp)}
}

// finite makes a statistic JSON-encodable for the evidence: an interval's
// infinite end as the largest float, and an undefined one (NaN: no data,
// as in a forced promotion of an experiment nobody saw) as null.
func finite(x float64) any {
	switch {
	case math.IsNaN(x):
		return nil
	case math.IsInf(x, 1):
		return math.MaxFloat64
	case math.IsInf(x, -1):
		return -math.MaxFloat64
	}
	return x
}

func variantNames(s Spec) string {
	var out []string
	for _, v := range s.Variants {
		out = append(out, v.Name)
	}
	return strings.Join(out, ", ")
}
