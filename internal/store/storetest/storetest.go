// Package storetest is the conformance suite every store driver passes.
// A driver's test calls Run with a function that opens a fresh, empty store.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/store"
)

// Opener returns a new, empty store for one test; it registers its own cleanup.
type Opener func(t *testing.T) store.Store

// Run runs the conformance suite.
func Run(t *testing.T, open Opener) {
	tests := map[string]func(*testing.T, store.Store){
		"FlowVersions":          testFlowVersions,
		"FlowVersionCode":       testFlowVersionCode,
		"RunsAndFilters":        testRuns,
		"LeaseAcquireRenew":     testLease,
		"ApplyFencing":          testFencing,
		"ApplyTasks":            testApplyTasks,
		"ApplyIsAtomic":         testAtomic,
		"Reuse":                 testReuse,
		"Abandon":               testAbandon,
		"ConcurrentApply":       testConcurrentApply,
		"NotFound":              testNotFound,
		"LargeFanOut":           testLargeFanOut,
		"TaskCountsAndPages":    testTaskCounts,
		"FinishReleasesLease":   testFinish,
		"EndPending":            testEndPending,
		"SignalsAndContracts":   testSignals,
		"FireExactlyOnce":       testFireOnce,
		"JoinParts":             testJoinParts,
		"RunEventsAndCancel":    testRunEvents,
		"Tokens":                testTokens,
		"Blocks":                testBlocks,
		"ClaimsAndFailures":     testClaims,
		"QueueClaimFinish":      testQueue,
		"QueueFencing":          testQueueFencing,
		"QueueReap":             testQueueReap,
		"QueueConcurrentClaims": testQueueConcurrent,
		"QueueCapacity":         testQueueCapacity,
		"Listen":                testListen,
		"FeatureSpecs":          testFeatureSpecs,
		"FeatureComputations":   testFeatureComputations,
		"ModelRegistry":         testModelRegistry,
		"ModelTransitionRace":   testModelTransitionRace,
		"EndpointsAndRollouts":  testEndpointsAndRollouts,
		"Experiments":           testExperiments,
		"MonitorsAndResults":    testMonitors,
		"MonitorSlotOnce":       testMonitorSlotOnce,
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

// testFlowVersionCode: a version's code snapshot (digest and size) is
// kept and read back by every read; a version without one reads empty.
func testFlowVersionCode(t *testing.T, s store.Store) {
	c := ctx(t)
	code := strings.Repeat("ab", 32)
	put, created, err := s.PutFlowVersion(c, store.FlowVersion{Flow: "snap", Digest: "d1", Spec: json.RawMessage(`{}`),
		Path: "/p/f.yaml", Dir: "/p", Code: code, CodeSize: 10240})
	if err != nil || !created || put.Code != code || put.CodeSize != 10240 {
		t.Fatalf("put: %+v created=%v err=%v", put, created, err)
	}
	again, created, err := s.PutFlowVersion(c, store.FlowVersion{Flow: "snap", Digest: "d1", Spec: json.RawMessage(`{}`)})
	if err != nil || created || again.Code != code || again.CodeSize != 10240 {
		t.Fatalf("same digest: %+v created=%v err=%v; want the stored snapshot", again, created, err)
	}
	plain, _, err := s.PutFlowVersion(c, store.FlowVersion{Flow: "snap", Digest: "d2", Spec: json.RawMessage(`{}`), Dir: "/p"})
	if err != nil || plain.Code != "" || plain.CodeSize != 0 {
		t.Fatalf("no snapshot: %+v %v", plain, err)
	}
	one, err := s.FlowVersion(c, "snap", 1)
	if err != nil || one.Code != code || one.CodeSize != 10240 || one.Dir != "/p" {
		t.Fatalf("version 1: %+v %v", one, err)
	}
	vs, err := s.FlowVersions(c, "snap")
	if err != nil || len(vs) != 2 || vs[0].Code != "" || vs[1].Code != code || vs[1].CodeSize != 10240 {
		t.Fatalf("versions: %+v %v", vs, err)
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
	next, _ := s.Runs(c, store.RunFilter{Limit: 2, BeforeID: limited[1].ID})
	if len(next) != 2 || next[0].ID != ids[2] || next[1].ID != ids[1] {
		t.Fatalf("the page before run %d: %+v, want runs %d and %d", limited[1].ID, next, ids[2], ids[1])
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
	if _, err := s.RenewLease(c, r.ID, "owner-2", time.Minute); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("renew by non-owner: %v, want ErrLeaseLost", err)
	}
	// Let the lease lapse: renew with a negative ttl.
	if _, err := s.RenewLease(c, r.ID, "owner-1", -time.Second); err != nil {
		t.Fatal(err)
	}
	r2, err := s.AcquireRun(c, r.ID, "owner-2", time.Minute)
	if err != nil || r2.Owner != "owner-2" || !r2.StartedAt.Equal(r.StartedAt) {
		t.Fatalf("take over an expired lease: %+v %v", r2, err)
	}
	if _, err := s.RenewLease(c, r.ID, "owner-1", time.Minute); !errors.Is(err, store.ErrLeaseLost) {
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
	if err := s.Apply(c, "me", &store.Batch{Artifacts: []store.Artifact{
		{TaskKey: store.TaskKey{RunID: r.ID, Step: "fan", Index: 2}, Name: "c.txt", Digest: "d3", Size: 3, CreatedAt: t3}}}); err != nil {
		t.Fatal(err)
	}
	if rng, _ := s.Artifacts(c, store.ArtifactFilter{RunID: r.ID, Step: "fan", Index: 2, Until: 3}); len(rng) != 1 || rng[0].Name != "c.txt" {
		t.Fatalf("artifacts of tasks 2..2: %+v", rng)
	}
	if rng, _ := s.Artifacts(c, store.ArtifactFilter{RunID: r.ID, Step: "fan", Index: 0, Until: 2}); len(rng) != 2 || rng[0].Index != 1 {
		t.Fatalf("artifacts of tasks 0..1: %+v", rng)
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
	if sh := steps[0].TaskShape(); len(sh) != 1 || sh[0][0] != 3 {
		t.Fatalf("a one-level foreach stored without a shape reads as %v, want [[3]]", sh)
	}

	// A step that runs again (a loop) adds tasks after those it has.
	if err := s.Apply(c, "me", &store.Batch{NewTasks: []store.NewTasks{{RunID: r.ID, Step: "again", Count: 1, ReadyAt: t3},
		{RunID: r.ID, Step: "again", From: 1, Count: 2, ReadyAt: t3}}}); err != nil {
		t.Fatal(err)
	}
	if again, _ := s.Tasks(c, r.ID, "again"); len(again) != 3 || again[2].Index != 2 || again[1].Status != store.TaskPending {
		t.Fatalf("tasks added from index 1: %+v", again)
	}

	// A nested foreach's shape is kept with its step, and a later change
	// that does not name it (the step's end) keeps it.
	nested := store.Shape{{2}, {1, 3}}
	if err := s.Apply(c, "me", &store.Batch{
		Steps:    []store.StepChange{{RunID: r.ID, Name: "inner", Status: store.TaskRunning, Foreach: true, NumTasks: 4, Shape: nested, At: t3}},
		NewTasks: []store.NewTasks{{RunID: r.ID, Step: "inner", Count: 4, ReadyAt: t3}},
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(c, "me", &store.Batch{Steps: []store.StepChange{{RunID: r.ID, Name: "inner", Status: store.TaskSucceeded,
		Foreach: true, NumTasks: 4, At: t3}}}); err != nil {
		t.Fatal(err)
	}
	steps, _ = s.Steps(c, r.ID)
	var inner *store.Step
	for i := range steps {
		if steps[i].Name == "inner" {
			inner = &steps[i]
		}
	}
	if inner == nil || len(inner.Shape) != 2 || len(inner.Shape[1]) != 2 || inner.Shape[1][1] != 3 || inner.Status != store.TaskSucceeded {
		t.Fatalf("nested step: %+v", inner)
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

// TaskCounts aggregates in the store and TaskPage pages, so showing a run
// of any size reads a bounded number of rows.
func testTaskCounts(t *testing.T, s store.Store) {
	c := ctx(t)
	r := newRun(t, s, "me")
	t0 := time.Now().Truncate(time.Microsecond)
	if err := s.Apply(c, "me", &store.Batch{
		Steps: []store.StepChange{{RunID: r.ID, Name: "big", Status: store.TaskRunning, Foreach: true, NumTasks: 10, At: t0},
			{RunID: r.ID, Name: "one", Status: store.TaskRunning, NumTasks: 1, At: t0}},
		NewTasks: []store.NewTasks{{RunID: r.ID, Step: "big", Count: 10, ReadyAt: t0}, {RunID: r.ID, Step: "one", Count: 1, ReadyAt: t0}},
	}); err != nil {
		t.Fatal(err)
	}
	var b store.Batch
	for i := range 10 {
		st := store.TaskSucceeded
		switch i {
		case 3, 7:
			st = store.TaskFailed
		case 8, 9:
			continue // still pending
		}
		b.Tasks = append(b.Tasks, store.TaskChange{TaskKey: store.TaskKey{RunID: r.ID, Step: "big", Index: i}, Status: st,
			Attempts: 1 + i%2, StartedAt: t0, FinishedAt: t0.Add(time.Duration(i+1) * time.Millisecond)})
	}
	if err := s.Apply(c, "me", &b); err != nil {
		t.Fatal(err)
	}
	counts, err := s.TaskCounts(c, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]store.StepCount{}
	for _, sc := range counts {
		got[sc.Step+"/"+string(sc.Status)] = sc
	}
	ok, bad, pend := got["big/succeeded"], got["big/failed"], got["big/pending"]
	// Succeeded: 0,1,2,4,5,6 (attempts 1,2,1,1,2,1; took 1,2,3,5,6,7 ms).
	if len(counts) != 4 || ok.Tasks != 6 || ok.Attempts != 8 || ok.MaxTook != 7*time.Millisecond || ok.SumTook != 24*time.Millisecond ||
		ok.Timed != 6 || !ok.FirstStarted.Equal(t0) || !ok.LastFinished.Equal(t0.Add(7*time.Millisecond)) ||
		bad.Tasks != 2 || pend.Tasks != 2 || pend.Timed != 0 || !pend.FirstStarted.IsZero() || got["one/pending"].Tasks != 1 {
		t.Fatalf("counts: %+v", counts)
	}
	idx := func(ts []store.Task) (out []int) {
		for _, x := range ts {
			out = append(out, x.Index)
		}
		return out
	}
	page, err := s.TaskPage(c, store.TaskQuery{RunID: r.ID, Step: "big", Offset: 2, Limit: 3})
	if err != nil || fmt.Sprint(idx(page)) != "[2 3 4]" {
		t.Fatalf("page: %v %v", idx(page), err)
	}
	if page, _ := s.TaskPage(c, store.TaskQuery{RunID: r.ID, Step: "big", Offset: 8}); fmt.Sprint(idx(page)) != "[8 9]" {
		t.Fatalf("page without limit: %v", idx(page))
	}
	if page, _ := s.TaskPage(c, store.TaskQuery{RunID: r.ID, Step: "big", Unsucceeded: true}); fmt.Sprint(idx(page)) != "[3 7 8 9]" {
		t.Fatalf("unsucceeded, failed first: %v", idx(page))
	}
	if page, _ := s.TaskPage(c, store.TaskQuery{RunID: r.ID, Step: "big", Status: store.TaskFailed, Offset: 1, Limit: 5}); fmt.Sprint(idx(page)) != "[7]" {
		t.Fatalf("failed, from the second: %v", idx(page))
	}
	if page, err := s.TaskPage(c, store.TaskQuery{RunID: r.ID, Step: "none"}); err != nil || page == nil || len(page) != 0 {
		t.Fatalf("no such step: %v %v", page, err)
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

func testSignals(t *testing.T, s store.Store) {
	c := ctx(t)
	changed, err := s.PutSignalContracts(c, []store.SignalContract{
		{Name: "a", Spec: json.RawMessage(`{"name":"a"}`), Digest: "1"},
		{Name: "b", Spec: json.RawMessage(`{"name":"b"}`), Digest: "1"},
	})
	if err != nil || !changed[0] || !changed[1] {
		t.Fatalf("put contracts: %v %v", changed, err)
	}
	changed, _ = s.PutSignalContracts(c, []store.SignalContract{{Name: "a", Spec: json.RawMessage(`{"name":"a"}`), Digest: "1"},
		{Name: "b", Spec: json.RawMessage(`{"name":"b","x":1}`), Digest: "2"}})
	if changed[0] || !changed[1] {
		t.Fatalf("second put: %v, want only b changed", changed)
	}
	cs, _ := s.SignalContracts(c)
	if len(cs) != 2 || cs[1].Digest != "2" {
		t.Fatalf("contracts: %+v", cs)
	}
	first, created, err := s.PublishSignal(c, store.Signal{ID: "s1", Name: "a", Params: map[string]json.RawMessage{"n": json.RawMessage("1")},
		Source: store.SignalSource{Kind: store.SourceExternal}})
	if err != nil || !created || first.Seq == 0 || first.CreatedAt.IsZero() {
		t.Fatalf("publish: %+v %v %v", first, created, err)
	}
	again, created, err := s.PublishSignal(c, store.Signal{ID: "s1", Name: "a", Params: map[string]json.RawMessage{"n": json.RawMessage("2")}})
	if err != nil || created || string(again.Params["n"]) != "1" || again.Seq != first.Seq {
		t.Fatalf("publish the same id: %+v %v %v; want the first signal unchanged", again, created, err)
	}
	for i := range 3 {
		s.PublishSignal(c, store.Signal{ID: fmt.Sprint("b", i), Name: "b", Source: store.SignalSource{Kind: store.SourceFlow, Flow: "f", RunID: 7, Step: "x"}})
	}
	newest, _ := s.Signals(c, store.SignalFilter{Name: "b", Limit: 2})
	if len(newest) != 2 || newest[0].ID != "b2" {
		t.Fatalf("newest b: %+v", newest)
	}
	after, _ := s.Signals(c, store.SignalFilter{AfterSeq: first.Seq})
	if len(after) != 3 || after[0].ID != "b0" {
		t.Fatalf("after seq: %+v", after)
	}
	byRun, _ := s.Signals(c, store.SignalFilter{SourceRun: 7})
	if len(byRun) != 3 || byRun[0].Source.Step != "x" {
		t.Fatalf("by source run: %+v", byRun)
	}
	if _, err := s.Signal(c, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing signal: %v", err)
	}
	// A task's published signal lands with its batch, once.
	r := newRun(t, s, "me")
	sg := store.Signal{ID: "run-sig", Name: "a", Source: store.SignalSource{Kind: store.SourceFlow, Flow: "f", RunID: r.ID, Step: "s"}}
	for range 2 {
		if err := s.Apply(c, "me", &store.Batch{Signals: []store.Signal{sg}}); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := s.Signals(c, store.SignalFilter{SourceRun: r.ID}); len(got) != 1 {
		t.Fatalf("signals of the run: %d, want 1", len(got))
	}
	if err := s.Apply(c, "intruder", &store.Batch{Signals: []store.Signal{{ID: "x", Name: "a", Source: store.SignalSource{RunID: r.ID}}}}); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("a signal from a run the writer does not hold: %v", err)
	}
}

func testFireOnce(t *testing.T, s store.Store) {
	c := ctx(t)
	v := putFlow(t, s, "sub", "d")
	var wg sync.WaitGroup
	ids := make(chan int64, 20)
	for range 20 {
		wg.Go(func() {
			res, err := s.FireRuns(c, []store.Firing{{Fire: store.Fire{Key: "signal:x:sub:0", Kind: "signal", Flow: "sub", SignalID: "x"},
				Run: store.NewRun{Flow: "sub", FlowVersion: v.Version, Trigger: store.TriggerSignal, TriggerDetail: "x"}}})
			if err != nil {
				t.Error(err)
				return
			}
			ids <- res[0].Run.ID
		})
	}
	wg.Wait()
	close(ids)
	seen := map[int64]bool{}
	for id := range ids {
		seen[id] = true
	}
	if len(seen) != 1 {
		t.Fatalf("one key fired %d runs: %v", len(seen), seen)
	}
	runs, _ := s.Runs(c, store.RunFilter{Flow: "sub"})
	if len(runs) != 1 || runs[0].Trigger != store.TriggerSignal {
		t.Fatalf("runs: %+v", runs)
	}
	fires, _ := s.Fires(c, store.FireFilter{SignalID: "x"})
	if len(fires) != 1 || fires[0].RunID != runs[0].ID {
		t.Fatalf("fires: %+v", fires)
	}
	// A batch: one new key, one that fired; in one transaction.
	res, err := s.FireRuns(c, []store.Firing{
		{Fire: store.Fire{Key: "signal:y:sub:0", Kind: "signal", Flow: "sub", SignalID: "y"}, Run: store.NewRun{Flow: "sub", FlowVersion: v.Version, Trigger: store.TriggerSignal}},
		{Fire: store.Fire{Key: "signal:x:sub:0", Kind: "signal", Flow: "sub", SignalID: "x"}, Run: store.NewRun{Flow: "sub", FlowVersion: v.Version, Trigger: store.TriggerSignal}},
	})
	if err != nil || !res[0].Created || res[1].Created || res[1].Run.ID != runs[0].ID {
		t.Fatalf("batch firing: %+v %v", res, err)
	}
	got, err := s.AcquireRuns(c, []int64{runs[0].ID, res[0].Run.ID, 9999}, "srv", time.Minute)
	if err != nil || len(got) != 2 || got[0].Owner != "srv" || got[1].Status != store.RunRunning {
		t.Fatalf("AcquireRuns: %+v %v", got, err)
	}
	if again, _ := s.AcquireRuns(c, []int64{runs[0].ID}, "other", time.Minute); len(again) != 0 {
		t.Fatalf("acquired a run twice: %+v", again)
	}
	if byRun, _ := s.Fires(c, store.FireFilter{RunID: runs[0].ID}); len(byRun) != 1 {
		t.Fatalf("fires by run: %+v", byRun)
	}
}

func testJoinParts(t *testing.T, s store.Store) {
	c := ctx(t)
	p := store.JoinPart{Flow: "j", Trigger: 0, JoinKey: `{"date":"d1"}`, Signal: "a", SignalID: "a1", Params: map[string]json.RawMessage{"x": json.RawMessage("1")}}
	parts, err := s.AddJoinPart(c, p)
	if err != nil || len(parts) != 1 {
		t.Fatalf("first part: %+v %v", parts, err)
	}
	p.SignalID = "a2" // a newer signal of the same name replaces the older
	parts, _ = s.AddJoinPart(c, p)
	if len(parts) != 1 || parts[0].SignalID != "a2" {
		t.Fatalf("replaced part: %+v", parts)
	}
	other := p
	other.JoinKey = `{"date":"d2"}`
	s.AddJoinPart(c, other)
	p.Signal, p.SignalID = "b", "b1"
	parts, _ = s.AddJoinPart(c, p)
	if len(parts) != 2 || parts[0].Signal != "a" || parts[1].Signal != "b" {
		t.Fatalf("two parts: %+v", parts)
	}
	v := putFlow(t, s, "j", "d")
	if _, err := s.FireRuns(c, []store.Firing{{Fire: store.Fire{Key: "join:j:0:d1", Kind: "join", Flow: "j"},
		Run: store.NewRun{Flow: "j", FlowVersion: v.Version, Trigger: store.TriggerJoin}, Join: &p}}); err != nil {
		t.Fatal(err)
	}
	// Firing cleared that key's parts, not the other key's.
	p.Signal, p.SignalID = "a", "a3"
	if parts, _ = s.AddJoinPart(c, p); len(parts) != 1 {
		t.Fatalf("parts after firing: %+v", parts)
	}
	other.Signal = "b"
	if parts, _ = s.AddJoinPart(c, other); len(parts) != 2 {
		t.Fatalf("the other key lost its part: %+v", parts)
	}
}

func testRunEvents(t *testing.T, s store.Store) {
	c := ctx(t)
	if v, _ := s.Cursor(c, "x"); v != 0 {
		t.Fatalf("unset cursor = %d", v)
	}
	s.SetCursor(c, "x", 5)
	s.SetCursor(c, "x", 9)
	if v, _ := s.Cursor(c, "x"); v != 9 {
		t.Fatalf("cursor = %d, want 9", v)
	}
	done := newRun(t, s, "me")
	s.Apply(c, "me", &store.Batch{Runs: []store.RunChange{{RunID: done.ID, Status: store.RunSucceeded, At: time.Now()}}})
	dead := newRun(t, s, "me")
	if err := s.AbandonRun(c, dead.ID, "test", true); err != nil {
		t.Fatal(err)
	}
	v, _ := s.FlowVersion(c, "f", 0)
	waiting, _ := s.CreateRun(c, store.NewRun{Flow: "f", FlowVersion: v.Version, Trigger: store.TriggerAPI})
	if err := s.RequestCancel(c, waiting.ID, "no longer wanted"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Run(c, waiting.ID); got.Status != store.RunCancelled || got.Error != "no longer wanted" {
		t.Fatalf("a pending run asked to cancel: %s %q", got.Status, got.Error)
	}
	evs, err := s.RunEvents(c, 0, 10)
	if err != nil || len(evs) != 3 || evs[0].RunID != done.ID || evs[0].Status != store.RunSucceeded ||
		evs[1].Status != store.RunFailed || evs[2].Status != store.RunCancelled || evs[0].Flow != "f" {
		t.Fatalf("run events: %+v %v", evs, err)
	}
	if later, _ := s.RunEvents(c, evs[1].Seq, 10); len(later) != 1 {
		t.Fatalf("events after the second: %+v", later)
	}
	live := newRun(t, s, "me")
	if cancel, _ := s.RenewLease(c, live.ID, "me", time.Minute); cancel {
		t.Fatal("cancel reported before anyone asked")
	}
	if err := s.RequestCancel(c, live.ID, "stop"); err != nil {
		t.Fatal(err)
	}
	if cancel, err := s.RenewLease(c, live.ID, "me", time.Minute); err != nil || !cancel {
		t.Fatalf("renew after a cancel request: %v %v", cancel, err)
	}
	if err := s.RequestCancel(c, done.ID, "late"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("cancel a finished run: %v", err)
	}
}

func testTokens(t *testing.T, s store.Store) {
	c := ctx(t)
	if err := s.CreateToken(c, store.Token{ID: "t1", Name: "ci", Role: store.RoleOperator, Hash: "h1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateToken(c, store.Token{ID: "t2", Name: "dup", Role: store.RoleViewer, Hash: "h1"}); err == nil {
		t.Fatal("two tokens with one hash")
	}
	got, err := s.TokenByHash(c, "h1")
	if err != nil || got.ID != "t1" || got.Role != store.RoleOperator {
		t.Fatalf("by hash: %+v %v", got, err)
	}
	if _, err := s.TokenByHash(c, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown hash: %v", err)
	}
	if ts, _ := s.Tokens(c); len(ts) != 1 || ts[0].LastUsed.IsZero() {
		t.Fatalf("tokens: %+v", ts)
	}
	if err := s.DeleteToken(c, "t1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteToken(c, "t1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
}

func testBlocks(t *testing.T, s store.Store) {
	c := ctx(t)
	if _, ok, _ := s.Blocked(c, "f"); ok {
		t.Fatal("blocked before any failure")
	}
	s.Block(c, "f", 3)
	s.Block(c, "f", 4) // the first failure stays the reason
	if id, ok, _ := s.Blocked(c, "f"); !ok || id != 3 {
		t.Fatalf("blocked: %d %v", id, ok)
	}
	s.Unblock(c, "f")
	if _, ok, _ := s.Blocked(c, "f"); ok {
		t.Fatal("still blocked")
	}
	// The same failure reported again after the unblock (its end seen
	// a second time) does not block again; a later one does.
	s.Block(c, "f", 3)
	if _, ok, _ := s.Blocked(c, "f"); ok {
		t.Fatal("blocked again by the failure a person had unblocked")
	}
	s.Block(c, "f", 5)
	if id, ok, _ := s.Blocked(c, "f"); !ok || id != 5 {
		t.Fatalf("a later failure: %d %v", id, ok)
	}
	s.Unblock(c, "f")
	s.Unblock(c, "f")
	if _, ok, _ := s.Blocked(c, "f"); ok {
		t.Fatal("still blocked after two unblocks")
	}
}

func testClaims(t *testing.T, s store.Store) {
	c := ctx(t)
	v := putFlow(t, s, "f", "d1")
	claimed, err := s.CreateRun(c, store.NewRun{Flow: "f", FlowVersion: v.Version, Trigger: store.TriggerManual, Owner: "cli"})
	if err != nil {
		t.Fatal(err)
	}
	free, _ := s.CreateRun(c, store.NewRun{Flow: "f", FlowVersion: v.Version, Trigger: store.TriggerAPI})
	failed, _ := s.CreateRun(c, store.NewRun{Flow: "f", FlowVersion: v.Version, Trigger: store.TriggerSignal, FailWith: "param x: required"})
	if failed.Status != store.RunFailed || failed.Error != "param x: required" || failed.FinishedAt.IsZero() {
		t.Fatalf("a run created failed: %+v", failed)
	}
	pending, _ := s.Runs(c, store.RunFilter{Status: store.RunPending, Unclaimed: true, Oldest: true})
	if len(pending) != 1 || pending[0].ID != free.ID {
		t.Fatalf("unclaimed pending runs: %+v, want only %d", pending, free.ID)
	}
	if _, err := s.AcquireRun(c, claimed.ID, "server", time.Minute); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("another engine acquiring a claimed run: %v", err)
	}
	if _, err := s.AcquireRun(c, claimed.ID, "cli", time.Minute); err != nil {
		t.Fatalf("the claimer acquiring its run: %v", err)
	}
	if err := s.FailPending(c, free.ID, "cannot start"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Run(c, free.ID); got.Status != store.RunFailed || got.Error != "cannot start" {
		t.Fatalf("FailPending: %+v", got)
	}
	if err := s.FailPending(c, claimed.ID, "x"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("FailPending of a running run: %v", err)
	}
	if err := s.ReleaseRun(c, claimed.ID, "cli"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Run(c, claimed.ID); got.Status != store.RunRunning || got.Owner != "" {
		t.Fatalf("released run: %+v", got)
	}
	if err := s.ReleaseRun(c, claimed.ID, "cli"); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("release twice: %v", err)
	}
}

func queueRun(t *testing.T, s store.Store, n, maxAttempts int) store.Run {
	t.Helper()
	r := newRun(t, s, "coord")
	items := make([]json.RawMessage, n)
	for i := range items {
		items[i] = json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))
	}
	if err := s.Apply(ctx(t), "coord", &store.Batch{
		Steps: []store.StepChange{{RunID: r.ID, Name: "q", Status: store.TaskRunning, Foreach: true, NumTasks: n, At: time.Now()}},
		NewTasks: []store.NewTasks{{RunID: r.ID, Step: "q", Count: n,
			ReadyAt: time.Now(), Queued: true, Items: items, MaxAttempts: maxAttempts}}}); err != nil {
		t.Fatal(err)
	}
	return r
}

func testQueue(t *testing.T, s store.Store) {
	c := ctx(t)
	r := queueRun(t, s, 5, 2)
	claims, err := s.ClaimTasks(c, "w1", 3, time.Minute, nil, nil)
	if err != nil || len(claims) != 3 || claims[0].Index != 0 || claims[0].Attempt != 1 || claims[0].Gen != 1 || string(claims[2].Item) != `{"i":2}` {
		t.Fatalf("claim 3: %+v %v", claims, err)
	}
	rest, _ := s.ClaimTasks(c, "w2", 10, time.Minute, nil, nil)
	if len(rest) != 2 || rest[0].Index != 3 {
		t.Fatalf("claim the rest: %+v", rest)
	}
	if none, _ := s.ClaimTasks(c, "w3", 10, time.Minute, nil, nil); len(none) != 0 {
		t.Fatalf("claimed tasks twice: %+v", none)
	}
	now := time.Now()
	zero := 0
	ok := store.Finish{Claim: claims[0], Worker: "w1", Status: store.TaskSucceeded, StartedAt: now, At: now, ExitCode: &zero,
		Artifacts: []store.Artifact{{TaskKey: claims[0].TaskKey, Name: "out", Digest: "d", Size: 1, CreatedAt: now}},
		Signals:   []store.Signal{{ID: "q0", Name: "sig", Source: store.SignalSource{Kind: store.SourceFlow, RunID: r.ID}}}}
	if err := s.FinishTask(c, ok); err != nil {
		t.Fatal(err)
	}
	// A failure with tries left goes back to the queue, from RetryAt on.
	retry := store.Finish{Claim: claims[1], Worker: "w1", Status: store.TaskFailed, RetryAt: now.Add(time.Hour), StartedAt: now, At: now, Error: "boom"}
	if err := s.FinishTask(c, retry); err != nil {
		t.Fatal(err)
	}
	fail := store.Finish{Claim: claims[2], Worker: "w1", Status: store.TaskFailed, StartedAt: now, At: now, Error: "final"}
	if err := s.FinishTask(c, fail); err != nil {
		t.Fatal(err)
	}
	p, err := s.StepProgress(c, r.ID, "q")
	if err != nil || p.Counts[store.TaskSucceeded] != 1 || p.Counts[store.TaskPending] != 1 || p.Counts[store.TaskFailed] != 1 ||
		p.Counts[store.TaskRunning] != 2 || p.Failed == nil || p.Failed.Index != 2 || p.Failed.Error != "final" {
		t.Fatalf("progress: %+v %v", p, err)
	}
	if again, _ := s.ClaimTasks(c, "w3", 10, time.Minute, nil, nil); len(again) != 0 {
		t.Fatalf("a retry was claimable before its time: %+v", again)
	}
	atts, _ := s.Attempts(c, claims[1].TaskKey)
	if len(atts) != 1 || atts[0].Status != store.TaskFailed || atts[0].Error != "boom" {
		t.Fatalf("attempt of the retried task: %+v", atts)
	}
	if arts, _ := s.Artifacts(c, store.ArtifactFilter{RunID: r.ID, Step: "q", Index: 0}); len(arts) != 1 {
		t.Fatalf("artifacts: %+v", arts)
	}
	if sg, err := s.Signal(c, "q0"); err != nil || sg.Source.RunID != r.ID {
		t.Fatalf("signal of the finished task: %+v %v", sg, err)
	}
	held, stop, err := s.RenewTaskLeases(c, "w2", time.Minute)
	if err != nil || len(held) != 2 || len(stop) != 0 {
		t.Fatalf("renew: %v %v %v", held, stop, err)
	}
	if err := s.RequestCancel(c, r.ID, "stop it"); err != nil {
		t.Fatal(err)
	}
	if _, stop, _ := s.RenewTaskLeases(c, "w2", time.Minute); len(stop) != 2 {
		t.Fatalf("tasks of a run asked to cancel: stop %v", stop)
	}
}

func testQueueFencing(t *testing.T, s store.Store) {
	c := ctx(t)
	r := queueRun(t, s, 1, 3)
	first, _ := s.ClaimTasks(c, "old", 1, -time.Second, nil, nil) // a lease that has already expired
	if n, err := s.ReapTasks(c); err != nil || n != 1 {
		t.Fatalf("reap: %d %v", n, err)
	}
	second, _ := s.ClaimTasks(c, "new", 1, time.Minute, nil, nil)
	if len(second) != 1 || second[0].Gen != first[0].Gen+1 || second[0].Attempt != 2 || second[0].MaxAttempts != 4 {
		t.Fatalf("second claim: %+v after %+v", second, first)
	}
	now := time.Now()
	// The old owner comes back and tries to finish: fenced, nothing written.
	stale := store.Finish{Claim: first[0], Worker: "old", Status: store.TaskSucceeded, StartedAt: now, At: now,
		Artifacts: []store.Artifact{{TaskKey: first[0].TaskKey, Name: "stale", Digest: "x", CreatedAt: now}}}
	if err := s.FinishTask(c, stale); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("a stale finish: %v, want ErrLeaseLost", err)
	}
	if arts, _ := s.Artifacts(c, store.ArtifactFilter{RunID: r.ID}); len(arts) != 0 {
		t.Fatalf("a fenced finish wrote artifacts: %+v", arts)
	}
	if err := s.FinishTask(c, store.Finish{Claim: second[0], Worker: "new", Status: store.TaskSucceeded, StartedAt: now, At: now}); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishTask(c, store.Finish{Claim: second[0], Worker: "new", Status: store.TaskSucceeded, StartedAt: now, At: now}); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("finishing twice: %v", err)
	}
	atts, _ := s.Attempts(c, first[0].TaskKey)
	if len(atts) != 2 || atts[0].Status != store.TaskFailed || !strings.Contains(atts[0].Error, "lost") || atts[1].Status != store.TaskSucceeded {
		t.Fatalf("attempts: %+v", atts)
	}
	// Tasks of an ended run cannot finish.
	r2 := queueRun(t, s, 1, 1)
	cl, _ := s.ClaimTasks(c, "w", 1, time.Minute, nil, nil)
	s.Apply(c, "coord", &store.Batch{Runs: []store.RunChange{{RunID: r2.ID, Status: store.RunCancelled, At: now}}})
	if err := s.FinishTask(c, store.Finish{Claim: cl[0], Worker: "w", Status: store.TaskSucceeded, StartedAt: now, At: now}); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("finish in an ended run: %v", err)
	}
}

func testQueueReap(t *testing.T, s store.Store) {
	c := ctx(t)
	r := queueRun(t, s, 2, 1)
	// Lost attempts do not use up the retries (one try here), up to five.
	for round := 1; round <= 6; round++ {
		cl, _ := s.ClaimTasks(c, "dead", 2, -time.Second, nil, nil)
		if len(cl) != 2 || cl[0].Attempt != round || cl[0].MaxAttempts != round {
			t.Fatalf("round %d: claims %+v", round, cl)
		}
		if n, _ := s.ReapTasks(c); n != 2 {
			t.Fatalf("round %d: reaped %d", round, n)
		}
	}
	p, _ := s.StepProgress(c, r.ID, "q")
	if p.Counts[store.TaskFailed] != 2 || !strings.Contains(p.Failed.Error, "lost") {
		t.Fatalf("after six lost attempts: %+v", p)
	}
	if n, _ := s.ReapTasks(c); n != 0 {
		t.Fatalf("reaped again: %d", n)
	}
}

func testQueueConcurrent(t *testing.T, s store.Store) {
	c := ctx(t)
	const n = 300
	queueRun(t, s, n, 1)
	var mu sync.Mutex
	seen := map[int]int{}
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			for {
				cl, err := s.ClaimTasks(c, fmt.Sprint("w", w), 7, time.Minute, nil, nil)
				if err != nil {
					t.Error(err)
					return
				}
				if len(cl) == 0 {
					return
				}
				mu.Lock()
				for _, x := range cl {
					seen[x.Index]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("claimed %d distinct tasks, want %d", len(seen), n)
	}
	for i, k := range seen {
		if k != 1 {
			t.Fatalf("task %d claimed %d times", i, k)
		}
	}
}

func testListen(t *testing.T, s store.Store) {
	c, cancel := context.WithCancel(ctx(t))
	defer cancel()
	notes, err := s.Listen(c)
	if err != nil {
		t.Fatal(err)
	}
	queueRun(t, s, 1, 1)
	deadline := time.After(10 * time.Second)
	for {
		select {
		case n := <-notes:
			if n == store.NoteQueue {
				return
			}
		case <-deadline:
			t.Fatal("no queue note after queueing tasks")
		}
	}
}

func testQueueRunners(t *testing.T, s store.Store) {
	c := ctx(t)
	r := newRun(t, s, "coord")
	now := time.Now()
	if err := s.Apply(c, "coord", &store.Batch{NewTasks: []store.NewTasks{
		{RunID: r.ID, Step: "go", Count: 2, ReadyAt: now, Queued: true, Runner: "go:f"},
		{RunID: r.ID, Step: "sh", Count: 1, ReadyAt: now, Queued: true},
	}}); err != nil {
		t.Fatal(err)
	}
	shellOnly, _ := s.ClaimTasks(c, "w1", 10, time.Minute, nil, nil)
	if len(shellOnly) != 1 || shellOnly[0].Step != "sh" {
		t.Fatalf("a worker without Go functions claimed %+v", shellOnly)
	}
	other, _ := s.ClaimTasks(c, "w2", 10, time.Minute, []string{"go:g"}, nil)
	if len(other) != 0 {
		t.Fatalf("a worker with another flow's functions claimed %+v", other)
	}
	mine, _ := s.ClaimTasks(c, "w3", 10, time.Minute, []string{"go:f"}, nil)
	if len(mine) != 2 || mine[0].Step != "go" {
		t.Fatalf("the worker with the flow's functions claimed %+v", mine)
	}
}

func testQueueCapacity(t *testing.T, s store.Store) {
	c := ctx(t)
	r := newRun(t, s, "coord")
	now := time.Now()
	if err := s.Apply(c, "coord", &store.Batch{NewTasks: []store.NewTasks{
		{RunID: r.ID, Step: "big", Count: 3, ReadyAt: now, Queued: true, Need: store.Need{CPU: 1500, Mem: 100}},
		{RunID: r.ID, Step: "gpu", Count: 2, ReadyAt: now.Add(time.Millisecond), Queued: true, Need: store.Need{CPU: 100, GPU: 1, Labels: map[string]string{"accel": "a100"}}},
		{RunID: r.ID, Step: "small", Count: 3, ReadyAt: now.Add(2 * time.Millisecond), Queued: true, Need: store.Need{CPU: 500}},
	}}); err != nil {
		t.Fatal(err)
	}
	// Two cores and no GPU: one big task (1.5 cores) and one small one
	// fit together, in queue order; the GPU tasks do not.
	free := store.Capacity{CPU: 2000, Mem: 1000}
	got, err := s.ClaimTasks(c, "w1", 10, time.Minute, nil, &free)
	if err != nil || len(got) != 2 || got[0].Step != "big" || got[1].Step != "small" || got[0].Need.CPU != 1500 || got[0].Need.Mem != 100 {
		t.Fatalf("claims of a two-core worker: %+v %v", got, err)
	}
	// A worker with the label and a GPU takes one GPU task: the second
	// would need a second GPU.
	gpu := store.Capacity{CPU: 4000, Mem: 1000, GPU: 1, Labels: map[string]string{"accel": "a100", "zone": "eu"}}
	got, _ = s.ClaimTasks(c, "w2", 10, time.Minute, nil, &gpu)
	var steps []string
	for _, cl := range got {
		steps = append(steps, cl.Step)
		if cl.Step == "gpu" && (cl.Need.GPU != 1 || cl.Need.Labels["accel"] != "a100") {
			t.Fatalf("a GPU claim without its need: %+v", cl)
		}
	}
	if strings.Join(steps, " ") != "big big gpu small" {
		t.Fatalf("claims of a four-core worker with one GPU: %v", steps)
	}
	// The label is required: a worker without it takes no GPU task.
	nolabel := store.Capacity{CPU: 4000, Mem: 1000, GPU: 4}
	if got, _ := s.ClaimTasks(c, "w3", 10, time.Minute, nil, &nolabel); len(got) != 1 || got[0].Step != "small" {
		t.Fatalf("claims of a worker without the label: %+v", got)
	}
	// Tasks queued first that need a label no worker here carries do not
	// hide the tasks after them: a one-slot worker (a window of a few
	// candidates) still finds the unlabelled task behind ten of them.
	r2 := newRun(t, s, "coord")
	later := now.Add(time.Second)
	if err := s.Apply(c, "coord", &store.Batch{NewTasks: []store.NewTasks{
		{RunID: r2.ID, Step: "tpu", Count: 10, ReadyAt: later, Queued: true, Need: store.Need{CPU: 100, Labels: map[string]string{"accel": "tpu"}}},
		{RunID: r2.ID, Step: "plain", Count: 1, ReadyAt: later.Add(time.Millisecond), Queued: true, Need: store.Need{CPU: 100}},
		{RunID: r2.ID, Step: "eu", Count: 1, ReadyAt: later.Add(2 * time.Millisecond), Queued: true, Need: store.Need{CPU: 100, Labels: map[string]string{"zone": "eu"}}},
	}}); err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct {
		labels map[string]string
		want   string
	}{{nil, "plain"}, {map[string]string{"zone": "eu", "disk": "ssd"}, "eu"}} {
		one := store.Capacity{CPU: 4000, Mem: 1000, Labels: w.labels}
		if got, err := s.ClaimTasks(c, "w4", 1, time.Minute, nil, &one); err != nil || len(got) != 1 || got[0].Step != w.want {
			t.Fatalf("a one-slot worker with labels %v behind ten tasks it cannot run claimed %+v %v, want %s", w.labels, got, err, w.want)
		}
	}
}

func testFeatureSpecs(t *testing.T, s store.Store) {
	c := ctx(t)
	spec := func(kind, name, digest string) store.FeatureSpec {
		return store.FeatureSpec{Kind: kind, Name: name, Digest: digest, Spec: json.RawMessage(`{"d":"` + digest + `"}`)}
	}
	got, n, err := s.PutFeatureSpecs(c, []store.FeatureSpec{spec(store.FeatureEntity, "member", "e1"), spec(store.FeatureDef, "plays_1h", "a")})
	if err != nil || n != 2 || got[0].Version != 1 || got[1].Version != 1 {
		t.Fatalf("first apply: %+v %d %v", got, n, err)
	}
	// The same digest again is no new version; a changed one is.
	got, n, err = s.PutFeatureSpecs(c, []store.FeatureSpec{spec(store.FeatureEntity, "member", "e1"), spec(store.FeatureDef, "plays_1h", "b")})
	if err != nil || n != 1 || got[0].Version != 1 || got[1].Version != 2 || got[1].CreatedAt.IsZero() {
		t.Fatalf("second apply: %+v %d %v", got, n, err)
	}
	latest, err := s.FeatureSpecs(c)
	if err != nil || len(latest) != 2 || latest[0].Kind != store.FeatureEntity || latest[1].Version != 2 || string(latest[1].Spec) != `{"d":"b"}` {
		t.Fatalf("latest: %+v %v", latest, err)
	}
	// Going back to an earlier definition makes it current, as a new version.
	got, n, _ = s.PutFeatureSpecs(c, []store.FeatureSpec{spec(store.FeatureDef, "plays_1h", "a")})
	if n != 1 || got[0].Version != 3 {
		t.Fatalf("reapply old: %+v %d", got, n)
	}
	if latest, _ := s.FeatureSpecs(c); latest[1].Digest != "a" || latest[1].Version != 3 {
		t.Fatalf("latest after revert: %+v", latest)
	}
	vs, err := s.FeatureSpecVersions(c, store.FeatureDef, "plays_1h")
	if err != nil || len(vs) != 3 || vs[0].Digest != "a" || vs[1].Digest != "b" {
		t.Fatalf("versions: %+v %v", vs, err)
	}
	if _, err := s.FeatureSpecVersions(c, store.FeatureDef, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown: %v", err)
	}
}

func testFeatureComputations(t *testing.T, s store.Store) {
	c := ctx(t)
	if _, err := s.LastComputation(c, "f1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("before any: %v", err)
	}
	first, err := s.AddComputation(c, store.FeatureComputation{Kind: "training_set", Features: map[string]int{"f1": 1, "f2": 3},
		Rows: 10, Status: store.ComputationPassed, Report: json.RawMessage(`{"ok":true}`), Profiles: json.RawMessage(`{"f1":[1,2]}`), Output: "a.csv"})
	if err != nil || first.ID == 0 {
		t.Fatalf("add: %+v %v", first, err)
	}
	// A blocked computation is never the reference of the next one.
	if _, err := s.AddComputation(c, store.FeatureComputation{Kind: "training_set", Features: map[string]int{"f1": 2}, Rows: 5, Status: store.ComputationBlocked}); err != nil {
		t.Fatal(err)
	}
	got, err := s.LastComputation(c, "f1")
	if err != nil || got.ID != first.ID || got.Rows != 10 || got.Features["f2"] != 3 || string(got.Profiles) != `{"f1":[1,2]}` || got.Output != "a.csv" {
		t.Fatalf("last f1: %+v %v", got, err)
	}
	second, _ := s.AddComputation(c, store.FeatureComputation{Kind: "backfill", Features: map[string]int{"f1": 2}, Rows: 7, Status: store.ComputationWarned})
	if got, _ := s.LastComputation(c, "f1"); got.ID != second.ID || got.Status != store.ComputationWarned {
		t.Fatalf("last after warned: %+v", got)
	}
	if got, _ := s.LastComputation(c, "f2"); got.ID != first.ID {
		t.Fatalf("last f2: %+v", got)
	}
	// Every computation of a feature, blocked ones too, newest first.
	all, err := s.Computations(c, "f1", 0)
	if err != nil || len(all) != 3 || all[0].ID != second.ID || all[1].Status != store.ComputationBlocked || all[2].ID != first.ID ||
		string(all[2].Report) != `{"ok":true}` || all[2].Rows != 10 || all[2].Kind != "training_set" || all[2].Profiles != nil {
		t.Fatalf("computations of f1: %+v %v", all, err)
	}
	if some, _ := s.Computations(c, "f1", 2); len(some) != 2 || some[0].ID != second.ID {
		t.Fatalf("the newest 2: %+v", some)
	}
	if f2, _ := s.Computations(c, "f2", 0); len(f2) != 1 || f2[0].ID != first.ID {
		t.Fatalf("computations of f2: %+v", f2)
	}
	if none, err := s.Computations(c, "nope", 0); err != nil || len(none) != 0 {
		t.Fatalf("no computation: %+v %v", none, err)
	}
}

func testModelRegistry(t *testing.T, s store.Store) {
	c := ctx(t)
	if _, err := s.ModelVersions(c, "churn"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("before any: %v", err)
	}
	v1, err := s.CreateModelVersion(c, store.ModelVersion{Model: "churn", Artifact: "1/train/model.json", Digest: "d1", Size: 10, RunID: 1,
		Flow: "train", FlowVersion: 2, Lineage: json.RawMessage(`{"training_set":"1/build/train.csv"}`), Metrics: map[string]float64{"auc": 0.8}}, "ann", "first")
	if err != nil || v1.Version != 1 || v1.State != store.ModelRegistered {
		t.Fatalf("create: %+v %v", v1, err)
	}
	v2, _ := s.CreateModelVersion(c, store.ModelVersion{Model: "churn", Artifact: "2/train/model.json", Digest: "d2", RunID: 2}, "ann", "second")
	if v2.Version != 2 || v2.Metrics != nil && len(v2.Metrics) != 0 {
		t.Fatalf("second: %+v", v2)
	}
	// A transition applies only from the state it names.
	tr := store.ModelTransition{Model: "churn", Version: 1, From: store.ModelRegistered, To: store.ModelProduction, Actor: "ann", Reason: "ship",
		Decision: json.RawMessage(`{"expected_lifetime":"90d"}`)}
	got, err := s.TransitionModel(c, tr, false)
	if err != nil || got.State != store.ModelProduction {
		t.Fatalf("transition: %+v %v", got, err)
	}
	if _, err := s.TransitionModel(c, tr, false); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale transition: %v", err)
	}
	// Promoting version 2 demotes version 1 in the same transaction.
	if _, err := s.TransitionModel(c, store.ModelTransition{Model: "churn", Version: 2, From: store.ModelRegistered, To: store.ModelProduction, Actor: "bob", Reason: "better"}, true); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.ModelVersion(c, "churn", 1); v.State != store.ModelArchived {
		t.Fatalf("v1 after v2's promotion: %s", v.State)
	}
	trs, err := s.ModelTransitions(c, "churn", 1)
	if err != nil || len(trs) != 3 || trs[0].To != store.ModelRegistered || trs[1].Actor != "ann" || string(trs[1].Decision) != `{"expected_lifetime":"90d"}` ||
		trs[2].To != store.ModelArchived || trs[2].Actor != "bob" {
		t.Fatalf("transitions: %+v %v", trs, err)
	}
	if all, _ := s.ModelTransitions(c, "churn", 0); len(all) != 5 {
		t.Fatalf("all transitions: %d", len(all))
	}
	if _, err := s.TransitionModel(c, store.ModelTransition{Model: "churn", Version: 9, From: store.ModelRegistered, To: store.ModelShadow}, false); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown version: %v", err)
	}
	// Metrics and tags merge; an empty tag value deletes the tag.
	u, err := s.UpdateModelVersion(c, "churn", 1, map[string]float64{"f1": 0.5}, map[string]string{"team": "growth"})
	if err != nil || u.Metrics["auc"] != 0.8 || u.Metrics["f1"] != 0.5 || u.Tags["team"] != "growth" {
		t.Fatalf("update: %+v %v", u, err)
	}
	u, _ = s.UpdateModelVersion(c, "churn", 1, nil, map[string]string{"team": ""})
	if len(u.Tags) != 0 {
		t.Fatalf("tag delete: %+v", u.Tags)
	}
	if err := s.SetModelAlias(c, "churn", "champion", 2); err != nil {
		t.Fatal(err)
	}
	if err := s.SetModelAlias(c, "churn", "champion", 1); err != nil {
		t.Fatal(err)
	}
	if err := s.SetModelAlias(c, "churn", "x", 7); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("alias to a missing version: %v", err)
	}
	vs, _ := s.ModelVersions(c, "churn")
	if len(vs) != 2 || len(vs[0].Aliases) != 1 || vs[0].Aliases[0] != "champion" || len(vs[1].Aliases) != 0 {
		t.Fatalf("aliases: %+v", vs)
	}
	if err := s.SetModelAlias(c, "churn", "champion", 0); err != nil {
		t.Fatal(err)
	}
	ms, err := s.Models(c)
	if err != nil || len(ms) != 1 || ms[0].Versions != 2 || ms[0].Production != 2 {
		t.Fatalf("models: %+v %v", ms, err)
	}
}

// testModelTransitionRace: of many concurrent transitions from one state,
// exactly one wins.
func testModelTransitionRace(t *testing.T, s store.Store) {
	c := ctx(t)
	if _, err := s.CreateModelVersion(c, store.ModelVersion{Model: "m", Artifact: "1/a/b", Digest: "d", RunID: 1}, "a", "r"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var won atomic.Int32
	for range 8 {
		wg.Go(func() {
			_, err := s.TransitionModel(c, store.ModelTransition{Model: "m", Version: 1, From: store.ModelRegistered, To: store.ModelCanary, Actor: "x", Reason: "r"}, false)
			if err == nil {
				won.Add(1)
			} else if !errors.Is(err, store.ErrConflict) {
				t.Errorf("transition: %v", err)
			}
		})
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d transitions won", won.Load())
	}
}

func testEndpointsAndRollouts(t *testing.T, s store.Store) {
	c := ctx(t)
	e, changed, err := s.PutEndpoint(c, store.Endpoint{Name: "churn", Spec: json.RawMessage(`{"model":"churn"}`), Digest: "a"})
	if err != nil || !changed || e.UpdatedAt.IsZero() {
		t.Fatalf("put: %+v %v %v", e, changed, err)
	}
	if _, changed, _ := s.PutEndpoint(c, store.Endpoint{Name: "churn", Spec: json.RawMessage(`{"model":"churn"}`), Digest: "a"}); changed {
		t.Fatal("same digest changed the endpoint")
	}
	if _, changed, _ := s.PutEndpoint(c, store.Endpoint{Name: "churn", Spec: json.RawMessage(`{"model":"x"}`), Digest: "b"}); !changed {
		t.Fatal("new digest did not change the endpoint")
	}
	es, err := s.Endpoints(c)
	if err != nil || len(es) != 1 || string(es[0].Spec) != `{"model":"x"}` {
		t.Fatalf("endpoints: %+v %v", es, err)
	}
	r, err := s.StartRollout(c, store.Rollout{Endpoint: "churn", Model: "churn", CanaryVersion: 2, BaselineVersion: 1, Stages: []float64{1, 5, 100}})
	if err != nil || r.ID == 0 || r.Status != store.RolloutRunning {
		t.Fatalf("start: %+v %v", r, err)
	}
	if _, err := s.StartRollout(c, store.Rollout{Endpoint: "churn", Model: "churn", CanaryVersion: 3, BaselineVersion: 1, Stages: []float64{100}}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second running rollout: %v", err)
	}
	r, err = s.UpdateRollout(c, r.ID, 0, 1, store.RolloutRunning, json.RawMessage(`[{"stage":0}]`))
	if err != nil || r.Stage != 1 || string(r.History) != `[{"stage":0}]` {
		t.Fatalf("advance: %+v %v", r, err)
	}
	// A second evaluator that read stage 0 cannot advance it again.
	if _, err := s.UpdateRollout(c, r.ID, 0, 1, store.RolloutRunning, nil); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale update: %v", err)
	}
	if _, err := s.UpdateRollout(c, r.ID, 1, 1, store.RolloutRolledBack, json.RawMessage(`[]`)); err != nil {
		t.Fatal(err)
	}
	// A finished rollout frees the endpoint for the next.
	if _, err := s.StartRollout(c, store.Rollout{Endpoint: "churn", Model: "churn", CanaryVersion: 3, BaselineVersion: 1, Stages: []float64{100}}); err != nil {
		t.Fatal(err)
	}
	rs, err := s.Rollouts(c, "churn")
	if err != nil || len(rs) != 2 || rs[0].CanaryVersion != 3 || rs[1].Status != store.RolloutRolledBack || len(rs[1].Stages) != 3 {
		t.Fatalf("rollouts: %+v %v", rs, err)
	}
	if all, _ := s.Rollouts(c, ""); len(all) != 2 {
		t.Fatalf("all rollouts: %d", len(all))
	}
	// A start time the caller gives is kept: the rollout controller times
	// its first window from it, on its own clock.
	at := time.Date(2026, 11, 29, 1, 2, 3, 0, time.UTC)
	if _, err := s.UpdateRollout(c, rs[0].ID, 0, 0, store.RolloutRolledBack, json.RawMessage(`[]`)); err != nil {
		t.Fatal(err)
	}
	if r, err := s.StartRollout(c, store.Rollout{Endpoint: "churn", Model: "churn", CanaryVersion: 4, BaselineVersion: 1, Stages: []float64{100}, StartedAt: at}); err != nil || !r.StartedAt.Equal(at) {
		t.Fatalf("given start: %+v %v", r, err)
	}
	if rs, _ := s.Rollouts(c, "churn"); !rs[0].StartedAt.Equal(at) {
		t.Fatalf("stored start: %v", rs[0].StartedAt)
	}
}

func testExperiments(t *testing.T, s store.Store) {
	c := ctx(t)
	e, changed, err := s.PutExperiment(c, store.Experiment{Name: "x", Spec: json.RawMessage(`{"w":1}`), Digest: "d1", Alloc: "a1"})
	if err != nil || !changed || e.Version != 1 || e.Status != store.ExperimentRunning {
		t.Fatalf("put: %+v %v %v", e, changed, err)
	}
	// A change that keeps the allocation keeps the version; a new
	// allocation re-randomizes under a new one.
	if e, _, _ = s.PutExperiment(c, store.Experiment{Name: "x", Spec: json.RawMessage(`{"w":1,"d":"x"}`), Digest: "d2", Alloc: "a1"}); e.Version != 1 {
		t.Fatalf("same alloc: %+v", e)
	}
	if e, _, _ = s.PutExperiment(c, store.Experiment{Name: "x", Spec: json.RawMessage(`{"w":2}`), Digest: "d3", Alloc: "a2"}); e.Version != 2 || string(e.Spec) != `{"w":2}` {
		t.Fatalf("new alloc: %+v", e)
	}
	if _, changed, _ := s.PutExperiment(c, store.Experiment{Name: "x", Spec: json.RawMessage(`{"w":2}`), Digest: "d3", Alloc: "a2"}); changed {
		t.Fatal("same digest changed")
	}
	if e, err = s.SetExperimentStatus(c, "x", []store.ExperimentStatus{store.ExperimentRunning}, store.ExperimentPaused, "guardrail"); err != nil || e.Reason != "guardrail" {
		t.Fatalf("pause: %+v %v", e, err)
	}
	if _, err := s.SetExperimentStatus(c, "x", []store.ExperimentStatus{store.ExperimentRunning}, store.ExperimentPaused, "again"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("pause twice: %v", err)
	}
	now := time.Now()
	n, err := s.AddExposures(c, []store.Exposure{{Experiment: "x", Version: 2, Unit: "u1", Variant: "a", At: now}, {Experiment: "x", Version: 2, Unit: "u2", Variant: "b", At: now},
		{Experiment: "x", Version: 2, Unit: "u1", Variant: "b", At: now.Add(time.Second)}})
	if err != nil || n != 2 {
		t.Fatalf("exposures: %d %v", n, err)
	}
	if err := s.AddMetricEvents(c, []store.MetricEvent{{Experiment: "x", Unit: "u1", Metric: "m", Value: 1.5, At: now}, {Experiment: "x", Unit: "u1", Metric: "m", Value: 2, At: now}}); err != nil {
		t.Fatal(err)
	}
	ex, err := s.Exposures(c, "x", 2)
	if err != nil || len(ex) != 2 || ex[0].Unit != "u1" || ex[0].Variant != "a" {
		t.Fatalf("list exposures: %+v %v", ex, err)
	}
	ms, err := s.MetricEvents(c, "x", "m")
	if err != nil || len(ms) != 2 || ms[0].Value+ms[1].Value != 3.5 {
		t.Fatalf("metric events: %+v %v", ms, err)
	}
	if es, _ := s.Experiments(c); len(es) != 1 || es[0].Status != store.ExperimentPaused {
		t.Fatalf("experiments: %+v", es)
	}
}

func testMonitors(t *testing.T, s store.Store) {
	c := ctx(t)
	m, changed, err := s.PutMonitor(c, store.Monitor{Name: "drift", Spec: json.RawMessage(`{"kind":"feature_drift"}`), Digest: "a"})
	if err != nil || !changed || m.UpdatedAt.IsZero() {
		t.Fatalf("put: %+v %v %v", m, changed, err)
	}
	if _, changed, _ := s.PutMonitor(c, store.Monitor{Name: "drift", Spec: json.RawMessage(`{"kind":"feature_drift"}`), Digest: "a"}); changed {
		t.Fatal("the same digest changed the monitor")
	}
	if _, changed, _ := s.PutMonitor(c, store.Monitor{Name: "drift", Spec: json.RawMessage(`{"kind":"prediction_drift"}`), Digest: "b"}); !changed {
		t.Fatal("a new digest did not change the monitor")
	}
	if _, _, err := s.PutMonitor(c, store.Monitor{Name: "aaa", Spec: json.RawMessage(`{}`), Digest: "c"}); err != nil {
		t.Fatal(err)
	}
	ms, err := s.Monitors(c)
	if err != nil || len(ms) != 2 || ms[0].Name != "aaa" || ms[1].Name != "drift" || string(ms[1].Spec) != `{"kind":"prediction_drift"}` || ms[1].Digest != "b" {
		t.Fatalf("monitors: %+v %v", ms, err)
	}
	day := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	var ids []int64
	for i := range 3 {
		r, err := s.AddMonitorResult(c, store.MonitorResult{Monitor: "drift", Kind: "feature_drift", Trigger: store.MonitorScheduled,
			DueAt: day.AddDate(0, 0, i), EvaluatedAt: day.AddDate(0, 0, i).Add(time.Minute), Checks: json.RawMessage(`[{"name":"psi","value":0.3}]`),
			Breached: i == 2, Evidence: json.RawMessage(`{"n":1}`), Signal: map[bool]string{true: "monitor/drift/x"}[i == 2]})
		if err != nil || r.ID == 0 {
			t.Fatalf("add %d: %+v %v", i, r, err)
		}
		ids = append(ids, r.ID)
	}
	manual, err := s.AddMonitorResult(c, store.MonitorResult{Monitor: "drift", Kind: "feature_drift", Trigger: store.MonitorManual,
		DueAt: day, EvaluatedAt: day.Add(time.Hour), Breached: true, Repeated: true, Error: "publish drift_detected: no contract"})
	if err != nil {
		t.Fatalf("manual: %v", err)
	}
	// Without checks or evidence a result still reads back as JSON.
	if string(manual.Checks) != "[]" || string(manual.Evidence) != "{}" {
		t.Fatalf("defaults: %s %s", manual.Checks, manual.Evidence)
	}
	if _, err := s.AddMonitorResult(c, store.MonitorResult{Monitor: "aaa", Kind: "x", Trigger: store.MonitorScheduled, DueAt: day, EvaluatedAt: day}); err != nil {
		t.Fatalf("another monitor's slot: %v", err)
	}
	rs, err := s.MonitorResults(c, store.MonitorResultFilter{Monitor: "drift"})
	if err != nil || len(rs) != 4 || rs[0].ID != manual.ID || rs[1].ID != ids[2] {
		t.Fatalf("results: %+v %v", rs, err)
	}
	got := rs[1]
	if !got.Breached || got.Signal != "monitor/drift/x" || !got.DueAt.Equal(day.AddDate(0, 0, 2)) || !got.EvaluatedAt.Equal(day.AddDate(0, 0, 2).Add(time.Minute)) ||
		string(got.Checks) != `[{"name":"psi","value":0.3}]` || string(got.Evidence) != `{"n":1}` || got.Kind != "feature_drift" || got.Trigger != store.MonitorScheduled {
		t.Fatalf("stored: %+v", got)
	}
	if rs[0].Error != "publish drift_detected: no contract" || rs[0].Trigger != store.MonitorManual || !rs[0].Repeated || rs[1].Repeated {
		t.Fatalf("manual stored: %+v", rs[0])
	}
	// The newest scheduled one: what the schedule is judged from.
	if rs, _ := s.MonitorResults(c, store.MonitorResultFilter{Monitor: "drift", Trigger: store.MonitorScheduled, Limit: 1}); len(rs) != 1 || rs[0].ID != ids[2] {
		t.Fatalf("newest scheduled: %+v", rs)
	}
	if rs, _ := s.MonitorResults(c, store.MonitorResultFilter{Monitor: "drift", BeforeID: ids[2], Limit: 1}); len(rs) != 1 || rs[0].ID != ids[1] {
		t.Fatalf("page: %+v", rs)
	}
	if rs, _ := s.MonitorResults(c, store.MonitorResultFilter{}); len(rs) != 5 {
		t.Fatalf("all: %d", len(rs))
	}
	if _, err := s.AddMonitorResult(c, store.MonitorResult{Monitor: "drift", Kind: "x", Trigger: "cron", DueAt: day, EvaluatedAt: day}); err == nil {
		t.Fatal("an unknown trigger was stored")
	}
}

// Evaluators racing for one due time: exactly one result is stored, the
// others are told ErrConflict; a manual evaluation never takes the slot.
func testMonitorSlotOnce(t *testing.T, s store.Store) {
	c := ctx(t)
	due := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	if _, err := s.AddMonitorResult(c, store.MonitorResult{Monitor: "m", Kind: "k", Trigger: store.MonitorManual, DueAt: due, EvaluatedAt: due}); err != nil {
		t.Fatal(err)
	}
	var ok, conflict atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			_, err := s.AddMonitorResult(c, store.MonitorResult{Monitor: "m", Kind: "k", Trigger: store.MonitorScheduled, DueAt: due, EvaluatedAt: due})
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, store.ErrConflict):
				conflict.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1 || conflict.Load() != 7 {
		t.Fatalf("%d stored, %d refused; want 1 and 7", ok.Load(), conflict.Load())
	}
	if rs, _ := s.MonitorResults(c, store.MonitorResultFilter{Monitor: "m", Trigger: store.MonitorScheduled}); len(rs) != 1 {
		t.Fatalf("scheduled results: %d", len(rs))
	}
}
