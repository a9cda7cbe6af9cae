package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/artifact"
	"github.com/baton-ml/baton/internal/catalog"
	"github.com/baton-ml/baton/internal/engine"
	"github.com/baton-ml/baton/internal/home"
	"github.com/baton-ml/baton/internal/orchestrate"
	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/store/pgtest"
	"github.com/baton-ml/baton/internal/store/postgres"
	"github.com/baton-ml/baton/internal/store/sqlite"
	"github.com/baton-ml/baton/internal/testwait"
)

type harness struct {
	s     *Server
	st    store.Store
	blobs *artifact.Store
	dir   string
	db    string
	url   string
	stop  func()
	// client has a transport of its own: httptest.Server.Close in a
	// parallel test closes the idle connections of http.DefaultTransport,
	// which can break a request of this test in flight (EOF).
	client *http.Client
}

// contracts is the signals file the tests apply.
const contracts = `signals:
  - name: features_ready
    params:
      date: {type: string, required: true}
      row_count: {type: int, required: true}
      region: {type: string}
      feature_version: {type: string}
  - name: labels_ready
    params:
      date: {type: string, required: true}
      labels: {type: int}
  - name: model_trained
    params:
      model: {type: string, required: true}
`

func newHarness(t testing.TB, opt Options) *harness {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	var st store.Store
	var err error
	db := "sqlite://" + filepath.Join(dir, "baton.db")
	if opt.Dispatch == engine.Queue {
		// The shared-store configuration: PostgreSQL, tasks through its
		// queue, leadership by advisory lock.
		db = pgtest.DSN(t)
		st, err = postgres.Open(ctx, db)
		if err == nil {
			opt.Elector, err = postgres.NewLeadership(db, "test")
		}
	} else {
		st, err = sqlite.Open(ctx, filepath.Join(dir, "baton.db"), sqlite.Options{})
	}
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := artifact.Open(ctx, "file://"+filepath.Join(dir, "artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	h := &harness{st: st, blobs: blobs, dir: dir, db: db, client: &http.Client{Transport: tr}}
	h.startServer(t, opt)
	t.Cleanup(func() { h.stop(); tr.CloseIdleConnections(); blobs.Close(); st.Close() })
	h.apply(t, contracts)
	return h
}

func (h *harness) startServer(t testing.TB, opt Options) {
	t.Helper()
	if opt.Addr == "" {
		opt.Addr = "127.0.0.1:0"
	}
	if opt.Poll == 0 {
		opt.Poll = 50 * time.Millisecond
	}
	if opt.Reload == 0 {
		opt.Reload = 100 * time.Millisecond
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		if os.Getenv("BATON_TEST_LOG") != "" {
			opt.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil)).With("test", t.Name())
		}
	}
	hm := home.Home{Dir: h.dir, DB: h.db, Artifacts: "file://" + filepath.Join(h.dir, "artifacts")}
	s, err := New(h.st, h.blobs, hm, opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	h.s, h.url = s, "http://"+s.Addr()
	stopped := false
	h.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	}
	// The definitions are loaded before the orchestrator starts to lead.
	waitUntil(t, 20*time.Second, s.Leading, "the server to lead")
}

// apply registers YAML documents, as `baton flow apply` does.
func (h *harness) apply(t testing.TB, docs ...string) {
	t.Helper()
	var ds []catalog.Document
	for i, d := range docs {
		ds = append(ds, catalog.Document{Path: "doc" + string(rune('a'+i)) + ".yaml", Dir: h.dir, Data: []byte(d)})
	}
	if _, err := catalog.Apply(context.Background(), h.st, ds); err != nil {
		t.Fatalf("apply: %v", err)
	}
	h.s.reloadNow()
	// Wait for the server to see it, as a user would within two seconds.
	version, err := h.st.CatalogVersion(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, func() bool { return h.s.orch.CatalogVersion() == version }, "the server to reload the applied definitions")
}

type response struct {
	code int
	body []byte
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("response %d is not JSON: %v\n%s", r.code, err, r.body)
	}
}

func (h *harness) do(t testing.TB, method, path string, body any, tok string) response {
	t.Helper()
	r, err := h.try(method, path, body, tok)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// try is do for goroutines other than the test's, which must not Fatal.
func (h *harness) try(method, path string, body any, tok string) (response, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, h.url+path, rd)
	if err != nil {
		return response{}, err
	}
	// As the CLI does: the home's token unless the test gives one (noToken:
	// none at all), and JSON for a change.
	switch tok {
	case "":
		req.Header.Set("Authorization", "Bearer "+h.s.homeToken)
	case noToken:
	default:
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if method != "GET" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return response{code: resp.StatusCode, body: b}, err
}

// noToken sends a request with no Authorization header.
const noToken = "-"

func (h *harness) publish(t *testing.T, name, id string, params map[string]any) response {
	t.Helper()
	return h.do(t, "POST", "/api/v1/signals", map[string]any{"name": name, "id": id, "params": params}, "")
}

func (h *harness) runs(t testing.TB, flow string) []store.Run {
	t.Helper()
	rs, err := h.st.Runs(context.Background(), store.RunFilter{Flow: flow, Oldest: true, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// waitRuns waits until flow has n runs that all ended, and returns them.
func (h *harness) waitRuns(t *testing.T, flow string, n int) []store.Run {
	t.Helper()
	var rs []store.Run
	testwait.Until(t, 20*time.Second, func() (bool, string) {
		rs = h.runs(t, flow)
		statuses := make([]string, len(rs))
		ended := len(rs) >= n
		for i, r := range rs {
			statuses[i] = string(r.Status)
			ended = ended && r.Status.Final()
		}
		return ended, fmt.Sprint(statuses)
	}, "%d ended runs of flow %s", n, flow)
	return rs
}

// waitUntil is testwait.For; format names what is awaited ("the server to
// reload"), as the failure reads "still waiting for ...".
func waitUntil(t testing.TB, d time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	testwait.For(t, d, cond, format, args...)
}

// waitEvaluated waits until the server has evaluated every signal published
// so far: its cursor has passed the newest. Whatever those signals fire
// (runs, join parts) is stored before the cursor moves, so a test can then
// check that something did not fire without giving it time to.
func (h *harness) waitEvaluated(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	newest, err := h.st.Signals(ctx, store.SignalFilter{Limit: 1})
	if err != nil || len(newest) == 0 {
		t.Fatalf("newest signal: %v %v", newest, err)
	}
	testwait.Until(t, 10*time.Second, func() (bool, string) {
		cur, err := h.st.Cursor(ctx, orchestrate.SignalsCursor)
		if err != nil {
			return false, err.Error()
		}
		return cur >= newest[0].Seq, fmt.Sprintf("cursor at %d", cur)
	}, "the server to evaluate the signals up to seq %d", newest[0].Seq)
}

func param(t *testing.T, r store.Run, name string) string {
	t.Helper()
	var v any
	json.Unmarshal(r.Params[name], &v)
	b, _ := json.Marshal(v)
	return strings.Trim(string(b), `"`)
}
