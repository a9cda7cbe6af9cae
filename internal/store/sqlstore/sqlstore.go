// Package sqlstore implements store.Store over database/sql. The SQL is
// written once, in the subset SQLite and PostgreSQL share ($n parameters,
// ON CONFLICT, RETURNING); a Dialect supplies the few statements that differ.
// Drivers (store/sqlite, store/postgres) open the databases, run their own
// migrations and hand both to New.
package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/baton-ml/baton/internal/store"
)

// Dialect holds what differs between databases.
type Dialect interface {
	// InsertTaskRange returns a statement inserting tasks idx $5..$5+$3-1 for
	// run $1, step $2, pending, ready at $4.
	InsertTaskRange() string
	// RowLock is appended to a SELECT that reads a row the transaction
	// relies on staying as read (FOR SHARE on PostgreSQL; SQLite's write
	// transactions are already exclusive).
	RowLock() string
	// Lock returns a statement taking a transaction-scoped lock on key, or
	// "" where transactions are serial anyway.
	Lock(key string) string
	// SkipLocked is appended to the SELECT that picks tasks to claim:
	// FOR UPDATE SKIP LOCKED on PostgreSQL.
	SkipLocked() string
	// NotifySQL returns a statement that publishes a note to every
	// listening process when the transaction commits, or "" when notes
	// stay in this process.
	NotifySQL() string
}

// Listener opens a stream of notes published by any process (LISTEN).
type Listener func(ctx context.Context) (<-chan string, error)

// Store is a store.Store over SQL databases.
type Store struct {
	w       *sql.DB // writes (SQLite: one connection, BEGIN IMMEDIATE)
	r       *sql.DB // reads; may be the same pool as w
	dialect Dialect
	now     func() time.Time
	closers []func() error
	// hot holds the statements of the engine's write path, prepared once:
	// parsing them anew for every change cost a third of a commit.
	hot map[string]*sql.Stmt
	// notes: the in-process hub, the notes of open transactions, and the
	// cross-process listener when the database has one.
	hub      *hub
	notesMu  sync.Mutex
	notes    map[*sql.Tx][]string
	listener Listener
	// remoteOnce starts the one database listener of the process.
	remoteOnce sync.Once
	remoteErr  error
}

// New returns a Store writing through w and reading through r; closers
// run on Close. The schema must be migrated.
func New(ctx context.Context, w, r *sql.DB, d Dialect, l Listener, closers ...func() error) (*Store, error) {
	s := &Store{w: w, r: r, dialect: d, now: time.Now, closers: closers, hot: map[string]*sql.Stmt{},
		hub: newHub(), notes: map[*sql.Tx][]string{}, listener: l}
	for _, q := range []string{qFence + d.RowLock(), qUpsertStep, qUpdateTask, qUpsertAttempt, qInsertArtifact, qEndPending,
		d.InsertTaskRange(), qFinishTask} {
		st, err := w.PrepareContext(ctx, q)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("prepare %.40q: %w", q, err)
		}
		s.hot[q] = st
	}
	return s, nil
}

// lock takes the dialect's transaction lock on key.
func (s *Store) lock(ctx context.Context, tx *sql.Tx, key string) error {
	q := s.dialect.Lock(key)
	if q == "" {
		return nil
	}
	if _, err := tx.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("lock %s: %w", key, err)
	}
	return nil
}

// exec runs q in tx, through its prepared statement if it has one.
func (s *Store) exec(ctx context.Context, tx *sql.Tx, q string, args ...any) (sql.Result, error) {
	if st, ok := s.hot[q]; ok {
		return tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, q, args...)
}

// Close closes the databases.
func (s *Store) Close() error {
	var errs []error
	for _, st := range s.hot {
		errs = append(errs, st.Close())
	}
	for i := len(s.closers) - 1; i >= 0; i-- {
		errs = append(errs, s.closers[i]())
	}
	return errors.Join(errs...)
}

const (
	qFence      = `SELECT owner, status FROM runs WHERE id = $1`
	qUpsertStep = `INSERT INTO steps (run_id, name, status, foreach, num_tasks, started_at, finished_at, signal_id, shape)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT (run_id, name) DO UPDATE SET status = excluded.status, foreach = excluded.foreach,
				num_tasks = excluded.num_tasks,
				shape = CASE WHEN excluded.shape <> '' THEN excluded.shape ELSE steps.shape END,
				started_at = CASE WHEN excluded.status = 'running' AND steps.status <> 'running'
					THEN excluded.started_at ELSE steps.started_at END,
				signal_id = CASE WHEN excluded.signal_id <> '' THEN excluded.signal_id ELSE steps.signal_id END,
				finished_at = CASE WHEN excluded.finished_at <> 0 THEN excluded.finished_at ELSE steps.finished_at END`
	qUpdateTask = `UPDATE tasks SET status = $1, attempts = $2,
			started_at = CASE WHEN CAST($3 AS BIGINT) <> 0 THEN CAST($3 AS BIGINT) ELSE started_at END,
			finished_at = CASE WHEN CAST($4 AS BIGINT) <> 0 THEN CAST($4 AS BIGINT) ELSE finished_at END,
			exit_code = COALESCE($5, exit_code), error = $6
			WHERE run_id = $7 AND step = $8 AND idx = $9`
	qUpsertAttempt = `INSERT INTO attempts (run_id, step, idx, attempt, status, started_at,
				finished_at, exit_code, error, stdout_digest, stdout_size, stderr_digest, stderr_size)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
			ON CONFLICT (run_id, step, idx, attempt) DO UPDATE SET status = excluded.status,
				started_at = CASE WHEN excluded.started_at <> 0 THEN excluded.started_at ELSE attempts.started_at END,
				finished_at = excluded.finished_at, exit_code = excluded.exit_code, error = excluded.error,
				stdout_digest = excluded.stdout_digest, stdout_size = excluded.stdout_size,
				stderr_digest = excluded.stderr_digest, stderr_size = excluded.stderr_size`
	qInsertArtifact = `INSERT INTO artifacts (` + artifactCols + `) VALUES ($1, $2, $3, $4, $5, $6, $7)`
	qEndPending     = `UPDATE tasks SET status = $1, finished_at = $2
			WHERE run_id = $3 AND step = $4 AND status = 'pending'`
)

