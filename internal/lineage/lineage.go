// Package lineage answers "what feeds what": which flows publish and
// subscribe to a signal, every flow downstream (or upstream) of a flow
// through signals and on_finish triggers, and for one run what started it
// and what it started. Answers combine what the flows declare (static) with
// what actually happened (observed). Runs also export as OpenLineage
// events.
package lineage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/store"
)

// Directions for OfFlow.
const (
	Downstream = "downstream"
	Upstream   = "upstream"
)

// graph is the declared flow graph.
type graph struct {
	flows map[string]*flow.Flow
}

// Store is what lineage reads: flows, runs, signals and the firings that
// link a signal to the runs it started.
type Store interface {
	store.FlowReader
	store.RunReader
	store.SignalStore
	Fires(ctx context.Context, f store.FireFilter) ([]store.Fire, error)
}

func load(ctx context.Context, st Store) (*graph, error) {
	fs, err := st.Flows(ctx)
	if err != nil {
		return nil, err
	}
	g := &graph{flows: map[string]*flow.Flow{}}
	for _, f := range fs {
		v, err := st.FlowVersion(ctx, f.Name, 0)
		if err != nil {
			return nil, err
		}
		fl, err := flow.Stored(f.Name, v.Version, v.Spec)
		if err != nil {
			return nil, err
		}
		g.flows[f.Name] = fl
	}
	return g, nil
}

func publishes(f *flow.Flow, sig string) bool {
	for _, s := range f.Steps {
		if slices.Contains(s.Publish, sig) {
			return true
		}
	}
	return false
}

// subscribes reports how f consumes sig: a trigger, a join, or a waiting step.
func subscribes(f *flow.Flow, sig string) string {
	for _, t := range f.Triggers {
		if t.Signal == sig {
			return "trigger"
		}
		if slices.Contains(t.Signals, sig) {
			return "join"
		}
	}
	for _, s := range f.Steps {
		if s.Wait != nil && s.Wait.Signal == sig {
			return "wait"
		}
	}
	return ""
}

// Signal is the lineage of one signal name.
type Signal struct {
	Signal      string       `json:"signal"`
	Publishers  []string     `json:"publishers"`
	Subscribers []string     `json:"subscribers"`
	Recent      []RecentSent `json:"recent"`
}

// RecentSent is one published signal and the runs it started.
type RecentSent struct {
	ID            string                     `json:"id"`
	Params        map[string]json.RawMessage `json:"params"`
	Source        store.SignalSource         `json:"source"`
	CreatedAt     time.Time                  `json:"created_at"`
	TriggeredRuns []int64                    `json:"triggered_runs"`
}

