package archview

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// doc accumulates one Markdown file.
type doc struct{ b strings.Builder }

func (d *doc) line(format string, args ...any) {
	fmt.Fprintf(&d.b, format, args...)
	d.b.WriteByte('\n')
}

func (d *doc) blank() { d.b.WriteByte('\n') }

// table writes a Markdown table; cells are escaped so a pipe or a newline
// in a stored value cannot break the layout.
func (d *doc) table(head []string, rows [][]string) {
	if len(rows) == 0 {
		d.line("_None._")
		d.blank()
		return
	}
	d.line("| %s |", strings.Join(head, " | "))
	seps := make([]string, len(head))
	for i := range seps {
		seps[i] = "---"
	}
	d.line("| %s |", strings.Join(seps, " | "))
	for _, r := range rows {
		cells := make([]string, len(r))
		for i, c := range r {
			cells[i] = cell(c)
		}
		d.line("| %s |", strings.Join(cells, " | "))
	}
	d.blank()
}

func (d *doc) String() string { return d.b.String() }

func cell(s string) string {
	if s == "" {
		return "—"
	}
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}

var unsafeID = regexp.MustCompile(`[^A-Za-z0-9_]`)

// mid makes a Mermaid node id: names may hold '-', which Mermaid reads as
// part of an arrow in some positions.
func mid(prefix, name string) string { return prefix + "_" + unsafeID.ReplaceAllString(name, "_") }

// mlabel quotes a Mermaid label.
func mlabel(s string) string { return `"` + strings.ReplaceAll(s, `"`, "#quot;") + `"` }

func code(s string) string {
	if s == "" {
		return ""
	}
	return "`" + s + "`"
}

func dur(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return d.String()
}

func num(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
