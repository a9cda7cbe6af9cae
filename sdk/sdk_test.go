package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/baton-ml/baton/client"
	"github.com/baton-ml/baton/sdk"
)

func TestResumeAfterFix(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	ctx := context.Background()
	var fixed atomic.Bool
	var calls atomic.Int32
	f := &sdk.Flow{Name: "fixme", Steps: []sdk.Step{
		{Name: "a", Run: func(ctx context.Context, t *sdk.Task) error {
			calls.Add(1)
			return t.Output(ctx, "x", []byte("from a"))
		}},
		{Name: "b", Needs: []string{"a"}, Shell: `cat "$BATON_INPUT_DIR/a/x" > "$BATON_OUTPUT_DIR/y"`},
		{Name: "c", Needs: []string{"b"}, Run: func(ctx context.Context, t *sdk.Task) error {
			if !fixed.Load() {
				return errors.New("not yet")
			}
			y, err := t.Input(ctx, "b", "y")
			if err != nil {
				return err
			}
			t.Logf("b said %s", y)
			return t.Output(ctx, "z", append(y, '!'))
		}},
	}}
	opt := sdk.Options{Home: home, Dir: t.TempDir()}
	res, err := sdk.Run(ctx, f, opt)
	if err != nil || res.Succeeded() || !strings.Contains(res.Error, "not yet") {
		t.Fatalf("first run: %+v %v", res, err)
	}
	fixed.Store(true)
	res2, err := sdk.Resume(ctx, f, res.RunID, "", opt)
	if err != nil || !res2.Succeeded() {
		t.Fatalf("resume: %+v %v", res2, err)
	}
	if calls.Load() != 1 {
		t.Fatalf("step a ran %d times; resume must reuse it", calls.Load())
	}
	c, err := client.Open(ctx, client.Options{Home: home})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a, err := c.Artifact(ctx, "2/c/z")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := a.Bytes(ctx); string(b) != "from a!" {
		t.Fatalf("z = %q", b)
	}
	run, _ := c.Run(ctx, res2.RunID)
	step, _ := run.Step(ctx, "a")
	task, _ := step.Task(ctx, 0)
	if task.ReusedFrom != res.RunID {
		t.Fatalf("task a reused from %d, want %d", task.ReusedFrom, res.RunID)
	}
	cstep, _ := run.Step(ctx, "c")
	ctask, _ := cstep.Task(ctx, 0)
	if out, _, err := ctask.Logs(ctx, 0); err != nil || string(out) != "b said from a\n" {
		t.Fatalf("logs of c: %q %v", out, err)
	}
	// A changed structure cannot resume the old run.
	f.Steps = f.Steps[:2]
	if _, err := sdk.Resume(ctx, f, res.RunID, "", opt); err == nil || !strings.Contains(err.Error(), "differs") {
		t.Fatalf("resume with another structure: %v", err)
	}
}

func TestInvalidFlows(t *testing.T) {
	t.Parallel()
	noop := func(context.Context, *sdk.Task) error { return nil }
	cases := map[string]struct {
		f    sdk.Flow
		want string
	}{
		"bad name":      {sdk.Flow{Name: "Bad Name", Steps: []sdk.Step{{Name: "a", Run: noop}}}, "name"},
		"both kinds":    {sdk.Flow{Name: "x", Steps: []sdk.Step{{Name: "a", Run: noop, Shell: "true"}}}, "exactly one"},
		"unknown need":  {sdk.Flow{Name: "x", Steps: []sdk.Step{{Name: "a", Run: noop, Needs: []string{"zz"}}}}, "zz"},
		"cycle":         {sdk.Flow{Name: "x", Steps: []sdk.Step{{Name: "a", Run: noop, Needs: []string{"b"}}, {Name: "b", Run: noop, Needs: []string{"a"}}}}, "cycle"},
		"param type":    {sdk.Flow{Name: "x", Params: []sdk.Param{{Name: "n", Type: "int", Default: "three"}}, Steps: []sdk.Step{{Name: "a", Run: noop}}}, "n"},
		"bad param":     {sdk.Flow{Name: "x", Params: []sdk.Param{{Name: "n", Type: "decimal"}}, Steps: []sdk.Step{{Name: "a", Run: noop}}}, "decimal"},
		"both foreachs": {sdk.Flow{Name: "x", Steps: []sdk.Step{{Name: "a", Run: noop, Foreach: "x", ForeachItems: []any{1}}}}, "not both"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			err := c.f.Validate()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Validate: %v, want an error mentioning %q", err, c.want)
			}
		})
	}
	f := &sdk.Flow{Name: "p", Params: []sdk.Param{{Name: "n", Type: "int"}}, Steps: []sdk.Step{{Name: "a", Run: noop}}}
	if _, err := sdk.Run(context.Background(), f, sdk.Options{Home: t.TempDir(), Params: map[string]string{"n": "x"}}); err == nil {
		t.Fatal("a param that is not an int was accepted")
	}
}

// A Go flow loops and switches as a YAML flow does.
func TestSwitchAndLoopInGo(t *testing.T) {
	ctx := context.Background()
	var seen []int
	f := &sdk.Flow{Name: "go-loop", Steps: []sdk.Step{
		{Name: "count", Cases: map[string]string{"again": "count", "done": "end", "never": "other"}, MaxIterations: 10,
			Run: func(ctx context.Context, t *sdk.Task) error {
				seen = append(seen, t.Iteration())
				if t.Iteration() < 4 {
					return t.Switch(ctx, "again")
				}
				return t.Switch(ctx, "done")
			}},
		{Name: "end", Needs: []string{"count"}, Run: func(ctx context.Context, t *sdk.Task) error {
			b, err := t.Input(ctx, "count", "case")
			if err != nil {
				return err
			}
			return t.Output(ctx, "last", b)
		}},
		{Name: "other", Needs: []string{"count"}, Shell: "exit 1"},
	}}
	res, err := sdk.Run(ctx, f, sdk.Options{Home: t.TempDir(), Dir: t.TempDir(), Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Succeeded() || fmt.Sprint(seen) != "[1 2 3 4]" {
		t.Fatalf("run %s %s, iterations %v", res.Status, res.Error, seen)
	}
}