// micros converts a time to the stored form: Unix microseconds, 0 for zero.
func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v)
}

func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	err = fn(tx)
	s.notesMu.Lock()
	notes := s.notes[tx]
	delete(s.notes, tx)
	s.notesMu.Unlock()
	if err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	for _, n := range notes {
		s.hub.publish(n)
	}
	return nil
}

// notify publishes note when tx commits: through the database to every
// process where it can (PostgreSQL NOTIFY), and always in this process.
func (s *Store) notify(ctx context.Context, tx *sql.Tx, note string) error {
	s.notesMu.Lock()
	for _, n := range s.notes[tx] {
		if n == note {
			s.notesMu.Unlock()
			return nil // once per transaction is enough
		}
	}
	s.notes[tx] = append(s.notes[tx], note)
	s.notesMu.Unlock()
	if q := s.dialect.NotifySQL(); q != "" {
		if _, err := tx.ExecContext(ctx, q, note); err != nil {
			return fmt.Errorf("notify %s: %w", note, err)
		}
	}
	return nil
}

// ---- flows

// PutFlowVersion implements store.Store.
func (s *Store) PutFlowVersion(ctx context.Context, v store.FlowVersion) (store.FlowVersion, bool, error) {
	var out store.FlowVersion
	created := false
	err := s.tx(ctx, func(tx *sql.Tx) error {
		// Versions are numbered per flow: one applier at a time.
		if err := s.lock(ctx, tx, "flow:"+v.Flow); err != nil {
			return err
		}
		now := s.now()
		existing, err := scanFlowVersion(tx.QueryRowContext(ctx,
			`SELECT `+flowVersionCols+` FROM flow_versions WHERE flow = $1 AND digest = $2`, v.Flow, v.Digest))
		if err == nil {
			out = existing
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("look up flow %s: %w", v.Flow, err)
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO flows (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`,
			v.Flow, micros(now)); err != nil {
			return fmt.Errorf("insert flow %s: %w", v.Flow, err)
		}
		var next int
		if err := tx.QueryRowContext(ctx,
			`SELECT COALESCE(MAX(version), 0) + 1 FROM flow_versions WHERE flow = $1`, v.Flow).Scan(&next); err != nil {
			return fmt.Errorf("next version of %s: %w", v.Flow, err)
		}
		v.Version = next
		v.CreatedAt = fromMicros(micros(now))
		if err := bumpCatalog(ctx, tx); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO flow_versions (flow, version, digest, spec, source, path, dir, code_digest, code_size, created_at)
			 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			v.Flow, v.Version, v.Digest, string(v.Spec), v.Source, v.Path, v.Dir, v.Code, v.CodeSize, micros(now)); err != nil {
			return fmt.Errorf("insert version %d of %s: %w", v.Version, v.Flow, err)
		}
		out, created = v, true
		return nil
	})
	return out, created, err
}

const flowVersionCols = `flow, version, digest, spec, source, path, dir, code_digest, code_size, created_at`

// scanner is a row to scan: *sql.Row or *sql.Rows.
type scanner interface{ Scan(...any) error }

// querier runs a query: the reader pool or a transaction.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// queryRows runs query on q and returns its rows, each made by scan, in
// the order the query gives them: the one loop of query, scan, append and
// rows.Err that every listing shares. It returns nil when no row matched
// (listings that answer [] say so themselves) and the error unwrapped, for
// the caller to name what it was listing. The rows are closed on return,
// so a transaction may run its next statement at once.
func queryRows[T any](ctx context.Context, q querier, query string, args []any, scan func(scanner) (T, error)) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func scanFlowVersion(row scanner) (store.FlowVersion, error) {
	var v store.FlowVersion
	var spec string
	var created int64
	if err := row.Scan(&v.Flow, &v.Version, &v.Digest, &spec, &v.Source, &v.Path, &v.Dir, &v.Code, &v.CodeSize, &created); err != nil {
		return v, err
	}
	v.Spec = json.RawMessage(spec)
	v.CreatedAt = fromMicros(created)
	return v, nil
}

// FlowVersion implements store.Store.
func (s *Store) FlowVersion(ctx context.Context, flow string, version int) (store.FlowVersion, error) {
	var row *sql.Row
	if version == 0 {
		row = s.r.QueryRowContext(ctx, `SELECT `+flowVersionCols+` FROM flow_versions
			WHERE flow = $1 ORDER BY version DESC LIMIT 1`, flow)
	} else {
		row = s.r.QueryRowContext(ctx, `SELECT `+flowVersionCols+` FROM flow_versions
			WHERE flow = $1 AND version = $2`, flow, version)
	}
	v, err := scanFlowVersion(row)
	if errors.Is(err, sql.ErrNoRows) {
		if version == 0 {
			return v, fmt.Errorf("flow %q: %w (apply it with `baton flow apply FILE`)", flow, store.ErrNotFound)
		}
		return v, fmt.Errorf("flow %q version %d: %w", flow, version, store.ErrNotFound)
	}
	if err != nil {
		return v, fmt.Errorf("read flow %s: %w", flow, err)
	}
	return v, nil
}

// FlowVersions implements store.Store.
func (s *Store) FlowVersions(ctx context.Context, flow string) ([]store.FlowVersion, error) {
	out, err := queryRows(ctx, s.r, `SELECT `+flowVersionCols+` FROM flow_versions
		WHERE flow = $1 ORDER BY version DESC`, []any{flow}, scanFlowVersion)
	if err != nil {
		return nil, fmt.Errorf("list versions of %s: %w", flow, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("flow %q: %w", flow, store.ErrNotFound)
	}
	return out, nil
}

// Flows implements store.Store.
func (s *Store) Flows(ctx context.Context) ([]store.FlowSummary, error) {
	out, err := queryRows(ctx, s.r, `SELECT f.name, MAX(v.version), COUNT(*), f.created_at, MAX(v.created_at)
		FROM flows f JOIN flow_versions v ON v.flow = f.name GROUP BY f.name, f.created_at ORDER BY f.name`, nil,
		func(row scanner) (store.FlowSummary, error) {
			var f store.FlowSummary
			var created, updated int64
			if err := row.Scan(&f.Name, &f.LatestVersion, &f.Versions, &created, &updated); err != nil {
				return f, err
			}
			f.CreatedAt, f.UpdatedAt = fromMicros(created), fromMicros(updated)
			return f, nil
		})
	if err != nil {
		return nil, fmt.Errorf("list flows: %w", err)
	}
	return out, nil
}

// bumpCatalog marks that definitions changed (see CatalogVersion).
func bumpCatalog(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO cursors (name, value) VALUES ('catalog', 1)
		ON CONFLICT (name) DO UPDATE SET value = cursors.value + 1`)
	if err != nil {
		return fmt.Errorf("catalog version: %w", err)
	}
	return nil
}

// CatalogVersion implements store.TriggerStore.
func (s *Store) CatalogVersion(ctx context.Context) (int64, error) {
	return s.Cursor(ctx, "catalog")
}

// ---- runs

const runCols = `id, flow, flow_version, status, params, tags, trigger_kind, trigger_detail,
	origin_run_id, resume_from, error, owner, lease_expires_at, created_at, started_at, finished_at, cancel_requested`

func scanRun(row scanner) (store.Run, error) {
	var r store.Run
	var params, tags string
	var lease, created, started, finished int64
	if err := row.Scan(&r.ID, &r.Flow, &r.FlowVersion, &r.Status, &params, &tags, &r.Trigger, &r.TriggerDetail,
		&r.OriginRunID, &r.ResumeFrom, &r.Error, &r.Owner, &lease, &created, &started, &finished, &r.CancelRequested); err != nil {
		return r, err
	}
	if err := json.Unmarshal([]byte(params), &r.Params); err != nil {
		return r, fmt.Errorf("run %d params: %w", r.ID, err)
	}
	if err := json.Unmarshal([]byte(tags), &r.Tags); err != nil {
		return r, fmt.Errorf("run %d tags: %w", r.ID, err)
	}
	r.LeaseExpires = fromMicros(lease)
	r.CreatedAt, r.StartedAt, r.FinishedAt = fromMicros(created), fromMicros(started), fromMicros(finished)
	return r, nil
}

// CreateRun implements store.Store.
func (s *Store) CreateRun(ctx context.Context, nr store.NewRun) (store.Run, error) {
	var err error
	var r store.Run
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		r, err = s.insertRun(ctx, tx, nr)
		return err
	})
	return r, err
}

func (s *Store) insertRun(ctx context.Context, tx *sql.Tx, nr store.NewRun) (store.Run, error) {
	if nr.Params == nil {
		nr.Params = map[string]json.RawMessage{}
	}
	params, err := json.Marshal(nr.Params)
	if err != nil {
		return store.Run{}, fmt.Errorf("run params: %w", err)
	}
	tags := dedupe(nr.Tags)
	tagsJSON, _ := json.Marshal(tags)
	now := s.now()
	status, lease, finished := store.RunPending, int64(0), int64(0)
	if nr.Owner != "" {
		lease = micros(now.Add(time.Minute))
	}
	if nr.FailWith != "" {
		status, finished = store.RunFailed, micros(now)
	}
	r, err := scanRun(tx.QueryRowContext(ctx, `INSERT INTO runs
		(flow, flow_version, status, params, tags, trigger_kind, trigger_detail, origin_run_id, resume_from, created_at,
		 owner, lease_expires_at, error, finished_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING `+runCols,
		nr.Flow, nr.FlowVersion, status, string(params), string(tagsJSON), nr.Trigger, nr.TriggerDetail,
		nr.OriginRunID, nr.ResumeFrom, micros(now), nr.Owner, lease, nr.FailWith, finished))
	if err != nil {
		return r, fmt.Errorf("insert run of %s: %w", nr.Flow, err)
	}
	if status == store.RunFailed {
		if err := s.runEvent(ctx, tx, r.ID, status, finished); err != nil {
			return r, err
		}
	} else if nr.Owner == "" {
		if err := s.notify(ctx, tx, store.NoteRuns); err != nil {
			return r, err
		}
	}
	for _, t := range tags {
		if _, err := tx.ExecContext(ctx, `INSERT INTO run_tags (tag, run_id) VALUES ($1, $2)`, t, r.ID); err != nil {
			return r, fmt.Errorf("tag run %d: %w", r.ID, err)
		}
	}
	return r, nil
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	out := []string{}
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// Run implements store.Store.
func (s *Store) Run(ctx context.Context, id int64) (store.Run, error) {
	r, err := scanRun(s.r.QueryRowContext(ctx, `SELECT `+runCols+` FROM runs WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("run %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("read run %d: %w", id, err)
	}
	return r, nil
}

// Runs implements store.Store.
func (s *Store) Runs(ctx context.Context, f store.RunFilter) ([]store.Run, error) {
	var where []string
	var args []any
	arg := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	if f.Flow != "" {
		where = append(where, "flow = "+arg(f.Flow))
	}
	if f.Status != "" {
		where = append(where, "status = "+arg(string(f.Status)))
	}
	if f.Tag != "" {
		where = append(where, "id IN (SELECT run_id FROM run_tags WHERE tag = "+arg(f.Tag)+")")
	}
	if f.Unclaimed {
		where = append(where, "(owner = '' OR lease_expires_at < "+arg(micros(s.now()))+")")
	}
	if f.BeforeID > 0 {
		where = append(where, "id < "+arg(f.BeforeID))
	}
	q := `SELECT ` + runCols + ` FROM runs`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	order := " ORDER BY id DESC"
	if f.Oldest {
		order = " ORDER BY id"
	}
	q += order + " LIMIT " + arg(limit)
	out, err := queryRows(ctx, s.r, q, args, scanRun)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	if out == nil {
		out = []store.Run{} // no runs is an empty list, never nil
	}
	return out, nil
}

// AcquireRun implements store.Store.
func (s *Store) AcquireRun(ctx context.Context, id int64, owner string, ttl time.Duration) (store.Run, error) {
	now := s.now()
	// One conditional update: of two acquirers, the second finds the
	// condition false once the first has committed.
	r, err := scanRun(s.w.QueryRowContext(ctx, `UPDATE runs SET status = $1, owner = $2, lease_expires_at = $3,
		started_at = CASE WHEN started_at = 0 THEN $4 ELSE started_at END
		WHERE id = $5 AND status IN ('pending', 'running') AND (owner = '' OR owner = $2 OR lease_expires_at < $4)
		RETURNING `+runCols, store.RunRunning, owner, micros(now.Add(ttl)), micros(now), id))
	if err == nil {
		return r, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("acquire run %d: %w", id, err)
	}
	cur, err := s.Run(ctx, id)
	if err != nil {
		return cur, err
	}
	if cur.Status.Final() {
		return cur, fmt.Errorf("run %d has already %s: %w", id, cur.Status, store.ErrConflict)
	}
	return cur, fmt.Errorf("run %d is held by %s until %s: %w", id, cur.Owner,
		cur.LeaseExpires.Format(time.RFC3339), store.ErrConflict)
}

// AcquireRuns implements store.Store.
func (s *Store) AcquireRuns(ctx context.Context, ids []int64, owner string, ttl time.Duration) ([]store.Run, error) {
	var out []store.Run
	err := s.tx(ctx, func(tx *sql.Tx) error {
		now := s.now()
		for _, id := range ids {
			r, err := scanRun(tx.QueryRowContext(ctx, `UPDATE runs SET status = $1, owner = $2, lease_expires_at = $3,
				started_at = $4 WHERE id = $5 AND status = 'pending' AND (owner = '' OR owner = $2 OR lease_expires_at < $4)
				RETURNING `+runCols, store.RunRunning, owner, micros(now.Add(ttl)), micros(now), id))
			if errors.Is(err, sql.ErrNoRows) {
				continue // taken, or ended, meanwhile
			}
			if err != nil {
				return fmt.Errorf("acquire run %d: %w", id, err)
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// RenewLease implements store.Store.
func (s *Store) RenewLease(ctx context.Context, id int64, owner string, ttl time.Duration) (bool, error) {
	var cancel bool
	err := s.w.QueryRowContext(ctx, `UPDATE runs SET lease_expires_at = $1
		WHERE id = $2 AND owner = $3 AND status = $4 RETURNING cancel_requested`,
		micros(s.now().Add(ttl)), id, owner, store.RunRunning).Scan(&cancel)
	if errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("run %d: %w", id, store.ErrLeaseLost)
	}
	if err != nil {
		return false, fmt.Errorf("renew lease of run %d: %w", id, err)
	}
	return cancel, nil
}

// ReleaseRun implements store.Store.
func (s *Store) ReleaseRun(ctx context.Context, id int64, owner string) error {
	res, err := s.w.ExecContext(ctx, `UPDATE runs SET owner = '', lease_expires_at = 0
		WHERE id = $1 AND owner = $2 AND status = 'running'`, id, owner)
	if err != nil {
		return fmt.Errorf("release run %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("run %d: %w", id, store.ErrLeaseLost)
	}
	return nil
}

// RequestCancel implements store.Store.
func (s *Store) RequestCancel(ctx context.Context, id int64, reason string) error {
	return s.stopRun(ctx, id, store.RunCancelled, reason, true)
}

// FailPending implements store.Store.
func (s *Store) FailPending(ctx context.Context, id int64, reason string) error {
	return s.stopRun(ctx, id, store.RunFailed, reason, false)
}

// stopRun ends a pending run with status and reason, or (with askRunning)
// asks the owner of a running one to cancel it.
func (s *Store) stopRun(ctx context.Context, id int64, status store.RunStatus, reason string, askRunning bool) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var cur store.RunStatus
		err := tx.QueryRowContext(ctx, `SELECT status FROM runs WHERE id = $1`, id).Scan(&cur)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("run %d: %w", id, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("read run %d: %w", id, err)
		}
		switch {
		case cur == store.RunPending:
			now := micros(s.now())
			if _, err := tx.ExecContext(ctx, `UPDATE runs SET status = $1, error = $2, finished_at = $3, owner = '',
				lease_expires_at = 0 WHERE id = $4`, status, reason, now, id); err != nil {
				return fmt.Errorf("stop run %d: %w", id, err)
			}
			return s.runEvent(ctx, tx, id, status, now)
		case cur == store.RunRunning && askRunning:
			_, err := tx.ExecContext(ctx, `UPDATE runs SET cancel_requested = TRUE WHERE id = $1`, id)
			return err
		}
		return fmt.Errorf("run %d is %s: %w", id, cur, store.ErrConflict)
	})
}

// runEvent records that run id ended, for on_finish triggers.
func (s *Store) runEvent(ctx context.Context, tx *sql.Tx, id int64, status store.RunStatus, at int64) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO run_events (run_id, flow, status, created_at)
		SELECT id, flow, $1, $2 FROM runs WHERE id = $3`, status, at, id); err != nil {
		return fmt.Errorf("record end of run %d: %w", id, err)
	}
	return s.notify(ctx, tx, store.NoteRuns)
}

// AbandonRun implements store.Store.
func (s *Store) AbandonRun(ctx context.Context, id int64, reason string, force bool) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		now := s.now()
		cur, err := scanRun(tx.QueryRowContext(ctx, `SELECT `+runCols+` FROM runs WHERE id = $1`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("run %d: %w", id, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("read run %d: %w", id, err)
		}
		if cur.Status.Final() {
			return fmt.Errorf("run %d has already %s: %w", id, cur.Status, store.ErrConflict)
		}
		if !force && cur.Owner != "" && cur.LeaseExpires.After(now) {
			return fmt.Errorf("run %d is still held by %s until %s: %w", id, cur.Owner,
				cur.LeaseExpires.Format(time.RFC3339), store.ErrConflict)
		}
		msg := "abandoned: " + reason
		at := micros(now)
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{`UPDATE tasks SET status = 'failed', error = $1, finished_at = $2
				WHERE run_id = $3 AND status IN ('pending', 'running')`, []any{msg, at, id}},
			{`UPDATE attempts SET status = 'failed', error = $1, finished_at = $2
				WHERE run_id = $3 AND status IN ('pending', 'running')`, []any{msg, at, id}},
			{`UPDATE steps SET status = 'failed', finished_at = $1
				WHERE run_id = $2 AND status IN ('pending', 'running')`, []any{at, id}},
			{`UPDATE runs SET status = 'failed', error = $1, finished_at = $2, owner = '', lease_expires_at = 0
				WHERE id = $3`, []any{msg, at, id}},
		} {
			if _, err := tx.ExecContext(ctx, q.sql, q.args...); err != nil {
				return fmt.Errorf("abandon run %d: %w", id, err)
			}
		}
		return s.runEvent(ctx, tx, id, store.RunFailed, at)
	})
}

// ---- steps, tasks, attempts, artifacts

// Steps implements store.Store.
func (s *Store) Steps(ctx context.Context, runID int64) ([]store.Step, error) {
	out, err := queryRows(ctx, s.r, `SELECT run_id, name, status, foreach, num_tasks, started_at, finished_at, signal_id, shape
		FROM steps WHERE run_id = $1 ORDER BY started_at, name`, []any{runID},
		func(row scanner) (store.Step, error) {
			var st store.Step
			var started, finished int64
			var shape string
			if err := row.Scan(&st.RunID, &st.Name, &st.Status, &st.Foreach, &st.NumTasks, &started, &finished, &st.SignalID, &shape); err != nil {
				return st, err
			}
			if shape != "" {
				if err := json.Unmarshal([]byte(shape), &st.Shape); err != nil {
					return st, fmt.Errorf("step %s: its stored shape does not decode: %w", st.Name, err)
				}
			}
			st.StartedAt, st.FinishedAt = fromMicros(started), fromMicros(finished)
			return st, nil
		})
	if err != nil {
		return nil, fmt.Errorf("steps of run %d: %w", runID, err)
	}
	return out, nil
}

const taskCols = `run_id, step, idx, status, attempts, reused_run, ready_at, started_at, finished_at, exit_code, error`

func scanTask(row scanner) (store.Task, error) {
	var t store.Task
	var ready, started, finished int64
	var exit sql.NullInt64
	var reused int64
	if err := row.Scan(&t.RunID, &t.Step, &t.Index, &t.Status, &t.Attempts, &reused, &ready, &started, &finished,
		&exit, &t.Error); err != nil {
		return t, err
	}
	if reused != 0 {
		t.ReusedFrom = store.TaskKey{RunID: reused, Step: t.Step, Index: t.Index}
	}
	if exit.Valid {
		c := int(exit.Int64)
		t.ExitCode = &c
	}
	t.ReadyAt, t.StartedAt, t.FinishedAt = fromMicros(ready), fromMicros(started), fromMicros(finished)
	return t, nil
}

// Tasks implements store.Store.
func (s *Store) Tasks(ctx context.Context, runID int64, step string) ([]store.Task, error) {
	out, err := queryRows(ctx, s.r, `SELECT `+taskCols+` FROM tasks WHERE run_id = $1 AND step = $2 ORDER BY idx`,
		[]any{runID, step}, scanTask)
	if err != nil {
		return nil, fmt.Errorf("tasks of %d/%s: %w", runID, step, err)
	}
	return out, nil
}

// TaskCounts implements store.Store.
func (s *Store) TaskCounts(ctx context.Context, runID int64) ([]store.StepCount, error) {
	out, err := queryRows(ctx, s.r, `SELECT step, status, COUNT(*),
		CAST(SUM(CASE WHEN reused_run <> 0 THEN 1 ELSE 0 END) AS BIGINT), CAST(SUM(attempts) AS BIGINT),
		MIN(CASE WHEN started_at > 0 THEN started_at END), MAX(finished_at),
		MAX(CASE WHEN started_at > 0 AND finished_at >= started_at THEN finished_at - started_at END),
		CAST(SUM(CASE WHEN started_at > 0 AND finished_at >= started_at THEN finished_at - started_at ELSE 0 END) AS BIGINT),
		CAST(SUM(CASE WHEN started_at > 0 AND finished_at >= started_at THEN 1 ELSE 0 END) AS BIGINT)
		FROM tasks WHERE run_id = $1 GROUP BY step, status ORDER BY step, status`, []any{runID},
		func(row scanner) (store.StepCount, error) {
			var c store.StepCount
			var first, maxTook sql.NullInt64
			var last, sumTook int64
			if err := row.Scan(&c.Step, &c.Status, &c.Tasks, &c.Reused, &c.Attempts, &first, &last, &maxTook, &sumTook,
				&c.Timed); err != nil {
				return c, err
			}
			c.FirstStarted, c.LastFinished = fromMicros(first.Int64), fromMicros(last)
			c.MaxTook, c.SumTook = time.Duration(maxTook.Int64)*time.Microsecond, time.Duration(sumTook)*time.Microsecond
			return c, nil
		})
	if err != nil {
		return nil, fmt.Errorf("count tasks of run %d: %w", runID, err)
	}
	return out, nil
}

// TaskPage implements store.Store.
func (s *Store) TaskPage(ctx context.Context, q store.TaskQuery) ([]store.Task, error) {
	where, order := ``, `idx`
	args := []any{q.RunID, q.Step}
	switch {
	case q.Status != "":
		args = append(args, q.Status)
		where = fmt.Sprintf(` AND status = $%d`, len(args))
	case q.Unsucceeded:
		// The tasks_unfinished index holds exactly these rows.
		where = ` AND status <> 'succeeded'`
		order = `CASE WHEN status = 'failed' THEN 0 ELSE 1 END, idx`
	}
	// SQLite needs a LIMIT to take an OFFSET, and PostgreSQL refuses a
	// negative one: no cap is a cap no step reaches.
	limit := int64(1) << 62
	if q.Limit > 0 {
		limit = int64(q.Limit)
	}
	args = append(args, limit, max(q.Offset, 0))
	page := fmt.Sprintf(` LIMIT $%d OFFSET $%d`, len(args)-1, len(args))
	out, err := queryRows(ctx, s.r, `SELECT `+taskCols+` FROM tasks WHERE run_id = $1 AND step = $2`+where+
		` ORDER BY `+order+page, args, scanTask)
	if err != nil {
		return nil, fmt.Errorf("tasks of %d/%s: %w", q.RunID, q.Step, err)
	}
	if out == nil {
		out = []store.Task{} // a page past the end is empty, never nil
	}
	return out, nil
}

// Task implements store.Store.
func (s *Store) Task(ctx context.Context, k store.TaskKey) (store.Task, error) {
	t, err := scanTask(s.r.QueryRowContext(ctx, `SELECT `+taskCols+` FROM tasks
		WHERE run_id = $1 AND step = $2 AND idx = $3`, k.RunID, k.Step, k.Index))
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("task %s: %w", k, store.ErrNotFound)
	}
	if err != nil {
		return t, fmt.Errorf("read task %s: %w", k, err)
	}
	return t, nil
}

