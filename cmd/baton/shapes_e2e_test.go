package main_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/store/pgtest"
	"github.com/baton-ml/baton/internal/testwait"
)

// The graph shapes of Metaflow's core test graphs (linear, branches,
// nested branches, foreach, small foreach, nested foreach, a foreach body
// of several steps), written as baton flows, run on SQLite (tasks in
// process) and on PostgreSQL (tasks through the queue). Every step records
// what it saw: its place and the files of its BATON_INPUT_DIR; the test
// checks which tasks ran, what each join saw, and that no step started
// before what it needs had finished.

// record is appended to every step's command.
const record = `{ echo "${BATON_FOREACH_PATH:--} ${BATON_FOREACH_ITEM:--}"; ( cd "$BATON_INPUT_DIR" && find . -type f -name seen | sed 's|^\./||; s|/seen$||' | sort | tr '\n' ' ' ); echo; } > "$BATON_OUTPUT_DIR/seen"`

type shapeStep struct {
	name, needs, foreach, extra string
	join                        string // "", "true" or "false"
	cases                       string // a switch's cases: "{a: x, b: y}"
	max                         int    // a loop's max_iterations
}

type shape struct {
	name  string
	steps []shapeStep
	// want maps each task's address (STEP or STEP/I/J) to what it saw:
	// "PATH ITEM | inputs", - for none.
	want map[string]string
	// skipped are the steps every task of which a switch skipped.
	skipped []string
}

func (sh shape) yaml() string {
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\nsteps:\n", sh.name)
	for _, s := range sh.steps {
		fmt.Fprintf(&b, "  - name: %s\n", s.name)
		if s.needs != "" {
			fmt.Fprintf(&b, "    needs: [%s]\n", s.needs)
		}
		if s.foreach != "" {
			fmt.Fprintf(&b, "    foreach: %s\n", s.foreach)
		}
		if s.join != "" {
			fmt.Fprintf(&b, "    join: %s\n", s.join)
		}
		if s.cases != "" && s.max > 0 {
			fmt.Fprintf(&b, "    switch: {cases: %s, max_iterations: %d}\n", s.cases, s.max)
		} else if s.cases != "" {
			fmt.Fprintf(&b, "    switch: {cases: %s}\n", s.cases)
		}
		cmd := record
		if s.extra != "" {
			cmd = s.extra + "\n" + record
		}
		fmt.Fprintf(&b, "    run: |\n")
		for line := range strings.SplitSeq(cmd, "\n") {
			fmt.Fprintf(&b, "      %s\n", line)
		}
	}
	return b.String()
}

// items writes a JSON array of n strings PREFIX0..PREFIXn-1 to NAME.
func items(name, prefix string, n int) string {
	var xs []string
	for i := range n {
		xs = append(xs, strconv.Quote(prefix+strconv.Itoa(i)))
	}
	return fmt.Sprintf(`echo '[%s]' > "$BATON_OUTPUT_DIR/%s"`, strings.Join(xs, ","), name)
}

// itemsByIndex writes, per foreach index, a JSON array of that many items
// (index 0: none), named after the task's item.
const itemsByIndex = `i=0; sep=""; printf '[' > "$BATON_OUTPUT_DIR/ys.json"
while [ $i -lt "$BATON_FOREACH_INDEX" ]; do printf '%s"%s.%d"' "$sep" "$BATON_FOREACH_ITEM" $i >> "$BATON_OUTPUT_DIR/ys.json"; sep=,; i=$((i+1)); done
echo ']' >> "$BATON_OUTPUT_DIR/ys.json"`

