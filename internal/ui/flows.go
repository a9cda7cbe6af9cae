package ui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/baton-ml/baton/internal/fault"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/view"
)

func (u *UI) flowsPage(w http.ResponseWriter, r *http.Request, v Viewer) error {
	fs, err := u.d.Store.Flows(r.Context())
	if err != nil {
		return err
	}
	u.render(w, http.StatusOK, "flows", v, "Flows", fs)
	return nil
}

type flowData struct {
	Flow     *flow.Flow
	Latest   store.FlowVersion
	Versions []store.FlowVersion
	Triggers []string
	Runs     []store.Run
	A, B     int
	Diff     []diffLine
	Same     bool
}

func (u *UI) flowPage(w http.ResponseWriter, r *http.Request, v Viewer) error {
	ctx := r.Context()
	name := r.PathValue("name")
	vs, err := u.d.Store.FlowVersions(ctx, name)
	if err != nil {
		return err
	}
	if len(vs) == 0 {
		return fault.Errorf(fault.NotFound, "no flow %q", name)
	}
	d := flowData{Versions: vs}
	byNum := map[int]store.FlowVersion{}
	for _, fv := range vs {
		byNum[fv.Version] = fv
		if fv.Version > d.Latest.Version {
			d.Latest = fv
		}
	}
	if d.Flow, err = flow.Stored(name, d.Latest.Version, d.Latest.Spec); err != nil {
		return err
	}
	for _, t := range d.Flow.Triggers {
		d.Triggers = append(d.Triggers, describeTrigger(t))
	}
	if d.Runs, err = u.d.Store.Runs(ctx, store.RunFilter{Flow: name, Limit: 20}); err != nil {
		return err
	}
	// The diff: ?a=&b= (default: the newest against the one before).
	d.B = d.Latest.Version
	d.A = d.B - 1
	q := r.URL.Query()
	for _, p := range []struct {
		k   string
		dst *int
	}{{"a", &d.A}, {"b", &d.B}} {
		if s := q.Get(p.k); s != "" {
			n, err := strconv.Atoi(s)
			if _, ok := byNum[n]; err != nil || !ok {
				return fault.Invalidf(p.k, "version %q: flow %s has versions 1 to %d", s, name, d.Latest.Version)
			}
			*p.dst = n
		}
	}
	if a, ok := byNum[d.A]; ok {
		d.Diff = diffLines(versionText(a), versionText(byNum[d.B]))
		d.Same = true
		for _, l := range d.Diff {
			if l.Op != " " {
				d.Same = false
			}
		}
	}
	u.render(w, http.StatusOK, "flow", v, "Flow "+name, d)
	return nil
}

// versionText is what a version diff compares: the file as applied, or
// the canonical spec of a flow defined in Go.
func versionText(v store.FlowVersion) string {
	if v.Source != "" {
		return v.Source
	}
	var b bytes.Buffer
	if json.Indent(&b, v.Spec, "", "  ") != nil {
		return string(v.Spec)
	}
	return b.String()
}

func describeTrigger(t flow.Trigger) string {
	var s string
	switch {
	case t.Signal != "":
		s = "on signal " + t.Signal
	case len(t.Signals) > 0:
		s = "on all of " + strings.Join(t.Signals, ", ")
		if len(t.JoinKeys) > 0 {
			s += " joined by " + strings.Join(t.JoinKeys, ", ")
		}
	case t.OnFinish != nil:
		s = "when " + t.OnFinish.Flow + " finishes"
		if len(t.OnFinish.Status) > 0 {
			s += " (" + strings.Join(t.OnFinish.Status, ", ") + ")"
		}
	case t.Cron != "":
		s = "cron " + t.Cron
		if t.Timezone != "" {
			s += " " + t.Timezone
		}
		if t.Catchup != "" {
			s += ", catch-up " + t.Catchup
		}
	}
	if t.When != "" {
		s += " when " + t.When
	}
	return s
}

// diffLine is one line of a diff: " " kept, "-" removed, "+" added.
type diffLine struct {
	Op   string
	Text string
}