// Attempts implements store.Store.
func (s *Store) Attempts(ctx context.Context, k store.TaskKey) ([]store.Attempt, error) {
	out, err := queryRows(ctx, s.r, `SELECT run_id, step, idx, attempt, status, started_at, finished_at, exit_code,
		error, stdout_digest, stdout_size, stderr_digest, stderr_size
		FROM attempts WHERE run_id = $1 AND step = $2 AND idx = $3 ORDER BY attempt`, []any{k.RunID, k.Step, k.Index},
		func(row scanner) (store.Attempt, error) {
			var a store.Attempt
			var started, finished int64
			var exit sql.NullInt64
			if err := row.Scan(&a.RunID, &a.Step, &a.Index, &a.Attempt, &a.Status, &started, &finished, &exit,
				&a.Error, &a.StdoutDigest, &a.StdoutSize, &a.StderrDigest, &a.StderrSize); err != nil {
				return a, err
			}
			if exit.Valid {
				c := int(exit.Int64)
				a.ExitCode = &c
			}
			a.StartedAt, a.FinishedAt = fromMicros(started), fromMicros(finished)
			return a, nil
		})
	if err != nil {
		return nil, fmt.Errorf("attempts of %s: %w", k, err)
	}
	return out, nil
}

const artifactCols = `run_id, step, idx, name, digest, size, created_at`

