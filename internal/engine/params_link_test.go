package engine_test

import (
	"strings"
	"testing"

	"github.com/baton-ml/baton/internal/engine"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/store"
)

// A task can guess the next run's scratch folder (run-ID beside its own
// slot) and put a link there before that run starts. The next run's param
// too large for the environment is then written in the run's scratch
// folder as baton made it, or the run fails naming the link: never
// through the link, into the folder it leads to.
func TestLargeParamFileFollowsNoLink(t *testing.T) {
	t.Parallel()
	e := newEnv(t, engine.Options{Workers: 1})
	outside := t.TempDir()
	before := plant(t, outside, "keep.txt")
	plantNext := &flow.Flow{Name: "plant", Steps: []flow.Step{{Name: "plant", Env: map[string]string{"OUTSIDE": outside},
		Run: `m=$(dirname "$(dirname "$BATON_OUTPUT_DIR")"); ln -s "$OUTSIDE" "$m/run-$((BATON_RUN_ID + 1))"`}}}
	if r := e.run(t, plantNext, nil, engine.ExecOptions{}); r.Status != store.RunSucceeded {
		t.Fatalf("the planting run: %s %s", r.Status, r.Error)
	}
	big := strings.Repeat("x", flow.MaxEnvParam+1)
	read := &flow.Flow{Name: "bigparam", Params: []flow.Param{{Name: "data", Type: flow.String}},
		Steps: []flow.Step{{Name: "read", Run: `wc -c < "$BATON_PARAM_FILE_DATA" | tr -d ' ' > "$BATON_OUTPUT_DIR/size"`}}}
	r := e.run(t, read, map[string]string{"data": big}, engine.ExecOptions{})
	t.Logf("the run with a large param: %s %s", r.Status, r.Error)
	if r.Status != store.RunSucceeded && !strings.Contains(r.Error, "link") {
		t.Errorf("run %s (%q): want succeeded, or failed naming the link", r.Status, r.Error)
	}
	// The names only: the param is 32 KiB.
	after := tree(t, outside)
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("after the run with a large param, %s appeared outside the run's scratch folder", p)
		}
	}
	if len(after) != len(before) {
		t.Errorf("outside the run's scratch folder: %d files and folders, want %d", len(after), len(before))
	}
}
