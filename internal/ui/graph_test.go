package ui

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

func sampleGraph(n int, key string) Graph {
	g := Graph{Key: key}
	for i := 0; i < n; i++ {
		g.Nodes = append(g.Nodes, Node{ID: fmt.Sprintf("s%d", i), Label: fmt.Sprintf("s%d\nforeach %d/10,000", i, i*100), Status: "running", URL: "/runs/1?step=s"})
		if i > 0 {
			g.Edges = append(g.Edges, [2]string{fmt.Sprintf("s%d", i/2), fmt.Sprintf("s%d", i)})
		}
	}
	return g
}

// TestGraphEscapes: names and labels with quotes, backslashes and markup
// cannot break out of the SVG text or make other elements.
func TestGraphEscapes(t *testing.T) {
	c := newDAGCache(4)
	g := Graph{Key: "x", Nodes: []Node{{ID: `a"] ; b [label="x`, Label: `<script>alert(1)</script>` + "\n" + `back\slash "q"`, Status: "failed"}, {ID: "b", Label: "b"}},
		Edges: [][2]string{{`a"] ; b [label="x`, "b"}}}
	svg, err := c.SVG(context.Background(), g)
	if err != nil {
		t.Fatal(err)
	}
	s := string(svg)
	if strings.Contains(s, "<script") || !strings.Contains(s, "&lt;script&gt;alert(1)&lt;/script&gt;") || !strings.HasPrefix(s, "<svg") {
		t.Fatalf("svg:\n%s", s)
	}
	if strings.Count(s, `class="node`) != 2 {
		t.Fatalf("a quote in a name made other nodes:\n%s", s)
	}
	// The second ask is the cached drawing.
	again, _ := c.SVG(context.Background(), g)
	if again != svg || len(c.svgs) != 1 {
		t.Fatalf("not cached: %d entries", len(c.svgs))
	}
}

