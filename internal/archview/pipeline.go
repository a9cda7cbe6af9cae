package archview

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/baton-ml/baton/internal/flow"
)

func pipelineView(s *Snapshot) string {
	var d doc
	if len(s.Flows) == 0 {
		d.line("_No flows applied._")
		return d.String()
	}
	d.line("%d flows, newest applied version of each.", len(s.Flows))
	d.blank()
	for _, fd := range s.Flows {
		pipelineFlow(&d, fd)
	}
	return d.String()
}

func pipelineFlow(d *doc, fd FlowDef) {
	f := fd.Flow
	d.line("## %s (version %d)", f.Name, fd.Version)
	d.blank()
	if f.Description != "" {
		d.line("%s", f.Description)
		d.blank()
	}
	d.line("```mermaid")
	d.line("flowchart LR")
	for _, st := range f.Steps {
		d.line("  %s[%s]", mid("s", st.Name), mlabel(st.Name))
	}
	for _, st := range f.Steps {
		for _, n := range st.Needs {
			d.line("  %s --> %s", mid("s", n), mid("s", st.Name))
		}
	}
	d.line("```")
	d.blank()
	var rows [][]string
	for _, st := range f.Steps {
		rows = append(rows, []string{st.Name, kindOf(st), strings.Join(st.Needs, ", "), strings.Join(st.Publish, ", "),
			waitOf(st.Wait), foreachOf(st.Foreach), trainingSetOf(st.TrainingSet), retryOf(st.Retry), dur(time.Duration(st.Timeout))})
	}
	d.table([]string{"step", "kind", "needs", "publishes", "waits for", "foreach", "training set", "retry", "timeout"}, rows)
	d.line("Triggers:")
	d.blank()
	var trows [][]string
	for _, t := range f.Triggers {
		trows = append(trows, []string{t.Kind(), triggerWhat(t), t.When, paramMap(t.Params)})
	}
	d.table([]string{"kind", "on", "condition", "params"}, trows)
}

func kindOf(st flow.Step) string {
	switch {
	case st.TrainingSet != nil:
		return "training_set"
	case st.Run != "":
		return "shell"
	}
	return "go"
}

func waitOf(w *flow.Wait) string {
	if w == nil {
		return ""
	}
	s := w.Signal
	if w.When != "" {
		s += " when " + w.When
	}
	if w.Timeout > 0 {
		s += " (timeout " + time.Duration(w.Timeout).String() + ")"
	}
	return s
}

func foreachOf(fe *flow.Foreach) string {
	switch {
	case fe == nil:
		return ""
	case fe.Artifact != "":
		return "artifact " + fe.Artifact
	}
	return fmt.Sprintf("%d inline items", len(fe.Items))
}

func trainingSetOf(ts *flow.TrainingSet) string {
	if ts == nil {
		return ""
	}
	feats := "all features"
	if len(ts.Features) > 0 {
		feats = strings.Join(ts.Features, ", ")
	}
	return fmt.Sprintf("%s from labels %s → %s", feats, ts.Labels, ts.Out)
}

func retryOf(r flow.Retry) string {
	if r.MaxAttempts() <= 1 {
		return ""
	}
	s := fmt.Sprintf("%d attempts", r.MaxAttempts())
	if r.Backoff > 0 {
		s += ", backoff " + time.Duration(r.Backoff).String()
	}
	return s
}

func triggerWhat(t flow.Trigger) string {
	switch t.Kind() {
	case "signal":
		return "signal " + t.Signal
	case "join":
		return "join " + strings.Join(t.Signals, " + ") + " on " + strings.Join(t.JoinKeys, ", ")
	case "on_finish":
		st := t.OnFinish.Status
		if len(st) == 0 {
			st = []string{"succeeded"}
		}
		return "flow " + t.OnFinish.Flow + " " + strings.Join(st, "/")
	case "cron":
		s := "cron " + t.Cron
		if t.Timezone != "" {
			s += " " + t.Timezone
		}
		if t.Catchup != "" {
			s += ", catch-up " + t.Catchup
		}
		return s
	}
	return ""
}

func paramMap(m map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+" = "+m[k])
	}
	return strings.Join(parts, "; ")
}
