-- A flow version's code snapshot: the digest of the deterministic tar of
-- its folder in the artifact store, and the tar's size in bytes. '' and 0
-- for a version without one (a Go SDK flow, or one registered before
-- snapshots, which runs from its folder).
ALTER TABLE flow_versions ADD COLUMN code_digest TEXT NOT NULL DEFAULT '';
ALTER TABLE flow_versions ADD COLUMN code_size BIGINT NOT NULL DEFAULT 0;
