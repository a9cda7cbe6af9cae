package ui

import (
	"context"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/baton-ml/baton/internal/lineage"
	"github.com/baton-ml/baton/internal/monitor"
	"github.com/baton-ml/baton/internal/store"
)

// The overview (`/`) is the platform at a glance: the flows chained by
// signals, drawn with what went through each link, then what the loop
// produced (models in production, experiments, the quality scenarios the
// server measured, the monitors). baton demo --serve lands here.

// overviewRuns and overviewSignals bound what the page counts, so that a
// home with a long history still answers quickly: past them a count is
// shown as "N+".
const (
	overviewRuns    = 1000
	overviewSignals = 20000
)

type overviewData struct {
	Graph     template.HTML
	GraphErr  string
	Flows     []flowCount
	Signals   []signalCount
	Capped    bool
	Models    []store.ModelSummary
	Exps      []store.Experiment
	Scenarios []scenarioRow
	Monitors  []monitorRow
	Empty     bool
}

type flowCount struct {
	Name                     string
	Succeeded, Failed, Other int
	Capped                   bool
	// Started counts the runs by what started them: a signal's name, or
	// on_finish (the edges of the loop are labelled with it).
	Started    map[string]int
	LastID     int64
	LastStatus store.RunStatus
	LastAt     time.Time
}

type signalCount struct {
	Name  string
	Count int
	Last  time.Time
	// Outside counts those published by no flow (the server's judges and
	// monitors, the API, the CLI).
	Outside int
}

type scenarioRow struct {
	ID, Target, Monitor string
	Status, Detail      string
	Measured            string
	At                  time.Time
}

type monitorRow struct {
	Name, Kind string
	Evaluated  bool
	Breached   bool
	At         time.Time
	Checks     string
	Error      string
}

func (u *UI) overviewPage(w http.ResponseWriter, r *http.Request, v Viewer) error {
	ctx := r.Context()
	var d overviewData
	g, err := lineage.Load(ctx, u.d.Store)
	if err != nil {
		return err
	}
	runs := map[string]flowCount{}
	for _, f := range g.Flows() {
		fc, err := u.countRuns(ctx, f)
		if err != nil {
			return err
		}
		runs[f] = fc
		d.Flows = append(d.Flows, fc)
	}
	sigs := map[string]*signalCount{}
	var after int64
	seen := 0
	for seen < overviewSignals {
		page, err := u.d.Store.Signals(ctx, store.SignalFilter{AfterSeq: after, Limit: 1000})
		if err != nil {
			return err
		}
		for _, sg := range page {
			after = sg.Seq
			seen++
			c := sigs[sg.Name]
			if c == nil {
				c = &signalCount{Name: sg.Name}
				sigs[sg.Name] = c
			}
			c.Count++
			c.Last = sg.CreatedAt
			if sg.Source.Kind != store.SourceFlow {
				c.Outside++
			}
		}
		if len(page) < 1000 {
			break
		}
	}
	d.Capped = seen >= overviewSignals
	for _, n := range slices.Sorted(maps.Keys(sigs)) {
		d.Signals = append(d.Signals, *sigs[n])
	}
	d.Graph, err = u.dags.SVG(ctx, loopGraph(g, runs, sigs))
	if err != nil {
		d.GraphErr = err.Error()
	}
	if d.Models, err = u.d.Store.Models(ctx); err != nil {
		return err
	}
	if d.Exps, err = u.d.Store.Experiments(ctx); err != nil {
		return err
	}
	slices.SortFunc(d.Exps, func(a, b store.Experiment) int { return strings.Compare(a.Name, b.Name) })
	if err := u.monitorsOverview(ctx, &d); err != nil {
		return err
	}
	d.Empty = len(d.Flows) == 0 && len(d.Models) == 0
	u.render(w, http.StatusOK, "overview", v, "Overview", d)
	return nil
}

// countRuns counts a flow's newest runs by status.
func (u *UI) countRuns(ctx context.Context, flowName string) (flowCount, error) {
	fc := flowCount{Name: flowName, Started: map[string]int{}}
	rs, err := u.d.Store.Runs(ctx, store.RunFilter{Flow: flowName, Limit: overviewRuns})
	if err != nil {
		return fc, err
	}
	fc.Capped = len(rs) == overviewRuns
	for i, r := range rs {
		if i == 0 {
			fc.LastID, fc.LastStatus, fc.LastAt = r.ID, r.Status, r.CreatedAt
		}
		switch r.Trigger {
		case store.TriggerSignal:
			name, _, _ := strings.Cut(r.TriggerDetail, " ")
			fc.Started[name]++
		case store.TriggerFinish:
			fc.Started["on_finish"]++
		}
		switch r.Status {
		case store.RunSucceeded:
			fc.Succeeded++
		case store.RunFailed:
			fc.Failed++
		default:
			fc.Other++
		}
	}
	return fc, nil
}

