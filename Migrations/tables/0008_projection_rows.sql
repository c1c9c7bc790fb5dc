-- Where a fleet projection keeps its row per stream (`partition`, `stream_id`,
-- `last_stream_position`), recorded by the workers that run it, so that a caller can wait for a
-- projection to show an append (PostgresEventStore.waitForProjection, ef_projection_progress)
-- without the projection's code. row_schema NULL: the table is found on the store's search path.
-- Both NULL: the projection keeps no such row (a custom stream projection), and cannot be waited for.
ALTER TABLE ef_projections ADD COLUMN row_schema text;
ALTER TABLE ef_projections ADD COLUMN row_table text;
