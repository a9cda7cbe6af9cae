-- The model registry: models, their versions with lineage, every lifecycle
-- transition (who, when, why, and an optional decision record), aliases.
CREATE TABLE models (
    name        TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
);

CREATE TABLE model_versions (
    model         TEXT NOT NULL REFERENCES models (name),
    version       INTEGER NOT NULL,
    state         TEXT NOT NULL,
    artifact      TEXT NOT NULL,
    digest        TEXT NOT NULL,
    size          INTEGER NOT NULL,
    run_id        INTEGER NOT NULL,
    flow          TEXT NOT NULL DEFAULT '',
    flow_version  INTEGER NOT NULL DEFAULT 0,
    lineage       TEXT NOT NULL,
    metrics       TEXT NOT NULL,
    tags          TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (model, version)
);
CREATE INDEX model_versions_by_run ON model_versions (run_id);

CREATE TABLE model_transitions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    model       TEXT NOT NULL,
    version     INTEGER NOT NULL,
    from_state  TEXT NOT NULL,
    to_state    TEXT NOT NULL,
    actor       TEXT NOT NULL,
    reason      TEXT NOT NULL,
    decision    TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
);
CREATE INDEX model_transitions_by_version ON model_transitions (model, version, id);

CREATE TABLE model_aliases (
    model      TEXT NOT NULL REFERENCES models (name),
    alias      TEXT NOT NULL,
    version    INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (model, alias)
);
