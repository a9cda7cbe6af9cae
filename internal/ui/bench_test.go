package ui_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/catalog"
	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/store/sqlite"
	"github.com/baton-ml/baton/internal/ui"
)

const fanFlow = `name: fan
steps:
  - name: start
    run: echo start
  - name: work
    needs: [start]
    foreach: items.json
    run: echo work
  - name: check
    needs: [work]
    run: echo check
`

// fanStore is a home holding a run of fan whose work step has n tasks, half
// of them succeeded, written straight to the store as the engine would
// (no process runs): the page's cost is the store's and the UI's.
func fanStore(tb testing.TB, n int) (store.Store, int64) {
	tb.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(tb.TempDir(), "baton.db"), sqlite.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	if _, err := catalog.Apply(ctx, st, []catalog.Document{{Path: "fan.yaml", Dir: tb.TempDir(), Data: []byte(fanFlow)}}); err != nil {
		tb.Fatal(err)
	}
	r, err := st.CreateRun(ctx, store.NewRun{Flow: "fan", FlowVersion: 1, Trigger: store.TriggerManual})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := st.AcquireRun(ctx, r.ID, "bench", time.Hour); err != nil {
		tb.Fatal(err)
	}
	t0 := time.Now().Add(-time.Minute)
	b := &store.Batch{
		Steps: []store.StepChange{
			{RunID: r.ID, Name: "start", Status: store.TaskSucceeded, NumTasks: 1, At: t0},
			{RunID: r.ID, Name: "work", Status: store.TaskRunning, Foreach: true, NumTasks: n, At: t0},
		},
		NewTasks: []store.NewTasks{{RunID: r.ID, Step: "start", Count: 1, ReadyAt: t0}, {RunID: r.ID, Step: "work", Count: n, ReadyAt: t0}},
	}
	zero := 0
	b.Tasks = append(b.Tasks, store.TaskChange{TaskKey: store.TaskKey{RunID: r.ID, Step: "start"}, Status: store.TaskSucceeded, Attempts: 1,
		StartedAt: t0, FinishedAt: t0.Add(time.Second), ExitCode: &zero})
	for i := 0; i < n/2; i++ {
		at := t0.Add(time.Second + time.Duration(i)*time.Millisecond)
		b.Tasks = append(b.Tasks, store.TaskChange{TaskKey: store.TaskKey{RunID: r.ID, Step: "work", Index: i}, Status: store.TaskSucceeded,
			Attempts: 1, StartedAt: at, FinishedAt: at.Add(20 * time.Millisecond), ExitCode: &zero})
	}
	if err := st.Apply(ctx, "bench", b); err != nil {
		tb.Fatal(err)
	}
	return st, r.ID
}

func admin(*http.Request) (ui.Viewer, error) {
	return ui.Viewer{Name: "bench", Role: store.RoleAdmin, Operator: true}, nil
}

func newUI(tb testing.TB, st store.Store) http.Handler {
	tb.Helper()
	u, err := ui.New(ui.Deps{Store: st, Authorize: admin})
	if err != nil {
		tb.Fatal(err)
	}
	return u.Handler()
}

func get200(tb testing.TB, h http.Handler, path string) string {
	tb.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	if rec.Code != 200 {
		tb.Fatalf("GET %s: %d\n%s", path, rec.Code, rec.Body)
	}
	return rec.Body.String()
}

