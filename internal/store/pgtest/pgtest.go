// Package pgtest gives tests a PostgreSQL of their own: a fresh schema in
// the machine's PostgreSQL, dropped when the test ends. Without a
// PostgreSQL the test is skipped, except under CI=true, where it fails.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/baton-ml/baton/internal/store/postgres"
)

// BaseDSN is the database tests use: $BATON_TEST_PG, else the machine's
// PostgreSQL (127.0.0.1:5432, trust auth, database test).
func BaseDSN() string {
	if d := os.Getenv("BATON_TEST_PG"); d != "" {
		return d
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

var (
	reachOnce sync.Once
	reachErr  error
)

// Require skips (or, under CI=true, fails) the test when PostgreSQL does
// not answer.
func Require(t testing.TB) {
	t.Helper()
	reachOnce.Do(func() {
		db, err := postgres.DB(BaseDSN())
		if err != nil {
			reachErr = err
			return
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		reachErr = db.PingContext(ctx)
	})
	if reachErr != nil {
		msg := "PostgreSQL is not reachable at " + BaseDSN() + " (start it as in ../shared/services.md, or set BATON_TEST_PG): " + reachErr.Error()
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// DSN creates a fresh schema and returns a DSN whose connections use it.
// The schema is dropped when the test ends.
func DSN(t testing.TB) string {
	t.Helper()
	Require(t)
	var b [6]byte
	rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	db, err := postgres.DB(BaseDSN())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		db.Close()
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		db.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		db.Close()
	})
	u, err := url.Parse(BaseDSN())
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