var shapes = []shape{
	{name: "linear", steps: []shapeStep{{name: "start"}, {name: "a", needs: "start"}, {name: "end", needs: "a"}},
		want: map[string]string{"start": "- - |", "a": "- - | start", "end": "- - | a"}},
	{name: "branch", steps: []shapeStep{{name: "start"}, {name: "a", needs: "start"}, {name: "b", needs: "start"},
		{name: "join", needs: "a, b"}},
		want: map[string]string{"start": "- - |", "a": "- - | start", "b": "- - | start", "join": "- - | a b"}},
	{name: "nested-branches", steps: []shapeStep{{name: "start"}, {name: "a", needs: "start"}, {name: "a1", needs: "a"},
		{name: "a2", needs: "a"}, {name: "ja", needs: "a1, a2"}, {name: "b", needs: "start"}, {name: "end", needs: "ja, b"}},
		want: map[string]string{"start": "- - |", "a": "- - | start", "a1": "- - | a", "a2": "- - | a", "ja": "- - | a1 a2",
			"b": "- - | start", "end": "- - | b ja"}},
	{name: "foreach", steps: []shapeStep{{name: "start", extra: items("xs.json", "x", 3)},
		{name: "each", needs: "start", foreach: "xs.json"}, {name: "join", needs: "each"}},
		want: map[string]string{"start": "- - |", "each/0": "0 x0 | start", "each/1": "1 x1 | start", "each/2": "2 x2 | start",
			"join": "- - | each/0 each/1 each/2"}},
	{name: "small-foreach", steps: []shapeStep{{name: "start", extra: items("xs.json", "x", 1)},
		{name: "each", needs: "start", foreach: "xs.json"}, {name: "join", needs: "each"}},
		want: map[string]string{"start": "- - |", "each/0": "0 x0 | start", "join": "- - | each/0"}},
	{name: "nested-foreach", steps: []shapeStep{{name: "start", extra: items("xs.json", "x", 2)},
		{name: "split-y", needs: "start", foreach: "start/xs.json", extra: items("ys.json", "y", 2)},
		{name: "split-z", needs: "split-y", foreach: "split-y/ys.json", extra: items("zs.json", "z", 2)},
		{name: "inner", needs: "split-z", foreach: "split-z/zs.json"},
		{name: "join-z", needs: "inner"},
		{name: "join-y", needs: "join-z", join: "true"},
		{name: "join-x", needs: "join-y", join: "true"},
		{name: "end", needs: "join-x"}},
		want: nestedWant()},
	{name: "uneven-nest", steps: []shapeStep{{name: "start", extra: items("xs.json", "x", 3)},
		{name: "outer", needs: "start", foreach: "start/xs.json", extra: itemsByIndex},
		{name: "inner", needs: "outer", foreach: "outer/ys.json"},
		{name: "join-inner", needs: "inner, outer"},
		{name: "end", needs: "join-inner", join: "true"}},
		want: map[string]string{"start": "- - |",
			"outer/0": "0 x0 | start", "outer/1": "1 x1 | start", "outer/2": "2 x2 | start",
			"inner/1/0": "1/0 x1.0 | outer", "inner/2/0": "2/0 x2.0 | outer", "inner/2/1": "2/1 x2.1 | outer",
			"join-inner/0": "0 - | outer", "join-inner/1": "1 - | inner/0 outer", "join-inner/2": "2 - | inner/0 inner/1 outer",
			"end": "- - | join-inner/0 join-inner/1 join-inner/2"}},
	{name: "foreach-body", steps: []shapeStep{{name: "start", extra: items("xs.json", "x", 2)},
		{name: "each", needs: "start", foreach: "xs.json"},
		{name: "b1", needs: "each", join: "false"},
		{name: "b2", needs: "b1, start"},
		{name: "join", needs: "b2", join: "true"}},
		want: map[string]string{"start": "- - |", "each/0": "0 x0 | start", "each/1": "1 x1 | start",
			"b1/0": "0 - | each", "b1/1": "1 - | each", "b2/0": "0 - | b1 start", "b2/1": "1 - | b1 start",
			"join": "- - | b2/0 b2/1"}},
	{name: "switch", steps: []shapeStep{{name: "start"},
		{name: "decide", needs: "start", cases: "{left: a, right: b}", extra: `echo right > "$BATON_OUTPUT_DIR/case"`},
		{name: "a", needs: "decide"}, {name: "b", needs: "decide"}, {name: "end", needs: "a, b"}},
		want:    map[string]string{"start": "- - |", "decide": "- - | start", "b": "- - | decide", "end": "- - | b"},
		skipped: []string{"a"}},
	{name: "nested-switch", steps: []shapeStep{{name: "start"},
		{name: "d1", needs: "start", cases: "{x: x, more: d2}", extra: `echo more > "$BATON_OUTPUT_DIR/case"`},
		{name: "x", needs: "d1"},
		{name: "d2", needs: "d1", cases: "{y: y, z: z}", extra: `echo '  z ' > "$BATON_OUTPUT_DIR/case"`},
		{name: "y", needs: "d2"}, {name: "z", needs: "d2"}, {name: "after-y", needs: "y"},
		{name: "end", needs: "x, after-y, z"}},
		want:    map[string]string{"start": "- - |", "d1": "- - | start", "d2": "- - | d1", "z": "- - | d2", "end": "- - | z"},
		skipped: []string{"x", "y", "after-y"}},
	{name: "switch-in-foreach", steps: []shapeStep{{name: "start", extra: items("xs.json", "x", 3)},
		{name: "each", needs: "start", foreach: "xs.json", cases: "{even: ev, odd: od}",
			extra: `[ $((BATON_FOREACH_INDEX % 2)) = 0 ] && echo even > "$BATON_OUTPUT_DIR/case" || echo odd > "$BATON_OUTPUT_DIR/case"`},
		{name: "ev", needs: "each"}, {name: "od", needs: "each"},
		{name: "merge", needs: "ev, od"},
		{name: "join", needs: "merge", join: "true"}},
		want: map[string]string{"start": "- - |", "each/0": "0 x0 | start", "each/1": "1 x1 | start", "each/2": "2 x2 | start",
			"ev/0": "0 - | each", "od/1": "1 - | each", "ev/2": "2 - | each",
			"merge/0": "0 - | ev", "merge/1": "1 - | od", "merge/2": "2 - | ev",
			"join": "- - | merge/0 merge/1 merge/2"}},
	{name: "foreach-in-switch", steps: []shapeStep{{name: "start"},
		{name: "decide", needs: "start", cases: "{many: fan, one: single}",
			extra: `echo many > "$BATON_OUTPUT_DIR/case"; echo '["p","q"]' > "$BATON_OUTPUT_DIR/xs.json"`},
		{name: "fan", needs: "decide", foreach: "decide/xs.json"}, {name: "single", needs: "decide"},
		{name: "join", needs: "fan, single"}},
		want: map[string]string{"start": "- - |", "decide": "- - | start", "fan/0": "0 p | decide", "fan/1": "1 q | decide",
			"join": "- - | fan/0 fan/1"},
		skipped: []string{"single"}},
	{name: "recursive-switch", steps: []shapeStep{{name: "start"},
		{name: "spin", needs: "start", cases: "{again: spin, done: end}", max: 5,
			extra: `[ "$BATON_ITERATION" -lt 3 ] && echo again > "$BATON_OUTPUT_DIR/case" || echo done > "$BATON_OUTPUT_DIR/case"`},
		{name: "end", needs: "spin"}},
		want: map[string]string{"start": "- - |", "spin/0": "- - | start", "spin/1": "- - | spin start", "spin/2": "- - | spin start",
			"end": "- - | spin"}},
	{name: "loop", steps: []shapeStep{{name: "start"}, {name: "head", needs: "start"}, {name: "body", needs: "head"},
		{name: "decide", needs: "body", cases: "{again: head, out: end}", max: 4,
			extra: `[ "$BATON_ITERATION" -lt 2 ] && echo again > "$BATON_OUTPUT_DIR/case" || echo out > "$BATON_OUTPUT_DIR/case"`},
		{name: "end", needs: "decide"}, {name: "after", needs: "body, start"}},
		want: map[string]string{"start": "- - |", "head/0": "- - | start", "head/1": "- - | decide start",
			"body/0": "- - | head", "body/1": "- - | head", "decide/0": "- - | body", "decide/1": "- - | body",
			"end": "- - | decide", "after": "- - | body start"}},
	{name: "switch-in-loop", steps: []shapeStep{{name: "start"}, {name: "head", needs: "start"},
		{name: "pick", needs: "head", cases: "{odd: x, even: y}",
			extra: `[ $((BATON_ITERATION % 2)) = 1 ] && echo odd > "$BATON_OUTPUT_DIR/case" || echo even > "$BATON_OUTPUT_DIR/case"`},
		{name: "x", needs: "pick"}, {name: "y", needs: "pick"}, {name: "merge", needs: "x, y"},
		{name: "again", needs: "merge", cases: "{again: head, out: end}", max: 5,
			extra: `[ "$BATON_ITERATION" -lt 2 ] && echo again > "$BATON_OUTPUT_DIR/case" || echo out > "$BATON_OUTPUT_DIR/case"`},
		{name: "end", needs: "again"}},
		want: map[string]string{"start": "- - |", "head/0": "- - | start", "head/1": "- - | again start",
			"pick/0": "- - | head", "pick/1": "- - | head", "x/0": "- - | pick", "y/1": "- - | pick",
			"merge/0": "- - | x", "merge/1": "- - | y", "again/0": "- - | merge", "again/1": "- - | merge", "end": "- - | again"},
		skipped: []string{"x"}},
	{name: "foreach-case-in-foreach", steps: []shapeStep{{name: "start", extra: items("xs.json", "x", 2)},
		{name: "each", needs: "start", foreach: "xs.json", cases: "{fan: fan, one: one}",
			extra: `[ "$BATON_FOREACH_INDEX" = 0 ] && echo fan > "$BATON_OUTPUT_DIR/case" || echo one > "$BATON_OUTPUT_DIR/case"; echo '["p","q"]' > "$BATON_OUTPUT_DIR/ys.json"`},
		{name: "fan", needs: "each", foreach: "each/ys.json"}, {name: "one", needs: "each"},
		{name: "join-fan", needs: "fan"}, {name: "merge", needs: "join-fan, one"},
		{name: "end", needs: "merge", join: "true"}},
		want: map[string]string{"start": "- - |", "each/0": "0 x0 | start", "each/1": "1 x1 | start",
			"fan/0/0": "0/0 p | each", "fan/0/1": "0/1 q | each", "one/1": "1 - | each",
			"join-fan/0": "0 - | fan/0 fan/1", "merge/0": "0 - | join-fan", "merge/1": "1 - | one",
			"end": "- - | merge/0 merge/1"}},
}