// monitorsOverview reads each monitor's newest result: the quality
// scenarios as the server measured them, the other monitors' last
// verdicts.
func (u *UI) monitorsOverview(ctx context.Context, d *overviewData) error {
	specs, err := monitor.Load(ctx, u.d.Store)
	if err != nil {
		return err
	}
	ms, err := monitor.LoadScenarios(ctx, u.d.Store)
	if err != nil {
		return err
	}
	for _, m := range ms {
		row := scenarioRow{ID: m.Spec.ID, Target: m.Spec.Target, Monitor: m.Monitor, Status: "not evaluated yet", Measured: "-"}
		if m.Evaluated {
			row.Status, row.Detail, row.At = m.Evidence.Status, m.Evidence.Detail, m.EvaluatedAt
			if m.Evidence.Measured != nil {
				row.Measured = fmt.Sprintf("%.3g %s", *m.Evidence.Measured, m.Evidence.Unit)
			}
		}
		d.Scenarios = append(d.Scenarios, row)
	}
	for _, s := range specs {
		if s.Kind == monitor.KindScenario {
			continue
		}
		rs, err := monitor.Results(ctx, u.d.Store, s.Name, 1)
		if err != nil {
			return err
		}
		row := monitorRow{Name: s.Name, Kind: s.Kind}
		if len(rs) > 0 {
			row.Evaluated, row.Breached, row.At, row.Error = true, rs[0].Breached, rs[0].EvaluatedAt, rs[0].Error
			var names []string
			for _, c := range rs[0].Breaches() {
				names = append(names, c.Name)
			}
			row.Checks = strings.Join(names, ", ")
		}
		d.Monitors = append(d.Monitors, row)
	}
	return nil
}

// loopGraph draws the flows as boxes, coloured by their newest run and
// labelled with how many ran, and the signals that chain them as edges
// labelled with how many runs of the flow they point to each started
// (counted over the runs countRuns read).
func loopGraph(g *lineage.Graph, runs map[string]flowCount, sigs map[string]*signalCount) Graph {
	out := Graph{RankDir: "LR"}
	var key strings.Builder
	key.WriteString("loop")
	for _, f := range g.Flows() {
		fc := runs[f]
		n := fc.Succeeded + fc.Failed + fc.Other
		label := fmt.Sprintf("%s\n%d runs", f, n)
		if fc.Capped {
			label = fmt.Sprintf("%s\n%d+ runs", f, n)
		}
		if fc.Failed > 0 {
			label += fmt.Sprintf(", %d failed", fc.Failed)
		}
		out.Nodes = append(out.Nodes, Node{ID: f, Label: label, Status: string(fc.LastStatus), URL: "/flows/" + url.PathEscape(f)})
		fmt.Fprintf(&key, "|%s:%s", label, fc.LastStatus)
	}
	// Signals from outside the flows (the rollout judge's canary_passed,
	// the guardrails' experiment_paused, a client's) that flows subscribe
	// to: one box for all of that, so the loop is drawn closed.
	const outside = "server and API"
	drawn := false
	for _, n := range slices.Sorted(maps.Keys(sigs)) {
		c := sigs[n]
		if c.Outside == 0 {
			continue
		}
		for _, f := range g.Flows() {
			if !g.Subscribes(f, n) {
				continue
			}
			if !drawn {
				out.Nodes = append(out.Nodes, Node{ID: outside, Label: outside + "\n(judges, monitors, clients)", URL: "/signals"})
				drawn = true
			}
			label := fmt.Sprintf("%s → %d runs", n, runs[f].Started[n])
			out.Edges = append(out.Edges, [2]string{outside, f})
			out.EdgeLabels = append(out.EdgeLabels, label)
			fmt.Fprintf(&key, "|%s>%s:%s", outside, f, label)
		}
	}
	for _, e := range g.Edges() {
		via := strings.TrimPrefix(e.Via, "signal:")
		label := fmt.Sprintf("%s → %d runs", via, runs[e.To].Started[via])
		out.Edges = append(out.Edges, [2]string{e.From, e.To})
		out.EdgeLabels = append(out.EdgeLabels, label)
		fmt.Fprintf(&key, "|%s>%s:%s", e.From, e.To, label)
	}
	out.Key = key.String()
	return out
}
