package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/store/sqlite"
	"github.com/baton-ml/baton/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "baton.db"), sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestReopenKeepsData(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "baton.db")
	ctx := context.Background()
	s, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.PutFlowVersion(ctx, store.FlowVersion{Flow: "a", Digest: "d", Spec: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// A second open must not re-run migrations or lose data.
	s, err = sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, err := s.FlowVersion(ctx, "a", 0); err != nil || v.Version != 1 {
		t.Fatalf("after reopen: %+v %v", v, err)
	}
}

func TestBadPath(t *testing.T) {
	t.Parallel()
	if _, err := sqlite.Open(context.Background(), "/tmp/what?.db", sqlite.Options{}); err == nil {
		t.Fatal("a path with '?' was accepted")
	}
}