// OfSignal lists who publishes and who subscribes to signal name, declared
// or observed in its recent signals, and those signals with the runs each
// triggered.
func OfSignal(ctx context.Context, st Store, name string, limit int) (Signal, error) {
	g, err := load(ctx, st)
	if err != nil {
		return Signal{}, err
	}
	pubs, subs := map[string]bool{}, map[string]bool{}
	for n, f := range g.flows {
		if publishes(f, name) {
			pubs[n] = true
		}
		if subscribes(f, name) != "" {
			subs[n] = true
		}
	}
	if limit <= 0 {
		limit = 20
	}
	sigs, err := st.Signals(ctx, store.SignalFilter{Name: name, Limit: limit})
	if err != nil {
		return Signal{}, err
	}
	out := Signal{Signal: name, Recent: []RecentSent{}}
	for _, sg := range sigs {
		if sg.Source.Flow != "" {
			pubs[sg.Source.Flow] = true
		}
		fires, err := st.Fires(ctx, store.FireFilter{SignalID: sg.ID})
		if err != nil {
			return out, err
		}
		rs := RecentSent{ID: sg.ID, Params: sg.Params, Source: sg.Source, CreatedAt: sg.CreatedAt, TriggeredRuns: []int64{}}
		for _, f := range fires {
			rs.TriggeredRuns = append(rs.TriggeredRuns, f.RunID)
			subs[f.Flow] = true
		}
		out.Recent = append(out.Recent, rs)
	}
	out.Publishers, out.Subscribers = keys(pubs), keys(subs)
	return out, nil
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// edge is one way a flow leads to another.
type edge struct {
	to, via string
}

// edges lists how each flow leads to others, declared: through a signal
// it publishes that the other subscribes to, or an on_finish trigger.
func (g *graph) edges() map[string][]edge {
	out := map[string][]edge{}
	for name, f := range g.flows {
		var sigs []string
		for _, s := range f.Steps {
			sigs = append(sigs, s.Publish...)
		}
		slices.Sort(sigs)
		sigs = slices.Compact(sigs)
		for _, sig := range sigs {
			for other, of := range g.flows {
				if how := subscribes(of, sig); how != "" {
					out[name] = append(out[name], edge{to: other, via: "signal:" + sig})
				}
			}
		}
		for _, t := range f.Triggers {
			if t.OnFinish != nil {
				out[t.OnFinish.Flow] = append(out[t.OnFinish.Flow], edge{to: name, via: "on_finish"})
			}
		}
	}
	return out
}

// observedEdges adds what history shows: runs of a flow whose signals or
// ends started runs of another, over each flow's recent runs.
func observedEdges(ctx context.Context, st Store, flows []string) (map[string][]edge, error) {
	out := map[string][]edge{}
	for _, name := range flows {
		runs, err := st.Runs(ctx, store.RunFilter{Flow: name, Limit: 50})
		if err != nil {
			return nil, err
		}
		seen := map[edge]bool{}
		for _, r := range runs {
			fires, err := st.Fires(ctx, store.FireFilter{SourceRun: r.ID})
			if err != nil {
				return nil, err
			}
			for _, f := range fires {
				via := "on_finish"
				if f.SignalID != "" {
					sg, err := st.Signal(ctx, f.SignalID)
					if err == nil {
						via = "signal:" + sg.Name
					}
				}
				e := edge{to: f.Flow, via: via}
				if !seen[e] {
					seen[e] = true
					out[name] = append(out[name], e)
				}
			}
		}
	}
	return out, nil
}

// Flow is the lineage of one flow in one direction.
type Flow struct {
	Flow      string    `json:"flow"`
	Direction string    `json:"direction"`
	Flows     []Reached `json:"flows"`
}

// Reached is a flow reachable from the flow asked about, with the shortest
// path: flow, how, flow, how, ..., flow.
type Reached struct {
	Flow     string   `json:"flow"`
	Depth    int      `json:"depth"`
	Path     []string `json:"path"`
	Declared bool     `json:"declared"`
	Observed bool     `json:"observed"`
}

// Graph is the flow graph of a store, declared and observed, loaded once
// to answer OfFlow for many flows (the architecture views ask for all).
type Graph struct {
	flows              map[string]*flow.Flow
	declared, observed map[string][]edge
}

// Load reads the applied flows and the recent runs' triggers.
func Load(ctx context.Context, st Store) (*Graph, error) {
	g, err := load(ctx, st)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(g.flows))
	for n := range g.flows {
		names = append(names, n)
	}
	sort.Strings(names)
	observed, err := observedEdges(ctx, st, names)
	if err != nil {
		return nil, err
	}
	return &Graph{flows: g.flows, declared: g.edges(), observed: observed}, nil
}

// OfFlow lists every flow reachable from name in direction through signals
// and on_finish triggers: downstream is the blast radius of its failure.
func OfFlow(ctx context.Context, st Store, name, direction string) (Flow, error) {
	g, err := Load(ctx, st)
	if err != nil {
		return Flow{}, err
	}
	return g.OfFlow(name, direction)
}