// nestedWant is what the three-level nest sees: 2 × 2 × 2 inner tasks.
func nestedWant() map[string]string {
	w := map[string]string{"start": "- - |", "join-x": "- - | join-y/0 join-y/1", "end": "- - | join-x"}
	for i := range 2 {
		w[fmt.Sprintf("split-y/%d", i)] = fmt.Sprintf("%d x%d | start", i, i)
		w[fmt.Sprintf("join-y/%d", i)] = fmt.Sprintf("%d - | join-z/0 join-z/1", i)
		for j := range 2 {
			w[fmt.Sprintf("split-z/%d/%d", i, j)] = fmt.Sprintf("%d/%d y%d | split-y", i, j, j)
			w[fmt.Sprintf("join-z/%d/%d", i, j)] = fmt.Sprintf("%d/%d - | inner/0 inner/1", i, j)
			for k := range 2 {
				w[fmt.Sprintf("inner/%d/%d/%d", i, j, k)] = fmt.Sprintf("%d/%d/%d z%d | split-z", i, j, k, k)
			}
		}
	}
	return w
}

// shapeStores are the stores a shape runs on: SQLite always, PostgreSQL
// when it answers (always under CI).
func shapeStores(t *testing.T) map[string]func(t *testing.T) []string {
	return map[string]func(t *testing.T) []string{
		"sqlite": func(t *testing.T) []string { return nil },
		"postgres": func(t *testing.T) []string {
			pgtest.Require(t)
			return []string{"BATON_DB=" + pgtest.DSN(t)}
		},
	}
}

