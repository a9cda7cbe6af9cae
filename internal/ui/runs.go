package ui

import (
	"context"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/baton-ml/baton/internal/engine"
	"github.com/baton-ml/baton/internal/fault"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/view"
)

// runsPerPage is the length of a page of the runs list.
const runsPerPage = 50

// tasksPerPage is how many tasks of a step a run page lists: the page
// of a 10,000-task foreach costs its counts and one page.
const tasksPerPage = 50

var runStatuses = []store.RunStatus{store.RunPending, store.RunRunning, store.RunSucceeded, store.RunFailed, store.RunCancelled}

var taskStatuses = []store.TaskStatus{store.TaskPending, store.TaskRunning, store.TaskSucceeded, store.TaskFailed, store.TaskCancelled, store.TaskSkipped}

type runsData struct {
	Runs     []store.Run
	Flows    []string
	Statuses []store.RunStatus
	Flow     string
	Status   string
	Before   int64
	Next     string // the next page's query, "" on the last page
	First    string // the first page's query, "" on the first page
}

func (u *UI) runsPage(w http.ResponseWriter, r *http.Request, v Viewer) error {
	q := r.URL.Query()
	d := runsData{Flow: q.Get("flow"), Status: q.Get("status"), Statuses: runStatuses}
	st := store.RunStatus(d.Status)
	switch st {
	case "", store.RunPending, store.RunRunning, store.RunSucceeded, store.RunFailed, store.RunCancelled:
	default:
		return fault.Invalidf("status", "%q: use pending, running, succeeded, failed or cancelled", d.Status)
	}
	if b := q.Get("before"); b != "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n <= 0 {
			return fault.Invalidf("before", "%q: a run id", b)
		}
		d.Before = n
	}
	runs, err := u.d.Store.Runs(r.Context(), store.RunFilter{Flow: d.Flow, Status: st, BeforeID: d.Before, Limit: runsPerPage + 1})
	if err != nil {
		return err
	}
	filter := url.Values{}
	if d.Flow != "" {
		filter.Set("flow", d.Flow)
	}
	if d.Status != "" {
		filter.Set("status", d.Status)
	}
	if len(runs) > runsPerPage {
		runs = runs[:runsPerPage]
		next := url.Values{}
		for k, v := range filter {
			next[k] = v
		}
		next.Set("before", strconv.FormatInt(runs[len(runs)-1].ID, 10))
		d.Next = "/runs?" + next.Encode()
	}
	if d.Before > 0 {
		d.First = "/runs?" + filter.Encode()
	}
	d.Runs = runs
	flows, err := u.d.Store.Flows(r.Context())
	if err != nil {
		return err
	}
	for _, f := range flows {
		d.Flows = append(d.Flows, f.Name)
	}
	u.render(w, http.StatusOK, "runs", v, "Runs", d)
	return nil
}

// runData is a run page: everything that changes while the run goes on
// (the part an SSE message replaces) and what a click selected.
type runData struct {
	Run      view.Run
	Flow     *flow.Flow
	Operator bool
	Live     bool
	Events   string // the SSE URL while the run goes on
	DAG      template.HTML
	DAGErr   string
	Timeline template.HTML
	// Step is the step whose tasks are listed (all steps when "").
	Step      string
	Status    string
	Statuses  []store.TaskStatus
	Steps     []stepRow
	Params    []kv
	Took      string
	PageQuery string
}

type stepRow struct {
	view.Step
	Counts  []statusCount
	Done    int
	Pct     int
	Prev    string // query of the previous page of tasks, "" on the first
	Next    string // query of the next page, "" on the last
	Showing string
	ArtPath string
}

type statusCount struct {
	Status string
	N      int
}

type kv struct{ K, V string }

// runOptions reads what a run page selects: a step's tasks, by status, a
// page at an offset.
func runOptions(q url.Values) (view.Options, error) {
	o := view.Options{Step: q.Get("step"), Limit: tasksPerPage}
	if s := q.Get("offset"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return o, fault.Invalidf("offset", "%q: a whole number >= 0", s)
		}
		o.Offset = n
	}
	switch st := store.TaskStatus(q.Get("status")); st {
	case "":
	case store.TaskPending, store.TaskRunning, store.TaskSucceeded, store.TaskFailed, store.TaskSkipped, store.TaskCancelled:
		o.Status = st
	default:
		return o, fault.Invalidf("status", "%q: use pending, running, succeeded, failed, skipped or cancelled", st)
	}
	if o.Step == "" {
		// Without a chosen step every step lists its first few tasks.
		o.Limit, o.Offset = 10, 0
	}
	return o, nil
}

