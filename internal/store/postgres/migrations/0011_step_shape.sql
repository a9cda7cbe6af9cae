-- How a step's tasks sit in nested foreach levels (store.Shape, as JSON);
-- '' for a step outside any foreach.
ALTER TABLE steps ADD COLUMN shape TEXT NOT NULL DEFAULT '';
-- What a queued task needs of its worker (flow.Resources, in thousandths
-- of a core and MiB) and the labels the worker must carry ("k=v" lines,
-- sorted).
ALTER TABLE tasks ADD COLUMN req_cpu BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN req_mem BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN req_gpu INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN req_labels TEXT NOT NULL DEFAULT '';