func batonEnv(t *testing.T, home string, env []string, args ...string) result {
	t.Helper()
	return batonIn(t, home, "", env, args...)
}

func TestFlowShapes(t *testing.T) {
	t.Parallel()
	for storeName, envOf := range shapeStores(t) {
		t.Run(storeName, func(t *testing.T) {
			t.Parallel()
			env := envOf(t)
			home, dir := t.TempDir(), t.TempDir()
			for _, sh := range shapes {
				file := writeFile(t, dir, sh.name+".yaml", sh.yaml())
				r := must(t, batonEnv(t, home, env, "run", file, "-o", "json"), 0)
				var run struct {
					ID int64 `json:"id"`
				}
				if err := json.Unmarshal([]byte(r.stdout), &run); err != nil || run.ID == 0 {
					t.Fatalf("%s: run -o json: %v %s", sh.name, err, r.stdout)
				}
				checkShape(t, home, env, sh, run.ID)
			}
		})
	}
}

func checkShape(t *testing.T, home string, env []string, sh shape, id int64) {
	t.Helper()
	var arts []struct {
		Path string `json:"path"`
	}
	out := must(t, batonEnv(t, home, env, "artifact", "ls", strconv.FormatInt(id, 10), "-o", "json"), 0).stdout
	if err := json.Unmarshal([]byte(out), &arts); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	prefix := strconv.FormatInt(id, 10) + "/"
	for _, a := range arts {
		if !strings.HasSuffix(a.Path, "/seen") {
			continue
		}
		seen := must(t, batonEnv(t, home, env, "artifact", "get", a.Path), 0).stdout
		lines := strings.SplitN(strings.TrimSpace(seen), "\n", 2)
		v := lines[0] + " |"
		if len(lines) > 1 && strings.TrimSpace(lines[1]) != "" {
			v += " " + strings.TrimSpace(lines[1])
		}
		got[strings.TrimSuffix(strings.TrimPrefix(a.Path, prefix), "/seen")] = v
	}
	var keys []string
	for k := range sh.want {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if got[k] != sh.want[k] {
			t.Errorf("%s: task %s saw %q, want %q", sh.name, k, got[k], sh.want[k])
		}
	}
	for k := range got {
		if _, ok := sh.want[k]; !ok {
			t.Errorf("%s: task %s ran (saw %q) and was not expected", sh.name, k, got[k])
		}
	}
	// No step started before each of its needs had finished.
	var v struct {
		Status string `json:"status"`
		Steps  []struct {
			Name       string    `json:"name"`
			Status     string    `json:"status"`
			StartedAt  time.Time `json:"started_at"`
			FinishedAt time.Time `json:"finished_at"`
		} `json:"steps"`
	}
	if err := json.Unmarshal([]byte(must(t, batonEnv(t, home, env, "show", strconv.FormatInt(id, 10), "-o", "json"), 0).stdout), &v); err != nil {
		t.Fatal(err)
	}
	at := map[string]int{}
	for i, s := range v.Steps {
		at[s.Name] = i
		if want := map[bool]string{false: "succeeded", true: "skipped"}[slices.Contains(sh.skipped, s.Name)]; s.Status != want {
			t.Errorf("%s: step %s %s, want %s", sh.name, s.Name, s.Status, want)
		}
	}
	for _, s := range sh.steps {
		for n := range strings.SplitSeq(s.needs, ",") {
			if n = strings.TrimSpace(n); n == "" {
				continue
			}
			if me, up := v.Steps[at[s.name]], v.Steps[at[n]]; me.Status != "skipped" && me.StartedAt.Before(up.FinishedAt) {
				t.Errorf("%s: step %s started at %s, before %s finished at %s", sh.name, s.name, me.StartedAt, n, up.FinishedAt)
			}
		}
	}
}

