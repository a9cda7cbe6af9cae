// Package storetest is the conformance suite every store driver passes.
// A driver's test calls Run with a function that opens a fresh, empty store.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/store"
)

// Opener returns a new, empty store for one test; it registers its own cleanup.
type Opener func(t *testing.T) store.Store

// Run runs the conformance suite.
func Run(t *testing.T, open Opener) {
	tests := map[string]func(*testing.T, store.Store){
		"FlowVersions":        testFlowVersions,
		"RunsAndFilters":      testRuns,
		"LeaseAcquireRenew":   testLease,
		"ApplyFencing":        testFencing,
		"ApplyTasks":          testApplyTasks,
		"ApplyIsAtomic":       testAtomic,
		"Reuse":               testReuse,
		"Abandon":             testAbandon,
		"ConcurrentApply":     testConcurrentApply,
		"NotFound":            testNotFound,
		"LargeFanOut":         testLargeFanOut,
		"FinishReleasesLease": testFinish,
		"EndPending":          testEndPending,
	}
	for name, fn := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, open(t))
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

func putFlow(t *testing.T, s store.Store, name, digest string) store.FlowVersion {
	t.Helper()
	v, _, err := s.PutFlowVersion(ctx(t), store.FlowVersion{
		Flow: name, Digest: digest, Spec: json.RawMessage(`{"name":"` + name + `"}`), Source: "name: " + name,
		Path: "/x/" + name + ".yaml", Dir: "/x",
	})
	if err != nil {
		t.Fatalf("PutFlowVersion: %v", err)
	}
	return v
}

// newRun creates a run of a fresh flow and acquires it for owner.
func newRun(t *testing.T, s store.Store, owner string) store.Run {
	t.Helper()
	v := putFlow(t, s, "f", "d1")
	r, err := s.CreateRun(ctx(t), store.NewRun{Flow: v.Flow, FlowVersion: v.Version, Trigger: store.TriggerManual})
	if err != nil {
		t.Fatalf("CreateRun: %v", err)
	}
	r, err = s.AcquireRun(ctx(t), r.ID, owner, time.Minute)
	if err != nil {
		t.Fatalf("AcquireRun: %v", err)
	}
	return r
}

func testFlowVersions(t *testing.T, s store.Store) {
	c := ctx(t)
	v1, created, err := s.PutFlowVersion(c, store.FlowVersion{Flow: "a", Digest: "x", Spec: json.RawMessage(`{}`), Source: "src", Path: "/p/a.yaml", Dir: "/p"})
	if err != nil || !created || v1.Version != 1 {
		t.Fatalf("first put: v=%d created=%v err=%v; want version 1 created", v1.Version, created, err)
	}
	again, created, err := s.PutFlowVersion(c, store.FlowVersion{Flow: "a", Digest: "x", Spec: json.RawMessage(`{}`)})
	if err != nil || created || again.Version != 1 || again.Source != "src" {
		t.Fatalf("same digest: %+v created=%v err=%v; want the existing version 1", again, created, err)
	}
	v2, created, err := s.PutFlowVersion(c, store.FlowVersion{Flow: "a", Digest: "y", Spec: json.RawMessage(`{"v":2}`)})
	if err != nil || !created || v2.Version != 2 {
		t.Fatalf("new digest: v=%d created=%v err=%v; want version 2", v2.Version, created, err)
	}
	putFlow(t, s, "b", "z")
	latest, err := s.FlowVersion(c, "a", 0)
	if err != nil || latest.Version != 2 || string(latest.Spec) != `{"v":2}` {
		t.Fatalf("latest: %+v %v", latest, err)
	}
	first, err := s.FlowVersion(c, "a", 1)
	if err != nil || first.Dir != "/p" || first.Path != "/p/a.yaml" {
		t.Fatalf("version 1: %+v %v", first, err)
	}
	vs, err := s.FlowVersions(c, "a")
	if err != nil || len(vs) != 2 || vs[0].Version != 2 {
		t.Fatalf("versions: %+v %v; want 2 newest first", vs, err)
	}
	fs, err := s.Flows(c)
	if err != nil || len(fs) != 2 || fs[0].Name != "a" || fs[0].LatestVersion != 2 || fs[0].Versions != 2 || fs[1].Name != "b" {
		t.Fatalf("flows: %+v %v", fs, err)
	}
}