// OfFlow is the package's OfFlow over a loaded graph.
func (g *Graph) OfFlow(name, direction string) (Flow, error) {
	if g.flows[name] == nil {
		return Flow{}, fmt.Errorf("flow %q: %w", name, store.ErrNotFound)
	}
	declared, observed := g.declared, g.observed
	type tagged struct {
		edge
		declared, observed bool
	}
	adj := map[string][]tagged{}
	add := func(from string, e edge, decl bool) {
		if direction == Upstream {
			from, e.to = e.to, from
		}
		for i, t := range adj[from] {
			if t.to == e.to && t.via == e.via {
				adj[from][i].declared = adj[from][i].declared || decl
				adj[from][i].observed = adj[from][i].observed || !decl
				return
			}
		}
		adj[from] = append(adj[from], tagged{edge: e, declared: decl, observed: !decl})
	}
	for from, es := range declared {
		for _, e := range es {
			add(from, e, true)
		}
	}
	for from, es := range observed {
		for _, e := range es {
			add(from, e, false)
		}
	}
	for _, es := range adj {
		sort.Slice(es, func(i, j int) bool { return es[i].to+es[i].via < es[j].to+es[j].via })
	}
	out := Flow{Flow: name, Direction: direction, Flows: []Reached{}}
	seen := map[string]bool{name: true}
	type item struct {
		flow     string
		path     []string
		decl, ob bool
	}
	queue := []item{{flow: name, path: []string{name}, decl: true, ob: true}}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, e := range adj[cur.flow] {
			if seen[e.to] {
				continue
			}
			seen[e.to] = true
			path := append(slices.Clone(cur.path), e.via, e.to)
			it := item{flow: e.to, path: path, decl: cur.decl && e.declared, ob: cur.ob && e.observed}
			out.Flows = append(out.Flows, Reached{Flow: e.to, Depth: len(path) / 2, Path: path, Declared: it.decl, Observed: it.ob})
			queue = append(queue, it)
		}
	}
	return out, nil
}

// Run is what started a run and what it started.
type Run struct {
	Run        RunRef `json:"run"`
	Upstream   []Link `json:"upstream"`
	Downstream []Link `json:"downstream"`
}

// RunRef names a run.
type RunRef struct {
	ID      int64           `json:"id"`
	Flow    string          `json:"flow"`
	Status  store.RunStatus `json:"status"`
	Trigger string          `json:"trigger"`
}

// Link is one step of a chain: run From led to run To, through a signal
// (Signal set) or on_finish. A run started by a signal published outside
// any run (the CLI, the API) has a link with no From: the signal is where
// its lineage begins.
type Link struct {
	From   RunRef `json:"from,omitzero"`
	To     RunRef `json:"to"`
	Via    string `json:"via"`
	Signal string `json:"signal_id,omitempty"`
	// SignalName and Source say which signal it was and who published it.
	SignalName string              `json:"signal,omitempty"`
	Source     *store.SignalSource `json:"source,omitempty"`
	Depth      int                 `json:"depth"`
}

const maxDepth = 50

// Up describes an upstream link for a reader: what started run To.
func (l Link) Up() string {
	via := l.Via
	if l.Signal != "" {
		via += " " + l.Signal
	}
	if l.From.ID == 0 {
		kind := "unknown publisher"
		if l.Source != nil {
			kind = "published by " + l.Source.Kind
		}
		return fmt.Sprintf("signal %s %s (%s) -> run %d", l.SignalName, l.Signal, kind, l.To.ID)
	}
	at := l.From.Flow
	if l.Source != nil && l.Source.Step != "" {
		at += ", step " + l.Source.Step
	}
	return fmt.Sprintf("run %d (%s) -[%s]-> run %d", l.From.ID, at, via, l.To.ID)
}

