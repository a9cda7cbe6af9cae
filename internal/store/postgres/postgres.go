// Package postgres is baton's store driver for PostgreSQL (and what speaks
// its protocol), through jackc/pgx/v5: the store many baton servers and
// workers share. PostgreSQL is the distributed engine: row locks, SKIP
// LOCKED and unique constraints, no consensus of baton's own.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/baton-ml/baton/internal/fault"
	"github.com/baton-ml/baton/internal/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

type dialect struct{}

func (dialect) InsertTaskRange() string {
	return `INSERT INTO tasks (run_id, step, idx, status, ready_at)
		SELECT $1, $2, i + CAST($5 AS INTEGER), 'pending', $4 FROM generate_series(0, CAST($3 AS INTEGER) - 1) AS i`
}

func (dialect) RowLock() string    { return " FOR SHARE" }
func (dialect) SkipLocked() string { return " FOR UPDATE SKIP LOCKED" }
func (dialect) NotifySQL() string  { return "SELECT pg_notify('baton', $1)" }

func (dialect) Lock(key string) string {
	h := fnv.New64a()
	h.Write([]byte(key))
	return fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", int64(h.Sum64()))
}

// ErrUnreachable is returned (wrapped) when the server does not answer.
var ErrUnreachable = fault.New(fault.Unavailable, "PostgreSQL is unreachable")

// Open connects to the database dsn names (postgres://...), migrates it,
// and returns the store.
func Open(ctx context.Context, dsn string) (*sqlstore.Store, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres DSN: %w", err)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	db.SetConnMaxIdleTime(5 * time.Minute)
	pctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout+time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		var ne net.Error
		if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("%w at %s:%d: %v (is it running? check --db)", ErrUnreachable, cfg.Host, cfg.Port, err)
		}
		return nil, fmt.Errorf("connect to PostgreSQL at %s:%d: %w", cfg.Host, cfg.Port, err)
	}
	ms, err := sqlstore.LoadMigrations(migrations, "migrations")
	if err != nil {
		db.Close()
		return nil, err
	}
	// One migrator at a time across every process starting now.
	if err := sqlstore.Migrate(ctx, db, ms, dialect{}.Lock("baton-migrations")); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate: %w", err)
	}
	s, err := sqlstore.New(ctx, db, db, dialect{}, listener(*cfg), db.Close)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// DB returns a database handle for dsn without migrating (for tests and
// tools that create schemas).
func DB(dsn string) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	return stdlib.OpenDB(*cfg), nil
}

// listener streams the notes of channel baton over a connection of its
// own, reconnecting with backoff when the database goes away (polling
// covers the gap).
func listener(cfg pgx.ConnConfig) sqlstore.Listener {
	return func(ctx context.Context) (<-chan string, error) {
		out := make(chan string, 64)
		go func() {
			defer close(out)
			backoff := 100 * time.Millisecond
			for ctx.Err() == nil {
				conn, err := pgx.ConnectConfig(ctx, &cfg)
				if err == nil {
					if _, err = conn.Exec(ctx, "LISTEN baton"); err == nil {
						backoff = 100 * time.Millisecond
						for {
							n, werr := conn.WaitForNotification(ctx)
							if werr != nil {
								err = werr
								break
							}
							select {
							case out <- n.Payload:
							default:
							}
						}
					}
					conn.Close(context.Background())
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(backoff):
				}
				backoff = min(backoff*2, 5*time.Second)
			}
		}()
		return out, nil
	}
}

// Leadership is one process's claim to lead: the holder of a session-level
// advisory lock on a dedicated connection. When the process dies, the
// connection closes and the lock is released for another to take.
type Leadership struct {
	cfg pgx.ConnConfig
	key int64
}

// NewLeadership prepares a campaign for the lock named name on the
// database dsn names.
func NewLeadership(dsn, name string) (*Leadership, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	h := fnv.New64a()
	h.Write([]byte("baton-leader:" + name))
	return &Leadership{cfg: *cfg, key: int64(h.Sum64())}, nil
}

// Campaign blocks until this process leads (or ctx ends), and returns a
// channel closed when it stops leading: the connection failed, or ctx ended.
func (l *Leadership) Campaign(ctx context.Context) (<-chan struct{}, error) {
	for {
		conn, err := pgx.ConnectConfig(ctx, &l.cfg)
		if err == nil {
			var got bool
			if err = conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", l.key).Scan(&got); err == nil && got {
				lost := make(chan struct{})
				go l.hold(ctx, conn, lost)
				return lost, nil
			}
			conn.Close(context.Background())
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// hold keeps the lock's connection alive and says when it is gone.
func (l *Leadership) hold(ctx context.Context, conn *pgx.Conn, lost chan struct{}) {
	defer close(lost)
	defer conn.Close(context.Background())
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			err := conn.Ping(pctx)
			cancel()
			if err != nil {
				return
			}
		}
	}
}
