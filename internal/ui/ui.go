// Package ui is baton's web UI: server-rendered pages (html/template) with
// their scripts, styles and vendored libraries (htmx, its SSE extension,
// uPlot) embedded in the binary, graphs laid out and drawn as SVG on the
// server by a layered layout written in Go (graph.go). It reads the store through narrow interfaces and
// never changes anything itself: the buttons of its pages call the JSON
// API, so the API's guard (Host, Origin, Sec-Fetch-Site, JSON-only changes,
// roles) protects them as it protects every other client. The server mounts
// Handler at "/" behind that same guard.
package ui

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/baton-ml/baton/internal/artifact"
	"github.com/baton-ml/baton/internal/fault"
	"github.com/baton-ml/baton/internal/feature"
	"github.com/baton-ml/baton/internal/lineage"
	"github.com/baton-ml/baton/internal/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets/*.js assets/*.css
var assetFS embed.FS

// CSP is the policy of every page: no inline script or style, nothing
// from another origin, never framed.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'"

// Store is what the pages read: flows, runs, signals and their firings
// (what lineage reads), the model registry, rollouts and experiments.
// The store's interfaces mix reads and writes; the UI calls only reads.
type Store interface {
	lineage.Store
	store.FeatureStore
	store.ModelStore
	store.ExperimentStore
	store.MonitorStore
	Rollouts(ctx context.Context, endpoint string) ([]store.Rollout, error)
}

// Viewer is who looks at a page.
type Viewer struct {
	Name string
	Role store.Role
	// Operator may cancel and resume runs: the pages show those buttons
	// (the API decides either way).
	Operator bool
}

// Deps is what the UI needs from the server that mounts it.
type Deps struct {
	Store Store
	Blobs *artifact.Store
	// Authorize says who sent a request (a viewer at least), or why not;
	// the server's own check, so a page and the API agree.
	Authorize func(r *http.Request) (Viewer, error)
	// Freshness, when set, is the server's streaming features against
	// their SLAs (nil before the engine runs).
	Freshness func(now time.Time) []feature.Stale
	// Docs, when set, renders the architecture views (`baton docs`).
	Docs func(ctx context.Context) ([]DocFile, error)
	// LiveLog, when set, reads the end of a running task's stdout and
	// stderr, if this server's engine runs it (engine.LiveLog).
	LiveLog func(k store.TaskKey, limit int) (attempt int, stdout, stderr []byte, ok bool)
	Logger  *slog.Logger
	// Poll is how often a live page looks for changes; default 250ms.
	Poll time.Duration
	// Now is the server's clock, which judges experiments and freshness
	// (simulated under baton demo); default time.Now. Runs and tasks are
	// stamped by the engine on the real clock, and shown against it.
	Now func() time.Time
}

// UI serves the pages.
type UI struct {
	d     Deps
	pages map[string]*template.Template
	dags  *dagCache
	mux   *http.ServeMux
	// closing ends the live streams (CloseStreams): a server stopping
	// must not wait for pages left open.
	closing   chan struct{}
	closeOnce sync.Once
}

// CloseStreams ends every live stream now and any opened later (the
// server calls it when it shuts its HTTP server down); browsers reconnect
// to the next server.
func (u *UI) CloseStreams() { u.closeOnce.Do(func() { close(u.closing) }) }

