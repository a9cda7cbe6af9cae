-- What is left of a step: a queue coordinator counts these often, and they
-- shrink as tasks end, so the count stays cheap near the end of a big foreach.
CREATE INDEX tasks_unfinished ON tasks (run_id, step, status) WHERE status <> 'succeeded';
