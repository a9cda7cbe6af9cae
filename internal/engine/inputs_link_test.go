package engine_test

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/baton-ml/baton/internal/engine"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/store"
)

// tree lists what is under dir, folders and links included, with each
// file's content and each link's target: two listings are equal only if
// nothing was added, removed or changed.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.IsDir():
			out[rel] = "folder"
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "link to " + target
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = "file " + string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// lookalike makes dir/prefix a folder of files named as the inputs the
// join of linkFlow gets, and returns what dir holds.
func lookalike(t *testing.T, dir, prefix string) map[string]string {
	t.Helper()
	for _, name := range []string{"work/0/out.txt", "work/1/out.txt", "one/out.txt", "one/sub/deep.txt"} {
		p := filepath.Join(dir, prefix, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("keep me"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return tree(t, dir)
}

// linkFlow has a join over needs: a foreach step (work, 2 tasks) and a
// plain step with a nested output (one). The join reads its inputs, then
// runs swap.
func linkFlow(outside, swap string, needs []string) *flow.Flow {
	read := ""
	for _, n := range needs {
		read += ` "$BATON_INPUT_DIR"/` + map[string]string{"work": "work/*/out.txt", "one": "one/out.txt"}[n]
	}
	return &flow.Flow{Name: "swap", Steps: []flow.Step{
		{Name: "work", Foreach: &flow.Foreach{Items: []json.RawMessage{str("a"), str("b")}},
			Run: `printf '%s' "$BATON_FOREACH_ITEM" > "$BATON_OUTPUT_DIR/out.txt"`},
		{Name: "one", Run: `mkdir "$BATON_OUTPUT_DIR/sub"; echo one > "$BATON_OUTPUT_DIR/out.txt"; echo deep > "$BATON_OUTPUT_DIR/sub/deep.txt"`},
		{Name: "join", Needs: needs, Env: map[string]string{"OUTSIDE": outside},
			Run: "set -e; cat" + read + " > /dev/null\n" + swap},
	}}
}

func scratchLeft(e *env, id int64) []string {
	left, _ := filepath.Glob(filepath.Join(e.dir, "tmp", "slots", "*", "run-"+strconv.FormatInt(id, 10)))
	return left
}

// A task that puts a link in place of its input folder, of the folder
// above it, or of an upstream step's folder in it, to a folder outside the
// scratch holding files of the inputs' names, loses none of them when its
// step's inputs are removed: removal walks from the run's scratch folder
// and never follows a link.
func TestInputRemovalStaysInScratch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		prefix string // where, below the outside folder, the lookalike files sit
		needs  []string
		swap   string
	}{
		{"input folder", "", []string{"work"},
			`d="$BATON_INPUT_DIR"; mv "$d" "$d.moved"; ln -s "$OUTSIDE" "$d"`},
		{"input folder, two upstream steps", "", []string{"work", "one"},
			`d="$BATON_INPUT_DIR"; mv "$d" "$d.moved"; ln -s "$OUTSIDE" "$d"`},
		{"folder above it", "join", []string{"work", "one"},
			`p=$(dirname "$BATON_INPUT_DIR"); mv "$p" "$p.moved"; ln -s "$OUTSIDE" "$p"`},
		{"foreach step's folder", "", []string{"work", "one"},
			`d="$BATON_INPUT_DIR/work"; mv "$d" "$d.moved"; ln -s "$OUTSIDE/work" "$d"`},
		{"plain step's folder", "", []string{"work", "one"},
			`d="$BATON_INPUT_DIR/one"; mv "$d" "$d.moved"; ln -s "$OUTSIDE/one" "$d"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, engine.Options{})
			outside := t.TempDir()
			before := lookalike(t, outside, tc.prefix)
			r := e.run(t, linkFlow(outside, tc.swap, tc.needs), nil, engine.ExecOptions{})
			if r.Status != store.RunSucceeded {
				t.Fatalf("run %s: %s (join: %+v)", r.Status, r.Error, e.tasks(t, r.ID, "join"))
			}
			after := tree(t, outside)
			for p, was := range before {
				if after[p] != was {
					t.Errorf("outside the scratch, %s was %q and is now %q", p, was, after[p])
				}
			}
			for p, is := range after {
				if _, ok := before[p]; !ok {
					t.Errorf("outside the scratch, %s appeared: %q", p, is)
				}
			}
			if left := scratchLeft(e, r.ID); len(left) != 0 {
				t.Errorf("run scratch folder left behind: %v", left)
			}
		})
	}
}

// A task that puts a link where a later step's input folder is to be made
// does not have that step's inputs written through it: the later step
// fails, naming the link, and the folder the link points at is unchanged.
func TestInputFillStaysInScratch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, engine.Options{})
	outside := t.TempDir()
	if err := os.Mkdir(filepath.Join(outside, "work"), 0o755); err != nil {
		t.Fatal(err)
	}
	before := tree(t, outside)
	f := &flow.Flow{Name: "early-link", Steps: []flow.Step{
		{Name: "work", Foreach: &flow.Foreach{Items: []json.RawMessage{str("a"), str("b")}},
			Run: `printf '%s' "$BATON_FOREACH_ITEM" > "$BATON_OUTPUT_DIR/out.txt"`},
		{Name: "sneak", Needs: []string{"work"}, Env: map[string]string{"OUTSIDE": outside},
			Run: `ln -s "$OUTSIDE" "$(dirname "$BATON_INPUT_DIR")/join"`},
		{Name: "join", Needs: []string{"work", "sneak"}, Run: `cat "$BATON_INPUT_DIR"/work/*/out.txt`},
	}}
	r := e.run(t, f, nil, engine.ExecOptions{})
	if r.Status != store.RunFailed {
		t.Fatalf("run %s, want failed: the join's input folder is a link", r.Status)
	}
	join := e.tasks(t, r.ID, "join")
	if len(join) != 1 || !strings.Contains(join[0].Error, filepath.Join("in", "join")) || !strings.Contains(join[0].Error, "link") {
		t.Errorf("join task: %+v, want an error naming in/join and the link in its place", join)
	}
	if len(join) == 1 {
		t.Logf("the join's error: %s", join[0].Error)
	}
	after := tree(t, outside)
	if len(after) != len(before) {
		t.Errorf("outside the scratch: %v, was %v", after, before)
	}
	for p, was := range before {
		if after[p] != was {
			t.Errorf("outside the scratch, %s was %q and is now %q", p, was, after[p])
		}
	}
	if left := scratchLeft(e, r.ID); len(left) != 0 {
		t.Errorf("run scratch folder left behind: %v", left)
	}
}
