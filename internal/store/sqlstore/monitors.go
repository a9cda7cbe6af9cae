package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/baton-ml/baton/internal/store"
)

// PutMonitor implements store.MonitorStore: it stores the spec unless the
// same digest is there, and says whether it changed.
func (s *Store) PutMonitor(ctx context.Context, m store.Monitor) (store.Monitor, bool, error) {
	changed := false
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var digest string
		var at int64
		err := tx.QueryRowContext(ctx, `SELECT digest, updated_at FROM monitors WHERE name = $1`, m.Name).Scan(&digest, &at)
		if err == nil && digest == m.Digest {
			m.UpdatedAt = fromMicros(at)
			return nil
		}
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		now := micros(s.now())
		if _, err := tx.ExecContext(ctx, `INSERT INTO monitors (name, spec, digest, updated_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, digest = excluded.digest, updated_at = excluded.updated_at`,
			m.Name, string(m.Spec), m.Digest, now); err != nil {
			return fmt.Errorf("store monitor %s: %w", m.Name, err)
		}
		m.UpdatedAt, changed = fromMicros(now), true
		return nil
	})
	return m, changed, err
}

// Monitors implements store.MonitorStore.
func (s *Store) Monitors(ctx context.Context) ([]store.Monitor, error) {
	out, err := queryRows(ctx, s.r, `SELECT name, spec, digest, updated_at FROM monitors ORDER BY name`, nil,
		func(row scanner) (store.Monitor, error) {
			var m store.Monitor
			var spec string
			var at int64
			if err := row.Scan(&m.Name, &spec, &m.Digest, &at); err != nil {
				return m, err
			}
			m.Spec, m.UpdatedAt = json.RawMessage(spec), fromMicros(at)
			return m, nil
		})
	if err != nil {
		return nil, fmt.Errorf("list monitors: %w", err)
	}
	return out, nil
}

const monitorResultCols = `id, monitor, kind, trigger_kind, due_at, evaluated_at, checks, breached, repeated, evidence, signal_id, error`

func scanMonitorResult(row scanner) (store.MonitorResult, error) {
	var r store.MonitorResult
	var due, at int64
	var checks, evidence string
	if err := row.Scan(&r.ID, &r.Monitor, &r.Kind, &r.Trigger, &due, &at, &checks, &r.Breached, &r.Repeated, &evidence, &r.Signal, &r.Error); err != nil {
		return r, err
	}
	r.DueAt, r.EvaluatedAt = fromMicros(due), fromMicros(at)
	r.Checks, r.Evidence = json.RawMessage(checks), json.RawMessage(evidence)
	return r, nil
}

// AddMonitorResult implements store.MonitorStore. The unique index on a
// scheduled result's (monitor, due_at) is what refuses a second answer
// for one slot, in one statement, on either database.
func (s *Store) AddMonitorResult(ctx context.Context, r store.MonitorResult) (store.MonitorResult, error) {
	if r.Trigger != store.MonitorScheduled && r.Trigger != store.MonitorManual {
		return r, fmt.Errorf("monitor %s: result trigger %q: want %s or %s", r.Monitor, r.Trigger, store.MonitorScheduled, store.MonitorManual)
	}
	checks, evidence := string(r.Checks), string(r.Evidence)
	if checks == "" {
		checks = "[]"
	}
	if evidence == "" {
		evidence = "{}"
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `INSERT INTO monitor_results (monitor, kind, trigger_kind, due_at, evaluated_at, checks, breached, repeated, evidence, signal_id, error)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING RETURNING id`,
			r.Monitor, r.Kind, r.Trigger, micros(r.DueAt), micros(r.EvaluatedAt), checks, r.Breached, r.Repeated, evidence, r.Signal, r.Error).Scan(&r.ID)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("monitor %s already has a result for %s: %w", r.Monitor, r.DueAt.UTC().Format("2006-01-02T15:04:05Z07:00"), store.ErrConflict)
	}
	if err != nil {
		return r, fmt.Errorf("store a result of monitor %s: %w", r.Monitor, err)
	}
	r.Checks, r.Evidence = json.RawMessage(checks), json.RawMessage(evidence)
	r.DueAt, r.EvaluatedAt = fromMicros(micros(r.DueAt)), fromMicros(micros(r.EvaluatedAt))
	return r, nil
}

// MonitorResults implements store.MonitorStore.
func (s *Store) MonitorResults(ctx context.Context, f store.MonitorResultFilter) ([]store.MonitorResult, error) {
	var where []string
	var args []any
	arg := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.Monitor != "" {
		arg("monitor = $%d", f.Monitor)
	}
	if f.Trigger != "" {
		arg("trigger_kind = $%d", f.Trigger)
	}
	if f.BeforeID > 0 {
		arg("id < $%d", f.BeforeID)
	}
	q := `SELECT ` + monitorResultCols + ` FROM monitor_results`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	args = append(args, limit)
	q += fmt.Sprintf(` ORDER BY id DESC LIMIT $%d`, len(args))
	out, err := queryRows(ctx, s.r, q, args, scanMonitorResult)
	if err != nil {
		return nil, fmt.Errorf("list monitor results: %w", err)
	}
	return out, nil
}
