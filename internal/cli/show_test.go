package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/home"
	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/sdk"
)

// bigRun runs, through the engine, a foreach of n Go tasks whose task 10
// fails, so nearly all of them end skipped: the shape of a huge run
// cancelled or failed early.
func bigRun(t *testing.T, n int) string {
	t.Helper()
	home := t.TempDir()
	f := &sdk.Flow{Name: "big", Steps: []sdk.Step{
		{Name: "items", Run: func(ctx context.Context, tk *sdk.Task) error {
			items := make([]int, n)
			for i := range items {
				items[i] = i
			}
			return tk.OutputJSON(ctx, "items", items)
		}},
		{Name: "fan", Needs: []string{"items"}, Foreach: "items", Run: func(ctx context.Context, tk *sdk.Task) error {
			if tk.Index() == 10 {
				return errors.New("item 10 is bad")
			}
			return nil
		}},
		{Name: "after", Needs: []string{"fan"}, Run: func(context.Context, *sdk.Task) error { return nil }},
	}}
	res, err := sdk.Run(context.Background(), f, sdk.Options{Home: home, Dir: t.TempDir()})
	if err != nil || res.Succeeded() {
		t.Fatalf("run: %+v %v", res, err)
	}
	return home
}

// runShow runs `baton show ARGS` and reports its output and what it
// allocated on the Go heap.
func runShow(t *testing.T, home string, args ...string) (code int, out string, alloc uint64) {
	t.Helper()
	var o, e bytes.Buffer
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	code = Main(append([]string{"show", "--home", home}, args...), strings.NewReader(""), &o, &e)
	runtime.ReadMemStats(&after)
	if e.Len() > 0 {
		t.Logf("stderr: %s", e.String())
	}
	return code, o.String(), after.TotalAlloc - before.TotalAlloc
}

