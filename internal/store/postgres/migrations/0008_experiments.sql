-- Experiments: the spec and its allocation version (bumped when weights or
-- traffic change: units are re-randomized), status, and why it paused.
CREATE TABLE experiments (
    name        TEXT PRIMARY KEY,
    spec        TEXT NOT NULL,
    digest      TEXT NOT NULL,
    version     INTEGER NOT NULL,
    status      TEXT NOT NULL,
    reason      TEXT NOT NULL DEFAULT '',
    alloc       TEXT NOT NULL DEFAULT '',
    updated_at  BIGINT NOT NULL
);

-- A unit's first exposure to an experiment under an allocation version.
CREATE TABLE exp_exposures (
    experiment TEXT NOT NULL,
    version    INTEGER NOT NULL,
    unit       TEXT NOT NULL,
    variant    TEXT NOT NULL,
    at         BIGINT NOT NULL,
    PRIMARY KEY (experiment, version, unit)
);

-- Metric events of units; analysis sums them per unit.
CREATE TABLE exp_metrics (
    experiment TEXT NOT NULL,
    unit       TEXT NOT NULL,
    metric     TEXT NOT NULL,
    value      DOUBLE PRECISION NOT NULL,
    at         BIGINT NOT NULL
);
CREATE INDEX exp_metrics_by_experiment ON exp_metrics (experiment, metric, unit);