// New prepares the pages.
func New(d Deps) (*UI, error) {
	if d.Store == nil || d.Authorize == nil {
		return nil, errors.New("ui: Store and Authorize are required")
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Poll <= 0 {
		d.Poll = 250 * time.Millisecond
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	u := &UI{d: d, pages: map[string]*template.Template{}, dags: newDAGCache(256), closing: make(chan struct{})}
	base, err := template.New("base").Funcs(funcs).ParseFS(templateFS, "templates/base.html")
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		name := n[len("templates/") : len(n)-len(".html")]
		if name == "base" {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return nil, fmt.Errorf("ui: template %s: %w", n, err)
		}
		u.pages[name] = t
	}
	u.mux = http.NewServeMux()
	u.routes()
	return u, nil
}

func (u *UI) routes() {
	page := func(pattern string, h func(w http.ResponseWriter, r *http.Request, v Viewer) error) {
		u.mux.Handle(pattern, u.guarded(h))
	}
	u.mux.HandleFunc("GET /ui/assets/{file}", u.asset)
	page("GET /{$}", u.overviewPage)
	page("GET /runs", u.runsPage)
	page("GET /runs/{id}", u.runPage)
	page("GET /runs/{id}/tasks/{step}/{index}", u.taskPage)
	page("GET /runs/{id}/artifacts/{step}/{index}/{name...}", u.artifactPage)
	page("GET /ui/runs/{id}/events", u.runEvents)
	page("GET /ui/runs/{id}/tasks/{step}/{index}/log", u.logPart)
	page("GET /compare", u.comparePage)
	page("GET /flows", u.flowsPage)
	page("GET /flows/{name}", u.flowPage)
	page("GET /signals", u.signalsPage)
	page("GET /models", u.modelsPage)
	page("GET /models/{name}", u.modelPage)
	page("GET /experiments", u.modelsPage)
	page("GET /experiments/{name}", u.experimentPage)
	page("GET /features", u.featuresPage)
	page("GET /docs", u.docsPage)
	page("/", func(w http.ResponseWriter, r *http.Request, v Viewer) error {
		return fault.Errorf(fault.NotFound, "no page %s", r.URL.Path)
	})
}

// Handler serves every page and asset.
func (u *UI) Handler() http.Handler { return u.mux }

// guarded authorizes a page, runs it and answers its error with an HTML
// page of the error's status. A request nobody signed gets the sign-in
// page and no data.
func (u *UI) guarded(h func(w http.ResponseWriter, r *http.Request, v Viewer) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		header(w)
		v, err := u.d.Authorize(r)
		if err != nil {
			u.fail(w, r, Viewer{}, err)
			return
		}
		if err := h(w, r, v); err != nil {
			u.fail(w, r, v, err)
		}
	})
}

func header(w http.ResponseWriter) {
	w.Header().Set("Content-Security-Policy", CSP)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "same-origin")
}

// fail answers err as a page: sign in for 401, the message otherwise.
func (u *UI) fail(w http.ResponseWriter, r *http.Request, v Viewer, err error) {
	code := fault.HTTPStatus(err)
	if code >= 500 {
		u.d.Logger.Error("ui", "path", r.URL.Path, "err", err)
	}
	if r.Header.Get("Accept") == "text/event-stream" {
		http.Error(w, err.Error(), code)
		return
	}
	data := struct {
		Code    int
		Status  string
		Message string
	}{code, http.StatusText(code), err.Error()}
	name := "error"
	if code == http.StatusUnauthorized {
		name = "signin"
	}
	u.render(w, code, name, v, data.Status, data)
}

// page is what every template gets.
type page struct {
	Title  string
	Viewer Viewer
	Nav    string
	// Charts loads uPlot (only the pages that draw time series).
	Charts bool
	Data   any
}

// render executes a page into a buffer first: a template error is a 500,
// never half a page.
func (u *UI) render(w http.ResponseWriter, code int, name string, v Viewer, title string, data any) {
	t, ok := u.pages[name]
	if !ok {
		http.Error(w, "no template "+name, http.StatusInternalServerError)
		return
	}
	var b bytes.Buffer
	if err := t.ExecuteTemplate(&b, "base", page{Title: title, Viewer: v, Nav: navOf(name), Charts: name == "model" || name == "experiment", Data: data}); err != nil {
		u.d.Logger.Error("ui render", "page", name, "err", err)
		http.Error(w, "the page could not be drawn: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(b.Bytes())
}

// renderPart executes one named template of a page (an htmx swap or an
// SSE message).
func (u *UI) renderPart(name, part string, data any) (string, error) {
	t, ok := u.pages[name]
	if !ok {
		return "", fmt.Errorf("ui: no template %s", name)
	}
	var b bytes.Buffer
	if err := t.ExecuteTemplate(&b, part, data); err != nil {
		return "", err
	}
	return b.String(), nil
}

func navOf(name string) string {
	switch name {
	case "runs", "run", "task", "artifact", "compare":
		return "runs"
	case "flows", "flow":
		return "flows"
	case "models", "model", "experiment":
		return "models"
	case "overview":
		return "overview"
	}
	return name
}

func (u *UI) asset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	b, err := assetFS.ReadFile("assets/" + name)
	if err != nil {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		http.NotFound(w, r)
		return
	}
	ct := "text/javascript; charset=utf-8"
	if len(name) > 4 && name[len(name)-4:] == ".css" {
		ct = "text/css; charset=utf-8"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// Assets change only with the binary.
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	_, _ = w.Write(b)
}

func pathRun(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, fault.Errorf(fault.NotFound, "run %q: a run id is a positive number", r.PathValue("id"))
	}
	return id, nil
}