// A run killed with SIGKILL in the middle of a nested foreach resumes
// with every inner task that completed reused, none run twice, and the
// joins at each level complete.
func TestSIGKILLInNestedForeach(t *testing.T) {
	t.Parallel()
	for storeName, envOf := range shapeStores(t) {
		t.Run(storeName, func(t *testing.T) {
			t.Parallel()
			env := envOf(t)
			home, dir := t.TempDir(), t.TempDir()
			ledger := filepath.Join(dir, "ledger")
			file := writeFile(t, dir, "nest.yaml", fmt.Sprintf(`name: nestkill
params:
  ledger: {default: %q}
steps:
  - name: start
    run: echo '[0,1,2,3]' > "$BATON_OUTPUT_DIR/xs.json"
  - name: outer
    needs: [start]
    foreach: xs.json
    run: echo '[0,1,2,3,4,5,6,7,8,9]' > "$BATON_OUTPUT_DIR/ys.json"
  - name: inner
    needs: [outer]
    foreach: outer/ys.json
    run: |
      sleep 0.05
      echo "$BATON_FOREACH_PATH" > "$BATON_OUTPUT_DIR/out"
      echo "$BATON_FOREACH_PATH $BATON_RUN_ID" >> "$BATON_PARAM_LEDGER"
  - name: per-outer
    needs: [inner]
    run: cat "$BATON_INPUT_DIR"/inner/*/out | wc -l | tr -d ' ' > "$BATON_OUTPUT_DIR/count"
  - name: total
    needs: [per-outer]
    join: true
    run: cat "$BATON_INPUT_DIR"/per-outer/*/count | awk '{s+=$1} END {print s}' > "$BATON_OUTPUT_DIR/total"
`, ledger))
			cmd := exec.Command(bin, "run", file, "--workers", "3")
			cmd.Env = append(append(os.Environ(), "BATON_HOME="+home), env...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			doneIn := func(run int64) map[string]bool {
				done := map[string]bool{}
				r := batonEnv(t, home, env, "show", strconv.FormatInt(run, 10), "-o", "json", "--tasks")
				var v struct {
					Steps []struct {
						Name  string `json:"name"`
						Tasks []struct {
							Path       []int  `json:"path"`
							Status     string `json:"status"`
							Reused     bool   `json:"reused"`
							ReusedFrom string `json:"reused_from"`
						} `json:"tasks"`
					} `json:"steps"`
				}
				if r.code != 0 || json.Unmarshal([]byte(r.stdout), &v) != nil {
					return done
				}
				for _, s := range v.Steps {
					for _, tk := range s.Tasks {
						if s.Name == "inner" && tk.Status == "succeeded" && len(tk.Path) == 2 {
							p := fmt.Sprintf("%d/%d", tk.Path[0], tk.Path[1])
							done[p] = !tk.Reused
							if tk.Reused && tk.ReusedFrom != "1/inner/"+p {
								t.Errorf("task %d/inner/%s reused from %q, want 1/inner/%s", run, p, tk.ReusedFrom, p)
							}
						}
					}
				}
				return done
			}
			testwait.Until(failFirst{t, func() { cmd.Process.Kill() }}, 60*time.Second, func() (bool, string) {
				select {
				case err := <-exited:
					t.Fatalf("baton exited before the kill: %v\n%s", err, stderr.String())
				default:
				}
				n := len(doneIn(1))
				return n >= 12, fmt.Sprintf("%d inner tasks done", n)
			}, "12 inner tasks to be done before the kill")
			cmd.Process.Signal(syscall.SIGKILL)
			<-exited
			before := doneIn(1)
			if len(before) >= 40 {
				t.Fatalf("every inner task was done before the kill: nothing to resume")
			}
			r := must(t, batonEnv(t, home, env, "resume", "1"), 0)
			if !strings.Contains(r.stdout, "run 2 succeeded") {
				t.Fatalf("resume: %s %s", r.stdout, r.stderr)
			}
			if got := strings.TrimSpace(must(t, batonEnv(t, home, env, "artifact", "get", "2/total/total"), 0).stdout); got != "40" {
				t.Fatalf("total %s, want 40", got)
			}
			after := doneIn(2)
			reused := 0
			for p, ranHere := range after {
				if !ranHere {
					reused++
					if !before[p] {
						t.Fatalf("task %s reused but was not done in run 1", p)
					}
				}
			}
			if len(after) != 40 || reused != len(before) {
				t.Fatalf("run 2: %d inner tasks, %d reused; run 1 had done %d", len(after), reused, len(before))
			}
			b, _ := os.ReadFile(ledger)
			for line := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
				p, run, _ := strings.Cut(line, " ")
				if run == "2" && before[p] {
					t.Fatalf("inner task %s completed in run 1 and ran again in run 2", p)
				}
			}
		})
	}
}

