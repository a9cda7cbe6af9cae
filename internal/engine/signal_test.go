package engine_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/engine"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/signal"
	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/testwait"
)

func (e *env) contract(t *testing.T, sg flow.Signal) {
	t.Helper()
	spec, _ := json.Marshal(sg)
	if _, err := e.st.PutSignalContracts(context.Background(), []store.SignalContract{{Name: sg.Name, Spec: spec, Digest: string(spec)}}); err != nil {
		t.Fatal(err)
	}
}

var featuresReady = flow.Signal{Name: "features_ready", Params: []flow.SignalParam{
	{Name: "date", Type: flow.String, Required: true},
	{Name: "row_count", Type: flow.Int, Required: true},
}}

func TestPublishFromStep(t *testing.T) {
	t.Parallel()
	e := newEnv(t, engine.Options{})
	e.contract(t, featuresReady)
	f := &flow.Flow{Name: "features", Steps: []flow.Step{
		{Name: "build", Publish: []string{"features_ready"},
			Run: `printf '{"date": "2026-11-28", "row_count": 42}' > "$BATON_OUTPUT_DIR/features_ready.json"`},
	}}
	r := e.run(t, f, nil, engine.ExecOptions{})
	if r.Status != store.RunSucceeded {
		t.Fatalf("run %s: %s", r.Status, r.Error)
	}
	sigs, _ := e.st.Signals(context.Background(), store.SignalFilter{SourceRun: r.ID})
	if len(sigs) != 1 {
		t.Fatalf("signals: %+v", sigs)
	}
	sg := sigs[0]
	if sg.ID != (store.TaskKey{RunID: r.ID, Step: "build"}).String()+"/features_ready" || string(sg.Params["row_count"]) != "42" ||
		sg.Source.Kind != store.SourceFlow || sg.Source.Flow != "features" || sg.Source.Step != "build" {
		t.Fatalf("signal: %+v", sg)
	}
}

func TestPublishBreakingContractFailsTask(t *testing.T) {
	t.Parallel()
	e := newEnv(t, engine.Options{})
	e.contract(t, featuresReady)
	f := &flow.Flow{Name: "bad-features", Steps: []flow.Step{
		{Name: "build", Publish: []string{"features_ready"},
			Run: `printf '{"date": "2026-11-28", "row_count": "many"}' > "$BATON_OUTPUT_DIR/features_ready.json"`},
	}}
	r := e.run(t, f, nil, engine.ExecOptions{})
	if r.Status != store.RunFailed || !strings.Contains(r.Error, "param row_count") || !strings.Contains(r.Error, "int") {
		t.Fatalf("run %s: %q", r.Status, r.Error)
	}
	if sigs, _ := e.st.Signals(context.Background(), store.SignalFilter{SourceRun: r.ID}); len(sigs) != 0 {
		t.Fatalf("a refused signal was stored: %+v", sigs)
	}
}

func TestWaitForSignal(t *testing.T) {
	t.Parallel()
	e := newEnv(t, engine.Options{})
	e.contract(t, featuresReady)
	f := &flow.Flow{Name: "waiter", Steps: []flow.Step{
		{Name: "prep", Run: "true"},
		{Name: "train", Needs: []string{"prep"}, Wait: &flow.Wait{Signal: "features_ready", When: "params.row_count > 10", Timeout: flow.Duration(20 * time.Second)},
			Run: `printf '%s|%s' "$BATON_SIGNAL_NAME" "$BATON_SIGNAL_PARAMS" > "$BATON_OUTPUT_DIR/got"`},
	}}
	r := e.start(t, f, nil)
	c, _ := signal.Load(context.Background(), e.st)
	go func() {
		testwait.For(t, 10*time.Second, func() bool {
			steps, _ := e.st.Steps(context.Background(), r.ID)
			for _, s := range steps {
				if s.Name == "train" && s.Status == store.TaskWaiting {
					return true
				}
			}
			return false
		}, "train to wait")
		// Too few rows: the condition keeps it waiting.
		signal.Publish(context.Background(), e.st, c, "features_ready", "small", map[string]json.RawMessage{"date": json.RawMessage(`"d"`), "row_count": json.RawMessage("3")}, store.SignalSource{})
		e.eng.NotifySignals()
		signal.Publish(context.Background(), e.st, c, "features_ready", "big", map[string]json.RawMessage{"date": json.RawMessage(`"d"`), "row_count": json.RawMessage("300")}, store.SignalSource{})
		e.eng.NotifySignals()
	}()
	got, err := e.eng.Execute(context.Background(), r.ID, engine.ExecOptions{})
	if err != nil || got.Status != store.RunSucceeded {
		t.Fatalf("run: %v %s %s", err, got.Status, got.Error)
	}
	if out := e.artifact(t, store.TaskKey{RunID: r.ID, Step: "train"}, "got"); out != `features_ready|{"date":"d","row_count":300}` {
		t.Fatalf("task saw %q", out)
	}
	if s := e.steps(t, r.ID)["train"]; s.SignalID != "big" {
		t.Fatalf("step recorded signal %q, want big", s.SignalID)
	}
}

func TestWaitTimesOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t, engine.Options{})
	e.contract(t, featuresReady)
	f := &flow.Flow{Name: "impatient", Steps: []flow.Step{
		{Name: "train", Wait: &flow.Wait{Signal: "features_ready", Timeout: flow.Duration(300 * time.Millisecond)}, Run: "true"},
	}}
	r := e.run(t, f, nil, engine.ExecOptions{})
	if r.Status != store.RunFailed || !strings.Contains(r.Error, "no signal features_ready came within 300ms") {
		t.Fatalf("run %s: %q", r.Status, r.Error)
	}
}

func TestCancelByID(t *testing.T) {
	t.Parallel()
	e := newEnv(t, engine.Options{KillGrace: 100 * time.Millisecond})
	r := e.start(t, &flow.Flow{Name: "long", Steps: []flow.Step{{Name: "a", Run: "sleep 30"}}}, nil)
	go func() {
		testwait.For(t, 10*time.Second, func() bool { return len(e.eng.Running()) == 1 }, "the run to be running")
		testwait.For(t, 10*time.Second, func() bool {
			ts, _ := e.st.Tasks(context.Background(), r.ID, "a")
			return len(ts) == 1 && ts[0].Status == store.TaskRunning
		}, "the task to run")
		e.eng.Cancel(r.ID)
	}()
	got, err := e.eng.Execute(context.Background(), r.ID, engine.ExecOptions{})
	if err != nil || got.Status != store.RunCancelled {
		t.Fatalf("run: %v %s", err, got.Status)
	}
}

func TestDrainHandsBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t, engine.Options{Workers: 1})
	f := &flow.Flow{Name: "drained", Steps: []flow.Step{
		{Name: "a", Foreach: &flow.Foreach{Items: items(4)}, Run: "sleep 0.3"},
		{Name: "b", Needs: []string{"a"}, Run: "true"},
	}}
	r := e.start(t, f, nil)
	go func() {
		testwait.For(t, 10*time.Second, func() bool {
			ts, _ := e.st.Tasks(context.Background(), r.ID, "a")
			return len(ts) == 4 && ts[0].Status == store.TaskRunning
		}, "the first task to run")
		e.eng.Drain()
	}()
	_, err := e.eng.Execute(context.Background(), r.ID, engine.ExecOptions{})
	if err != engine.ErrHandedBack {
		t.Fatalf("Execute while draining: %v, want ErrHandedBack", err)
	}
	got, _ := e.st.Run(context.Background(), r.ID)
	if got.Status != store.RunRunning || got.Owner != "" {
		t.Fatalf("handed-back run: %s owner %q", got.Status, got.Owner)
	}
	ts := e.tasks(t, r.ID, "a")
	if ts[0].Status != store.TaskSucceeded || ts[1].Status != store.TaskPending {
		t.Fatalf("the running task must finish and nothing new start: %s %s", ts[0].Status, ts[1].Status)
	}
}
