-- Feature definitions: entities, sources and features, each versioned by
-- the digest of its spec; every value and computation names the version.
CREATE TABLE feature_defs (
    kind       TEXT NOT NULL,
    name       TEXT NOT NULL,
    version    INTEGER NOT NULL,
    digest     TEXT NOT NULL,
    spec       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (kind, name, version)
);

-- One row per batch computation (training set, backfill): what it computed,
-- its quality report and the value profiles the next one is compared with.
CREATE TABLE feature_computations (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL,
    features   TEXT NOT NULL,
    row_count  INTEGER NOT NULL,
    status     TEXT NOT NULL,
    report     TEXT NOT NULL,
    profiles   TEXT NOT NULL,
    output     TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL
);

-- Which features a computation computed, to find a feature's last one.
CREATE TABLE feature_computed (
    feature        TEXT NOT NULL,
    computation_id INTEGER NOT NULL REFERENCES feature_computations (id),
    version        INTEGER NOT NULL,
    PRIMARY KEY (feature, computation_id)
);
