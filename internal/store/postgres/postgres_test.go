package postgres_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/baton-ml/baton/internal/store"
	"github.com/baton-ml/baton/internal/store/pgtest"
	"github.com/baton-ml/baton/internal/store/postgres"
	"github.com/baton-ml/baton/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	pgtest.Require(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := postgres.Open(context.Background(), pgtest.DSN(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestUnreachable(t *testing.T) {
	t.Parallel()
	_, err := postgres.Open(context.Background(), "postgres://postgres@127.0.0.1:1/x?connect_timeout=1")
	if !errors.Is(err, postgres.ErrUnreachable) || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("open an unreachable PostgreSQL: %v", err)
	}
}

func TestConcurrentOpenMigratesOnce(t *testing.T) {
	t.Parallel()
	dsn := pgtest.DSN(t)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			s, err := postgres.Open(context.Background(), dsn)
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent open: %v", err)
		}
	}
}