// diffLines is a line diff by longest common subsequence; files past a
// few thousand lines are compared as one block (removed, then added).
func diffLines(a, b string) []diffLine {
	x, y := strings.Split(strings.TrimSuffix(a, "\n"), "\n"), strings.Split(strings.TrimSuffix(b, "\n"), "\n")
	if len(x)*len(y) > 4_000_000 {
		var out []diffLine
		for _, l := range x {
			out = append(out, diffLine{"-", l})
		}
		for _, l := range y {
			out = append(out, diffLine{"+", l})
		}
		return out
	}
	n, m := len(x), len(y)
	lcs := make([][]int32, n+1)
	for i := range lcs {
		lcs[i] = make([]int32, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out []diffLine
	i, j := 0, 0
	for i < n && j < m {
		switch {
		case x[i] == y[j]:
			out = append(out, diffLine{" ", x[i]})
			i++
			j++
		case lcs[i+1][j] >= lcs[i][j+1]:
			out = append(out, diffLine{"-", x[i]})
			i++
		default:
			out = append(out, diffLine{"+", y[j]})
			j++
		}
	}
	for ; i < n; i++ {
		out = append(out, diffLine{"-", x[i]})
	}
	for ; j < m; j++ {
		out = append(out, diffLine{"+", y[j]})
	}
	return out
}

// compareData puts runs side by side.
type compareData struct {
	Runs    []view.Run
	Params  []compareRow
	Steps   []compareRow
	Outputs []compareRow
	Metrics []compareRow
}

// compareRow is one thing compared: a value per run, and whether they
// differ.
type compareRow struct {
	Name   string
	Values []string
	Differ bool
}

// maxCompare bounds how many runs one compare page reads.
const maxCompare = 8

func (u *UI) comparePage(w http.ResponseWriter, r *http.Request, v Viewer) error {
	ctx := r.Context()
	var ids []int64
	for _, s := range r.URL.Query()["run"] {
		for _, part := range strings.Split(s, ",") {
			if part = strings.TrimSpace(part); part == "" {
				continue
			}
			id, err := strconv.ParseInt(part, 10, 64)
			if err != nil || id <= 0 {
				return fault.Invalidf("run", "%q: a run id", part)
			}
			ids = append(ids, id)
		}
	}
	if len(ids) > maxCompare {
		return fault.Invalidf("run", "%d runs: compare at most %d at once", len(ids), maxCompare)
	}
	d := compareData{}
	if len(ids) < 2 {
		u.render(w, http.StatusOK, "compare", v, "Compare runs", d)
		return nil
	}
	params := map[string]bool{}
	steps := map[string]bool{}
	var stepOrder []string
	arts := make([]map[string]store.Artifact, len(ids))
	metrics := make([]map[string]string, len(ids))
	for i, id := range ids {
		rv, err := view.LoadRunWith(ctx, u.d.Store, id, view.Options{Limit: -1})
		if err != nil {
			return err
		}
		d.Runs = append(d.Runs, rv)
		for k := range rv.Params {
			params[k] = true
		}
		for _, s := range rv.Steps {
			if !steps[s.Name] {
				steps[s.Name] = true
				stepOrder = append(stepOrder, s.Name)
			}
		}
		as, err := u.d.Store.Artifacts(ctx, store.ArtifactFilter{RunID: id, Index: -1})
		if err != nil {
			return err
		}
		arts[i] = map[string]store.Artifact{}
		metrics[i] = map[string]string{}
		for _, a := range as {
			key := a.Step + "/" + a.Name
			if a.Index > 0 {
				key = fmt.Sprintf("%s/%d/%s", a.Step, a.Index, a.Name)
			}
			arts[i][key] = a
			if isMetrics(a.Name) && a.Size <= 64<<10 && u.d.Blobs != nil {
				if b, err := u.d.Blobs.Read(ctx, a.Digest); err == nil {
					flatten(metrics[i], strings.TrimSuffix(key, ".json"), b)
				}
			}
		}
	}
	for _, k := range sortedKeys(params) {
		row := compareRow{Name: k}
		for _, rv := range d.Runs {
			row.Values = append(row.Values, string(rv.Params[k]))
		}
		d.Params = append(d.Params, row.mark())
	}
	for _, s := range stepOrder {
		row := compareRow{Name: s}
		for _, rv := range d.Runs {
			val := "—"
			for _, st := range rv.Steps {
				if st.Name == s {
					val = string(st.Status)
					if t := took(st.StartedAt, st.FinishedAt); t != "" {
						val += ", " + t
					}
					if st.TasksTotal > 1 {
						val += fmt.Sprintf(" (%s tasks)", num(st.TasksTotal))
					}
				}
			}
			row.Values = append(row.Values, val)
		}
		d.Steps = append(d.Steps, row)
	}
	allArts := map[string]bool{}
	allMetrics := map[string]bool{}
	for i := range ids {
		for k := range arts[i] {
			allArts[k] = true
		}
		for k := range metrics[i] {
			allMetrics[k] = true
		}
	}
	for _, k := range sortedKeys(allArts) {
		row := compareRow{Name: k}
		for i := range ids {
			val := "—"
			if a, ok := arts[i][k]; ok {
				val = size(a.Size) + " · " + a.Digest[:min(10, len(a.Digest))]
			}
			row.Values = append(row.Values, val)
		}
		d.Outputs = append(d.Outputs, row.mark())
	}
	for _, k := range sortedKeys(allMetrics) {
		row := compareRow{Name: k}
		for i := range ids {
			val, ok := metrics[i][k]
			if !ok {
				val = "—"
			}
			row.Values = append(row.Values, val)
		}
		d.Metrics = append(d.Metrics, row.mark())
	}
	u.render(w, http.StatusOK, "compare", v, "Compare runs", d)
	return nil
}

func (c compareRow) mark() compareRow {
	for _, v := range c.Values[1:] {
		if v != c.Values[0] {
			c.Differ = true
		}
	}
	return c
}

// isMetrics says whether an artifact holds metrics to compare: a JSON
// file named metrics (metrics.json, eval_metrics.json, ...).
func isMetrics(name string) bool {
	base := name[strings.LastIndex(name, "/")+1:]
	return strings.HasSuffix(base, ".json") && strings.Contains(base, "metrics")
}

// flatten reads a JSON object's numbers and strings as dotted keys.
func flatten(out map[string]string, prefix string, b []byte) {
	var v any
	if json.Unmarshal(b, &v) != nil {
		return
	}
	var walk func(p string, v any, depth int)
	walk = func(p string, v any, depth int) {
		switch x := v.(type) {
		case map[string]any:
			if depth > 3 {
				return
			}
			for k, e := range x {
				walk(p+"."+k, e, depth+1)
			}
		case float64:
			out[p] = strconv.FormatFloat(x, 'g', 6, 64)
		case string:
			out[p] = x
		case bool:
			out[p] = strconv.FormatBool(x)
		}
	}
	walk(prefix, v, 0)
}
