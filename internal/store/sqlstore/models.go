package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/baton-ml/baton/internal/store"
)

const modelVersionCols = `model, version, state, artifact, digest, size, run_id, flow, flow_version, lineage, metrics, tags, description, created_at, updated_at`

func scanModelVersion(row scanner) (store.ModelVersion, error) {
	var v store.ModelVersion
	var lineage, metrics, tags string
	var created, updated int64
	if err := row.Scan(&v.Model, &v.Version, &v.State, &v.Artifact, &v.Digest, &v.Size, &v.RunID, &v.Flow, &v.FlowVersion,
		&lineage, &metrics, &tags, &v.Description, &created, &updated); err != nil {
		return v, err
	}
	v.Lineage = json.RawMessage(lineage)
	if err := json.Unmarshal([]byte(metrics), &v.Metrics); err != nil {
		return v, fmt.Errorf("model %s version %d metrics: %w", v.Model, v.Version, err)
	}
	if err := json.Unmarshal([]byte(tags), &v.Tags); err != nil {
		return v, fmt.Errorf("model %s version %d tags: %w", v.Model, v.Version, err)
	}
	v.CreatedAt, v.UpdatedAt = fromMicros(created), fromMicros(updated)
	return v, nil
}

func jsonText(v any, empty string) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	if string(b) == "null" {
		return empty, nil
	}
	return string(b), nil
}

// CreateModelVersion implements store.ModelStore.
func (s *Store) CreateModelVersion(ctx context.Context, v store.ModelVersion, actor, reason string) (store.ModelVersion, error) {
	metrics, err := jsonText(v.Metrics, "{}")
	if err != nil {
		return v, err
	}
	tags, err := jsonText(v.Tags, "{}")
	if err != nil {
		return v, err
	}
	if v.Lineage == nil {
		v.Lineage = json.RawMessage("{}")
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		// Versions are numbered per model: one registrar at a time.
		if err := s.lock(ctx, tx, "model:"+v.Model); err != nil {
			return err
		}
		now := micros(s.now())
		if _, err := tx.ExecContext(ctx, `INSERT INTO models (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`, v.Model, now); err != nil {
			return fmt.Errorf("insert model %s: %w", v.Model, err)
		}
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions WHERE model = $1`, v.Model).Scan(&v.Version); err != nil {
			return fmt.Errorf("next version of %s: %w", v.Model, err)
		}
		v.State = store.ModelRegistered
		if _, err := tx.ExecContext(ctx, `INSERT INTO model_versions (`+modelVersionCols+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)`,
			v.Model, v.Version, v.State, v.Artifact, v.Digest, v.Size, v.RunID, v.Flow, v.FlowVersion,
			string(v.Lineage), metrics, tags, v.Description, now); err != nil {
			return fmt.Errorf("insert model %s version %d: %w", v.Model, v.Version, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO model_transitions (model, version, from_state, to_state, actor, reason, created_at)
			VALUES ($1, $2, '', $3, $4, $5, $6)`, v.Model, v.Version, v.State, actor, reason, now); err != nil {
			return fmt.Errorf("record the registration: %w", err)
		}
		v.CreatedAt, v.UpdatedAt = fromMicros(now), fromMicros(now)
		return nil
	})
	return v, err
}

// aliases keeps its own loop: it groups rows into a map rather than
// listing them.
func (s *Store) aliases(ctx context.Context, q querier, model string) (map[int][]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT alias, version FROM model_aliases WHERE model = $1 ORDER BY alias`, model)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int][]string{}
	for rows.Next() {
		var a string
		var v int
		if err := rows.Scan(&a, &v); err != nil {
			return nil, err
		}
		out[v] = append(out[v], a)
	}
	return out, rows.Err()
}

// ModelVersion implements store.ModelStore.
func (s *Store) ModelVersion(ctx context.Context, model string, version int) (store.ModelVersion, error) {
	v, err := scanModelVersion(s.r.QueryRowContext(ctx, `SELECT `+modelVersionCols+` FROM model_versions WHERE model = $1 AND version = $2`, model, version))
	if errors.Is(err, sql.ErrNoRows) {
		return v, fmt.Errorf("model %s version %d: %w", model, version, store.ErrNotFound)
	}
	if err != nil {
		return v, err
	}
	al, err := s.aliases(ctx, s.r, model)
	v.Aliases = al[version]
	return v, err
}

// ModelVersions implements store.ModelStore.
func (s *Store) ModelVersions(ctx context.Context, model string) ([]store.ModelVersion, error) {
	out, err := queryRows(ctx, s.r, `SELECT `+modelVersionCols+` FROM model_versions WHERE model = $1 ORDER BY version`,
		[]any{model}, scanModelVersion)
	if err != nil {
		return nil, fmt.Errorf("versions of model %s: %w", model, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("model %s: %w", model, store.ErrNotFound)
	}
	al, err := s.aliases(ctx, s.r, model)
	for i := range out {
		out[i].Aliases = al[out[i].Version]
	}
	return out, err
}

// Models implements store.ModelStore.
func (s *Store) Models(ctx context.Context) ([]store.ModelSummary, error) {
	out, err := queryRows(ctx, s.r, `SELECT m.name, m.created_at, COUNT(v.version),
		COALESCE(MAX(CASE WHEN v.state = $1 THEN v.version END), 0)
		FROM models m LEFT JOIN model_versions v ON v.model = m.name GROUP BY m.name, m.created_at ORDER BY m.name`,
		[]any{store.ModelProduction}, func(row scanner) (store.ModelSummary, error) {
			var m store.ModelSummary
			var created int64
			if err := row.Scan(&m.Name, &created, &m.Versions, &m.Production); err != nil {
				return m, err
			}
			m.CreatedAt = fromMicros(created)
			return m, nil
		})
	if err != nil {
		return nil, fmt.Errorf("list models: %w", err)
	}
	return out, nil
}

// TransitionModel implements store.ModelStore.
func (s *Store) TransitionModel(ctx context.Context, t store.ModelTransition, replace bool) (store.ModelVersion, error) {
	var out store.ModelVersion
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lock(ctx, tx, "model:"+t.Model); err != nil {
			return err
		}
		now := micros(s.now())
		move := func(version int, from, to store.ModelState, reason string, decision json.RawMessage) error {
			res, err := tx.ExecContext(ctx, `UPDATE model_versions SET state = $1, updated_at = $2 WHERE model = $3 AND version = $4 AND state = $5`,
				to, now, t.Model, version, from)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				var cur string
				err := tx.QueryRowContext(ctx, `SELECT state FROM model_versions WHERE model = $1 AND version = $2`, t.Model, version).Scan(&cur)
				if errors.Is(err, sql.ErrNoRows) {
					return fmt.Errorf("model %s version %d: %w", t.Model, version, store.ErrNotFound)
				}
				if err != nil {
					return err
				}
				return fmt.Errorf("model %s version %d is %s, not %s: %w", t.Model, version, cur, from, store.ErrConflict)
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO model_transitions (model, version, from_state, to_state, actor, reason, decision, created_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, t.Model, version, from, to, t.Actor, reason, string(decision), now)
			return err
		}
		var demote []int
		if replace {
			var err error
			demote, err = queryRows(ctx, tx, `SELECT version FROM model_versions WHERE model = $1 AND state = $2 AND version <> $3`,
				[]any{t.Model, t.To, t.Version}, func(row scanner) (int, error) {
					var v int
					return v, row.Scan(&v)
				})
			if err != nil {
				return fmt.Errorf("%s versions of model %s: %w", t.To, t.Model, err)
			}
		}
		if err := move(t.Version, t.From, t.To, t.Reason, t.Decision); err != nil {
			return err
		}
		for _, d := range demote {
			if err := move(d, t.To, store.ModelArchived, fmt.Sprintf("replaced by version %d: %s", t.Version, t.Reason), nil); err != nil {
				return err
			}
		}
		v, err := scanModelVersion(tx.QueryRowContext(ctx, `SELECT `+modelVersionCols+` FROM model_versions WHERE model = $1 AND version = $2`, t.Model, t.Version))
		out = v
		return err
	})
	if err != nil {
		return out, err
	}
	al, err := s.aliases(ctx, s.r, t.Model)
	out.Aliases = al[t.Version]
	return out, err
}