func scanArtifact(row scanner) (store.Artifact, error) {
	var a store.Artifact
	var created int64
	if err := row.Scan(&a.RunID, &a.Step, &a.Index, &a.Name, &a.Digest, &a.Size, &created); err != nil {
		return a, err
	}
	a.CreatedAt = fromMicros(created)
	return a, nil
}

// Artifacts implements store.Store.
func (s *Store) Artifacts(ctx context.Context, f store.ArtifactFilter) ([]store.Artifact, error) {
	q := `SELECT ` + artifactCols + ` FROM artifacts WHERE run_id = $1`
	args := []any{f.RunID}
	if f.Step != "" {
		q += ` AND step = $2`
		args = append(args, f.Step)
		switch {
		case f.Index >= 0 && f.Until > f.Index:
			q += ` AND idx >= $3 AND idx < $4`
			args = append(args, f.Index, f.Until)
		case f.Index >= 0:
			q += ` AND idx = $3`
			args = append(args, f.Index)
		}
	}
	q += ` ORDER BY step, idx, name`
	out, err := queryRows(ctx, s.r, q, args, scanArtifact)
	if err != nil {
		return nil, fmt.Errorf("artifacts of run %d: %w", f.RunID, err)
	}
	return out, nil
}

// Artifact implements store.Store.
func (s *Store) Artifact(ctx context.Context, k store.TaskKey, name string) (store.Artifact, error) {
	a, err := scanArtifact(s.r.QueryRowContext(ctx, `SELECT `+artifactCols+` FROM artifacts
		WHERE run_id = $1 AND step = $2 AND idx = $3 AND name = $4`, k.RunID, k.Step, k.Index, name))
	if errors.Is(err, sql.ErrNoRows) {
		return a, fmt.Errorf("artifact %s/%s: %w", k, name, store.ErrNotFound)
	}
	if err != nil {
		return a, fmt.Errorf("read artifact %s/%s: %w", k, name, err)
	}
	return a, nil
}

