package catalog_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/baton-ml/baton/internal/artifact"
	"github.com/baton-ml/baton/internal/catalog"
	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/store/sqlite"
)

func open(t *testing.T) (store.Store, *catalog.Code) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "baton.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := artifact.Open(ctx, filepath.Join(dir, "artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { blobs.Close(); st.Close() })
	return st, &catalog.Code{Blobs: blobs}
}

func folder(t *testing.T, flow, script string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range map[string]string{"f.yaml": flow, "run.sh": script} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const flowYAML = "name: f\nsteps:\n  - {name: a, run: ./run.sh}\n"

func apply(t *testing.T, st store.Store, code *catalog.Code, dir string) catalog.Applied {
	t.Helper()
	p := filepath.Join(dir, "f.yaml")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	out, err := catalog.ApplyCode(context.Background(), st, []catalog.Document{catalog.FileDocument(p, b)}, code)
	if err != nil {
		t.Fatalf("apply %s: %v", dir, err)
	}
	return out[0]
}

// TestVersionIsDefinitionAndFolderContent: the version follows the
// folder's content, not its path, and not the flow file's comments.
func TestVersionIsDefinitionAndFolderContent(t *testing.T) {
	t.Parallel()
	st, code := open(t)
	a := apply(t, st, code, folder(t, flowYAML, "echo 1"))
	if a.Version != 1 || !a.Created || len(a.Code) != 64 || a.CodeSize == 0 {
		t.Fatalf("first apply: %+v", a)
	}
	if b := apply(t, st, code, folder(t, "# a comment\n"+flowYAML, "echo 1")); b.Version != 1 || b.Created || b.Code != a.Code {
		t.Fatalf("the same content elsewhere, the flow file commented: %+v; want version 1", b)
	}
	if c := apply(t, st, code, folder(t, flowYAML, "echo 2")); c.Version != 2 || c.Code == a.Code {
		t.Fatalf("an edited script: %+v; want version 2", c)
	}
	// Without code, as before snapshots: the folder's path is the version.
	dir := folder(t, flowYAML, "echo 1")
	old := apply(t, st, nil, dir)
	if old.Version != 3 || old.Code != "" {
		t.Fatalf("no snapshot: %+v", old)
	}
	if again := apply(t, st, nil, dir); again.Version != 3 || again.Created {
		t.Fatalf("no snapshot, again: %+v", again)
	}
}

// TestFolderChangedBeforeStore: a folder edited between the check and the
// store registers nothing, rather than a version whose snapshot is not
// the one stored.
func TestFolderChangedBeforeStore(t *testing.T) {
	t.Parallel()
	st, code := open(t)
	dir := folder(t, flowYAML, "echo 1")
	p := filepath.Join(dir, "f.yaml")
	parsed, err := catalog.CheckCode(context.Background(), st, []catalog.Document{catalog.FileDocument(p, []byte(flowYAML))}, code)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "run.sh"), []byte("echo changed"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := catalog.Store(context.Background(), st, parsed); err == nil || !strings.Contains(err.Error(), "changed while it was registered") {
		t.Fatalf("Store after the folder changed: %v", err)
	}
	if fs, _ := st.Flows(context.Background()); len(fs) != 0 {
		t.Fatalf("registered %+v", fs)
	}
	if ok, _ := code.Blobs.Exists(context.Background(), parsed[0].Version.Code); ok {
		t.Fatal("a snapshot not the folder's was stored")
	}
}
