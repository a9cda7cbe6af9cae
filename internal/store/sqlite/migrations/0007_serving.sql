-- Serving endpoints (a spec each, replaced whole on apply) and progressive
-- rollouts of a canary version against the production baseline.
CREATE TABLE endpoints (
    name       TEXT PRIMARY KEY,
    spec       TEXT NOT NULL,
    digest     TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE rollouts (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint         TEXT NOT NULL,
    model            TEXT NOT NULL,
    canary_version   INTEGER NOT NULL,
    baseline_version INTEGER NOT NULL,
    stages           TEXT NOT NULL,
    stage            INTEGER NOT NULL,
    status           TEXT NOT NULL,
    history          TEXT NOT NULL,
    started_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
-- One active rollout per endpoint.
CREATE UNIQUE INDEX rollouts_active ON rollouts (endpoint) WHERE status = 'running';