// hugeRun records, through the store, a run of a foreach of n tasks that
// failed at task 10 with nearly every other task skipped, as the engine
// leaves it (executing that many tasks here would time the engine, not
// show, and under the race detector on a loaded machine take minutes).
func hugeRun(t *testing.T, n int) string {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	h, err := home.Resolve(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	st, err := h.OpenStore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fl := &flow.Flow{Name: "big", Steps: []flow.Step{
		{Name: "items", Run: "true"},
		{Name: "fan", Needs: []string{"items"}, Foreach: &flow.Foreach{Artifact: "items"}, Run: "true"},
		{Name: "after", Needs: []string{"fan"}, Run: "true"},
	}}
	spec, err := json.Marshal(fl)
	if err != nil {
		t.Fatal(err)
	}
	v, _, err := st.PutFlowVersion(ctx, store.FlowVersion{Flow: "big", Digest: "d", Spec: spec, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	r, err := st.CreateRun(ctx, store.NewRun{Flow: "big", FlowVersion: v.Version, Trigger: store.TriggerManual})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.AcquireRun(ctx, r.ID, "test", time.Hour); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	b := &store.Batch{
		Steps: []store.StepChange{{RunID: r.ID, Name: "items", Status: store.TaskSucceeded, NumTasks: 1, At: t0},
			{RunID: r.ID, Name: "fan", Status: store.TaskRunning, Foreach: true, NumTasks: n, At: t0}},
		NewTasks: []store.NewTasks{{RunID: r.ID, Step: "items", Count: 1, ReadyAt: t0}, {RunID: r.ID, Step: "fan", Count: n, ReadyAt: t0}},
	}
	zero, one := 0, 1
	b.Tasks = append(b.Tasks, store.TaskChange{TaskKey: store.TaskKey{RunID: r.ID, Step: "items"}, Status: store.TaskSucceeded,
		Attempts: 1, StartedAt: t0, FinishedAt: t0.Add(15 * time.Millisecond), ExitCode: &zero})
	for i := range 42 {
		c := store.TaskChange{TaskKey: store.TaskKey{RunID: r.ID, Step: "fan", Index: i}, Status: store.TaskSucceeded, Attempts: 1,
			StartedAt: t0, FinishedAt: t0.Add(time.Duration(i) * time.Millisecond), ExitCode: &zero}
		if i == 10 {
			c.Status, c.ExitCode, c.Error = store.TaskFailed, &one, "item 10 is bad"
		}
		b.Tasks = append(b.Tasks, c)
	}
	if err := st.Apply(ctx, "test", b); err != nil {
		t.Fatal(err)
	}
	if err := st.Apply(ctx, "test", &store.Batch{
		EndPending: []store.EndPending{{RunID: r.ID, Step: "fan", Status: store.TaskSkipped, At: time.Now()}},
		Steps: []store.StepChange{{RunID: r.ID, Name: "fan", Status: store.TaskFailed, Foreach: true, NumTasks: n, At: time.Now()},
			{RunID: r.ID, Name: "after", Status: store.TaskSkipped, At: time.Now()}},
		Runs: []store.RunChange{{RunID: r.ID, Status: store.RunFailed, Error: "step fan task 10 failed after 1 attempt(s): item 10 is bad", At: time.Now()}},
	}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Showing a run of 100,000 tasks reads counts and one page: the output and
// the memory stay bounded (the old show listed every task that did not
// succeed, one line each, after loading them all: 99,030 lines and 255 MB).
//
// Not parallel: it measures the process's allocations, which other tests
// running at the same time would add to.
func TestShowHugeRunIsBounded(t *testing.T) {
	n := 100_000
	if raceOn {
		// Still far past one page; the line and memory bounds still
		// tell the old show (one line per task) from the new.
		n = 20_000
	}
	start := time.Now()
	home := hugeRun(t, n)
	t.Logf("recording a run of %d tasks took %s", n, time.Since(start).Round(time.Millisecond))

	code, out, alloc := runShow(t, home, "1")
	lines := strings.Count(out, "\n")
	t.Logf("text: %d lines, %d KB allocated", lines, alloc>>10)
	if code != 0 || lines > 40 || alloc > 16<<20 {
		t.Fatalf("show: exit %d, %d lines, %d MB allocated:\n%s", code, lines, alloc>>20, out)
	}
	if !regexp.MustCompile(`\nfan +failed +`+strconv.Itoa(n)+` +\d+ +0 +1 +\d+ skipped `).MatchString(out) ||
		!regexp.MustCompile(`\n1/fan/10 +failed +1 `).MatchString(out) {
		t.Fatalf("no summary line or failed task for step fan:\n%s", out)
	}
	for _, want := range []string{"item 10 is bad", "skipped",
		"step fan: more tasks than listed; next: baton show 1 --step fan --offset 20"} {
		if !strings.Contains(out, want) {
			t.Fatalf("show output lacks %q:\n%s", want, out)
		}
	}
	if i, j := strings.Index(out, "1/fan/10 "), strings.Index(out, "1/fan/11 "); i < 0 || j >= 0 && j < i {
		t.Fatalf("the failed task is not listed first:\n%s", out)
	}

	code, out, alloc = runShow(t, home, "1", "-o", "json")
	t.Logf("json: %d KB, %d KB allocated", len(out)>>10, alloc>>10)
	if code != 0 || alloc > 16<<20 {
		t.Fatalf("show -o json: exit %d, %d MB allocated", code, alloc>>20)
	}
	var v struct {
		ID     int64  `json:"id"`
		Status string `json:"status"`
		Steps  []struct {
			Name           string         `json:"name"`
			Status         string         `json:"status"`
			Counts         map[string]int `json:"counts"`
			TasksTotal     int            `json:"tasks_total"`
			TasksTruncated bool           `json:"tasks_truncated"`
			Tasks          []struct {
				Index    int    `json:"index"`
				Status   string `json:"status"`
				Attempts int    `json:"attempts"`
			} `json:"tasks"`
		} `json:"steps"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatal(err)
	}
	fan := v.Steps[1]
	if len(v.Steps) != 3 || fan.Name != "fan" || fan.TasksTotal != n || !fan.TasksTruncated || len(fan.Tasks) != 1000 ||
		fan.Tasks[999].Index != 999 || fan.Counts["failed"] != 1 || fan.Counts["skipped"]+fan.Counts["succeeded"] != n-1 ||
		v.Steps[0].TasksTotal != 1 || v.Steps[0].TasksTruncated || len(v.Steps[0].Tasks) != 1 || v.Steps[2].TasksTotal != 0 {
		t.Fatalf("json: %+v", v.Steps)
	}

	// Paging: the last page of the step is short and says it is the last.
	code, out, _ = runShow(t, home, "1", "-o", "json", "--step", "fan", "--offset", fmt.Sprint(n-5), "--limit", "10")
	if err := json.Unmarshal([]byte(out), &v); code != 0 || err != nil {
		t.Fatalf("page: exit %d %v", code, err)
	}
	if fan := v.Steps[1]; len(fan.Tasks) != 5 || fan.Tasks[0].Index != n-5 || fan.TasksTruncated || len(v.Steps[0].Tasks) != 0 {
		t.Fatalf("last page: %+v", fan)
	}
	code, out, _ = runShow(t, home, "1", "--step", "fan", "--status", "failed")
	if code != 0 || !regexp.MustCompile(`\n1/fan/10 +failed`).MatchString(out) || strings.Contains(out, "1/items/0") || strings.Contains(out, "more tasks than listed") {
		t.Fatalf("failed tasks: exit %d\n%s", code, out)
	}
}

func TestShowFlags(t *testing.T) {
	home := bigRun(t, 30)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"1", "--status", "done"}, 2, `--status "done"`},
		{[]string{"1", "--limit", "-1"}, 2, "--limit -1"},
		{[]string{"1", "--step", "nope"}, 1, `step "nope"`},
		{[]string{"1", "--tasks", "--step", "fan", "--limit", "5", "--offset", "5"}, 0, "1/fan/9 "},
		{[]string{"1", "--limit", "0"}, 0, "next: baton show 1 --step fan --limit 20"},
	} {
		var o, e bytes.Buffer
		code := Main(append([]string{"show", "--home", home}, tc.args...), strings.NewReader(""), &o, &e)
		if code != tc.code || !strings.Contains(o.String()+e.String(), tc.want) {
			t.Errorf("show %v: exit %d, want %d and %q:\n%s%s", tc.args, code, tc.code, tc.want, o.String(), e.String())
		}
	}
}

// A large param is cut in the text summary, with its size; -o json keeps
// it whole.
func TestShowCutsLongParams(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	h, err := home.Resolve(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	st, err := h.OpenStore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fl := &flow.Flow{Name: "p", Params: []flow.Param{{Name: "names", Type: flow.JSON}}, Steps: []flow.Step{{Name: "a", Run: "true"}}}
	spec, _ := json.Marshal(fl)
	v, _, err := st.PutFlowVersion(ctx, store.FlowVersion{Flow: "p", Digest: "d", Spec: spec, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	big, _ := json.Marshal(strings.Repeat("x", 200_000))
	if _, err := st.CreateRun(ctx, store.NewRun{Flow: "p", FlowVersion: v.Version, Trigger: store.TriggerManual,
		Params: map[string]json.RawMessage{"names": big}}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	code, out, _ := runShow(t, dir, "1")
	if code != 0 || len(out) > 2000 || !strings.Contains(out, "(195 KiB; baton show -o json has it whole)") {
		t.Fatalf("show: exit %d, %d bytes:\n%.3000s", code, len(out), out)
	}
	code, out, _ = runShow(t, dir, "1", "-o", "json")
	if code != 0 || !strings.Contains(out, string(big)) {
		t.Fatalf("show -o json lost the param (exit %d, %d bytes)", code, len(out))
	}
}