// ModelTransitions implements store.ModelStore.
func (s *Store) ModelTransitions(ctx context.Context, model string, version int) ([]store.ModelTransition, error) {
	out, err := queryRows(ctx, s.r, `SELECT id, model, version, from_state, to_state, actor, reason, decision, created_at
		FROM model_transitions WHERE model = $1 AND (version = $2 OR $2 = 0) ORDER BY id`, []any{model, version},
		func(row scanner) (store.ModelTransition, error) {
			var t store.ModelTransition
			var decision string
			var at int64
			if err := row.Scan(&t.ID, &t.Model, &t.Version, &t.From, &t.To, &t.Actor, &t.Reason, &decision, &at); err != nil {
				return t, err
			}
			if decision != "" {
				t.Decision = json.RawMessage(decision)
			}
			t.At = fromMicros(at)
			return t, nil
		})
	if err != nil {
		return nil, fmt.Errorf("transitions of model %s: %w", model, err)
	}
	return out, nil
}

// UpdateModelVersion implements store.ModelStore.
func (s *Store) UpdateModelVersion(ctx context.Context, model string, version int, metrics map[string]float64, tags map[string]string) (store.ModelVersion, error) {
	var out store.ModelVersion
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lock(ctx, tx, "model:"+model); err != nil {
			return err
		}
		v, err := scanModelVersion(tx.QueryRowContext(ctx, `SELECT `+modelVersionCols+` FROM model_versions WHERE model = $1 AND version = $2`, model, version))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("model %s version %d: %w", model, version, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if v.Metrics == nil {
			v.Metrics = map[string]float64{}
		}
		if v.Tags == nil {
			v.Tags = map[string]string{}
		}
		for k, x := range metrics {
			v.Metrics[k] = x
		}
		for k, x := range tags {
			if x == "" {
				delete(v.Tags, k)
			} else {
				v.Tags[k] = x
			}
		}
		m, err := json.Marshal(v.Metrics)
		if err != nil {
			return fmt.Errorf("model %s version %d metrics: %w", model, version, err)
		}
		tg, err := json.Marshal(v.Tags)
		if err != nil {
			return err
		}
		now := micros(s.now())
		if _, err := tx.ExecContext(ctx, `UPDATE model_versions SET metrics = $1, tags = $2, updated_at = $3 WHERE model = $4 AND version = $5`,
			string(m), string(tg), now, model, version); err != nil {
			return err
		}
		v.UpdatedAt = fromMicros(now)
		out = v
		return nil
	})
	return out, err
}

// SetModelAlias implements store.ModelStore.
func (s *Store) SetModelAlias(ctx context.Context, model, alias string, version int) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if version == 0 {
			res, err := tx.ExecContext(ctx, `DELETE FROM model_aliases WHERE model = $1 AND alias = $2`, model, alias)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return fmt.Errorf("alias %s of model %s: %w", alias, model, store.ErrNotFound)
			}
			return nil
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM model_versions WHERE model = $1 AND version = $2`, model, version).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("model %s version %d: %w", model, version, store.ErrNotFound)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO model_aliases (model, alias, version, updated_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (model, alias) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at`,
			model, alias, version, micros(s.now()))
		return err
	})
}
