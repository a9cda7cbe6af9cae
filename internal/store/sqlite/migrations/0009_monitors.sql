-- Monitors (a spec each, replaced whole on apply) and their results: one
-- row per evaluation, with each check's value (JSON), whether any breached,
-- the evidence (JSON), the signal a breach published and any error.
CREATE TABLE monitors (
    name       TEXT PRIMARY KEY,
    spec       TEXT NOT NULL,
    digest     TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE monitor_results (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    monitor      TEXT NOT NULL,
    kind         TEXT NOT NULL,
    trigger_kind TEXT NOT NULL,
    due_at       INTEGER NOT NULL,
    evaluated_at INTEGER NOT NULL,
    checks       TEXT NOT NULL,
    breached     BOOLEAN NOT NULL,
    evidence     TEXT NOT NULL,
    signal_id    TEXT NOT NULL DEFAULT '',
    error        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX monitor_results_by_monitor ON monitor_results (monitor, id);
-- A due time of a monitor's schedule is answered once, whichever server
-- evaluated it.
CREATE UNIQUE INDEX monitor_results_scheduled ON monitor_results (monitor, due_at) WHERE trigger_kind = 'schedule';
