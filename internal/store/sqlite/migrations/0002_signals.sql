-- Signals, their contracts, and what they triggered.
CREATE TABLE signal_contracts (
    name       TEXT PRIMARY KEY,
    spec       TEXT NOT NULL,
    digest     TEXT NOT NULL,
    path       TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- seq orders signals for the trigger evaluator's cursor; id deduplicates.
CREATE TABLE signals (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    params      TEXT NOT NULL,
    source_kind TEXT NOT NULL,
    source_flow TEXT NOT NULL DEFAULT '',
    source_run  INTEGER NOT NULL DEFAULT 0,
    source_step TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
);
CREATE INDEX signals_by_name ON signals (name, seq);
CREATE INDEX signals_by_source_run ON signals (source_run);

-- One row per trigger firing: the key makes every firing exactly-once
-- (signal:ID:FLOW:N, finish:RUN:FLOW:N, cron:FLOW:N:UNIX, join:FLOW:N:KEYS).
CREATE TABLE trigger_fires (
    fire_key   TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    flow       TEXT NOT NULL,
    run_id     INTEGER NOT NULL,
    signal_id  TEXT NOT NULL DEFAULT '',
    source_run INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE INDEX trigger_fires_by_signal ON trigger_fires (signal_id);
CREATE INDEX trigger_fires_by_source_run ON trigger_fires (source_run);
CREATE INDEX trigger_fires_by_run ON trigger_fires (run_id);

-- Signals waiting for the other signals of a join trigger.
CREATE TABLE join_parts (
    flow       TEXT NOT NULL,
    trig       INTEGER NOT NULL,
    join_key   TEXT NOT NULL,
    signal     TEXT NOT NULL,
    signal_id  TEXT NOT NULL,
    params     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (flow, trig, join_key, signal)
);

-- Progress markers of the server's loops (last signal seq evaluated, last
-- finished-run event evaluated, last cron tick per trigger).
CREATE TABLE cursors (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);

-- Finished runs, in order, for on_finish triggers (an outbox written in the
-- transaction that ends the run).
CREATE TABLE run_events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id     INTEGER NOT NULL,
    flow       TEXT NOT NULL,
    status     TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

ALTER TABLE runs ADD COLUMN cancel_requested BOOLEAN NOT NULL DEFAULT FALSE;

-- A strict_sequential flow whose run failed is blocked until resolved.
CREATE TABLE flow_blocks (
    flow       TEXT PRIMARY KEY,
    run_id     INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE tokens (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,
    hash       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    last_used  INTEGER NOT NULL DEFAULT 0
);

-- The signal a waiting step received.
ALTER TABLE steps ADD COLUMN signal_id TEXT NOT NULL DEFAULT '';
