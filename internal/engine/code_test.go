package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/baton-ml/baton/internal/artifact"
	"github.com/baton-ml/baton/internal/engine"
	"github.com/baton-ml/baton/internal/flow"
	"github.com/baton-ml/baton/internal/snapshot"
	"github.com/baton-ml/baton/internal/store"
)

// TestTasksRunInTheCodeSnapshot: a version with a code snapshot runs its
// shell tasks in the snapshot, extracted under Options.CodeDir; one
// without runs them in its folder, as before snapshots; one whose
// snapshot is gone from the store does not run.
func TestTasksRunInTheCodeSnapshot(t *testing.T) {
	t.Parallel()
	e := newEnv(t, engine.Options{})
	ctx := context.Background()
	folder, packed := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(folder, "who.txt"), []byte("folder"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(packed, "who.txt"), []byte("snapshot"), 0o644); err != nil {
		t.Fatal(err)
	}
	var tar bytes.Buffer
	p, err := snapshot.Pack(packed, &tar, snapshot.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.blobs.PutBytes(ctx, tar.Bytes()); err != nil {
		t.Fatal(err)
	}
	f := &flow.Flow{Name: "code", Steps: []flow.Step{{Name: "a",
		Run: `cat who.txt > "$BATON_OUTPUT_DIR/who.txt"; pwd > "$BATON_OUTPUT_DIR/pwd.txt"`}}}
	spec, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	run := func(v store.FlowVersion) (store.Run, error) {
		t.Helper()
		v.Flow, v.Spec, v.Dir = f.Name, spec, folder
		v, _, err := e.st.PutFlowVersion(ctx, v)
		if err != nil {
			t.Fatal(err)
		}
		r, err := e.st.CreateRun(ctx, store.NewRun{Flow: f.Name, FlowVersion: v.Version, Trigger: store.TriggerManual})
		if err != nil {
			t.Fatal(err)
		}
		return e.eng.Execute(ctx, r.ID, engine.ExecOptions{})
	}
	r, err := run(store.FlowVersion{Digest: "old"})
	if err != nil || r.Status != store.RunSucceeded {
		t.Fatalf("a version without a snapshot: %v %s %s", err, r.Status, r.Error)
	}
	if got := e.artifact(t, store.TaskKey{RunID: r.ID, Step: "a"}, "who.txt"); got != "folder" {
		t.Fatalf("a version without a snapshot ran in %q; want its folder", got)
	}
	r, err = run(store.FlowVersion{Digest: "new", Code: p.Digest, CodeSize: p.Size})
	if err != nil || r.Status != store.RunSucceeded {
		t.Fatalf("a version with a snapshot: %v %s %s", err, r.Status, r.Error)
	}
	k := store.TaskKey{RunID: r.ID, Step: "a"}
	if got := e.artifact(t, k, "who.txt"); got != "snapshot" {
		t.Fatalf("a version with a snapshot ran with who.txt %q; want the snapshot's", got)
	}
	if got := strings.TrimSpace(e.artifact(t, k, "pwd.txt")); !strings.HasSuffix(got, filepath.Join("run-"+strconv.FormatInt(r.ID, 10), "code")) {
		t.Fatalf("ran in %s; want the run's copy of the snapshot", got)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "tmp", "code", p.Digest)); err != nil {
		t.Fatalf("the snapshot was not extracted once for the machine: %v", err)
	}
	_, err = run(store.FlowVersion{Digest: "lost", Code: strings.Repeat("0", 64), CodeSize: 10})
	if !errors.Is(err, artifact.ErrNotFound) {
		t.Fatalf("a version whose snapshot is lost: %v; want ErrNotFound", err)
	}
}