// ---- batches

// Apply implements store.Store.
func (s *Store) Apply(ctx context.Context, owner string, b *store.Batch) error {
	if b.Empty() {
		return nil
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.fence(ctx, tx, owner, b); err != nil {
			return err
		}
		return s.apply(ctx, tx, b)
	})
}

// fence checks that owner holds every run b touches.
func (s *Store) fence(ctx context.Context, tx *sql.Tx, owner string, b *store.Batch) error {
	runs := map[int64]bool{}
	for _, c := range b.Runs {
		runs[c.RunID] = true
	}
	for _, c := range b.Steps {
		runs[c.RunID] = true
	}
	for _, c := range b.NewTasks {
		runs[c.RunID] = true
	}
	for _, c := range b.Reuse {
		runs[c.RunID] = true
	}
	for _, c := range b.Tasks {
		runs[c.RunID] = true
	}
	for _, c := range b.Attempts {
		runs[c.RunID] = true
	}
	for _, c := range b.Artifacts {
		runs[c.RunID] = true
	}
	for _, c := range b.EndPending {
		runs[c.RunID] = true
	}
	for _, sg := range b.Signals {
		runs[sg.Source.RunID] = true
	}
	ids := make([]int64, 0, len(runs))
	for id := range runs {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		var cur string
		var status store.RunStatus
		err := tx.StmtContext(ctx, s.hot[qFence+s.dialect.RowLock()]).QueryRowContext(ctx, id).Scan(&cur, &status)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("run %d: %w", id, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("fence run %d: %w", id, err)
		}
		if cur != owner || status != store.RunRunning {
			return fmt.Errorf("run %d (status %s, owner %q): %w", id, status, cur, store.ErrLeaseLost)
		}
	}
	return nil
}