// OfRun follows run id's triggers up (what started it, and what started
// that) and down (what it started, recursively).
func OfRun(ctx context.Context, st Store, id int64) (Run, error) {
	r, err := st.Run(ctx, id)
	if err != nil {
		return Run{}, err
	}
	out := Run{Run: ref(r), Upstream: []Link{}, Downstream: []Link{}}
	refs := map[int64]RunRef{id: out.Run}
	get := func(id int64) (RunRef, error) {
		if rr, ok := refs[id]; ok {
			return rr, nil
		}
		r, err := st.Run(ctx, id)
		if err != nil {
			return RunRef{}, err
		}
		refs[id] = ref(r)
		return refs[id], nil
	}
	// link describes firing f from run from (zero: none) to run to.
	link := func(f store.Fire, from, to RunRef, depth int) (Link, error) {
		l := Link{From: from, To: to, Via: f.Kind, Signal: f.SignalID, Depth: depth}
		if f.SignalID == "" {
			return l, nil
		}
		sg, err := st.Signal(ctx, f.SignalID)
		if errors.Is(err, store.ErrNotFound) {
			return l, nil // the firing outlived its signal's record
		}
		if err != nil {
			return l, err
		}
		l.Via, l.SignalName, l.Source = f.Kind+":"+sg.Name, sg.Name, &sg.Source
		return l, nil
	}
	// Up: the firing that started each run names its signal and its
	// source run; a signal from outside any run ends the chain.
	cur, seen := id, map[int64]bool{id: true}
	for depth := 1; depth <= maxDepth; depth++ {
		fires, err := st.Fires(ctx, store.FireFilter{RunID: cur})
		if err != nil {
			return out, err
		}
		if len(fires) == 0 || seen[fires[0].SourceRun] {
			break
		}
		f := fires[0]
		var from RunRef
		if f.SourceRun != 0 {
			if from, err = get(f.SourceRun); err != nil {
				return out, err
			}
		} else if f.SignalID == "" {
			break // nothing upstream to name
		}
		to, _ := get(cur)
		l, err := link(f, from, to, depth)
		if err != nil {
			return out, err
		}
		out.Upstream = append(out.Upstream, l)
		if f.SourceRun == 0 {
			break
		}
		seen[f.SourceRun] = true
		cur = f.SourceRun
	}
	// Down: every firing whose source is a run reached so far.
	frontier, seen := []int64{id}, map[int64]bool{id: true}
	for depth := 1; depth <= maxDepth && len(frontier) > 0; depth++ {
		var next []int64
		for _, src := range frontier {
			fires, err := st.Fires(ctx, store.FireFilter{SourceRun: src})
			if err != nil {
				return out, err
			}
			for _, f := range fires {
				if seen[f.RunID] {
					continue
				}
				seen[f.RunID] = true
				from, _ := get(src)
				to, err := get(f.RunID)
				if err != nil {
					return out, err
				}
				l, err := link(f, from, to, depth)
				if err != nil {
					return out, err
				}
				out.Downstream = append(out.Downstream, l)
				next = append(next, f.RunID)
			}
		}
		frontier = next
	}
	return out, nil
}

func ref(r store.Run) RunRef {
	return RunRef{ID: r.ID, Flow: r.Flow, Status: r.Status, Trigger: r.Trigger}
}

// Edge is one way a flow leads to another: through a signal
// ("signal:NAME") or an on_finish trigger, declared by the flows and/or
// observed in their recent runs.
type Edge struct {
	From     string `json:"from"`
	To       string `json:"to"`
	Via      string `json:"via"`
	Declared bool   `json:"declared"`
	Observed bool   `json:"observed"`
}

// Subscribes reports whether flow triggers on, joins or waits for the
// signal.
func (g *Graph) Subscribes(flowName, signal string) bool {
	f := g.flows[flowName]
	return f != nil && subscribes(f, signal) != ""
}

// Flows lists the applied flows' names, sorted.
func (g *Graph) Flows() []string {
	names := make([]string, 0, len(g.flows))
	for n := range g.flows {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Edges lists every edge of the graph once, sorted (a drawing of the whole
// lineage needs them all; OfFlow keeps only the shortest paths).
func (g *Graph) Edges() []Edge {
	idx := map[[3]string]int{}
	var out []Edge
	add := func(from string, e edge, decl bool) {
		k := [3]string{from, e.to, e.via}
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, Edge{From: from, To: e.to, Via: e.via})
		}
		out[i].Declared = out[i].Declared || decl
		out[i].Observed = out[i].Observed || !decl
	}
	for from, es := range g.declared {
		for _, e := range es {
			add(from, e, true)
		}
	}
	for from, es := range g.observed {
		for _, e := range es {
			add(from, e, false)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.From != b.From {
			return a.From < b.From
		}
		if a.To != b.To {
			return a.To < b.To
		}
		return a.Via < b.Via
	})
	return out
}
