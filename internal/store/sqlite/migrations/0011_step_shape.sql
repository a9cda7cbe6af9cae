-- How a step's tasks sit in nested foreach levels (store.Shape, as JSON);
-- '' for a step outside any foreach.
ALTER TABLE steps ADD COLUMN shape TEXT NOT NULL DEFAULT '';
