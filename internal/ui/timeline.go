package ui

import (
	"fmt"
	"html/template"
	"sort"
	"strings"
	"time"

	"github.com/baton-ml/baton/internal/view"
)

// bar is one row of a timeline.
type bar struct {
	Label      string
	Status     string
	Start, End time.Time
	Sub        bool // a task under its step
}

// timeline draws a run as a Gantt chart in SVG: a bar per step from its
// first start to its end, and under the chosen step a bar per listed task.
// Its size is bounded by the steps and one page of tasks.
func timeline(rv view.Run, selected string, now time.Time) template.HTML {
	var bars []bar
	for _, s := range rv.Steps {
		bars = append(bars, bar{Label: s.Name, Status: string(s.Status), Start: s.StartedAt, End: s.FinishedAt})
		if s.Name != selected {
			continue
		}
		for _, t := range s.Tasks {
			bars = append(bars, bar{Label: "#" + t.Label(), Status: string(t.Status), Start: t.StartedAt, End: t.FinishedAt, Sub: true})
		}
	}
	return drawTimeline(bars, rv.StartedAt, rv.FinishedAt, now)
}

func drawTimeline(bars []bar, from, to, now time.Time) template.HTML {
	if from.IsZero() {
		for _, b := range bars {
			if !b.Start.IsZero() && (from.IsZero() || b.Start.Before(from)) {
				from = b.Start
			}
		}
	}
	if from.IsZero() {
		return template.HTML(`<p class="muted">Nothing has started yet.</p>`)
	}
	if to.IsZero() {
		to = now
	}
	for _, b := range bars {
		if b.End.After(to) {
			to = b.End
		}
	}
	span := to.Sub(from)
	if span <= 0 {
		span = time.Millisecond
	}
	const labelW, chartW, rowH, top = 150.0, 640.0, 18.0, 22.0
	height := top + rowH*float64(len(bars)) + 6
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="timeline" role="img" aria-label="timeline of the run" viewBox="0 0 %.0f %.0f" width="%.0f" height="%.0f">`,
		labelW+chartW+10, height, labelW+chartW+10, height)
	// Four ticks along the top.
	for i := 0; i <= 4; i++ {
		x := labelW + chartW*float64(i)/4
		fmt.Fprintf(&b, `<line class="tick" x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f"/>`, x, top-4, x, height)
		anchor := "middle"
		if i == 0 {
			anchor = "start"
		} else if i == 4 {
			anchor = "end"
		}
		fmt.Fprintf(&b, `<text class="axis" x="%.1f" y="12" text-anchor="%s">+%s</text>`, x, anchor, short(span*time.Duration(i)/4))
	}
	for i, br := range bars {
		y := top + rowH*float64(i)
		cls := "lbl"
		lx := 4.0
		if br.Sub {
			cls, lx = "lbl sub", 18
		}
		fmt.Fprintf(&b, `<text class="%s" x="%.0f" y="%.1f">%s</text>`, cls, lx, y+12, template.HTMLEscapeString(clip(br.Label, 22)))
		if br.Start.IsZero() {
			continue
		}
		end := br.End
		if end.IsZero() {
			end = to
		}
		x0 := labelW + chartW*float64(br.Start.Sub(from))/float64(span)
		w := chartW * float64(end.Sub(br.Start)) / float64(span)
		w = max(w, 1.5)
		fmt.Fprintf(&b, `<rect class="bar st-%s" x="%.1f" y="%.1f" width="%.1f" height="%.0f" rx="2"><title>%s: %s, %s</title></rect>`,
			template.HTMLEscapeString(br.Status), x0, y+2, w, rowH-5, template.HTMLEscapeString(br.Label),
			template.HTMLEscapeString(br.Status), short(end.Sub(br.Start)))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // every value above is escaped or a number
}

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func sortStrings(s []string) { sort.Strings(s) }
