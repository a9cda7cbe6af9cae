package engine_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/baton-ml/baton/internal/engine"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/store"
)

// plant makes the files of names, each holding "keep me", under dir and
// returns what dir holds.
func plant(t *testing.T, dir string, names ...string) map[string]string {
	t.Helper()
	for _, name := range names {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("keep me"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return tree(t, dir)
}

// sameTree fails t unless dir holds what it held before.
func sameTree(t *testing.T, when, dir string, before map[string]string) {
	t.Helper()
	after := tree(t, dir)
	for p, was := range before {
		if after[p] != was {
			t.Errorf("%s, outside the slot %s was %q and is now %q", when, p, was, after[p])
		}
	}
	for p, is := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s, outside the slot %s appeared: %q", when, p, is)
		}
	}
}

// artifacts lists run's artifacts as name: content.
func (e *env) artifacts(t *testing.T, run int64) map[string]string {
	t.Helper()
	arts, err := e.st.Artifacts(context.Background(), store.ArtifactFilter{RunID: run, Index: -1})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, a := range arts {
		b, err := e.blobs.Read(context.Background(), a.Digest)
		if err != nil {
			t.Fatalf("artifact %s of run %d: %v", a.Name, run, err)
		}
		out[a.Step+"/"+a.Name] = string(b)
	}
	return out
}

// noOutsideArtifact fails t if run stored a file of the outside folder.
func noOutsideArtifact(t *testing.T, e *env, run int64) {
	t.Helper()
	for name, content := range e.artifacts(t, run) {
		if content == "keep me" || strings.HasSuffix(name, "secret.txt") || strings.HasSuffix(name, "deep.txt") {
			t.Errorf("run %d stored %s (%q), a file from outside its slot", run, name, content)
		}
	}
}