// loadRun reads what a run page shows.
func (u *UI) loadRun(ctx context.Context, id int64, q url.Values, v Viewer) (runData, error) {
	o, err := runOptions(q)
	if err != nil {
		return runData{}, err
	}
	rv, err := view.LoadRunWith(ctx, u.d.Store, id, o)
	if err != nil {
		return runData{}, err
	}
	fl, _, err := engine.Load(ctx, u.d.Store, rv.Run)
	if err != nil {
		return runData{}, err
	}
	d := runData{Run: rv, Flow: fl, Operator: v.Operator, Live: !rv.Status.Final(), Step: o.Step, Status: string(o.Status),
		Statuses: taskStatuses, Took: took(rv.StartedAt, rv.FinishedAt)}
	if d.Live {
		d.Events = fmt.Sprintf("/ui/runs/%d/events?%s", id, q.Encode())
	}
	d.PageQuery = q.Encode()
	for _, k := range sortedKeys(rv.Params) {
		d.Params = append(d.Params, kv{k, string(rv.Params[k])})
	}
	for _, s := range rv.Steps {
		row := stepRow{Step: s}
		for _, st := range []store.TaskStatus{store.TaskSucceeded, store.TaskRunning, store.TaskFailed, store.TaskPending, store.TaskCancelled, store.TaskSkipped} {
			if n := s.Counts[st]; n > 0 {
				row.Counts = append(row.Counts, statusCount{string(st), n})
			}
		}
		row.Done = s.Counts[store.TaskSucceeded] + s.Counts[store.TaskFailed] + s.Counts[store.TaskCancelled] + s.Counts[store.TaskSkipped]
		if s.TasksTotal > 0 {
			row.Pct = row.Done * 100 / s.TasksTotal
		}
		if len(s.Tasks) > 0 {
			row.Showing = fmt.Sprintf("%s–%s", num(s.TasksOffset+1), num(s.TasksOffset+len(s.Tasks)))
		}
		page := func(off int) string {
			p := url.Values{"step": {s.Name}, "offset": {strconv.Itoa(off)}}
			if o.Status != "" {
				p.Set("status", string(o.Status))
			}
			return p.Encode()
		}
		if s.TasksTruncated {
			row.Next = page(s.TasksOffset + max(len(s.Tasks), o.Limit))
		}
		if s.TasksOffset > 0 && o.Step == s.Name {
			row.Prev = page(max(s.TasksOffset-tasksPerPage, 0))
		}
		d.Steps = append(d.Steps, row)
	}
	d.DAG, err = u.dags.SVG(ctx, runGraph(rv, fl, o.Step))
	if err != nil {
		d.DAGErr = err.Error()
	}
	// The engine stamps tasks on the real clock, not the server's (which
	// baton demo simulates): an open bar ends at the real now.
	d.Timeline = timeline(rv, o.Step, time.Now())
	return d, nil
}

// runGraph is a run's DAG: a box per step coloured by its status, with
// its task counts when it fans out.
func runGraph(rv view.Run, fl *flow.Flow, selected string) Graph {
	g := Graph{}
	var key strings.Builder
	fmt.Fprintf(&key, "run|%s|%d|%s", rv.Flow, rv.FlowVersion, selected)
	for _, s := range rv.Steps {
		label := s.Name
		if s.Foreach || s.TasksTotal > 1 {
			done := s.Counts[store.TaskSucceeded]
			label += fmt.Sprintf("\nforeach %s/%s", num(done), num(s.TasksTotal))
			if n := s.Counts[store.TaskFailed]; n > 0 {
				label += fmt.Sprintf("\n%s failed", num(n))
			} else if n := s.Counts[store.TaskRunning]; n > 0 {
				label += fmt.Sprintf("\n%s running", num(n))
			}
		} else if s.Status != store.TaskPending {
			label += "\n" + string(s.Status)
		}
		u := fmt.Sprintf("/runs/%d?step=%s", rv.ID, url.QueryEscape(s.Name))
		g.Nodes = append(g.Nodes, Node{ID: s.Name, Label: label, Status: string(s.Status), URL: u, Bold: s.Name == selected})
		fmt.Fprintf(&key, "|%s:%s", label, s.Status)
	}
	for _, s := range fl.Steps {
		for _, n := range s.Needs {
			g.Edges = append(g.Edges, [2]string{n, s.Name})
		}
	}
	g.Key = key.String()
	return g
}