func testRuns(t *testing.T, s store.Store) {
	c := ctx(t)
	va := putFlow(t, s, "a", "1")
	vb := putFlow(t, s, "b", "1")
	var ids []int64
	for i := range 5 {
		v := va
		if i%2 == 1 {
			v = vb
		}
		r, err := s.CreateRun(c, store.NewRun{Flow: v.Flow, FlowVersion: v.Version, Trigger: store.TriggerManual,
			Params: map[string]json.RawMessage{"n": json.RawMessage(fmt.Sprint(i))}, Tags: []string{"t" + fmt.Sprint(i%2), "all", "all"}})
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != store.RunPending || r.CreatedAt.IsZero() {
			t.Fatalf("new run: %+v", r)
		}
		ids = append(ids, r.ID)
	}
	for i := 1; i < len(ids); i++ {
		if ids[i] <= ids[i-1] {
			t.Fatalf("run ids not increasing: %v", ids)
		}
	}
	all, err := s.Runs(c, store.RunFilter{})
	if err != nil || len(all) != 5 || all[0].ID != ids[4] {
		t.Fatalf("all runs: %d %v; want 5 newest first", len(all), err)
	}
	if got := all[4]; string(got.Params["n"]) != "0" || len(got.Tags) != 2 || got.Trigger != store.TriggerManual {
		t.Fatalf("oldest run: %+v; want params n=0, tags deduplicated", got)
	}
	onlyB, _ := s.Runs(c, store.RunFilter{Flow: "b"})
	if len(onlyB) != 2 {
		t.Fatalf("runs of b: %d, want 2", len(onlyB))
	}
	tagged, _ := s.Runs(c, store.RunFilter{Tag: "t0"})
	if len(tagged) != 3 {
		t.Fatalf("runs tagged t0: %d, want 3", len(tagged))
	}
	limited, _ := s.Runs(c, store.RunFilter{Limit: 2})
	if len(limited) != 2 || limited[0].ID != ids[4] {
		t.Fatalf("limit 2: %+v", limited)
	}
	if _, err := s.AcquireRun(c, ids[0], "o", time.Minute); err != nil {
		t.Fatal(err)
	}
	running, _ := s.Runs(c, store.RunFilter{Status: store.RunRunning})
	if len(running) != 1 || running[0].ID != ids[0] {
		t.Fatalf("running runs: %+v", running)
	}
}

func testLease(t *testing.T, s store.Store) {
	c := ctx(t)
	r := newRun(t, s, "owner-1")
	if r.Status != store.RunRunning || r.Owner != "owner-1" || r.StartedAt.IsZero() {
		t.Fatalf("acquired run: %+v", r)
	}
	if _, err := s.AcquireRun(c, r.ID, "owner-2", time.Minute); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second owner acquiring a held run: %v, want ErrConflict", err)
	}
	if err := s.RenewLease(c, r.ID, "owner-2", time.Minute); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("renew by non-owner: %v, want ErrLeaseLost", err)
	}
	// Let the lease lapse: renew with a negative ttl.
	if err := s.RenewLease(c, r.ID, "owner-1", -time.Second); err != nil {
		t.Fatal(err)
	}
	r2, err := s.AcquireRun(c, r.ID, "owner-2", time.Minute)
	if err != nil || r2.Owner != "owner-2" || !r2.StartedAt.Equal(r.StartedAt) {
		t.Fatalf("take over an expired lease: %+v %v", r2, err)
	}
	if err := s.RenewLease(c, r.ID, "owner-1", time.Minute); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("old owner renewing after takeover: %v, want ErrLeaseLost", err)
	}
}

func testFencing(t *testing.T, s store.Store) {
	c := ctx(t)
	r := newRun(t, s, "me")
	b := &store.Batch{Steps: []store.StepChange{{RunID: r.ID, Name: "a", Status: store.TaskRunning, At: time.Now()}}}
	if err := s.Apply(c, "someone-else", b); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("apply by non-owner: %v, want ErrLeaseLost", err)
	}
	if steps, _ := s.Steps(c, r.ID); len(steps) != 0 {
		t.Fatalf("a fenced batch wrote %d steps", len(steps))
	}
	if err := s.Apply(c, "me", b); err != nil {
		t.Fatalf("apply by owner: %v", err)
	}
}

