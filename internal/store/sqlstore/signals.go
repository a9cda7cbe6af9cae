package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/baton-ml/baton/internal/store"
)

// PutSignalContracts implements store.SignalStore.
func (s *Store) PutSignalContracts(ctx context.Context, cs []store.SignalContract) ([]bool, error) {
	changed := make([]bool, len(cs))
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lock(ctx, tx, "contracts"); err != nil {
			return err
		}
		now := micros(s.now())
		for i, c := range cs {
			var digest string
			err := tx.QueryRowContext(ctx, `SELECT digest FROM signal_contracts WHERE name = $1`, c.Name).Scan(&digest)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				if _, err := tx.ExecContext(ctx, `INSERT INTO signal_contracts (name, spec, digest, path, created_at, updated_at)
					VALUES ($1, $2, $3, $4, $5, $5)`, c.Name, string(c.Spec), c.Digest, c.Path, now); err != nil {
					return fmt.Errorf("contract %s: %w", c.Name, err)
				}
				changed[i] = true
			case err != nil:
				return fmt.Errorf("contract %s: %w", c.Name, err)
			case digest != c.Digest:
				if _, err := tx.ExecContext(ctx, `UPDATE signal_contracts SET spec = $1, digest = $2, path = $3, updated_at = $4
					WHERE name = $5`, string(c.Spec), c.Digest, c.Path, now, c.Name); err != nil {
					return fmt.Errorf("contract %s: %w", c.Name, err)
				}
				changed[i] = true
			}
		}
		for _, c := range changed {
			if c {
				return bumpCatalog(ctx, tx)
			}
		}
		return nil
	})
	return changed, err
}

// SignalContracts implements store.SignalStore.
func (s *Store) SignalContracts(ctx context.Context) ([]store.SignalContract, error) {
	out, err := queryRows(ctx, s.r, `SELECT name, spec, digest, path, created_at, updated_at FROM signal_contracts ORDER BY name`, nil,
		func(row scanner) (store.SignalContract, error) {
			var c store.SignalContract
			var spec string
			var created, updated int64
			if err := row.Scan(&c.Name, &spec, &c.Digest, &c.Path, &created, &updated); err != nil {
				return c, err
			}
			c.Spec = json.RawMessage(spec)
			c.CreatedAt, c.UpdatedAt = fromMicros(created), fromMicros(updated)
			return c, nil
		})
	if err != nil {
		return nil, fmt.Errorf("list contracts: %w", err)
	}
	return out, nil
}

const signalCols = `seq, id, name, params, source_kind, source_flow, source_run, source_step, created_at`

func scanSignal(row scanner) (store.Signal, error) {
	var sg store.Signal
	var params string
	var created int64
	if err := row.Scan(&sg.Seq, &sg.ID, &sg.Name, &params, &sg.Source.Kind, &sg.Source.Flow, &sg.Source.RunID,
		&sg.Source.Step, &created); err != nil {
		return sg, err
	}
	if err := json.Unmarshal([]byte(params), &sg.Params); err != nil {
		return sg, fmt.Errorf("signal %s params: %w", sg.ID, err)
	}
	sg.CreatedAt = fromMicros(created)
	return sg, nil
}

