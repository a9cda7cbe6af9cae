package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/baton-ml/baton/internal/store"
)

const experimentCols = `name, spec, digest, alloc, version, status, reason, updated_at`

func scanExperiment(row scanner) (store.Experiment, error) {
	var e store.Experiment
	var spec string
	var at int64
	if err := row.Scan(&e.Name, &spec, &e.Digest, &e.Alloc, &e.Version, &e.Status, &e.Reason, &at); err != nil {
		return e, err
	}
	e.Spec, e.UpdatedAt = json.RawMessage(spec), fromMicros(at)
	return e, nil
}

// PutExperiment implements store.ExperimentStore.
func (s *Store) PutExperiment(ctx context.Context, e store.Experiment) (store.Experiment, bool, error) {
	changed := false
	var out store.Experiment
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.lock(ctx, tx, "experiment:"+e.Name); err != nil {
			return err
		}
		now := micros(s.now())
		cur, err := scanExperiment(tx.QueryRowContext(ctx, `SELECT `+experimentCols+` FROM experiments WHERE name = $1`, e.Name))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			e.Version, e.Status = 1, store.ExperimentRunning
			if _, err := tx.ExecContext(ctx, `INSERT INTO experiments (`+experimentCols+`) VALUES ($1, $2, $3, $4, $5, $6, '', $7)`,
				e.Name, string(e.Spec), e.Digest, e.Alloc, e.Version, e.Status, now); err != nil {
				return fmt.Errorf("insert experiment %s: %w", e.Name, err)
			}
			e.UpdatedAt, out, changed = fromMicros(now), e, true
			return nil
		case err != nil:
			return err
		case cur.Digest == e.Digest:
			out = cur
			return nil
		}
		// A change of allocation re-randomizes: a new version.
		if cur.Alloc != e.Alloc {
			cur.Version++
		}
		cur.Spec, cur.Digest, cur.Alloc, cur.UpdatedAt = e.Spec, e.Digest, e.Alloc, fromMicros(now)
		if _, err := tx.ExecContext(ctx, `UPDATE experiments SET spec = $1, digest = $2, alloc = $3, version = $4, updated_at = $5 WHERE name = $6`,
			string(cur.Spec), cur.Digest, cur.Alloc, cur.Version, now, e.Name); err != nil {
			return err
		}
		out, changed = cur, true
		return nil
	})
	return out, changed, err
}

// Experiments implements store.ExperimentStore.
func (s *Store) Experiments(ctx context.Context) ([]store.Experiment, error) {
	out, err := queryRows(ctx, s.r, `SELECT `+experimentCols+` FROM experiments ORDER BY name`, nil, scanExperiment)
	if err != nil {
		return nil, fmt.Errorf("list experiments: %w", err)
	}
	return out, nil
}

// SetExperimentStatus implements store.ExperimentStore.
func (s *Store) SetExperimentStatus(ctx context.Context, name string, from []store.ExperimentStatus, status store.ExperimentStatus, reason string) (store.Experiment, error) {
	var out store.Experiment
	err := s.tx(ctx, func(tx *sql.Tx) error {
		// Under the experiment's lock: a guardrail's pause and a person's
		// stop must not both read "running".
		if err := s.lock(ctx, tx, "experiment:"+name); err != nil {
			return err
		}
		cur, err := scanExperiment(tx.QueryRowContext(ctx, `SELECT `+experimentCols+` FROM experiments WHERE name = $1`, name))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("experiment %s: %w", name, store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if !slices.Contains(from, cur.Status) {
			return fmt.Errorf("experiment %s is %s: %w", name, cur.Status, store.ErrConflict)
		}
		now := micros(s.now())
		if _, err := tx.ExecContext(ctx, `UPDATE experiments SET status = $1, reason = $2, updated_at = $3 WHERE name = $4`, status, reason, now, name); err != nil {
			return err
		}
		cur.Status, cur.Reason, cur.UpdatedAt = status, reason, fromMicros(now)
		out = cur
		return nil
	})
	return out, err
}

// AddExposures implements store.ExperimentStore.
func (s *Store) AddExposures(ctx context.Context, es []store.Exposure) (int, error) {
	n := 0
	err := s.tx(ctx, func(tx *sql.Tx) error {
		n = 0
		st, err := tx.PrepareContext(ctx, `INSERT INTO exp_exposures (experiment, version, unit, variant, at) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (experiment, version, unit) DO NOTHING`)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, e := range es {
			res, err := st.ExecContext(ctx, e.Experiment, e.Version, e.Unit, e.Variant, micros(e.At))
			if err != nil {
				return fmt.Errorf("exposure of %s to %s: %w", e.Unit, e.Experiment, err)
			}
			k, _ := res.RowsAffected()
			n += int(k)
		}
		return nil
	})
	return n, err
}

// AddMetricEvents implements store.ExperimentStore.
func (s *Store) AddMetricEvents(ctx context.Context, ms []store.MetricEvent) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, `INSERT INTO exp_metrics (experiment, unit, metric, value, at) VALUES ($1, $2, $3, $4, $5)`)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, m := range ms {
			if _, err := st.ExecContext(ctx, m.Experiment, m.Unit, m.Metric, m.Value, micros(m.At)); err != nil {
				return fmt.Errorf("metric %s of %s: %w", m.Metric, m.Unit, err)
			}
		}
		return nil
	})
}

// Exposures implements store.ExperimentStore.
func (s *Store) Exposures(ctx context.Context, experiment string, version int) ([]store.Exposure, error) {
	out, err := queryRows(ctx, s.r, `SELECT unit, variant, at FROM exp_exposures WHERE experiment = $1 AND version = $2 ORDER BY at, unit`,
		[]any{experiment, version}, func(row scanner) (store.Exposure, error) {
			e := store.Exposure{Experiment: experiment, Version: version}
			var at int64
			if err := row.Scan(&e.Unit, &e.Variant, &at); err != nil {
				return e, err
			}
			e.At = fromMicros(at)
			return e, nil
		})
	if err != nil {
		return nil, fmt.Errorf("exposures of %s version %d: %w", experiment, version, err)
	}
	return out, nil
}

// MetricEvents implements store.ExperimentStore.
func (s *Store) MetricEvents(ctx context.Context, experiment, metric string) ([]store.MetricEvent, error) {
	out, err := queryRows(ctx, s.r, `SELECT unit, value, at FROM exp_metrics WHERE experiment = $1 AND metric = $2 ORDER BY at`,
		[]any{experiment, metric}, func(row scanner) (store.MetricEvent, error) {
			m := store.MetricEvent{Experiment: experiment, Metric: metric}
			var at int64
			if err := row.Scan(&m.Unit, &m.Value, &at); err != nil {
				return m, err
			}
			m.At = fromMicros(at)
			return m, nil
		})
	if err != nil {
		return nil, fmt.Errorf("metric %s of %s: %w", metric, experiment, err)
	}
	return out, nil
}
