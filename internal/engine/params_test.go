package engine_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/baton-ml/baton/internal/engine"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/store"
)

// A 189 KiB param used to fail every shell task with "fork/exec /bin/sh:
// argument list too long", naming no param. It now reaches the task as a
// file, and small params stay in the environment.
func TestLargeParamReachesTasksAsAFile(t *testing.T) {
	t.Parallel()
	big := `{"rows":"` + strings.Repeat("x", 189<<10) + `"}`
	f := &flow.Flow{Name: "bigparam", Params: []flow.Param{{Name: "data", Type: flow.JSON}, {Name: "who", Type: flow.String}},
		Steps: []flow.Step{{Name: "read", Foreach: &flow.Foreach{Items: items(3)}, Run: `set -u
wc -c < "$BATON_PARAM_FILE_DATA" | tr -d ' ' > "$BATON_OUTPUT_DIR/size"
echo "${BATON_PARAM_DATA-unset} $BATON_PARAM_WHO ${BATON_PARAM_FILE_WHO-unset}" > "$BATON_OUTPUT_DIR/env"`}}}
	for _, tc := range []struct {
		name string
		env  func(*testing.T) *env
	}{
		{"local", func(t *testing.T) *env { return newEnv(t, engine.Options{}) }},
		{"queue", func(t *testing.T) *env { return queueEnv(t, engine.Options{}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := tc.env(t)
			r := e.run(t, f, map[string]string{"data": big, "who": "ada"}, engine.ExecOptions{})
			if r.Status != store.RunSucceeded {
				t.Fatalf("run %s: %s", r.Status, r.Error)
			}
			for i := range 3 {
				k := store.TaskKey{RunID: r.ID, Step: "read", Index: i}
				if got := e.artifact(t, k, "size"); got != strconv.Itoa(len(big))+"\n" {
					t.Fatalf("task %d read %q bytes, want %d", i, got, len(big))
				}
				if got := e.artifact(t, k, "env"); got != "unset ada unset\n" {
					t.Fatalf("task %d environment: %q", i, got)
				}
			}
		})
	}
}
