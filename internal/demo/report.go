package demo

import (
	"context"
	"fmt"
	"html/template"
	"io"
	"math"
	"sort"
	"strings"

	"github.com/baton-ml/baton/internal/experiment"
)

// series is one line of a chart: a value per simulated day (NaN: none).
type series struct {
	Name   string
	Values []float64
}

// chart draws series by day as an SVG line chart, with the episodes'
// days marked.
func chart(title string, ss []series, marks map[int]string, percent bool) template.HTML {
	const W, H, pad = 720.0, 260.0, 44.0
	days := 0
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range ss {
		days = max(days, len(s.Values))
		for _, v := range s.Values {
			if !math.IsNaN(v) {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	if days == 0 || math.IsInf(lo, 0) {
		return template.HTML("<p>No data.</p>")
	}
	if hi == lo {
		hi, lo = hi+1, lo-1
	}
	pad10 := (hi - lo) * 0.1
	lo, hi = lo-pad10, hi+pad10
	x := func(day int) float64 { return pad + (W-2*pad)*float64(day-1)/math.Max(1, float64(days-1)) }
	y := func(v float64) float64 { return H - pad - (H-2*pad)*(v-lo)/(hi-lo) }
	label := func(v float64) string {
		if percent {
			return fmt.Sprintf("%.0f%%", 100*v)
		}
		return fmt.Sprintf("%.3g", v)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="%s" width="%g" height="%g" viewBox="0 0 %g %g">`,
		template.HTMLEscapeString(title), W, H, W, H)
	for _, v := range []float64{lo + pad10, (lo + hi) / 2, hi - pad10} {
		fmt.Fprintf(&b, `<line x1="%g" y1="%.1f" x2="%g" y2="%.1f" stroke="#eee"/><text x="2" y="%.1f" font-size="10">%s</text>`,
			pad, y(v), W-pad, y(v), y(v)+3, label(v))
	}
	mdays := make([]int, 0, len(marks))
	for d := range marks {
		mdays = append(mdays, d)
	}
	sort.Ints(mdays)
	for _, d := range mdays {
		if d < 1 || d > days {
			continue
		}
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%g" x2="%.1f" y2="%g" stroke="#bbb" stroke-dasharray="3"/><text x="%.1f" y="%g" font-size="9" fill="#666">%s</text>`,
			x(d), pad-8, x(d), H-pad, x(d)+2, pad-10, template.HTMLEscapeString(marks[d]))
	}
	for _, d := range []int{1, days} {
		fmt.Fprintf(&b, `<text x="%.1f" y="%g" font-size="10">day %d</text>`, x(d)-10, H-pad+14, d)
	}
	colors := []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"}
	for i, s := range ss {
		c := colors[i%len(colors)]
		var pts strings.Builder
		for d, v := range s.Values {
			if !math.IsNaN(v) {
				fmt.Fprintf(&pts, "%.1f,%.1f ", x(d+1), y(v))
			}
		}
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`, pts.String(), c)
		fmt.Fprintf(&b, `<text x="%g" y="%g" font-size="11" fill="%s">%s</text>`, pad+float64(i)*120, H-8, c, template.HTMLEscapeString(s.Name))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// Report writes the demo's HTML report: the summary's tables and plots of
// engagement by day and arm, the fallback rate, quality by market, and
// each experiment's interval over time (from the store).
func (d *Demo) Report(ctx context.Context, w io.Writer, s Summary) error {
	marks := map[int]string{}
	for _, e := range []struct {
		day  int
		name string
	}{{d.ep.Outage, "outage"}, {d.ep.Expansion, "+titles"}, {d.ep.Launch, launchMarket + " opens"}, {d.ep.Regression, "regression"}} {
		if e.day > 0 {
			marks[e.day] = e.name
		}
	}
	n := len(d.stats)
	nan := func() []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = math.NaN()
		}
		return v
	}
	eng := series{Name: "all members", Values: nan()}
	arms := map[string]*series{}
	fb := series{Name: "fallback", Values: nan()}
	markets := map[string]*series{}
	for i, st := range d.stats {
		eng.Values[i] = ratio(st.Plays, st.Sessions)
		fb.Values[i] = ratio(st.Fallback, st.Requests)
		for arm, sess := range st.ArmSessions {
			if arms[arm] == nil {
				arms[arm] = &series{Name: arm, Values: nan()}
			}
			if sess >= 20 {
				arms[arm].Values[i] = ratio(st.ArmPlays[arm], sess)
			}
		}
		global := ratio(st.Completions, st.Sessions)
		for m, sess := range st.SessionsByMarket {
			if markets[m] == nil {
				markets[m] = &series{Name: m, Values: nan()}
			}
			if global > 0 && sess >= 20 {
				markets[m].Values[i] = ratio(st.CompletionsByMarket[m], sess) / global
			}
		}
	}
	engSeries := []series{eng}
	for _, a := range sortedKeys(arms) {
		engSeries = append(engSeries, *arms[a])
	}
	var mkt []series
	for _, m := range sortedKeys(markets) {
		mkt = append(mkt, *markets[m])
	}
	type expPlot struct {
		Name, Status string
		SVG          template.HTML
	}
	var exps []expPlot
	ls, err := experiment.Load(ctx, d.st)
	if err != nil {
		return err
	}
	for _, l := range ls {
		rep, err := experiment.BuildReport(ctx, d.st, l, d.clk.Now())
		if err != nil {
			return err
		}
		for _, m := range rep.Metrics {
			if m.Name == "plays" {
				exps = append(exps, expPlot{Name: l.Spec.Name, Status: string(l.Status) + " " + l.Reason, SVG: experiment.TimelineSVG(m.Timeline)})
			}
		}
	}
	var txt strings.Builder
	s.Print(&txt)
	return reportTmpl.Execute(w, map[string]any{
		"S":          s,
		"Text":       txt.String(),
		"Engagement": chart("plays per session by day", engSeries, marks, false),
		"Fallback":   chart("fallback rate by day", []series{fb}, marks, true),
		"Markets":    chart("completions per session by market, relative to all", mkt, marks, false),
		"Exps":       exps,
	})
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

var reportTmpl = template.Must(template.New("r").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>baton demo, seed {{.S.Seed}}</title>
<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:62em}pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:12px}
h2{margin-top:1.6em}svg{border:1px solid #ddd;background:#fff}</style></head>
<body><h1>baton demo: {{.S.Days}} days, {{.S.Members}} members, seed {{.S.Seed}}</h1>
<p>Every figure below is what happened in this run: the tables are read from the home's store, the plots from what the simulated members did.</p>
<h2>Engagement by day and experiment arm</h2>{{.Engagement}}
<p>Plays per session; an arm's line is drawn on days it had 20 sessions or more.</p>
<h2>Fallback rate</h2>{{.Fallback}}
<p>Share of pages the popularity fallback answered (the confidence gate, the outage).</p>
<h2>Quality by market</h2>{{.Markets}}
<p>Completions per session of each market against all markets' on that day (QS-01 asks 0.9 of a new market within 30 days).</p>
<h2>Experiments: lift in plays and its anytime-valid interval over time</h2>
{{range .Exps}}<h3>{{.Name}} <small>({{.Status}})</small></h3>{{.SVG}}{{else}}<p>No experiment ran.</p>{{end}}
<h2>Summary</h2><pre>{{.Text}}</pre>
</body></html>
`))