// A run killed with SIGKILL in the middle of a loop resumes with every
// iteration that completed reused, none run twice, and the loop ends where
// it would have.
func TestSIGKILLInLoop(t *testing.T) {
	t.Parallel()
	for storeName, envOf := range shapeStores(t) {
		t.Run(storeName, func(t *testing.T) {
			t.Parallel()
			env := envOf(t)
			home, dir := t.TempDir(), t.TempDir()
			ledger := filepath.Join(dir, "ledger")
			file := writeFile(t, dir, "loop.yaml", fmt.Sprintf(`name: loopkill
params:
  ledger: {default: %q}
steps:
  - name: start
    run: echo 0 > "$BATON_OUTPUT_DIR/n"
  - name: step
    needs: [start]
    run: |
      sleep 0.2
      prev="$BATON_INPUT_DIR/step/n"; [ -f "$prev" ] || prev="$BATON_INPUT_DIR/start/n"
      echo $(( $(cat "$prev") + 1 )) > "$BATON_OUTPUT_DIR/n"
      echo "$BATON_ITERATION $BATON_RUN_ID" >> "$BATON_PARAM_LEDGER"
      [ "$BATON_ITERATION" -lt 12 ] && echo again > "$BATON_OUTPUT_DIR/case" || echo done > "$BATON_OUTPUT_DIR/case"
    switch: {cases: {again: step, done: end}, max_iterations: 20}
  - name: end
    needs: [step]
    run: cp "$BATON_INPUT_DIR/step/n" "$BATON_OUTPUT_DIR/n"
`, ledger))
			cmd := exec.Command(bin, "run", file)
			cmd.Env = append(append(os.Environ(), "BATON_HOME="+home), env...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			iterations := func(run int64) (done, reused int) {
				r := batonEnv(t, home, env, "show", strconv.FormatInt(run, 10), "-o", "json", "--tasks")
				var v struct {
					Steps []struct {
						Name  string `json:"name"`
						Tasks []struct {
							Status string `json:"status"`
							Reused bool   `json:"reused"`
						} `json:"tasks"`
					} `json:"steps"`
				}
				if r.code != 0 || json.Unmarshal([]byte(r.stdout), &v) != nil {
					return 0, 0
				}
				for _, s := range v.Steps {
					for _, tk := range s.Tasks {
						if s.Name == "step" && tk.Status == "succeeded" {
							done++
							if tk.Reused {
								reused++
							}
						}
					}
				}
				return done, reused
			}
			testwait.Until(failFirst{t, func() { cmd.Process.Kill() }}, 60*time.Second, func() (bool, string) {
				select {
				case err := <-exited:
					t.Fatalf("baton exited before the kill: %v\n%s", err, stderr.String())
				default:
				}
				n, _ := iterations(1)
				return n >= 3, fmt.Sprintf("%d iterations done", n)
			}, "3 iterations to be done before the kill")
			cmd.Process.Signal(syscall.SIGKILL)
			<-exited
			before, _ := iterations(1)
			if before >= 12 {
				t.Fatal("the loop ended before the kill: nothing to resume")
			}
			r := must(t, batonEnv(t, home, env, "resume", "1"), 0)
			if !strings.Contains(r.stdout, "run 2 succeeded") {
				t.Fatalf("resume: %s %s", r.stdout, r.stderr)
			}
			if got := strings.TrimSpace(must(t, batonEnv(t, home, env, "artifact", "get", "2/end/n"), 0).stdout); got != "12" {
				t.Fatalf("end saw %s, want 12", got)
			}
			if got := strings.TrimSpace(must(t, batonEnv(t, home, env, "artifact", "get", "2/step/4/n"), 0).stdout); got != "5" {
				t.Fatalf("iteration 5 of step (2/step/4/n) holds %s, want 5", got)
			}
			after, reused := iterations(2)
			if after != 12 || reused != before {
				t.Fatalf("run 2: %d iterations, %d reused; run 1 had done %d", after, reused, before)
			}
			b, _ := os.ReadFile(ledger)
			for line := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
				it, run, _ := strings.Cut(line, " ")
				if n, _ := strconv.Atoi(it); run == "2" && n <= before {
					t.Fatalf("iteration %d completed in run 1 and ran again in run 2", n)
				}
			}
		})
	}
}

