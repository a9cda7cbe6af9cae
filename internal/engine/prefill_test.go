package engine_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/baton-ml/baton/internal/engine"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/store"
)

// A join's input folder fills while the foreach above it runs: when the
// last foreach task starts (one worker, so every other task has ended),
// the outputs of the tasks before it are in place already, and the join
// still sees every task's outputs, including its subfolders, whole.
func TestJoinInputsFillDuringForeach(t *testing.T) {
	t.Parallel()
	e := newEnv(t, engine.Options{Workers: 1})
	items := []json.RawMessage{str("a"), str("b"), str("c"), str("d")}
	f := &flow.Flow{Name: "prefill", Steps: []flow.Step{
		{Name: "work", Foreach: &flow.Foreach{Items: items},
			Run: `mkdir -p "$BATON_OUTPUT_DIR/sub"
printf '%s' "$BATON_FOREACH_ITEM" > "$BATON_OUTPUT_DIR/sub/v"
if [ "$BATON_FOREACH_INDEX" = 3 ]; then
  for i in 0 1 2; do cat "$BATON_INPUT_DIR/../join/work/$i/sub/v"; done > "$BATON_OUTPUT_DIR/seen"
fi`},
		{Name: "join", Needs: []string{"work"}, Run: `for i in 0 1 2 3; do cat "$BATON_INPUT_DIR/work/$i/sub/v"; done > "$BATON_OUTPUT_DIR/all"
ls "$BATON_INPUT_DIR/work/3" > "$BATON_OUTPUT_DIR/ls3"`},
	}}
	r := e.run(t, f, nil, engine.ExecOptions{})
	if r.Status != store.RunSucceeded {
		t.Fatalf("run %s: %s", r.Status, r.Error)
	}
	if got := e.artifact(t, store.TaskKey{RunID: r.ID, Step: "work", Index: 3}, "seen"); got != "abc" {
		t.Errorf("the last foreach task found %q of the join's inputs in place, want %q", got, "abc")
	}
	if got := e.artifact(t, store.TaskKey{RunID: r.ID, Step: "join"}, "all"); got != "abcd" {
		t.Errorf("the join saw %q, want %q", got, "abcd")
	}
	if got := strings.Fields(e.artifact(t, store.TaskKey{RunID: r.ID, Step: "join"}, "ls3")); strings.Join(got, " ") != "seen sub" {
		t.Errorf("task 3's input folder holds %v, want [seen sub]", got)
	}
}