// BenchmarkDAGLayout is the cost of laying out and drawing a 20-step DAG
// (layered layout in Go) when the cache does not have it.
func BenchmarkDAGLayout(b *testing.B) {
	c := newDAGCache(1 << 30)
	ctx := context.Background()
	i := 0
	for b.Loop() {
		i++
		if _, err := c.SVG(ctx, sampleGraph(20, fmt.Sprint(i))); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDAGCached is the same DAG asked again.
func BenchmarkDAGCached(b *testing.B) {
	c := newDAGCache(16)
	ctx := context.Background()
	g := sampleGraph(20, "same")
	for b.Loop() {
		if _, err := c.SVG(ctx, g); err != nil {
			b.Fatal(err)
		}
	}
}

// TestMermaidSubset reads the Mermaid that `baton docs` writes: nodes in
// three shapes, quoted labels, edges with and without labels, nodes
// declared inside edges.
func TestMermaidSubset(t *testing.T) {
	g := mermaidGraph("x.md", 0, []string{
		"flowchart LR",
		`  f_etl["etl"]`,
		`  sig_data_ready(["data #quot;ready#quot;"])`,
		`  f_etl --> sig_data_ready`,
		`  sig_data_ready -->|signal| f_report`,
		`  f_a -.->|on_finish| f_etl`,
		`  req([request]) --> gate{"timeout 1s"}`,
		`  gate -->|model answers| m["churn (learned)"]`,
	})
	labels := map[string]string{}
	for _, n := range g.Nodes {
		labels[n.ID] = n.Label
	}
	want := map[string]string{"f_etl": "etl", "sig_data_ready": `data "ready"`, "f_report": "f_report", "f_a": "f_a",
		"req": "request", "gate": "timeout 1s", "m": "churn (learned)"}
	for id, l := range want {
		if labels[id] != l {
			t.Errorf("node %s: label %q, want %q (all: %v)", id, labels[id], l, labels)
		}
	}
	if len(g.Nodes) != len(want) || len(g.Edges) != 5 {
		t.Fatalf("%d nodes %d edges: %+v", len(g.Nodes), len(g.Edges), g)
	}
	if g.Edges[1] != [2]string{"sig_data_ready", "f_report"} || g.EdgeLabels[1] != "signal" || g.EdgeLabels[4] != "model answers" {
		t.Fatalf("edges %v labels %q", g.Edges, g.EdgeLabels)
	}
}

// overlaps reports two boxes of l that share any area.
func overlaps(l *laidOut) string {
	for i, a := range l.nodes[:l.real] {
		ax, ay := l.xy(pt{l.center[a.layer], a.pos})
		for _, b := range l.nodes[i+1 : l.real] {
			bx, by := l.xy(pt{l.center[b.layer], b.pos})
			if abs(ax-bx) < (a.w+b.w)/2 && abs(ay-by) < (a.h+b.h)/2 {
				return fmt.Sprintf("%s at (%.0f,%.0f) and %s at (%.0f,%.0f)", a.node.ID, ax, ay, b.node.ID, bx, by)
			}
		}
	}
	return ""
}

func abs(x float64) float64 { return max(x, -x) }

// TestLayoutLayered: every edge of a DAG goes forward (its target's layer
// after its source's, its path from the source's side to the target's),
// no two boxes overlap, in both directions; a cycle is drawn with its
// back edge pointing back; and the barycenter sweeps remove the crossings
// of a graph drawn crossed in its given order.
func TestLayoutLayered(t *testing.T) {
	for _, dir := range []string{"LR", "TB"} {
		g := sampleGraph(30, "")
		g.RankDir = dir
		// A long edge (bends through layers) and a node only named by an edge.
		g.Edges = append(g.Edges, [2]string{"s0", "s29"}, [2]string{"s3", "extra"})
		g.EdgeLabels = make([]string, len(g.Edges))
		g.EdgeLabels[0] = "a rather long label"
		l, err := layout(g)
		if err != nil {
			t.Fatal(err)
		}
		if s := overlaps(l); s != "" {
			t.Fatalf("%s: boxes overlap: %s", dir, s)
		}
		if l.real != 31 {
			t.Fatalf("%s: %d boxes, want 31", dir, l.real)
		}
		for _, e := range l.edges {
			a, b := l.nodes[e.chain[0]], l.nodes[e.chain[len(e.chain)-1]]
			if e.reversed || b.layer <= a.layer {
				t.Fatalf("%s: edge %s -> %s: layers %d -> %d reversed=%v", dir, a.node.ID, b.node.ID, a.layer, b.layer, e.reversed)
			}
			for i := 1; i < len(e.pts); i++ {
				if e.pts[i].main < e.pts[i-1].main {
					t.Fatalf("%s: edge %s -> %s goes backward: %v", dir, a.node.ID, b.node.ID, e.pts)
				}
			}
		}
		if c := l.crossings(); c != 0 {
			t.Fatalf("%s: a tree drawn with %d crossings", dir, c)
		}
	}

	// a -> b -> c -> a: one edge is laid out reversed, drawn ending at a.
	l, err := layout(Graph{Nodes: []Node{{ID: "a"}, {ID: "b"}, {ID: "c"}}, Edges: [][2]string{{"a", "b"}, {"b", "c"}, {"c", "a"}, {"b", "b"}}})
	if err != nil {
		t.Fatal(err)
	}
	rev := 0
	for _, e := range l.edges {
		if e.reversed {
			rev++
			if end := e.pts[len(e.pts)-1]; end.main > e.pts[0].main {
				t.Fatalf("the back edge points forward: %v", e.pts)
			}
		}
	}
	if rev != 1 || overlaps(l) != "" {
		t.Fatalf("%d reversed edges, overlaps %q", rev, overlaps(l))
	}

	// Given in a crossed order: x1 x2 above, y2 y1 below, x1->y1, x2->y2.
	l, err = layout(Graph{Nodes: []Node{{ID: "x1"}, {ID: "x2"}, {ID: "y2"}, {ID: "y1"}, {ID: "z"}},
		Edges: [][2]string{{"x1", "y1"}, {"x2", "y2"}, {"y1", "z"}, {"y2", "z"}}})
	if err != nil {
		t.Fatal(err)
	}
	if c := l.crossings(); c != 0 {
		t.Fatalf("%d crossings left", c)
	}
}

// TestGraphURLs: a link that is not this site's or http(s) is not drawn.
func TestGraphURLs(t *testing.T) {
	c := newDAGCache(4)
	svg, err := c.SVG(context.Background(), Graph{Nodes: []Node{{ID: "a", URL: "javascript:alert(1)"}, {ID: "b", URL: "/runs/1?step=a&x=<b>"}}})
	if err != nil {
		t.Fatal(err)
	}
	s := string(svg)
	if strings.Contains(s, "javascript") || !strings.Contains(s, `href="/runs/1?step=a&amp;x=&lt;b&gt;"`) {
		t.Fatalf("svg:\n%s", s)
	}
}
