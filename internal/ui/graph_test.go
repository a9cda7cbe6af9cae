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
// cannot break out of the DOT string or the SVG text.
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
// with graphviz (WebAssembly) when the cache does not have it.
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
