// Package sqlite is baton's embedded store driver: one SQLite file in WAL
// mode through modernc.org/sqlite (no cgo).
//
// Durability: synchronous=NORMAL in WAL mode keeps every committed
// transaction across a crash of the process (SIGKILL included); only a power
// loss or kernel crash can lose the last few. Set Options.Sync to get FULL.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/baton-ml/baton/internal/store/sqlstore"

	_ "modernc.org/sqlite" // the database/sql driver "sqlite"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Options tune Open.
type Options struct {
	// Sync selects synchronous=FULL: fsync on every commit.
	Sync bool
}

type dialect struct{}

func (dialect) RowLock() string    { return "" }
func (dialect) Lock(string) string { return "" }
func (dialect) SkipLocked() string { return "" }
func (dialect) NotifySQL() string  { return "" }

func (dialect) InsertTaskRange() string {
	return `WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < $3)
		INSERT INTO tasks (run_id, step, idx, status, ready_at)
		SELECT $1, $2, i + $5, 'pending', $4 FROM seq`
}

// Open opens (creating if needed) the database at path and migrates it.
func Open(ctx context.Context, path string, opt Options) (*sqlstore.Store, error) {
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("sqlite path %q: must not contain '?' or '#'", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create folder for %s: %w", path, err)
	}
	sync := "NORMAL"
	if opt.Sync {
		sync = "FULL"
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(30000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous("+sync+")")
	q.Add("_pragma", "foreign_keys(1)")
	// Readers: a pool of connections that never write.
	r, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	r.SetMaxOpenConns(4)
	// Writers: one connection, and every transaction takes the write lock
	// up front (BEGIN IMMEDIATE), so two processes never deadlock upgrading
	// a read transaction.
	q.Add("_txlock", "immediate")
	w, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	closeAll := func() { w.Close(); r.Close() }
	if err := w.PingContext(ctx); err != nil {
		closeAll()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	ms, err := sqlstore.LoadMigrations(migrations, "migrations")
	if err != nil {
		closeAll()
		return nil, err
	}
	if err := sqlstore.Migrate(ctx, w, ms, ""); err != nil {
		closeAll()
		return nil, fmt.Errorf("migrate %s: %w", path, err)
	}
	s, err := sqlstore.New(ctx, w, r, dialect{}, nil, w.Close, r.Close)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return s, nil
}
