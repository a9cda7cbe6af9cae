package ui

import (
	"bytes"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/baton-ml/baton/internal/fault"
	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/view"
)

// logTail is how much of the end of a log a page shows.
const logTail = 64 << 10

// previewMax is how much of an artifact a preview reads; images up to
// imageMax are shown whole.
const (
	previewMax = 256 << 10
	imageMax   = 2 << 20
)

type taskData struct {
	Run       store.Run
	Task      store.Task
	Foreach   bool
	Attempts  []store.Attempt
	Artifacts []artifactRow
	Log       logData
}

type artifactRow struct {
	store.Artifact
	Preview  string
	Download string
}

type logData struct {
	URL       string // the partial's URL, polled while the task runs
	Live      bool
	Attempt   int
	Stdout    string
	Stderr    string
	Cut       bool
	None      bool
	ReusedRun string
	// Running says the output is the running attempt's so far, read from
	// the engine (not yet stored).
	Running bool
}

func taskKey(r *http.Request) (store.TaskKey, error) {
	id, err := pathRun(r)
	if err != nil {
		return store.TaskKey{}, err
	}
	i, err := strconv.Atoi(r.PathValue("index"))
	if err != nil || i < 0 {
		return store.TaskKey{}, fault.Errorf(fault.NotFound, "task index %q: a whole number", r.PathValue("index"))
	}
	return store.TaskKey{RunID: id, Step: r.PathValue("step"), Index: i}, nil
}

