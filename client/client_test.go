package client_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/baton-ml/baton/client"
	"github.com/baton-ml/baton/sdk"
)

// seed runs a small flow twice (one failure, one success) in a fresh home.
func seed(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	ctx := context.Background()
	f := &sdk.Flow{Name: "walk", Params: []sdk.Param{{Name: "fail", Type: "bool", Default: false}}, Steps: []sdk.Step{
		{Name: "start", Run: func(ctx context.Context, t *sdk.Task) error {
			return t.OutputJSON(ctx, "items.json", []string{"a", "b"})
		}},
		{Name: "each", Needs: []string{"start"}, Foreach: "items.json", Run: func(ctx context.Context, t *sdk.Task) error {
			var fail bool
			t.Param("fail", &fail)
			if fail {
				return errors.New("asked to fail")
			}
			var s string
			t.Item(&s)
			t.Logf("got %s", s)
			return t.Output(ctx, "out/"+s+".txt", []byte(s+s))
		}},
	}}
	for _, fail := range []string{"true", "false"} {
		if _, err := sdk.Run(ctx, f, sdk.Options{Home: home, Params: map[string]string{"fail": fail}, Tags: []string{"t-" + fail}}); err != nil {
			t.Fatal(err)
		}
	}
	return home
}

func TestWalk(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, err := client.Open(ctx, client.Options{Home: seed(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	flows, err := c.Flows(ctx)
	if err != nil || len(flows) != 1 || flows[0].Name != "walk" {
		t.Fatalf("flows: %v %v", flows, err)
	}
	f, _ := c.Flow(ctx, "walk")
	runs, err := f.Runs(ctx, client.RunFilter{})
	if err != nil || len(runs) != 2 || runs[0].ID != 2 || runs[1].Status != "failed" {
		t.Fatalf("runs: %+v %v", runs, err)
	}
	if failed, _ := f.Runs(ctx, client.RunFilter{Tag: "t-true"}); len(failed) != 1 || failed[0].ID != 1 {
		t.Fatalf("runs tagged t-true: %+v", failed)
	}
	run, err := f.LatestSuccessfulRun(ctx)
	if err != nil || run.ID != 2 {
		t.Fatalf("latest successful: %+v %v", run, err)
	}
	var fail bool
	if err := run.Param("fail", &fail); err != nil || fail {
		t.Fatalf("param: %v %v", fail, err)
	}
	steps, err := run.Steps(ctx)
	if err != nil || len(steps) != 2 || steps[1].Name != "each" || !steps[1].Foreach || steps[1].NumTasks != 2 {
		t.Fatalf("steps: %+v %v", steps, err)
	}
	tasks, err := steps[1].Tasks(ctx)
	if err != nil || len(tasks) != 2 || tasks[1].Status != "succeeded" {
		t.Fatalf("tasks: %+v %v", tasks, err)
	}
	arts, err := tasks[1].Artifacts(ctx)
	if err != nil || len(arts) != 1 || arts[0].Path != "2/each/1/out/b.txt" || arts[0].Size != 2 {
		t.Fatalf("artifacts: %+v %v", arts, err)
	}
	if b, err := arts[0].Bytes(ctx); err != nil || string(b) != "bb" {
		t.Fatalf("bytes: %q %v", b, err)
	}
	byPath, err := c.Artifact(ctx, "2/each/0/out/a.txt")
	if err != nil || byPath.Digest == "" {
		t.Fatalf("by path: %+v %v", byPath, err)
	}
	out, _, err := tasks[0].Logs(ctx, 0)
	if err != nil || string(out) != "got a\n" {
		t.Fatalf("logs: %q %v", out, err)
	}
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, err := client.Open(ctx, client.Options{Home: seed(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	checks := map[string]error{}
	_, checks["flow"] = c.Flow(ctx, "nope")
	_, checks["run"] = c.Run(ctx, 99)
	_, checks["artifact"] = c.Artifact(ctx, "2/each/0/nope.txt")
	_, checks["step of path"] = c.Artifact(ctx, "2/nope/x")
	run, _ := c.Run(ctx, 1)
	_, checks["step"] = run.Step(ctx, "nope")
	f, _ := c.Flow(ctx, "walk")
	_, _ = f.LatestSuccessfulRun(ctx)
	for name, err := range checks {
		if !errors.Is(err, client.ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", name, err)
		}
	}
}

// Read an artifact of a past run by its path.
func ExampleClient_Artifact() {
	home, _ := os.MkdirTemp("", "baton-client-")
	defer os.RemoveAll(home)
	ctx := context.Background()
	f := &sdk.Flow{Name: "hello", Steps: []sdk.Step{{Name: "start", Shell: `echo hi > "$BATON_OUTPUT_DIR/greeting.txt"`}}}
	if _, err := sdk.Run(ctx, f, sdk.Options{Home: home}); err != nil {
		fmt.Println(err)
		return
	}

	c, err := client.Open(ctx, client.Options{Home: home})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	a, err := c.Artifact(ctx, "1/start/greeting.txt")
	if err != nil {
		fmt.Println(err)
		return
	}
	b, _ := a.Bytes(ctx)
	fmt.Printf("%s (%d bytes, sha256 %s...)\n", b[:len(b)-1], a.Size, a.Digest[:8])
	// Output: hi (3 bytes, sha256 98ea6e4f...)
}
