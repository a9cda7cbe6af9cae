package server

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/baton-ml/baton/internal/artifact"
	"github.com/baton-ml/baton/internal/home"
	"github.com/baton-ml/baton/internal/store/sqlite"
)

// A part that cannot start (NATS ingest with no feature source to
// consume) makes Run return its error, after stopping the parts started
// before it: the engine made by New is closed (its slot folders are gone).
func TestRunStopsTheStartedWhenAPartFails(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "baton.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	blobs, err := artifact.Open(ctx, "file://"+filepath.Join(dir, "artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	defer blobs.Close()
	hm := home.Home{Dir: dir, DB: "sqlite://" + filepath.Join(dir, "baton.db"), Artifacts: "file://" + filepath.Join(dir, "artifacts")}
	s, err := New(st, blobs, hm, Options{Addr: "127.0.0.1:0", NATS: "nats://127.0.0.1:4222", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	slots := filepath.Join(hm.TempDir(), "slots")
	if es, err := os.ReadDir(slots); err != nil || len(es) != 1 {
		t.Fatalf("slot folders of the new engine: %v %v", es, err)
	}
	if err := s.Run(ctx); err == nil {
		t.Fatal("Run started with NATS ingest of no source")
	}
	if s.Leading() {
		t.Fatal("a server that failed to start leads")
	}
	if es, err := os.ReadDir(slots); err != nil || len(es) != 0 {
		t.Fatalf("slot folders after the failed start: %v %v (the engine was not closed)", es, err)
	}
}