// A run killed with SIGKILL while its subflow's child run works resumes
// the child (reusing the child's completed tasks) rather than starting
// another, and nothing that completed runs twice.
func TestSIGKILLInSubflow(t *testing.T) {
	t.Parallel()
	for storeName, envOf := range shapeStores(t) {
		t.Run(storeName, func(t *testing.T) {
			t.Parallel()
			env := envOf(t)
			home, dir := t.TempDir(), t.TempDir()
			ledger := filepath.Join(dir, "ledger")
			childFile := writeFile(t, dir, "child.yaml", fmt.Sprintf(`name: kid
params:
  ledger: {default: %q}
  who: {default: nobody}
steps:
  - name: work
    foreach: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    run: |
      sleep 0.2
      echo "$BATON_PARAM_WHO $BATON_FOREACH_INDEX" > "$BATON_OUTPUT_DIR/out"
      echo "$BATON_FOREACH_INDEX $BATON_RUN_ID" >> "$BATON_PARAM_LEDGER"
  - name: sum
    needs: [work]
    run: cat "$BATON_INPUT_DIR"/work/*/out | wc -l | tr -d ' ' > "$BATON_OUTPUT_DIR/n"
`, ledger))
			must(t, batonEnv(t, home, env, "flow", "apply", childFile), 0)
			parentFile := writeFile(t, dir, "parent.yaml", `name: mom
steps:
  - name: start
    run: echo alice > "$BATON_OUTPUT_DIR/who"
  - name: call
    needs: [start]
    subflow: {flow: kid, params: {who: "${input.start/who}"}}
  - name: end
    needs: [call]
    run: cat "$BATON_INPUT_DIR/call/sum/n" "$BATON_INPUT_DIR/call/work/3/out" > "$BATON_OUTPUT_DIR/got"
`)
			cmd := exec.Command(bin, "run", parentFile, "--workers", "2")
			cmd.Env = append(append(os.Environ(), "BATON_HOME="+home), env...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			testwait.Until(failFirst{t, func() { cmd.Process.Kill() }}, 60*time.Second, func() (bool, string) {
				select {
				case err := <-exited:
					t.Fatalf("baton exited before the kill: %v\n%s", err, stderr.String())
				default:
				}
				b, _ := os.ReadFile(ledger)
				n := strings.Count(string(b), "\n")
				return n >= 3, fmt.Sprintf("%d child tasks done", n)
			}, "3 child tasks to be done before the kill")
			cmd.Process.Signal(syscall.SIGKILL)
			<-exited
			// What the child completed before the kill, by the store.
			var kids []struct {
				ID     int64  `json:"id"`
				Flow   string `json:"flow"`
				Status string `json:"status"`
			}
			json.Unmarshal([]byte(must(t, batonEnv(t, home, env, "runs", "--flow", "kid", "-o", "json"), 0).stdout), &kids)
			if len(kids) != 1 {
				t.Fatalf("child runs before the resume: %+v", kids)
			}
			first := kids[0].ID
			var v struct {
				Steps []struct {
					Name  string `json:"name"`
					Tasks []struct {
						Index  int    `json:"index"`
						Status string `json:"status"`
					} `json:"tasks"`
				} `json:"steps"`
			}
			json.Unmarshal([]byte(must(t, batonEnv(t, home, env, "show", strconv.FormatInt(first, 10), "-o", "json", "--tasks"), 0).stdout), &v)
			done := map[string]bool{}
			for _, s := range v.Steps {
				for _, tk := range s.Tasks {
					if s.Name == "work" && tk.Status == "succeeded" {
						done[strconv.Itoa(tk.Index)] = true
					}
				}
			}
			r := must(t, batonEnv(t, home, env, "resume", "1"), 0)
			if !strings.Contains(r.stdout, "succeeded") {
				t.Fatalf("resume: %s %s", r.stdout, r.stderr)
			}
			var runs []struct {
				ID     int64  `json:"id"`
				Flow   string `json:"flow"`
				Status string `json:"status"`
			}
			json.Unmarshal([]byte(must(t, batonEnv(t, home, env, "runs", "-o", "json"), 0).stdout), &runs)
			var parentID int64
			kidRuns := 0
			for _, x := range runs {
				if x.Flow == "mom" && x.Status == "succeeded" {
					parentID = x.ID
				}
				if x.Flow == "kid" {
					kidRuns++
				}
			}
			if parentID == 0 || kidRuns != 2 {
				t.Fatalf("runs after the resume (want the parent succeeded and the child resumed once): %+v", runs)
			}
			got := must(t, batonEnv(t, home, env, "artifact", "get", strconv.FormatInt(parentID, 10)+"/end/got"), 0).stdout
			if got != "10\nalice 3\n" {
				t.Fatalf("end got %q", got)
			}
			// The child's OpenLineage events name the run that started it.
			ol := must(t, batonEnv(t, home, env, "lineage", "run", strconv.FormatInt(first, 10), "--openlineage"), 0).stdout
			if !strings.Contains(ol, `"parent"`) || !strings.Contains(ol, `"name": "mom"`) {
				t.Fatalf("the child's OpenLineage events have no parent facet naming mom:\n%s", ol)
			}
			for _, line := range strings.Split(strings.TrimSpace(func() string { b, _ := os.ReadFile(ledger); return string(b) }()), "\n") {
				idx, run, _ := strings.Cut(line, " ")
				if run != strconv.FormatInt(first, 10) && done[idx] {
					t.Fatalf("child task %s completed in run %d and ran again in run %s", idx, first, run)
				}
			}
		})
	}
}

// A step whose tasks no worker of this process fits says so at once, rather
// than the run seeming to hang.
func TestUnplaceableTasksSaySo(t *testing.T) {
	t.Parallel()
	pgtest.Require(t)
	env := []string{"BATON_DB=" + pgtest.DSN(t)}
	home, dir := t.TempDir(), t.TempDir()
	file := writeFile(t, dir, "big.yaml", `name: big
steps:
  - name: huge
    resources: {cpu: 1000}
    labels: {accel: h100}
    run: "true"
`)
	cmd := exec.Command(bin, "run", file)
	cmd.Env = append(append(os.Environ(), "BATON_HOME="+home), env...)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	testwait.Until(t, 30*time.Second, func() (bool, string) {
		s := out.String()
		return strings.Contains(s, "step huge: each task needs cpu 1000") && strings.Contains(s, "labels {accel=h100}") &&
			strings.Contains(s, "the tasks wait for a baton worker that fits"), s
	}, "a note on why the step's tasks wait")
}

// syncBuffer is a bytes.Buffer safe for a process's two streams and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
