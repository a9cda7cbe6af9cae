package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/baton-ml/baton/internal/store"
)

const featureSpecCols = `kind, name, version, digest, spec, created_at`

func scanFeatureSpec(row scanner) (store.FeatureSpec, error) {
	var f store.FeatureSpec
	var spec string
	var created int64
	if err := row.Scan(&f.Kind, &f.Name, &f.Version, &f.Digest, &spec, &created); err != nil {
		return f, err
	}
	f.Spec, f.CreatedAt = json.RawMessage(spec), fromMicros(created)
	return f, nil
}

// PutFeatureSpecs implements store.FeatureStore.
func (s *Store) PutFeatureSpecs(ctx context.Context, specs []store.FeatureSpec) ([]store.FeatureSpec, int, error) {
	out := make([]store.FeatureSpec, len(specs))
	created := 0
	err := s.tx(ctx, func(tx *sql.Tx) error {
		created = 0
		// Versions are numbered per name: one applier at a time.
		if err := s.lock(ctx, tx, "features"); err != nil {
			return err
		}
		now := micros(s.now())
		for i, f := range specs {
			// Only the newest version counts: going back to an older
			// definition makes a new version, so the newest is always current.
			existing, err := scanFeatureSpec(tx.QueryRowContext(ctx,
				`SELECT `+featureSpecCols+` FROM feature_defs WHERE kind = $1 AND name = $2 ORDER BY version DESC LIMIT 1`, f.Kind, f.Name))
			if err == nil && existing.Digest == f.Digest {
				out[i] = existing
				continue
			}
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("look up %s %s: %w", f.Kind, f.Name, err)
			}
			if err := tx.QueryRowContext(ctx,
				`SELECT COALESCE(MAX(version), 0) + 1 FROM feature_defs WHERE kind = $1 AND name = $2`, f.Kind, f.Name).Scan(&f.Version); err != nil {
				return fmt.Errorf("next version of %s %s: %w", f.Kind, f.Name, err)
			}
			if _, err := tx.ExecContext(ctx,
				`INSERT INTO feature_defs (`+featureSpecCols+`) VALUES ($1, $2, $3, $4, $5, $6)`,
				f.Kind, f.Name, f.Version, f.Digest, string(f.Spec), now); err != nil {
				return fmt.Errorf("insert %s %s version %d: %w", f.Kind, f.Name, f.Version, err)
			}
			f.CreatedAt = fromMicros(now)
			out[i] = f
			created++
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return out, created, nil
}

// FeatureSpecs implements store.FeatureStore.
func (s *Store) FeatureSpecs(ctx context.Context) ([]store.FeatureSpec, error) {
	return s.featureSpecs(ctx, `SELECT `+featureSpecCols+` FROM feature_defs d
		WHERE version = (SELECT MAX(version) FROM feature_defs m WHERE m.kind = d.kind AND m.name = d.name)
		ORDER BY kind, name`)
}

// FeatureSpecVersions implements store.FeatureStore.
func (s *Store) FeatureSpecVersions(ctx context.Context, kind, name string) ([]store.FeatureSpec, error) {
	out, err := s.featureSpecs(ctx, `SELECT `+featureSpecCols+` FROM feature_defs WHERE kind = $1 AND name = $2 ORDER BY version`, kind, name)
	if err == nil && len(out) == 0 {
		err = fmt.Errorf("%s %s: %w", kind, name, store.ErrNotFound)
	}
	return out, err
}

func (s *Store) featureSpecs(ctx context.Context, q string, args ...any) ([]store.FeatureSpec, error) {
	out, err := queryRows(ctx, s.r, q, args, scanFeatureSpec)
	if err != nil {
		return nil, fmt.Errorf("feature definitions: %w", err)
	}
	return out, nil
}

// AddComputation implements store.FeatureStore.
func (s *Store) AddComputation(ctx context.Context, c store.FeatureComputation) (store.FeatureComputation, error) {
	feats, err := json.Marshal(c.Features)
	if err != nil {
		return c, err
	}
	if c.Report == nil {
		c.Report = json.RawMessage("{}")
	}
	if c.Profiles == nil {
		c.Profiles = json.RawMessage("{}")
	}
	now := micros(s.now())
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx,
			`INSERT INTO feature_computations (kind, features, row_count, status, report, profiles, output, created_at)
			 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
			c.Kind, string(feats), c.Rows, c.Status, string(c.Report), string(c.Profiles), c.Output, now).Scan(&c.ID); err != nil {
			return fmt.Errorf("insert computation: %w", err)
		}
		for name, v := range c.Features {
			if _, err := tx.ExecContext(ctx,
				`INSERT INTO feature_computed (feature, computation_id, version) VALUES ($1, $2, $3)`, name, c.ID, v); err != nil {
				return fmt.Errorf("insert computation %d feature %s: %w", c.ID, name, err)
			}
		}
		return nil
	})
	c.CreatedAt = fromMicros(now)
	return c, err
}

// LastComputation implements store.FeatureStore.
func (s *Store) LastComputation(ctx context.Context, feature string) (store.FeatureComputation, error) {
	var c store.FeatureComputation
	var feats, report, profiles string
	var created int64
	err := s.r.QueryRowContext(ctx,
		`SELECT c.id, c.kind, c.features, c.row_count, c.status, c.report, c.profiles, c.output, c.created_at
		 FROM feature_computations c JOIN feature_computed f ON f.computation_id = c.id
		 WHERE f.feature = $1 AND c.status <> $2 ORDER BY c.id DESC LIMIT 1`, feature, store.ComputationBlocked).
		Scan(&c.ID, &c.Kind, &feats, &c.Rows, &c.Status, &report, &profiles, &c.Output, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("computation of %s: %w", feature, store.ErrNotFound)
	}
	if err != nil {
		return c, fmt.Errorf("last computation of %s: %w", feature, err)
	}
	if err := json.Unmarshal([]byte(feats), &c.Features); err != nil {
		return c, fmt.Errorf("computation %d features: %w", c.ID, err)
	}
	c.Report, c.Profiles, c.CreatedAt = json.RawMessage(report), json.RawMessage(profiles), fromMicros(created)
	return c, nil
}

// Computations implements store.FeatureStore.
func (s *Store) Computations(ctx context.Context, feature string, limit int) ([]store.FeatureComputation, error) {
	if limit <= 0 {
		limit = 50
	}
	rows, err := s.r.QueryContext(ctx,
		`SELECT c.id, c.kind, c.features, c.row_count, c.status, c.report, c.output, c.created_at
		 FROM feature_computations c JOIN feature_computed f ON f.computation_id = c.id
		 WHERE f.feature = $1 ORDER BY c.id DESC LIMIT $2`, feature, limit)
	if err != nil {
		return nil, fmt.Errorf("computations of %s: %w", feature, err)
	}
	defer rows.Close()
	var out []store.FeatureComputation
	for rows.Next() {
		var c store.FeatureComputation
		var feats, report string
		var created int64
		if err := rows.Scan(&c.ID, &c.Kind, &feats, &c.Rows, &c.Status, &report, &c.Output, &created); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(feats), &c.Features); err != nil {
			return nil, fmt.Errorf("computation %d features: %w", c.ID, err)
		}
		c.Report, c.CreatedAt = json.RawMessage(report), fromMicros(created)
		out = append(out, c)
	}
	return out, rows.Err()
}