// A task that puts a link in place of its output folder, or of the slot
// folder above it, to an outside folder holding an out/ with files, has
// none of them stored as its artifacts; the next task in that slot (of
// another run) deletes none of them and runs in a slot of its own again.
func TestSlotFollowsNoLink(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, swap string }{
		{"slot folder", `s=$(dirname "$BATON_OUTPUT_DIR"); mv "$s" "$s.moved"; ln -s "$OUTSIDE" "$s"`},
		{"output folder", `o="$BATON_OUTPUT_DIR"; mv "$o" "$o.moved"; ln -s "$OUTSIDE/out" "$o"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, engine.Options{Workers: 1}) // one slot: the next task is in it
			outside := t.TempDir()
			before := plant(t, outside, "out/secret.txt", "out/sub/deep.txt")
			swap := &flow.Flow{Name: "swap", Steps: []flow.Step{{Name: "swap", Env: map[string]string{"OUTSIDE": outside},
				Run: `echo mine > "$BATON_OUTPUT_DIR/mine.txt"; ` + tc.swap}}}
			r1 := e.run(t, swap, nil, engine.ExecOptions{})
			t.Logf("the swapping run: %s %s", r1.Status, r1.Error)
			if r1.Status != store.RunFailed || !strings.Contains(r1.Error, "link") {
				t.Errorf("the swapping run %s (%q): want failed, naming the link", r1.Status, r1.Error)
			}
			sameTree(t, "after the swapping run", outside, before)
			noOutsideArtifact(t, e, r1.ID)

			after := &flow.Flow{Name: "after", Steps: []flow.Step{{Name: "after",
				Run: `ls -A "$BATON_OUTPUT_DIR" > "$BATON_OUTPUT_DIR/seen.txt"; echo after > "$BATON_OUTPUT_DIR/after.txt"`}}}
			r2 := e.run(t, after, nil, engine.ExecOptions{})
			if r2.Status != store.RunSucceeded {
				t.Fatalf("the next run in the slot: %s %s", r2.Status, r2.Error)
			}
			sameTree(t, "after the next run in the slot", outside, before)
			got := e.artifacts(t, r2.ID)
			want := map[string]string{"after/after.txt": "after\n", "after/seen.txt": "seen.txt\n"}
			if len(got) != len(want) || got["after/after.txt"] != want["after/after.txt"] || got["after/seen.txt"] != want["after/seen.txt"] {
				t.Errorf("the next run's artifacts: %q, want %q (an empty output folder of its own)", got, want)
			}
		})
	}
}

// A link planted above the run's scratch folder (in place of the engine's
// folder of slots and scratch folders) or in place of the scratch folder
// itself, between two steps, is never followed: the outside folder it
// leads to, which holds look-alikes of the run's scratch files and of a
// slot's output files, is unchanged after the run, and none of its files
// was stored.
func TestScratchAnchorFollowsNoLink(t *testing.T) {
	t.Parallel()
	const engineFolder = `m=$(dirname "$(dirname "$BATON_OUTPUT_DIR")"); mv "$m" "$m.moved"; ln -s "$OUTSIDE" "$m"`
	for _, tc := range []struct {
		name string
		// plant is the middle step: shell, or Go when goPlant.
		plant   string
		goPlant bool
		last    bool // a shell step follows it
		want    store.RunStatus
		wantErr string
	}{
		{name: "engine folder, by a shell step", plant: engineFolder, want: store.RunFailed, wantErr: "link"},
		{name: "engine folder, by a shell step, then a shell step", plant: engineFolder, last: true,
			want: store.RunFailed, wantErr: "link"},
		{name: "engine folder, by a Go step, last", goPlant: true, want: store.RunSucceeded},
		{name: "engine folder, by a Go step, then a shell step", goPlant: true, last: true,
			want: store.RunFailed, wantErr: "link"},
		{name: "scratch folder, by a shell step, then a shell step", last: true, want: store.RunFailed, wantErr: "link",
			plant: `d=$(dirname "$(dirname "$BATON_INPUT_DIR")"); mv "$d" "$d.moved"; ln -s "$OUTSIDE/run-$BATON_RUN_ID" "$d"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, engine.Options{Workers: 1})
			outside := t.TempDir()
			f := &flow.Flow{Name: "anchor", Steps: []flow.Step{
				{Name: "first", Run: `echo first > "$BATON_OUTPUT_DIR/out.txt"`},
				{Name: "plant", Needs: []string{"first"}, Run: tc.plant},
			}}
			if tc.last {
				f.Steps = append(f.Steps, flow.Step{Name: "last", Needs: []string{"first", "plant"},
					Run: `cat "$BATON_INPUT_DIR/first/out.txt" > "$BATON_OUTPUT_DIR/out.txt"`})
			}
			f.Steps[1].Env = map[string]string{"OUTSIDE": outside}
			var opt engine.ExecOptions
			if tc.goPlant {
				f.Steps[1].Run = ""
				opt.Funcs = map[string]engine.GoFunc{"plant": func(context.Context, *engine.Task) error {
					mine, err := filepath.Glob(filepath.Join(e.dir, "tmp", "slots", "*"))
					if err != nil || len(mine) != 1 {
						t.Errorf("the engine's folder: %v %v", mine, err)
						return nil
					}
					if err := os.Rename(mine[0], mine[0]+".moved"); err != nil {
						return err
					}
					return os.Symlink(outside, mine[0])
				}}
			}
			r := e.start(t, f, nil)
			runDir := "run-" + strconv.FormatInt(r.ID, 10)
			before := plant(t, outside, "0/out/secret.txt", "0/out/sub/deep.txt",
				runDir+"/in/last/first/out.txt", runDir+"/in/last/sub/deep.txt", runDir+"/params/secret.txt")
			got, err := e.eng.Execute(context.Background(), r.ID, opt)
			if err != nil {
				t.Fatalf("Execute: %v", err)
			}
			t.Logf("the run: %s %s", got.Status, got.Error)
			if got.Status != tc.want || !strings.Contains(got.Error, tc.wantErr) {
				t.Errorf("run %s (%q), want %s naming %q", got.Status, got.Error, tc.want, tc.wantErr)
			}
			sameTree(t, "after the run", outside, before)
			noOutsideArtifact(t, e, r.ID)
		})
	}
}