func (u *UI) runPage(w http.ResponseWriter, r *http.Request, v Viewer) error {
	id, err := pathRun(r)
	if err != nil {
		return err
	}
	d, err := u.loadRun(r.Context(), id, r.URL.Query(), v)
	if err != nil {
		return err
	}
	u.render(w, http.StatusOK, "run", v, fmt.Sprintf("Run %d · %s", id, d.Run.Flow), d)
	return nil
}

// runEvents streams a run page's changing part as server-sent events
// ("run", the HTML to swap in) until the run ends ("done").
func (u *UI) runEvents(w http.ResponseWriter, r *http.Request, v Viewer) error {
	id, err := pathRun(r)
	if err != nil {
		return err
	}
	if _, err := u.d.Store.Run(r.Context(), id); err != nil {
		return err
	}
	rc := http.NewResponseController(w)
	// The server's write timeout is for answers, not for a stream.
	_ = rc.SetWriteDeadline(time.Time{})
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()
	ctx := r.Context()
	q := r.URL.Query()
	last := ""
	tick := time.NewTicker(u.d.Poll)
	defer tick.Stop()
	// A stream ends now and then; the browser's EventSource reconnects.
	end := time.After(10 * time.Minute)
	beat := time.NewTicker(15 * time.Second)
	defer beat.Stop()
	for {
		fp, final, err := u.fingerprint(ctx, id)
		if err != nil {
			return nil // the stream has begun: nothing but an end to say
		}
		if fp != last {
			last = fp
			d, err := u.loadRun(ctx, id, q, v)
			if err != nil {
				return nil
			}
			html, err := u.renderPart("run", "live", d)
			if err != nil {
				u.d.Logger.Error("ui sse", "run", id, "err", err)
				return nil
			}
			if err := sse(w, "run", html); err != nil {
				return nil
			}
			if final {
				_ = sse(w, "done", "")
				_ = rc.Flush()
				return nil
			}
			if err := rc.Flush(); err != nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-u.closing:
			return nil
		case <-end:
			return nil
		case <-beat.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return nil
			}
			_ = rc.Flush()
		case <-tick.C:
		}
	}
}

// fingerprint is what changes on a run page as the run goes on, read with
// three small queries (the counts are grouped in the store).
func (u *UI) fingerprint(ctx context.Context, id int64) (string, bool, error) {
	run, err := u.d.Store.Run(ctx, id)
	if err != nil {
		return "", false, err
	}
	steps, err := u.d.Store.Steps(ctx, id)
	if err != nil {
		return "", false, err
	}
	counts, err := u.d.Store.TaskCounts(ctx, id)
	if err != nil {
		return "", false, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s|%v", run.Status, run.CancelRequested)
	for _, s := range steps {
		fmt.Fprintf(&b, "|%s:%s", s.Name, s.Status)
	}
	for _, c := range counts {
		fmt.Fprintf(&b, "|%s:%s:%d:%d", c.Step, c.Status, c.Tasks, c.Attempts)
	}
	return b.String(), run.Status.Final(), nil
}

// sse writes one event; every line of data gets its own "data:" field.
func sse(w http.ResponseWriter, event, data string) error {
	var b strings.Builder
	b.WriteString("event: " + event + "\n")
	for _, l := range strings.Split(data, "\n") {
		b.WriteString("data: " + strings.TrimRight(l, "\r") + "\n")
	}
	b.WriteString("\n")
	_, err := w.Write([]byte(b.String()))
	return err
}

func sortedKeys[K ~string, V any](m map[K]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, string(k))
	}
	sortStrings(keys)
	return keys
}
