package ui

import (
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"github.com/baton-ml/baton/internal/fault"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/lineage"
	"github.com/baton-ml/baton/internal/store"
)

type signalsData struct {
	Contracts []contractRow
	Recent    []lineage.RecentSent
	Names     map[string]string // signal id -> name
	Signal    string            // the signal whose recent ones are listed ("" all)
	Flow      string            // the flow whose blast radius is drawn
	Flows     []string
	Radius    []lineage.Reached
	Graph     template.HTML
	GraphErr  string
}

type contractRow struct {
	Name   string
	Params []string
	Path   string
}

func (u *UI) signalsPage(w http.ResponseWriter, r *http.Request, v Viewer) error {
	ctx := r.Context()
	q := r.URL.Query()
	d := signalsData{Signal: q.Get("signal"), Flow: q.Get("flow"), Names: map[string]string{}}
	cs, err := u.d.Store.SignalContracts(ctx)
	if err != nil {
		return err
	}
	for _, c := range cs {
		row := contractRow{Name: c.Name, Path: c.Path}
		var sg flow.Signal
		if json.Unmarshal(c.Spec, &sg) == nil {
			for _, p := range sg.Params {
				row.Params = append(row.Params, fmt.Sprintf("%s %s", p.Name, p.Type))
			}
		}
		d.Contracts = append(d.Contracts, row)
	}
	// Recent signals and the runs each started (lineage.OfSignal for one
	// name; for all, the same walk over the newest signals).
	if d.Signal != "" {
		l, err := lineage.OfSignal(ctx, u.d.Store, d.Signal, 50)
		if err != nil {
			return err
		}
		d.Recent = l.Recent
		for _, s := range l.Recent {
			d.Names[s.ID] = d.Signal
		}
	} else {
		sigs, err := u.d.Store.Signals(ctx, store.SignalFilter{Limit: 30})
		if err != nil {
			return err
		}
		for _, sg := range sigs {
			fires, err := u.d.Store.Fires(ctx, store.FireFilter{SignalID: sg.ID})
			if err != nil {
				return err
			}
			rs := lineage.RecentSent{ID: sg.ID, Params: sg.Params, Source: sg.Source, CreatedAt: sg.CreatedAt}
			for _, f := range fires {
				rs.TriggeredRuns = append(rs.TriggeredRuns, f.RunID)
			}
			d.Recent = append(d.Recent, rs)
			d.Names[sg.ID] = sg.Name
		}
	}
	g, err := lineage.Load(ctx, u.d.Store)
	if err != nil {
		return err
	}
	d.Flows = g.Flows()
	hit := map[string]bool{}
	if d.Flow != "" {
		l, err := g.OfFlow(d.Flow, lineage.Downstream)
		if err != nil {
			return fault.Errorf(fault.NotFound, "flow %q: no such flow (blast radius)", d.Flow)
		}
		d.Radius = l.Flows
		for _, f := range l.Flows {
			hit[f.Flow] = true
		}
	}
	d.Graph, err = u.dags.SVG(ctx, lineageGraph(g, d.Flow, hit))
	if err != nil {
		d.GraphErr = err.Error()
	}
	u.render(w, http.StatusOK, "signals", v, "Signals and lineage", d)
	return nil
}

// lineageGraph draws flows as boxes and what links them as labelled
// edges; the chosen flow is bold and its blast radius is red.
func lineageGraph(g *lineage.Graph, selected string, hit map[string]bool) Graph {
	out := Graph{RankDir: "LR"}
	var key strings.Builder
	key.WriteString("lineage|" + selected)
	for _, f := range g.Flows() {
		status := ""
		if hit[f] {
			status = "failed"
		}
		out.Nodes = append(out.Nodes, Node{ID: f, Label: f, Status: status, Bold: f == selected,
			URL: "/signals?flow=" + url.QueryEscape(f)})
		fmt.Fprintf(&key, "|%s:%s", f, status)
	}
	for _, e := range g.Edges() {
		out.Edges = append(out.Edges, [2]string{e.From, e.To})
		out.EdgeLabels = append(out.EdgeLabels, strings.TrimPrefix(e.Via, "signal:"))
		fmt.Fprintf(&key, "|%s>%s:%s", e.From, e.To, e.Via)
	}
	out.Key = key.String()
	return out
}
