package progress_test

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/artifact"
	"github.com/baton-ml/baton/internal/engine"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/progress"
	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/store/pgtest"
	"github.com/baton-ml/baton/internal/store/postgres"
)

// syncBuffer is written by the bars' goroutine and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// queuedRun executes a two-step flow (12 tasks, then 1) on PostgreSQL
// through the queue, as `baton run` does there, reporting to obs.
func queuedRun(t *testing.T, obs engine.Observer) store.Run {
	t.Helper()
	ctx := context.Background()
	st, err := postgres.Open(ctx, pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	blobs, err := artifact.Open(ctx, "file://"+filepath.Join(dir, "artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(st, blobs, engine.Options{Dispatch: engine.Queue, QueuePoll: 50 * time.Millisecond,
		TempDir: filepath.Join(dir, "tmp")})
	if err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	worked := make(chan struct{})
	go func() { defer close(worked); eng.Work(wctx, engine.WorkOptions{}) }()
	t.Cleanup(func() { stop(); <-worked; eng.Close(); blobs.Close(); st.Close() })

	var items []json.RawMessage
	for i := range 12 {
		items = append(items, json.RawMessage(strconv.Itoa(i)))
	}
	f := &flow.Flow{Name: "twelve", Steps: []flow.Step{
		{Name: "each", Foreach: &flow.Foreach{Items: items}, Run: "true"},
		{Name: "after", Needs: []string{"each"}, Run: "true"},
	}}
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	spec, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	v, _, err := st.PutFlowVersion(ctx, store.FlowVersion{Flow: f.Name, Digest: f.Digest(), Spec: spec, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	r, err := st.CreateRun(ctx, store.NewRun{Flow: f.Name, FlowVersion: v.Version, Trigger: store.TriggerManual})
	if err != nil {
		t.Fatal(err)
	}
	got, err := eng.Execute(ctx, r.ID, engine.ExecOptions{Observer: obs})
	if err != nil || got.Status != store.RunSucceeded {
		t.Fatalf("run: %+v %v", got, err)
	}
	return got
}

// On PostgreSQL tasks end in queue workers, not in the coordinator: the
// lines used to say "0/12 tasks" for a finished step.
func TestLinesCountQueuedTasks(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	queuedRun(t, progress.NewLines(&out))
	for _, want := range []string{"step each: succeeded (12/12 tasks in ", "step after: succeeded (1/1 tasks in "} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("progress lacks %q:\n%s", want, out.String())
		}
	}
}

// The bars used to end at 0/0: never moved, then completed at their count.
func TestBarsCountQueuedTasks(t *testing.T) {
	t.Parallel()
	var out syncBuffer
	b := progress.NewBars(&out)
	r := queuedRun(t, b)
	b.RunFinished(r)
	got := out.String()
	if !strings.Contains(got, "12/12") || !strings.Contains(got, "1/1") || strings.Contains(got, "0/0") {
		t.Fatalf("bars:\n%q", got)
	}
}
