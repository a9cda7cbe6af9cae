-- A breach that continues one whose signal went out is stored as repeated
-- and not published again.
ALTER TABLE monitor_results ADD COLUMN repeated BOOLEAN NOT NULL DEFAULT FALSE;