func (s *Store) apply(ctx context.Context, tx *sql.Tx, b *store.Batch) error {
	for _, c := range b.Steps {
		shape := ""
		if c.Shape != nil {
			b, err := json.Marshal(c.Shape)
			if err != nil {
				return fmt.Errorf("step %d/%s: shape: %w", c.RunID, c.Name, err)
			}
			shape = string(b)
		}
		if _, err := s.exec(ctx, tx, qUpsertStep, c.RunID, c.Name, c.Status, c.Foreach, c.NumTasks, micros(c.At),
			finishedAt(c.Status, c.At), c.SignalID, shape); err != nil {
			return fmt.Errorf("step %d/%s: %w", c.RunID, c.Name, err)
		}
	}
	for _, c := range b.NewTasks {
		if c.Count <= 0 {
			continue
		}
		if c.Queued {
			if err := s.insertQueued(ctx, tx, c); err != nil {
				return err
			}
			continue
		}
		if _, err := s.exec(ctx, tx, s.dialect.InsertTaskRange(), c.RunID, c.Step, c.Count, micros(c.ReadyAt), c.From); err != nil {
			return fmt.Errorf("create %d tasks of %d/%s: %w", c.Count, c.RunID, c.Step, err)
		}
	}
	for _, c := range b.Reuse {
		if _, err := tx.ExecContext(ctx, `INSERT INTO tasks (`+taskCols+`)
			SELECT $1, step, idx, status, attempts, CASE WHEN reused_run <> 0 THEN reused_run ELSE run_id END,
				ready_at, started_at, finished_at, exit_code, error
			FROM tasks WHERE run_id = $2 AND step = $3 AND idx < $4 AND idx >= $5 AND status = 'succeeded'
			ON CONFLICT (run_id, step, idx) DO UPDATE SET status = excluded.status, attempts = excluded.attempts,
				reused_run = excluded.reused_run, ready_at = excluded.ready_at, started_at = excluded.started_at,
				finished_at = excluded.finished_at, exit_code = excluded.exit_code, error = excluded.error`,
			c.RunID, c.From, c.Step, c.Count, c.Start); err != nil {
			return fmt.Errorf("reuse tasks of %d/%s in run %d: %w", c.From, c.Step, c.RunID, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO artifacts (`+artifactCols+`)
			SELECT $1, a.step, a.idx, a.name, a.digest, a.size, a.created_at
			FROM artifacts a JOIN tasks t ON t.run_id = a.run_id AND t.step = a.step AND t.idx = a.idx
			WHERE a.run_id = $2 AND a.step = $3 AND a.idx < $4 AND a.idx >= $5 AND t.status = 'succeeded'
			ON CONFLICT (run_id, step, idx, name) DO NOTHING`,
			c.RunID, c.From, c.Step, c.Count, c.Start); err != nil {
			return fmt.Errorf("reuse artifacts of %d/%s in run %d: %w", c.From, c.Step, c.RunID, err)
		}
	}
	for _, c := range b.Tasks {
		var exit any
		if c.ExitCode != nil {
			exit = *c.ExitCode
		}
		if _, err := s.exec(ctx, tx, qUpdateTask, c.Status, c.Attempts, micros(c.StartedAt), micros(c.FinishedAt), exit, c.Error,
			c.RunID, c.Step, c.Index); err != nil {
			return fmt.Errorf("task %s: %w", c.TaskKey, err)
		}
	}
	for _, a := range b.Attempts {
		var exit any
		if a.ExitCode != nil {
			exit = *a.ExitCode
		}
		if _, err := s.exec(ctx, tx, qUpsertAttempt, a.RunID, a.Step, a.Index, a.Attempt, a.Status, micros(a.StartedAt), micros(a.FinishedAt), exit, a.Error,
			a.StdoutDigest, a.StdoutSize, a.StderrDigest, a.StderrSize); err != nil {
			return fmt.Errorf("attempt %d of %s: %w", a.Attempt, a.TaskKey, err)
		}
	}
	for _, a := range b.Artifacts {
		if _, err := s.exec(ctx, tx, qInsertArtifact, a.RunID, a.Step, a.Index, a.Name, a.Digest, a.Size, micros(a.CreatedAt)); err != nil {
			return fmt.Errorf("artifact %s/%s: %w", a.TaskKey, a.Name, err)
		}
	}
	for _, c := range b.EndPending {
		if _, err := s.exec(ctx, tx, qEndPending, c.Status, micros(c.At), c.RunID, c.Step); err != nil {
			return fmt.Errorf("end pending tasks of %d/%s: %w", c.RunID, c.Step, err)
		}
	}
	for _, sg := range b.Signals {
		if _, err := s.insertSignal(ctx, tx, sg); err != nil {
			return err
		}
	}
	for _, c := range b.Runs {
		q := `UPDATE runs SET status = $1, error = $2 WHERE id = $3`
		args := []any{c.Status, c.Error, c.RunID}
		if c.Status.Final() {
			q = `UPDATE runs SET status = $1, error = $2, finished_at = $4, owner = '', lease_expires_at = 0 WHERE id = $3`
			args = append(args, micros(c.At))
		}
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("run %d: %w", c.RunID, err)
		}
		if c.Status.Final() {
			if err := s.runEvent(ctx, tx, c.RunID, c.Status, micros(c.At)); err != nil {
				return err
			}
		}
	}
	return nil
}

func finishedAt(st store.TaskStatus, at time.Time) int64 {
	if st.Final() {
		return micros(at)
	}
	return 0
}
