-- Tasks offered to any worker (queued), with leases fenced by generation.
ALTER TABLE tasks ADD COLUMN queued BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE tasks ADD COLUMN item TEXT;
ALTER TABLE tasks ADD COLUMN max_attempts INTEGER NOT NULL DEFAULT 1;
ALTER TABLE tasks ADD COLUMN not_before INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN lease_owner TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN lease_until INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN lease_gen INTEGER NOT NULL DEFAULT 0;
-- Who can run the task: "" (a shell step, any worker) or "go:FLOW" (a Go
-- step, only workers that have the flow's functions).
ALTER TABLE tasks ADD COLUMN runner TEXT NOT NULL DEFAULT '';
-- Attempts lost with their worker (they do not use up the step's retries).
ALTER TABLE tasks ADD COLUMN lost INTEGER NOT NULL DEFAULT 0;
CREATE INDEX tasks_queue ON tasks (ready_at) WHERE queued AND status = 'pending';
CREATE INDEX tasks_leased ON tasks (lease_owner) WHERE queued AND status = 'running';