func testApplyTasks(t *testing.T, s store.Store) {
	c := ctx(t)
	r := newRun(t, s, "me")
	t0 := time.Now().Truncate(time.Microsecond)
	err := s.Apply(c, "me", &store.Batch{
		Steps:    []store.StepChange{{RunID: r.ID, Name: "fan", Status: store.TaskRunning, Foreach: true, NumTasks: 3, At: t0}},
		NewTasks: []store.NewTasks{{RunID: r.ID, Step: "fan", Count: 3, ReadyAt: t0}},
	})
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := s.Tasks(c, r.ID, "fan")
	if err != nil || len(tasks) != 3 || tasks[2].Index != 2 || tasks[0].Status != store.TaskPending || !tasks[0].ReadyAt.Equal(t0) {
		t.Fatalf("new tasks: %+v %v", tasks, err)
	}
	k := store.TaskKey{RunID: r.ID, Step: "fan", Index: 1}
	t1 := t0.Add(time.Millisecond)
	if err := s.Apply(c, "me", &store.Batch{
		Tasks:    []store.TaskChange{{TaskKey: k, Status: store.TaskRunning, Attempts: 1, StartedAt: t1}},
		Attempts: []store.Attempt{{TaskKey: k, Attempt: 1, Status: store.TaskRunning, StartedAt: t1}},
	}); err != nil {
		t.Fatal(err)
	}
	t2 := t1.Add(time.Millisecond)
	exit := 3
	if err := s.Apply(c, "me", &store.Batch{
		Tasks: []store.TaskChange{{TaskKey: k, Status: store.TaskPending, Attempts: 1, ExitCode: &exit, Error: "exit status 3"}},
		Attempts: []store.Attempt{{TaskKey: k, Attempt: 1, Status: store.TaskFailed, FinishedAt: t2, ExitCode: &exit,
			Error: "exit status 3", StderrDigest: "abc", StderrSize: 5}},
	}); err != nil {
		t.Fatal(err)
	}
	zero := 0
	t3 := t2.Add(time.Millisecond)
	if err := s.Apply(c, "me", &store.Batch{
		Tasks: []store.TaskChange{{TaskKey: k, Status: store.TaskSucceeded, Attempts: 2, StartedAt: t3, FinishedAt: t3, ExitCode: &zero}},
		Attempts: []store.Attempt{{TaskKey: k, Attempt: 2, Status: store.TaskSucceeded, StartedAt: t3, FinishedAt: t3,
			ExitCode: &zero, StdoutDigest: "def", StdoutSize: 7}},
		Artifacts: []store.Artifact{
			{TaskKey: k, Name: "out/b.txt", Digest: "d2", Size: 2, CreatedAt: t3},
			{TaskKey: k, Name: "a.txt", Digest: "d1", Size: 1, CreatedAt: t3},
		},
	}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Task(c, k)
	if err != nil || got.Status != store.TaskSucceeded || got.Attempts != 2 || got.ExitCode == nil || *got.ExitCode != 0 ||
		got.Error != "" || !got.StartedAt.Equal(t3) || !got.ReadyAt.Equal(t0) || got.Reused() {
		t.Fatalf("task after retry: %+v %v", got, err)
	}
	atts, err := s.Attempts(c, k)
	if err != nil || len(atts) != 2 || atts[0].Status != store.TaskFailed || !atts[0].StartedAt.Equal(t1) ||
		atts[0].StderrDigest != "abc" || *atts[0].ExitCode != 3 || atts[1].StdoutSize != 7 {
		t.Fatalf("attempts: %+v %v", atts, err)
	}
	arts, err := s.Artifacts(c, store.ArtifactFilter{RunID: r.ID, Step: "fan", Index: 1})
	if err != nil || len(arts) != 2 || arts[0].Name != "a.txt" || arts[1].Digest != "d2" {
		t.Fatalf("artifacts: %+v %v", arts, err)
	}
	a, err := s.Artifact(c, k, "out/b.txt")
	if err != nil || a.Size != 2 {
		t.Fatalf("artifact: %+v %v", a, err)
	}
	if all, _ := s.Artifacts(c, store.ArtifactFilter{RunID: r.ID, Step: "fan", Index: -1}); len(all) != 2 {
		t.Fatalf("artifacts of every task: %d", len(all))
	}
	steps, _ := s.Steps(c, r.ID)
	if len(steps) != 1 || !steps[0].Foreach || steps[0].NumTasks != 3 {
		t.Fatalf("steps: %+v", steps)
	}
	if err := s.Apply(c, "me", &store.Batch{Steps: []store.StepChange{{RunID: r.ID, Name: "fan", Status: store.TaskSucceeded,
		Foreach: true, NumTasks: 3, At: t3}}}); err != nil {
		t.Fatal(err)
	}
	steps, _ = s.Steps(c, r.ID)
	if steps[0].Status != store.TaskSucceeded || !steps[0].StartedAt.Equal(t0) || !steps[0].FinishedAt.Equal(t3) {
		t.Fatalf("finished step: %+v", steps[0])
	}
}

func testAtomic(t *testing.T, s store.Store) {
	c := ctx(t)
	r := newRun(t, s, "me")
	k := store.TaskKey{RunID: r.ID, Step: "a", Index: 0}
	now := time.Now()
	// The duplicate artifact violates the primary key: nothing of the batch may stay.
	err := s.Apply(c, "me", &store.Batch{
		Steps:    []store.StepChange{{RunID: r.ID, Name: "a", Status: store.TaskRunning, At: now}},
		NewTasks: []store.NewTasks{{RunID: r.ID, Step: "a", Count: 1, ReadyAt: now}},
		Artifacts: []store.Artifact{
			{TaskKey: k, Name: "x", Digest: "1", CreatedAt: now},
			{TaskKey: k, Name: "x", Digest: "2", CreatedAt: now},
		},
	})
	if err == nil {
		t.Fatal("a batch with a duplicate artifact succeeded")
	}
	if steps, _ := s.Steps(c, r.ID); len(steps) != 0 {
		t.Fatalf("failed batch left %d steps", len(steps))
	}
	if tasks, _ := s.Tasks(c, r.ID, "a"); len(tasks) != 0 {
		t.Fatalf("failed batch left %d tasks", len(tasks))
	}
}

func testReuse(t *testing.T, s store.Store) {
	c := ctx(t)
	origin := newRun(t, s, "me")
	now := time.Now()
	b := &store.Batch{
		Steps:    []store.StepChange{{RunID: origin.ID, Name: "fan", Status: store.TaskFailed, Foreach: true, NumTasks: 4, At: now}},
		NewTasks: []store.NewTasks{{RunID: origin.ID, Step: "fan", Count: 4, ReadyAt: now}},
	}
	for i, st := range []store.TaskStatus{store.TaskSucceeded, store.TaskFailed, store.TaskSucceeded, store.TaskSucceeded} {
		k := store.TaskKey{RunID: origin.ID, Step: "fan", Index: i}
		b.Tasks = append(b.Tasks, store.TaskChange{TaskKey: k, Status: st, Attempts: 1, StartedAt: now, FinishedAt: now})
		b.Artifacts = append(b.Artifacts, store.Artifact{TaskKey: k, Name: "o.txt", Digest: fmt.Sprint("d", i), Size: 1, CreatedAt: now})
	}
	if err := s.Apply(c, "me", b); err != nil {
		t.Fatal(err)
	}
	v, _ := s.FlowVersion(c, "f", 0)
	second, err := s.CreateRun(c, store.NewRun{Flow: "f", FlowVersion: v.Version, Trigger: store.TriggerResume, OriginRunID: origin.ID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AcquireRun(c, second.ID, "me", time.Minute); err != nil {
		t.Fatal(err)
	}
	// The new fan-out has 3 items: index 3 of the origin is out of range.
	if err := s.Apply(c, "me", &store.Batch{
		NewTasks: []store.NewTasks{{RunID: second.ID, Step: "fan", Count: 3, ReadyAt: now}},
		Reuse:    []store.ReuseTasks{{RunID: second.ID, From: origin.ID, Step: "fan", Count: 3, At: now}},
	}); err != nil {
		t.Fatal(err)
	}
	tasks, _ := s.Tasks(c, second.ID, "fan")
	if len(tasks) != 3 {
		t.Fatalf("tasks after reuse: %d, want 3", len(tasks))
	}
	if !tasks[0].Reused() || tasks[0].ReusedFrom.RunID != origin.ID || tasks[0].Status != store.TaskSucceeded {
		t.Fatalf("task 0: %+v, want reused from %d", tasks[0], origin.ID)
	}
	if tasks[1].Reused() || tasks[1].Status != store.TaskPending {
		t.Fatalf("task 1 (failed in origin): %+v, want pending and not reused", tasks[1])
	}
	arts, _ := s.Artifacts(c, store.ArtifactFilter{RunID: second.ID, Step: "fan", Index: -1})
	if len(arts) != 2 || arts[0].Index != 0 || arts[1].Index != 2 || arts[1].Digest != "d2" {
		t.Fatalf("reused artifacts: %+v, want those of tasks 0 and 2", arts)
	}
	// A third run reusing from the second points at the run that did the work.
	third, _ := s.CreateRun(c, store.NewRun{Flow: "f", FlowVersion: v.Version, Trigger: store.TriggerResume, OriginRunID: second.ID})
	if _, err := s.AcquireRun(c, third.ID, "me", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(c, "me", &store.Batch{Reuse: []store.ReuseTasks{{RunID: third.ID, From: second.ID, Step: "fan", Count: 3, At: now}}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Task(c, store.TaskKey{RunID: third.ID, Step: "fan", Index: 2})
	if err != nil || got.ReusedFrom.RunID != origin.ID {
		t.Fatalf("chained reuse: %+v %v, want origin %d", got, err, origin.ID)
	}
}

func testAbandon(t *testing.T, s store.Store) {
	c := ctx(t)
	r := newRun(t, s, "dead")
	now := time.Now()
	k := store.TaskKey{RunID: r.ID, Step: "a", Index: 0}
	if err := s.Apply(c, "dead", &store.Batch{
		Steps:    []store.StepChange{{RunID: r.ID, Name: "a", Status: store.TaskRunning, At: now}},
		NewTasks: []store.NewTasks{{RunID: r.ID, Step: "a", Count: 2, ReadyAt: now}},
		Tasks:    []store.TaskChange{{TaskKey: k, Status: store.TaskSucceeded, Attempts: 1, FinishedAt: now}},
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.AbandonRun(c, r.ID, "owner died", false); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("abandon a live lease: %v, want ErrConflict", err)
	}
	if err := s.AbandonRun(c, r.ID, "owner died", true); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Run(c, r.ID)
	if got.Status != store.RunFailed || got.Owner != "" || got.FinishedAt.IsZero() || got.Error == "" {
		t.Fatalf("abandoned run: %+v", got)
	}
	tasks, _ := s.Tasks(c, r.ID, "a")
	if tasks[0].Status != store.TaskSucceeded || tasks[1].Status != store.TaskFailed {
		t.Fatalf("tasks of an abandoned run: %+v; the succeeded one must stay", tasks)
	}
	if err := s.Apply(c, "dead", &store.Batch{Tasks: []store.TaskChange{{TaskKey: k, Status: store.TaskFailed}}}); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("the dead owner writing after abandon: %v, want ErrLeaseLost", err)
	}
	if err := s.AbandonRun(c, r.ID, "again", true); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("abandon an ended run: %v, want ErrConflict", err)
	}
}

func testConcurrentApply(t *testing.T, s store.Store) {
	c := ctx(t)
	r := newRun(t, s, "me")
	const n = 200
	now := time.Now()
	if err := s.Apply(c, "me", &store.Batch{NewTasks: []store.NewTasks{{RunID: r.ID, Step: "s", Count: n, ReadyAt: now}}}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			k := store.TaskKey{RunID: r.ID, Step: "s", Index: i}
			errs <- s.Apply(c, "me", &store.Batch{
				Tasks:     []store.TaskChange{{TaskKey: k, Status: store.TaskSucceeded, Attempts: 1, FinishedAt: time.Now()}},
				Artifacts: []store.Artifact{{TaskKey: k, Name: "x", Digest: "d", Size: 1, CreatedAt: now}},
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	tasks, _ := s.Tasks(c, r.ID, "s")
	for _, tk := range tasks {
		if tk.Status != store.TaskSucceeded {
			t.Fatalf("task %d: %s", tk.Index, tk.Status)
		}
	}
	if arts, _ := s.Artifacts(c, store.ArtifactFilter{RunID: r.ID}); len(arts) != n {
		t.Fatalf("artifacts: %d, want %d", len(arts), n)
	}
}

func testNotFound(t *testing.T, s store.Store) {
	c := ctx(t)
	checks := map[string]error{}
	_, checks["Run"] = s.Run(c, 999)
	_, checks["FlowVersion latest"] = s.FlowVersion(c, "nope", 0)
	_, checks["FlowVersion 3"] = s.FlowVersion(c, "nope", 3)
	_, checks["FlowVersions"] = s.FlowVersions(c, "nope")
	_, checks["Task"] = s.Task(c, store.TaskKey{RunID: 1, Step: "a"})
	_, checks["Artifact"] = s.Artifact(c, store.TaskKey{RunID: 1, Step: "a"}, "x")
	_, checks["AcquireRun"] = s.AcquireRun(c, 999, "o", time.Minute)
	checks["AbandonRun"] = s.AbandonRun(c, 999, "x", true)
	for name, err := range checks {
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", name, err)
		}
	}
}

func testLargeFanOut(t *testing.T, s store.Store) {
	c := ctx(t)
	r := newRun(t, s, "me")
	const n = 20000
	if err := s.Apply(c, "me", &store.Batch{NewTasks: []store.NewTasks{{RunID: r.ID, Step: "big", Count: n, ReadyAt: time.Now()}}}); err != nil {
		t.Fatal(err)
	}
	tasks, err := s.Tasks(c, r.ID, "big")
	if err != nil || len(tasks) != n || tasks[n-1].Index != n-1 {
		t.Fatalf("large fan-out: %d tasks, %v", len(tasks), err)
	}
}

func testFinish(t *testing.T, s store.Store) {
	c := ctx(t)
	r := newRun(t, s, "me")
	if err := s.Apply(c, "me", &store.Batch{Runs: []store.RunChange{{RunID: r.ID, Status: store.RunSucceeded, At: time.Now()}}}); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Run(c, r.ID)
	if got.Status != store.RunSucceeded || got.Owner != "" || got.FinishedAt.IsZero() {
		t.Fatalf("finished run: %+v", got)
	}
	if _, err := s.AcquireRun(c, r.ID, "me", time.Minute); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("acquire a finished run: %v, want ErrConflict", err)
	}
	if err := s.Apply(c, "me", &store.Batch{Runs: []store.RunChange{{RunID: r.ID, Status: store.RunFailed, At: time.Now()}}}); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("write to a finished run: %v, want ErrLeaseLost", err)
	}
}

func testEndPending(t *testing.T, s store.Store) {
	c := ctx(t)
	r := newRun(t, s, "me")
	now := time.Now()
	k0 := store.TaskKey{RunID: r.ID, Step: "a", Index: 0}
	if err := s.Apply(c, "me", &store.Batch{
		NewTasks: []store.NewTasks{{RunID: r.ID, Step: "a", Count: 3, ReadyAt: now}, {RunID: r.ID, Step: "b", Count: 1, ReadyAt: now}},
		Tasks:    []store.TaskChange{{TaskKey: k0, Status: store.TaskSucceeded, Attempts: 1, FinishedAt: now}},
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(c, "me", &store.Batch{EndPending: []store.EndPending{{RunID: r.ID, Step: "a", Status: store.TaskSkipped, At: now}}}); err != nil {
		t.Fatal(err)
	}
	tasks, _ := s.Tasks(c, r.ID, "a")
	if tasks[0].Status != store.TaskSucceeded || tasks[1].Status != store.TaskSkipped || tasks[2].Status != store.TaskSkipped || tasks[2].FinishedAt.IsZero() {
		t.Fatalf("after EndPending: %v %v %v", tasks[0].Status, tasks[1].Status, tasks[2].Status)
	}
	if other, _ := s.Tasks(c, r.ID, "b"); other[0].Status != store.TaskPending {
		t.Fatalf("EndPending touched another step: %s", other[0].Status)
	}
}