// insertSignal stores sg unless its id exists; it reports whether it did.
func (s *Store) insertSignal(ctx context.Context, tx *sql.Tx, sg store.Signal) (bool, error) {
	if sg.Params == nil {
		sg.Params = map[string]json.RawMessage{}
	}
	params, err := json.Marshal(sg.Params)
	if err != nil {
		return false, fmt.Errorf("signal %s params: %w", sg.ID, err)
	}
	at := sg.CreatedAt
	if at.IsZero() {
		at = s.now()
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO signals (id, name, params, source_kind, source_flow, source_run, source_step, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING`,
		sg.ID, sg.Name, string(params), sg.Source.Kind, sg.Source.Flow, sg.Source.RunID, sg.Source.Step, micros(at))
	if err != nil {
		return false, fmt.Errorf("publish signal %s: %w", sg.ID, err)
	}
	n, _ := res.RowsAffected()
	if n == 1 {
		if err := s.notify(ctx, tx, store.NoteSignals); err != nil {
			return false, err
		}
	}
	return n == 1, nil
}

// PublishSignal implements store.SignalStore.
func (s *Store) PublishSignal(ctx context.Context, sg store.Signal) (store.Signal, bool, error) {
	var out store.Signal
	var created bool
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		if created, err = s.insertSignal(ctx, tx, sg); err != nil {
			return err
		}
		out, err = scanSignal(tx.QueryRowContext(ctx, `SELECT `+signalCols+` FROM signals WHERE id = $1`, sg.ID))
		return err
	})
	return out, created, err
}

// Signal implements store.SignalStore.
func (s *Store) Signal(ctx context.Context, id string) (store.Signal, error) {
	sg, err := scanSignal(s.r.QueryRowContext(ctx, `SELECT `+signalCols+` FROM signals WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return sg, fmt.Errorf("signal %q: %w", id, store.ErrNotFound)
	}
	return sg, err
}

// Signals implements store.SignalStore.
func (s *Store) Signals(ctx context.Context, f store.SignalFilter) ([]store.Signal, error) {
	var where []string
	var args []any
	arg := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	if f.Name != "" {
		where = append(where, "name = "+arg(f.Name))
	}
	if f.SourceRun != 0 {
		where = append(where, "source_run = "+arg(f.SourceRun))
	}
	order := " ORDER BY seq DESC"
	if !f.Since.IsZero() {
		where = append(where, "created_at >= "+arg(micros(f.Since)))
		order = " ORDER BY seq"
	}
	if f.AfterSeq > 0 {
		where = append(where, "seq > "+arg(f.AfterSeq))
		order = " ORDER BY seq"
	}
	q := `SELECT ` + signalCols + ` FROM signals`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	q += order + " LIMIT " + arg(limit)
	out, err := queryRows(ctx, s.r, q, args, scanSignal)
	if err != nil {
		return nil, fmt.Errorf("list signals: %w", err)
	}
	if out == nil {
		out = []store.Signal{} // no signals is an empty list, never nil
	}
	return out, nil
}

// FireRuns implements store.TriggerStore.
func (s *Store) FireRuns(ctx context.Context, fs []store.Firing) ([]store.Fired, error) {
	out := make([]store.Fired, len(fs))
	err := s.tx(ctx, func(tx *sql.Tx) error {
		now := micros(s.now())
		for i, fr := range fs {
			f := fr.Fire
			// Claim the key first: a concurrent firing of the same key
			// waits on it (PostgreSQL) or on the write lock (SQLite), then
			// finds it.
			res, err := tx.ExecContext(ctx, `INSERT INTO trigger_fires (fire_key, kind, flow, run_id, signal_id, source_run, created_at)
				VALUES ($1, $2, $3, 0, $4, $5, $6) ON CONFLICT (fire_key) DO NOTHING`,
				f.Key, f.Kind, f.Flow, f.SignalID, f.SourceRun, now)
			if err != nil {
				return fmt.Errorf("record firing %s: %w", f.Key, err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				var existing int64
				if err := tx.QueryRowContext(ctx, `SELECT run_id FROM trigger_fires WHERE fire_key = $1`, f.Key).Scan(&existing); err != nil {
					return fmt.Errorf("look up firing %s: %w", f.Key, err)
				}
				run, err := scanRun(tx.QueryRowContext(ctx, `SELECT `+runCols+` FROM runs WHERE id = $1`, existing))
				if err != nil {
					return fmt.Errorf("run of firing %s: %w", f.Key, err)
				}
				out[i] = store.Fired{Run: run}
				continue
			}
			run, err := s.insertRun(ctx, tx, fr.Run)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE trigger_fires SET run_id = $1 WHERE fire_key = $2`, run.ID, f.Key); err != nil {
				return fmt.Errorf("record firing %s: %w", f.Key, err)
			}
			if j := fr.Join; j != nil {
				if _, err := tx.ExecContext(ctx, `DELETE FROM join_parts WHERE flow = $1 AND trig = $2 AND join_key = $3`,
					j.Flow, j.Trigger, j.JoinKey); err != nil {
					return fmt.Errorf("clear join parts: %w", err)
				}
			}
			out[i] = store.Fired{Run: run, Created: true}
		}
		return nil
	})
	return out, err
}

// Fires implements store.TriggerStore.
func (s *Store) Fires(ctx context.Context, f store.FireFilter) ([]store.Fire, error) {
	q := `SELECT fire_key, kind, flow, run_id, signal_id, source_run, created_at FROM trigger_fires WHERE `
	var arg any
	switch {
	case f.SignalID != "":
		q, arg = q+"signal_id = $1", f.SignalID
	case f.SourceRun != 0:
		q, arg = q+"source_run = $1", f.SourceRun
	case f.RunID != 0:
		q, arg = q+"run_id = $1", f.RunID
	default:
		return nil, errors.New("fires: set one field of the filter")
	}
	out, err := queryRows(ctx, s.r, q+" ORDER BY run_id", []any{arg}, func(row scanner) (store.Fire, error) {
		var fr store.Fire
		var created int64
		if err := row.Scan(&fr.Key, &fr.Kind, &fr.Flow, &fr.RunID, &fr.SignalID, &fr.SourceRun, &created); err != nil {
			return fr, err
		}
		fr.CreatedAt = fromMicros(created)
		return fr, nil
	})
	if err != nil {
		return nil, fmt.Errorf("list firings: %w", err)
	}
	return out, nil
}

// AddJoinPart implements store.TriggerStore.
func (s *Store) AddJoinPart(ctx context.Context, p store.JoinPart) ([]store.JoinPart, error) {
	params, err := json.Marshal(p.Params)
	if err != nil {
		return nil, err
	}
	var out []store.JoinPart
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO join_parts (flow, trig, join_key, signal, signal_id, params, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (flow, trig, join_key, signal) DO UPDATE SET signal_id = excluded.signal_id,
				params = excluded.params, created_at = excluded.created_at`,
			p.Flow, p.Trigger, p.JoinKey, p.Signal, p.SignalID, string(params), micros(s.now())); err != nil {
			return fmt.Errorf("join part: %w", err)
		}
		var err error
		out, err = queryRows(ctx, tx, `SELECT flow, trig, join_key, signal, signal_id, params, created_at FROM join_parts
			WHERE flow = $1 AND trig = $2 AND join_key = $3 ORDER BY signal`, []any{p.Flow, p.Trigger, p.JoinKey},
			func(row scanner) (store.JoinPart, error) {
				var jp store.JoinPart
				var ps string
				var created int64
				if err := row.Scan(&jp.Flow, &jp.Trigger, &jp.JoinKey, &jp.Signal, &jp.SignalID, &ps, &created); err != nil {
					return jp, err
				}
				if err := json.Unmarshal([]byte(ps), &jp.Params); err != nil {
					return jp, fmt.Errorf("params of %s: %w", jp.Signal, err)
				}
				jp.CreatedAt = fromMicros(created)
				return jp, nil
			})
		if err != nil {
			return fmt.Errorf("join parts: %w", err)
		}
		return nil
	})
	return out, err
}

// Cursor implements store.TriggerStore.
func (s *Store) Cursor(ctx context.Context, name string) (int64, error) {
	var v int64
	err := s.r.QueryRowContext(ctx, `SELECT value FROM cursors WHERE name = $1`, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return v, err
}

// SetCursor implements store.TriggerStore.
func (s *Store) SetCursor(ctx context.Context, name string, v int64) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO cursors (name, value) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value`, name, v)
	return err
}

// RunEvents implements store.TriggerStore.
func (s *Store) RunEvents(ctx context.Context, afterSeq int64, limit int) ([]store.RunEvent, error) {
	if limit <= 0 {
		limit = 100
	}
	out, err := queryRows(ctx, s.r, `SELECT seq, run_id, flow, status, created_at FROM run_events
		WHERE seq > $1 ORDER BY seq LIMIT $2`, []any{afterSeq, limit}, func(row scanner) (store.RunEvent, error) {
		var ev store.RunEvent
		var created int64
		if err := row.Scan(&ev.Seq, &ev.RunID, &ev.Flow, &ev.Status, &created); err != nil {
			return ev, err
		}
		ev.CreatedAt = fromMicros(created)
		return ev, nil
	})
	if err != nil {
		return nil, fmt.Errorf("run events: %w", err)
	}
	return out, nil
}

// Block implements store.TriggerStore.
//
// An unblocked flow keeps its row with the run id negated: the same
// failure seen again (two paths report a run's end, the second maybe after
// a person unblocked the flow) does not block it twice; only a later one
// does.
func (s *Store) Block(ctx context.Context, flow string, runID int64) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO flow_blocks (flow, run_id, created_at) VALUES ($1, $2, $3)
		ON CONFLICT (flow) DO UPDATE SET run_id = excluded.run_id, created_at = excluded.created_at
		WHERE flow_blocks.run_id < 0 AND excluded.run_id > -flow_blocks.run_id`, flow, runID, micros(s.now()))
	return err
}

// Blocked implements store.TriggerStore.
func (s *Store) Blocked(ctx context.Context, flow string) (int64, bool, error) {
	var id int64
	err := s.r.QueryRowContext(ctx, `SELECT run_id FROM flow_blocks WHERE flow = $1 AND run_id > 0`, flow).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	return id, err == nil, err
}

// Unblock implements store.TriggerStore.
func (s *Store) Unblock(ctx context.Context, flow string) error {
	_, err := s.w.ExecContext(ctx, `UPDATE flow_blocks SET run_id = -run_id WHERE flow = $1 AND run_id > 0`, flow)
	return err
}

// CreateToken implements store.TokenStore.
func (s *Store) CreateToken(ctx context.Context, t store.Token) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO tokens (id, name, role, hash, created_at) VALUES ($1, $2, $3, $4, $5)`,
		t.ID, t.Name, t.Role, t.Hash, micros(s.now()))
	if err != nil {
		return fmt.Errorf("create token %s: %w", t.Name, err)
	}
	return nil
}

// TokenByHash implements store.TokenStore.
func (s *Store) TokenByHash(ctx context.Context, hash string) (store.Token, error) {
	var t store.Token
	var created, used int64
	err := s.r.QueryRowContext(ctx, `SELECT id, name, role, hash, created_at, last_used FROM tokens WHERE hash = $1`, hash).
		Scan(&t.ID, &t.Name, &t.Role, &t.Hash, &created, &used)
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("token: %w", store.ErrNotFound)
	}
	if err != nil {
		return t, err
	}
	t.CreatedAt, t.LastUsed = fromMicros(created), fromMicros(used)
	// Noting the use is best effort (a busy store must not fail a
	// request) and at most once a minute: a reading request should not
	// take the store's write lock each time.
	if now := s.now(); now.Sub(t.LastUsed) >= time.Minute {
		_, _ = s.w.ExecContext(ctx, `UPDATE tokens SET last_used = $1 WHERE id = $2`, micros(now), t.ID)
	}
	return t, nil
}

// Tokens implements store.TokenStore.
func (s *Store) Tokens(ctx context.Context) ([]store.Token, error) {
	out, err := queryRows(ctx, s.r, `SELECT id, name, role, hash, created_at, last_used FROM tokens ORDER BY created_at`, nil,
		func(row scanner) (store.Token, error) {
			var t store.Token
			var created, used int64
			if err := row.Scan(&t.ID, &t.Name, &t.Role, &t.Hash, &created, &used); err != nil {
				return t, err
			}
			t.CreatedAt, t.LastUsed = fromMicros(created), fromMicros(used)
			return t, nil
		})
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return out, nil
}

// DeleteToken implements store.TokenStore.
func (s *Store) DeleteToken(ctx context.Context, id string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM tokens WHERE id = $1`, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("token %s: %w", id, store.ErrNotFound)
	}
	return nil
}
