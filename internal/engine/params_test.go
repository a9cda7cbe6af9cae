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

// Eighty params of 31 KiB each fit the environment one by one but not
// together: an audit's flow failed every task with "argument list too
// long". The smallest go in the environment, the rest in files, and every
// task starts.
func TestManyParamsFitTogether(t *testing.T) {
	t.Parallel()
	f := &flow.Flow{Name: "manyparams", Steps: []flow.Step{{Name: "read", Run: `set -u
n=0
for i in $(seq -w 0 79); do
  eval "f=\${BATON_PARAM_FILE_P$i-}"
  if [ -n "$f" ]; then v=$(cat "$f"); else eval "v=\$BATON_PARAM_P$i"; fi
  n=$((n + ${#v}))
done
echo "$n" > "$BATON_OUTPUT_DIR/total"`}}}
	given := map[string]string{}
	want := 0
	for i := range 80 {
		name := "p" + strconv.Itoa(100 + i)[1:]
		f.Params = append(f.Params, flow.Param{Name: name, Type: flow.String})
		given[name] = strings.Repeat("v", 31000+i)
		want += 31000 + i
	}
	e := newEnv(t, engine.Options{})
	r := e.run(t, f, given, engine.ExecOptions{})
	if r.Status != store.RunSucceeded {
		t.Fatalf("run %s: %s", r.Status, r.Error)
	}
	if got := e.artifact(t, store.TaskKey{RunID: r.ID, Step: "read"}, "total"); got != strconv.Itoa(want)+"\n" {
		t.Fatalf("the task read %q bytes of params, want %d", got, want)
	}
}
