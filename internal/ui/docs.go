package ui

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"html/template"
	"net/http"
	"regexp"
	"strings"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/extension"

	"github.com/baton-ml/baton/internal/fault"
)

// DocFile is one architecture view as `baton docs` writes it: a Markdown
// file whose diagrams are Mermaid blocks.
type DocFile struct {
	Name    string
	Content string
}

type docsData struct {
	Files []DocFile
	Name  string
	HTML  template.HTML
}

// markdown renders GitHub's Markdown with tables; raw HTML in the source
// is not passed through (goldmark's default), so a stored value cannot
// become markup.
var markdown = goldmark.New(goldmark.WithExtensions(extension.Table))

func (u *UI) docsPage(w http.ResponseWriter, r *http.Request, v Viewer) error {
	if u.d.Docs == nil {
		return fault.Errorf(fault.Unavailable, "the architecture views are not available here: run `baton docs`")
	}
	files, err := u.d.Docs(r.Context())
	if err != nil {
		return err
	}
	d := docsData{Files: files, Name: r.URL.Query().Get("view")}
	if d.Name == "" && len(files) > 0 {
		d.Name = files[0].Name
	}
	for _, f := range files {
		if f.Name != d.Name {
			continue
		}
		if d.HTML, err = u.renderDoc(r.Context(), f); err != nil {
			return err
		}
		u.render(w, http.StatusOK, "docs", v, "Architecture: "+f.Name, d)
		return nil
	}
	return fault.Errorf(fault.NotFound, "no view %q", d.Name)
}

// renderDoc turns a view into HTML, its Mermaid blocks laid out and drawn
// by the same layered layout as the other graphs.
func (u *UI) renderDoc(ctx context.Context, f DocFile) (template.HTML, error) {
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	mark := "BATONDIAGRAM" + hex.EncodeToString(nonce[:]) + "N"
	var src strings.Builder
	var diagrams []string
	lines := strings.Split(f.Content, "\n")
	for i := 0; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) != "```mermaid" {
			src.WriteString(lines[i] + "\n")
			continue
		}
		var block []string
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			block = append(block, lines[i])
		}
		svg, err := u.dags.SVG(ctx, mermaidGraph(f.Name, len(diagrams), block))
		if err != nil {
			svg = template.HTML(`<pre class="out">` + template.HTMLEscapeString(strings.Join(block, "\n")) + `</pre>`) //nolint:gosec // escaped
		}
		fmt.Fprintf(&src, "\n%s%d\n\n", mark, len(diagrams))
		diagrams = append(diagrams, `<div class="dag">`+string(svg)+`</div>`)
	}
	var out bytes.Buffer
	if err := markdown.Convert([]byte(src.String()), &out); err != nil {
		return "", err
	}
	html := out.String()
	for i, svg := range diagrams {
		html = strings.Replace(html, fmt.Sprintf("<p>%s%d</p>", mark, i), svg, 1)
	}
	return template.HTML(html), nil //nolint:gosec // goldmark escapes the text and drops raw HTML; the SVG is built from escaped values (graph.go)
}

// The Mermaid that `baton docs` writes: `flowchart LR`, nodes as
// id[label], id([label]) or id{label}, edges a --> b, a -->|label| b and
// a -.->|label| b, a node declared inside an edge too.
var (
	mmNode = regexp.MustCompile(`^([A-Za-z0-9_]+)\s*(\(\[(.*)\]\)|\[(.*)\]|\{(.*)\})?$`)
	mmEdge = regexp.MustCompile(`^(.+?)\s*(-->|-\.->)\s*(?:\|([^|]*)\|)?\s*(.+)$`)
)

// mermaidGraph reads the subset above; what it does not know is left out.
func mermaidGraph(file string, n int, block []string) Graph {
	g := Graph{Key: fmt.Sprintf("docs|%s|%d|%s", file, n, strings.Join(block, "\n"))}
	seen := map[string]int{}
	node := func(s string) string {
		m := mmNode.FindStringSubmatch(strings.TrimSpace(s))
		if m == nil {
			return ""
		}
		id, label := m[1], m[1]
		for _, l := range m[3:] {
			if l != "" {
				label = unquoteMermaid(l)
			}
		}
		if i, ok := seen[id]; ok {
			if label != id {
				g.Nodes[i].Label = label
			}
			return id
		}
		seen[id] = len(g.Nodes)
		g.Nodes = append(g.Nodes, Node{ID: id, Label: label})
		return id
	}
	for _, l := range block {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "flowchart") || strings.HasPrefix(l, "graph ") || strings.HasPrefix(l, "%%") {
			continue
		}
		if strings.HasPrefix(l, "flowchart TB") || strings.HasPrefix(l, "flowchart TD") {
			g.RankDir = "TB"
		}
		if m := mmEdge.FindStringSubmatch(l); m != nil {
			from, to := node(m[1]), node(m[4])
			if from != "" && to != "" {
				g.Edges = append(g.Edges, [2]string{from, to})
				g.EdgeLabels = append(g.EdgeLabels, unquoteMermaid(m[3]))
			}
			continue
		}
		node(l)
	}
	return g
}

func unquoteMermaid(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	return strings.ReplaceAll(s, "#quot;", `"`)
}