// TestLargeForeachPaged: the page of a large foreach counts every task and
// lists one page of them (2,000 tasks here to stay fast under -race; the
// benchmarks below use 10,000).
func TestLargeForeachPaged(t *testing.T) {
	t.Parallel()
	st, id := fanStore(t, 2_000)
	h := newUI(t, st)
	body := get200(t, h, fmt.Sprintf("/runs/%d", id))
	for _, w := range []string{"foreach 1,000/2,000", "1,000 pending", "1,000/2,000 tasks done", "Tasks 1–10 of 2,000"} {
		if !strings.Contains(body, w) {
			t.Errorf("no %q in the run page", w)
		}
	}
	if n := strings.Count(body, "/tasks/work/"); n != 10 {
		t.Errorf("%d tasks of work listed, want a page of 10", n)
	}
	body = get200(t, h, fmt.Sprintf("/runs/%d?step=work&offset=1950", id))
	if !strings.Contains(body, "Tasks 1,951–2,000 of 2,000") || !strings.Contains(body, "/tasks/work/1999") || strings.Contains(body, "next »") {
		t.Errorf("the last page of work:\n%s", body)
	}
	body = get200(t, h, fmt.Sprintf("/runs/%d?step=work&status=succeeded&offset=990", id))
	if !strings.Contains(body, "/tasks/work/999") || strings.Contains(body, "/tasks/work/1000") {
		t.Errorf("succeeded tasks from 990: the page lists the wrong tasks")
	}
}

// TestRunsListPages: the runs list pages by id, newest first, keeping its
// filters.
func TestRunsListPages(t *testing.T) {
	t.Parallel()
	st := runsStore(t, 120)
	h := newUI(t, st)
	body := get200(t, h, "/runs?flow=fan")
	if !strings.Contains(body, `href="/runs/120"`) || strings.Contains(body, `href="/runs/70"`) || !strings.Contains(body, `/runs?before=71&amp;flow=fan`) {
		t.Fatalf("first page:\n%s", body)
	}
	body = get200(t, h, "/runs?before=71&flow=fan")
	if !strings.Contains(body, `href="/runs/70"`) || strings.Contains(body, `href="/runs/71"`) || !strings.Contains(body, `before=21`) {
		t.Fatalf("second page:\n%s", body)
	}
	body = get200(t, h, "/runs?before=21&flow=fan")
	if !strings.Contains(body, `href="/runs/1"`) || strings.Contains(body, "Older") {
		t.Fatalf("last page:\n%s", body)
	}
}

func runsStore(tb testing.TB, n int) store.Store {
	tb.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(tb.TempDir(), "baton.db"), sqlite.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	if _, err := catalog.Apply(ctx, st, []catalog.Document{{Path: "fan.yaml", Dir: tb.TempDir(), Data: []byte(fanFlow)}}); err != nil {
		tb.Fatal(err)
	}
	for i := 0; i < n; i++ {
		nr := store.NewRun{Flow: "fan", FlowVersion: 1, Trigger: store.TriggerManual, Tags: []string{"bench"}}
		if i%10 == 0 {
			nr.FailWith = "planted failure"
		}
		if _, err := st.CreateRun(ctx, nr); err != nil {
			tb.Fatal(err)
		}
	}
	return st
}

// BenchmarkRunPage10k is the server time of the page of a run whose
// foreach has 10,000 tasks (target: under 200 ms).
func BenchmarkRunPage10k(b *testing.B) {
	st, id := fanStore(b, 10_000)
	h := newUI(b, st)
	path := fmt.Sprintf("/runs/%d", id)
	get200(b, h, path)
	for b.Loop() {
		get200(b, h, path)
	}
}

// BenchmarkRunPage10kStep is the same run with the foreach step chosen:
// its counts, its timeline and a page of 50 tasks.
func BenchmarkRunPage10kStep(b *testing.B) {
	st, id := fanStore(b, 10_000)
	h := newUI(b, st)
	path := fmt.Sprintf("/runs/%d?step=work&offset=5000", id)
	get200(b, h, path)
	for b.Loop() {
		get200(b, h, path)
	}
}

// BenchmarkRunsList10k is the server time of the runs list over 10,000
// runs, first page and a deep page (target: under 100 ms).
func BenchmarkRunsList10k(b *testing.B) {
	st := runsStore(b, 10_000)
	h := newUI(b, st)
	for _, path := range []string{"/runs", "/runs?before=5000", "/runs?status=failed&before=2000"} {
		b.Run(strings.NewReplacer("/", "", "?", "_", "&", "_").Replace(path), func(b *testing.B) {
			get200(b, h, path)
			for b.Loop() {
				get200(b, h, path)
			}
		})
	}
}
