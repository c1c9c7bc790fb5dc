-- Projection versions (docs/DESIGN.md, "Projection versions"): a projection's identity is its name
-- together with its version. Each version has its own row here, its own table and its own jobs;
-- readers query the projection's view, which the fleet points at the active version.
--
-- A version's key is what jobs, backfills, workers and metrics name it by: the projection's name
-- for version 1, `name@version` for later versions. Version 1's key is the name the previous
-- release used, so its jobs and workers need no change, and a worker of the previous release
-- (which knows only names) claims version 1's jobs and never another version's. The key stays in
-- the `name` column, the conflict target of the previous release's registration; `projection` is
-- the projection's own name.
ALTER TABLE ef_projections ADD COLUMN projection text GENERATED ALWAYS AS (split_part(name, '@', 1)) STORED;
-- active: the version readers see (at most one per projection); standby: registered beside it,
-- being built or kept current for a rollback; retired: its table, jobs and backfills are gone, and
-- its workers are refused. Jobs of a version that is not active run on the backfill lane.
ALTER TABLE ef_projections ADD COLUMN state text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'standby', 'retired'));
ALTER TABLE ef_projections ADD COLUMN state_changed timestamptz NOT NULL DEFAULT now();
-- Whether the version was ever active (a standby version that was not is being built).
ALTER TABLE ef_projections ADD COLUMN was_active boolean NOT NULL DEFAULT true;
-- The view readers query, which promotion points at the active version's table (NULL: none).
ALTER TABLE ef_projections ADD COLUMN view_schema text;
ALTER TABLE ef_projections ADD COLUMN view_name text;
-- The leading scheduler promotes the version once it has caught up with the active one.
ALTER TABLE ef_projections ADD COLUMN auto_promote boolean NOT NULL DEFAULT false;
ALTER TABLE ef_projections ADD CONSTRAINT ef_projections_key
    CHECK (name = CASE WHEN version = 1 THEN projection ELSE projection || '@' || version END);
CREATE UNIQUE INDEX ef_projections_one_active ON ef_projections (projection) WHERE state = 'active';