func (u *UI) taskPage(w http.ResponseWriter, r *http.Request, v Viewer) error {
	k, err := taskKey(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	run, err := u.d.Store.Run(ctx, k.RunID)
	if err != nil {
		return err
	}
	t, err := u.d.Store.Task(ctx, k)
	if err != nil {
		return err
	}
	d := taskData{Run: run, Task: t}
	steps, err := u.d.Store.Steps(ctx, k.RunID)
	if err != nil {
		return err
	}
	var step store.Step
	for _, s := range steps {
		if s.Name == k.Step {
			d.Foreach, step = s.Foreach, s
		}
	}
	ak := k
	if t.Reused() {
		ak = t.ReusedFrom
	}
	if d.Attempts, err = u.d.Store.Attempts(ctx, ak); err != nil {
		return err
	}
	arts, err := u.d.Store.Artifacts(ctx, store.ArtifactFilter{RunID: k.RunID, Step: k.Step, Index: k.Index})
	if err != nil {
		return err
	}
	for _, a := range arts {
		d.Artifacts = append(d.Artifacts, artifactRow{Artifact: a, Preview: previewURL(a.TaskKey, a.Name), Download: downloadURL(a.TaskKey, a.Name, step)})
	}
	attempt, _ := strconv.Atoi(r.URL.Query().Get("attempt"))
	if d.Log, err = u.loadLog(r, t, attempt); err != nil {
		return err
	}
	u.render(w, http.StatusOK, "task", v, fmt.Sprintf("Task %s", k), d)
	return nil
}

func (u *UI) loadLog(r *http.Request, t store.Task, attempt int) (logData, error) {
	// An attempt before the task's newest has ended and its output is
	// stored: polling it would only read the same blob again each second.
	d := logData{Live: !t.Status.Final() && (attempt <= 0 || attempt >= t.Attempts), Attempt: attempt,
		URL: fmt.Sprintf("/ui/runs/%d/tasks/%s/%d/log?attempt=%d", t.RunID, url.PathEscape(t.Step), t.Index, attempt)}
	// A running attempt's output so far, from this server's engine: the
	// newest attempt, or the one asked for if it is the running one.
	if d.Live && u.d.LiveLog != nil {
		if a, out, errOut, ok := u.d.LiveLog(store.TaskKey{RunID: t.RunID, Step: t.Step, Index: t.Index}, logTail+4); ok && (attempt == 0 || attempt == a) {
			d.Attempt, d.Running = a, true
			var cut1, cut2 bool
			d.Stdout, cut1 = tail(string(out))
			d.Stderr, cut2 = tail(string(errOut))
			d.Cut = cut1 || cut2
			return d, nil
		}
	}
	if u.d.Blobs == nil {
		d.None = true
		return d, nil
	}
	l, ok, err := view.TaskLog(r.Context(), u.d.Store, u.d.Blobs, t, nil, attempt)
	if err != nil {
		return d, err
	}
	if !ok {
		d.None = true
		return d, nil
	}
	d.Attempt, d.ReusedRun = l.Attempt, l.ReusedFrom
	var cut1, cut2 bool
	d.Stdout, cut1 = tail(l.Stdout)
	d.Stderr, cut2 = tail(l.Stderr)
	d.Cut = cut1 || cut2
	return d, nil
}

func tail(s string) (string, bool) {
	if len(s) <= logTail {
		return s, false
	}
	s = s[len(s)-logTail:]
	for i := 0; i < 4 && len(s) > 0 && !utf8.RuneStart(s[0]); i++ {
		s = s[1:]
	}
	return s, true
}

// logPart is a task's log as a fragment, polled by the task page while the
// task runs (its output is stored when an attempt ends).
func (u *UI) logPart(w http.ResponseWriter, r *http.Request, v Viewer) error {
	k, err := taskKey(r)
	if err != nil {
		return err
	}
	t, err := u.d.Store.Task(r.Context(), k)
	if err != nil {
		return err
	}
	attempt, _ := strconv.Atoi(r.URL.Query().Get("attempt"))
	d, err := u.loadLog(r, t, attempt)
	if err != nil {
		return err
	}
	html, err := u.renderPart("task", "log", d)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, err = io.WriteString(w, html)
	return err
}

func previewURL(k store.TaskKey, name string) string {
	return fmt.Sprintf("/runs/%d/artifacts/%s/%d/%s", k.RunID, url.PathEscape(k.Step), k.Index, escapeName(name))
}

// downloadURL is the artifact's address in the API: RUN/STEP/NAME, with an
// index per foreach level of step st (RUN/STEP/I/J/NAME), or the
// iteration of a step that ran in a loop.
func downloadURL(k store.TaskKey, name string, st store.Step) string {
	at := ""
	shape := st.TaskShape()
	switch {
	case shape.Level() > 0:
		p, ok := shape.Path(k.Index - (st.NumTasks - shape.Count()))
		if !ok {
			p = []int{k.Index}
		}
		at = store.FormatPath(p) + "/"
	case st.NumTasks > 1:
		at = strconv.Itoa(k.Index) + "/"
	}
	return fmt.Sprintf("/api/v1/artifacts/%d/%s/%s%s", k.RunID, url.PathEscape(k.Step), at, escapeName(name))
}

// escapeName escapes each part of a name that may hold folders.
func escapeName(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

type artifactData struct {
	Artifact artifactRow
	Kind     string // text, json, csv, image, binary
	Text     string
	Rows     [][]string
	Image    template.URL // a data: URL of a detected raster image
	Cut      bool
}

func (u *UI) artifactPage(w http.ResponseWriter, r *http.Request, v Viewer) error {
	k, err := taskKey(r)
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	ctx := r.Context()
	a, err := u.d.Store.Artifact(ctx, k, name)
	if err != nil {
		return err
	}
	steps, err := u.d.Store.Steps(ctx, k.RunID)
	if err != nil {
		return err
	}
	var step store.Step
	for _, s := range steps {
		if s.Name == k.Step {
			step = s
		}
	}
	d := artifactData{Artifact: artifactRow{Artifact: a, Download: downloadURL(k, a.Name, step)}}
	if u.d.Blobs == nil {
		d.Kind = "binary"
		u.render(w, http.StatusOK, "artifact", v, "Artifact "+a.Name, d)
		return nil
	}
	rc, err := u.d.Blobs.Open(ctx, a.Digest)
	if err != nil {
		return err
	}
	defer rc.Close()
	limit := int64(previewMax)
	if a.Size <= imageMax {
		limit = imageMax
	}
	b, err := io.ReadAll(io.LimitReader(rc, limit))
	if err != nil {
		return err
	}
	preview(&d, a.Name, b, a.Size)
	u.render(w, http.StatusOK, "artifact", v, "Artifact "+a.Name, d)
	return nil
}

// preview decides how to show an artifact from its name and first bytes.
func preview(d *artifactData, name string, b []byte, size int64) {
	ct := http.DetectContentType(b)
	whole := int64(len(b)) == size
	switch {
	case strings.HasPrefix(ct, "image/") && whole && ct != "image/svg+xml":
		// SVG could carry script; it is shown as text.
		d.Kind = "image"
		d.Image = template.URL("data:" + ct + ";base64," + base64.StdEncoding.EncodeToString(b)) //nolint:gosec // a raster type sniffed from the bytes
		return
	}
	if len(b) > previewMax {
		b, d.Cut = b[:previewMax], true
	}
	if !whole {
		d.Cut = true
	}
	if !utf8.Valid(trimPartialRune(b)) || bytes.IndexByte(b, 0) >= 0 {
		d.Kind = "binary"
		return
	}
	ext := strings.ToLower(path.Ext(name))
	switch {
	case (ext == ".json" || json.Valid(b)) && !d.Cut:
		var out bytes.Buffer
		if json.Indent(&out, b, "", "  ") == nil {
			d.Kind, d.Text = "json", out.String()
			return
		}
	case ext == ".csv" || ext == ".tsv":
		cr := csv.NewReader(bytes.NewReader(b))
		if ext == ".tsv" {
			cr.Comma = '\t'
		}
		cr.FieldsPerRecord = -1
		cr.LazyQuotes = true
		for len(d.Rows) < 101 {
			rec, err := cr.Read()
			if err != nil {
				break
			}
			d.Rows = append(d.Rows, rec)
		}
		if len(d.Rows) > 0 {
			d.Kind = "csv"
			if len(d.Rows) > 100 {
				d.Rows, d.Cut = d.Rows[:100], true
			}
			return
		}
	}
	d.Kind, d.Text = "text", string(b)
}

func trimPartialRune(b []byte) []byte {
	for i := 0; i < 3 && len(b) > 0 && !utf8.FullRune(b[max(len(b)-4, 0):]); i++ {
		b = b[:len(b)-1]
	}
	return b
}
