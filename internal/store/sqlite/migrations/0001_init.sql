CREATE TABLE flows (
    name       TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
);

CREATE TABLE flow_versions (
    flow       TEXT NOT NULL REFERENCES flows (name),
    version    INTEGER NOT NULL,
    digest     TEXT NOT NULL,
    spec       TEXT NOT NULL,
    source     TEXT NOT NULL DEFAULT '',
    path       TEXT NOT NULL DEFAULT '',
    dir        TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    PRIMARY KEY (flow, version),
    UNIQUE (flow, digest)
);

CREATE TABLE runs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    flow             TEXT NOT NULL,
    flow_version     INTEGER NOT NULL,
    status           TEXT NOT NULL,
    params           TEXT NOT NULL,
    tags             TEXT NOT NULL,
    trigger_kind     TEXT NOT NULL,
    trigger_detail   TEXT NOT NULL DEFAULT '',
    origin_run_id    INTEGER NOT NULL DEFAULT 0,
    resume_from      TEXT NOT NULL DEFAULT '',
    error            TEXT NOT NULL DEFAULT '',
    owner            TEXT NOT NULL DEFAULT '',
    lease_expires_at INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER NOT NULL DEFAULT 0,
    finished_at      INTEGER NOT NULL DEFAULT 0,
    FOREIGN KEY (flow, flow_version) REFERENCES flow_versions (flow, version)
);
CREATE INDEX runs_by_flow ON runs (flow, id);
CREATE INDEX runs_by_status ON runs (status, id);

CREATE TABLE run_tags (
    tag    TEXT NOT NULL,
    run_id INTEGER NOT NULL REFERENCES runs (id),
    PRIMARY KEY (tag, run_id)
);

-- The hot tables carry no foreign keys: a 100,000-task fan-out writes them
-- in bulk, and the engine is their only writer.
CREATE TABLE steps (
    run_id      INTEGER NOT NULL,
    name        TEXT NOT NULL,
    status      TEXT NOT NULL,
    foreach     BOOLEAN NOT NULL DEFAULT FALSE,
    num_tasks   INTEGER NOT NULL DEFAULT 0,
    started_at  INTEGER NOT NULL DEFAULT 0,
    finished_at INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, name)
) WITHOUT ROWID;

CREATE TABLE tasks (
    run_id      INTEGER NOT NULL,
    step        TEXT NOT NULL,
    idx         INTEGER NOT NULL,
    status      TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    reused_run  INTEGER NOT NULL DEFAULT 0,
    ready_at    INTEGER NOT NULL DEFAULT 0,
    started_at  INTEGER NOT NULL DEFAULT 0,
    finished_at INTEGER NOT NULL DEFAULT 0,
    exit_code   INTEGER,
    error       TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, step, idx)
) WITHOUT ROWID;

CREATE TABLE attempts (
    run_id        INTEGER NOT NULL,
    step          TEXT NOT NULL,
    idx           INTEGER NOT NULL,
    attempt       INTEGER NOT NULL,
    status        TEXT NOT NULL,
    started_at    INTEGER NOT NULL DEFAULT 0,
    finished_at   INTEGER NOT NULL DEFAULT 0,
    exit_code     INTEGER,
    error         TEXT NOT NULL DEFAULT '',
    stdout_digest TEXT NOT NULL DEFAULT '',
    stdout_size   INTEGER NOT NULL DEFAULT 0,
    stderr_digest TEXT NOT NULL DEFAULT '',
    stderr_size   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, step, idx, attempt)
) WITHOUT ROWID;

CREATE TABLE artifacts (
    run_id     INTEGER NOT NULL,
    step       TEXT NOT NULL,
    idx        INTEGER NOT NULL,
    name       TEXT NOT NULL,
    digest     TEXT NOT NULL,
    size       INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (run_id, step, idx, name)
) WITHOUT ROWID;
CREATE INDEX artifacts_by_digest ON artifacts (digest);
