package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/baton-ml/baton/internal/store"
)

// PutEndpoint implements store.ServeStore: it stores the spec unless the
// same digest is there, and says whether it changed.
func (s *Store) PutEndpoint(ctx context.Context, e store.Endpoint) (store.Endpoint, bool, error) {
	changed := false
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var digest string
		err := tx.QueryRowContext(ctx, `SELECT digest FROM endpoints WHERE name = $1`, e.Name).Scan(&digest)
		if err == nil && digest == e.Digest {
			return nil
		}
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		now := micros(s.now())
		if _, err := tx.ExecContext(ctx, `INSERT INTO endpoints (name, spec, digest, updated_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, digest = excluded.digest, updated_at = excluded.updated_at`,
			e.Name, string(e.Spec), e.Digest, now); err != nil {
			return fmt.Errorf("store endpoint %s: %w", e.Name, err)
		}
		if err := bumpCatalog(ctx, tx); err != nil {
			return err
		}
		e.UpdatedAt, changed = fromMicros(now), true
		return nil
	})
	return e, changed, err
}

// Endpoints implements store.ServeStore.
func (s *Store) Endpoints(ctx context.Context) ([]store.Endpoint, error) {
	out, err := queryRows(ctx, s.r, `SELECT name, spec, digest, updated_at FROM endpoints ORDER BY name`, nil,
		func(row scanner) (store.Endpoint, error) {
			var e store.Endpoint
			var spec string
			var at int64
			if err := row.Scan(&e.Name, &spec, &e.Digest, &at); err != nil {
				return e, err
			}
			e.Spec, e.UpdatedAt = json.RawMessage(spec), fromMicros(at)
			return e, nil
		})
	if err != nil {
		return nil, fmt.Errorf("list endpoints: %w", err)
	}
	return out, nil
}

const rolloutCols = `id, endpoint, model, canary_version, baseline_version, stages, stage, status, history, started_at, updated_at`

func scanRollout(row scanner) (store.Rollout, error) {
	var r store.Rollout
	var stages, history string
	var started, updated int64
	if err := row.Scan(&r.ID, &r.Endpoint, &r.Model, &r.CanaryVersion, &r.BaselineVersion, &stages, &r.Stage, &r.Status, &history, &started, &updated); err != nil {
		return r, err
	}
	if err := json.Unmarshal([]byte(stages), &r.Stages); err != nil {
		return r, fmt.Errorf("rollout %d stages: %w", r.ID, err)
	}
	r.History, r.StartedAt, r.UpdatedAt = json.RawMessage(history), fromMicros(started), fromMicros(updated)
	return r, nil
}

// StartRollout implements store.ServeStore.
func (s *Store) StartRollout(ctx context.Context, r store.Rollout) (store.Rollout, error) {
	stages, err := json.Marshal(r.Stages)
	if err != nil {
		return r, fmt.Errorf("rollout stages: %w", err)
	}
	if r.History == nil {
		r.History = json.RawMessage("[]")
	}
	now := micros(s.now())
	if !r.StartedAt.IsZero() {
		// The caller's clock: the controller times the first window from
		// it.
		now = micros(r.StartedAt)
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM rollouts WHERE endpoint = $1 AND status = $2`, r.Endpoint, store.RolloutRunning).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("endpoint %s already has a running rollout: %w", r.Endpoint, store.ErrConflict)
		}
		return tx.QueryRowContext(ctx, `INSERT INTO rollouts (endpoint, model, canary_version, baseline_version, stages, stage, status, history, started_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8, $8) RETURNING id`,
			r.Endpoint, r.Model, r.CanaryVersion, r.BaselineVersion, string(stages), store.RolloutRunning, string(r.History), now).Scan(&r.ID)
	})
	if err != nil {
		return r, err
	}
	r.Stage, r.Status, r.StartedAt, r.UpdatedAt = 0, store.RolloutRunning, fromMicros(now), fromMicros(now)
	return r, nil
}

// Rollouts implements store.ServeStore.
func (s *Store) Rollouts(ctx context.Context, endpoint string) ([]store.Rollout, error) {
	out, err := queryRows(ctx, s.r, `SELECT `+rolloutCols+` FROM rollouts WHERE endpoint = $1 OR $1 = '' ORDER BY id DESC`,
		[]any{endpoint}, scanRollout)
	if err != nil {
		return nil, fmt.Errorf("list rollouts: %w", err)
	}
	return out, nil
}

// UpdateRollout implements store.ServeStore.
func (s *Store) UpdateRollout(ctx context.Context, id int64, fromStage, stage int, status store.RolloutStatus, history json.RawMessage) (store.Rollout, error) {
	var out store.Rollout
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE rollouts SET stage = $1, status = $2, history = $3, updated_at = $4
			WHERE id = $5 AND stage = $6 AND status = $7`, stage, status, string(history), micros(s.now()), id, fromStage, store.RolloutRunning)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("rollout %d is no longer running at stage %d: %w", id, fromStage, store.ErrConflict)
		}
		out, err = scanRollout(tx.QueryRowContext(ctx, `SELECT `+rolloutCols+` FROM rollouts WHERE id = $1`, id))
		return err
	})
	return out, err
}
