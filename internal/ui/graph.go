package ui

import (
	"bytes"
	"context"
	"fmt"
	"html/template"
	"strings"
	"sync"

	graphviz "github.com/goccy/go-graphviz"
)

// Colours of a status, shared by the graphs and the style sheet.
var statusFill = map[string]string{
	"succeeded": "#c6ebc9",
	"running":   "#bcdcff",
	"failed":    "#f6c1c1",
	"cancelled": "#ead9b9",
	"skipped":   "#f0f0f0",
	"waiting":   "#fff0b3",
	"pending":   "#ffffff",
}

// Graph is a directed graph to lay out: nodes in order, edges by name.
type Graph struct {
	// Key identifies what is drawn (e.g. flow, version and the statuses):
	// equal keys draw the same picture, so it is drawn once.
	Key     string
	RankDir string // "LR" (default) or "TB"
	Nodes   []Node
	Edges   [][2]string
	// EdgeLabels, when set, holds a label per edge.
	EdgeLabels []string
}

// Node is one box.
type Node struct {
	ID     string
	Label  string // lines separated by \n
	Status string // colours the box
	URL    string // where a click goes; "" for none
	Bold   bool
}

// dagCache lays graphs out with graphviz (run as WebAssembly, no cgo) and
// keeps the SVG of the last few: a live run page asks again each time a
// count changes, and most asks repeat one.
type dagCache struct {
	mu   sync.Mutex
	gv   *graphviz.Graphviz
	max  int
	svgs map[string]template.HTML
}

func newDAGCache(max int) *dagCache {
	return &dagCache{max: max, svgs: map[string]template.HTML{}}
}

// SVG returns g drawn as an inline SVG element.
func (c *dagCache) SVG(ctx context.Context, g Graph) (template.HTML, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.svgs[g.Key]; ok && g.Key != "" {
		return s, nil
	}
	if c.gv == nil {
		gv, err := graphviz.New(ctx)
		if err != nil {
			return "", fmt.Errorf("graphviz: %w", err)
		}
		c.gv = gv
	}
	gr, err := graphviz.ParseBytes([]byte(g.dot()))
	if err != nil {
		return "", fmt.Errorf("graph layout: %w", err)
	}
	defer gr.Close()
	var b bytes.Buffer
	if err := c.gv.Render(ctx, gr, graphviz.SVG, &b); err != nil {
		return "", fmt.Errorf("graph layout: %w", err)
	}
	out := b.String()
	if i := strings.Index(out, "<svg"); i >= 0 {
		out = out[i:]
	}
	// graphviz escapes every label and id it writes (&lt; &amp; ...):
	// the text is SVG markup made from escaped values.
	s := template.HTML(out) //nolint:gosec
	if g.Key != "" {
		if len(c.svgs) >= c.max {
			clear(c.svgs)
		}
		c.svgs[g.Key] = s
	}
	return s, nil
}

// dot writes g in graphviz's language, every value quoted.
func (g Graph) dot() string {
	var b strings.Builder
	dir := g.RankDir
	if dir == "" {
		dir = "LR"
	}
	fmt.Fprintf(&b, "digraph G {\nrankdir=%s; bgcolor=\"transparent\"; nodesep=0.3; ranksep=0.45;\n", dir)
	b.WriteString(`node [shape=box style="rounded,filled" fontname="Helvetica" fontsize=11 color="#667085" penwidth=1.2 margin="0.15,0.06"];` + "\n")
	b.WriteString(`edge [color="#98a2b3" arrowsize=0.7];` + "\n")
	for _, n := range g.Nodes {
		fill := statusFill[n.Status]
		if fill == "" {
			fill = "#ffffff"
		}
		fmt.Fprintf(&b, "%s [label=%s fillcolor=%s", quote(n.ID), quoteLabel(n.Label), quote(fill))
		if n.URL != "" {
			fmt.Fprintf(&b, " URL=%s target=\"_top\"", quote(n.URL))
		}
		if n.Bold {
			b.WriteString(` penwidth=2.5 color="#1d2939"`)
		}
		b.WriteString(" class=" + quote("st-"+n.Status))
		b.WriteString("];\n")
	}
	for i, e := range g.Edges {
		fmt.Fprintf(&b, "%s -> %s", quote(e[0]), quote(e[1]))
		if i < len(g.EdgeLabels) && g.EdgeLabels[i] != "" {
			fmt.Fprintf(&b, " [label=%s fontsize=9 fontcolor=\"#475467\" fontname=\"Helvetica\"]", quote(g.EdgeLabels[i]))
		}
		b.WriteString(";\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// quote makes a DOT string of s: backslashes and quotes escaped, so a
// value can never end the string or start an escape.
func quote(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, `"`, `\"`)
	s = strings.ReplaceAll(s, "\n", " ")
	return `"` + s + `"`
}

// quoteLabel is quote for a label whose lines are split by \n.
func quoteLabel(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		q := quote(l)
		lines[i] = q[1 : len(q)-1]
	}
	return `"` + strings.Join(lines, `\n`) + `"`
}
