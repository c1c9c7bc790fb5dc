-- Backfills: jobs for the streams a projection has not seen, because they were written before it
-- was registered (or because an operator asks for them again). A backfill walks the streams table
-- by key, a page at a time (ef_backfill_page), and its cursor commits with each page's jobs, so a
-- backfill whose driver dies resumes where it stopped instead of being lost: the worker that
-- registers a projection creates its backfill in the same transaction, and the leading scheduler
-- drives every unfinished one. The monitor shows those that have not finished.
CREATE TABLE ef_backfills (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    projections     text[]      NOT NULL CHECK (cardinality(projections) > 0),
    -- One partition, or NULL for every partition.
    partition       text,
    -- The last stream enqueued, in (partition, stream_id) order; '' before the first page.
    after_partition text        NOT NULL DEFAULT '',
    after_stream    text        NOT NULL DEFAULT '',
    streams         bigint      NOT NULL DEFAULT 0,
    enqueued        bigint      NOT NULL DEFAULT 0,
    -- Streams in scope when the backfill started: the denominator of its progress.
    total           bigint      NOT NULL DEFAULT 0,
    created         timestamptz NOT NULL DEFAULT now(),
    updated         timestamptz NOT NULL DEFAULT now(),
    finished        timestamptz
);

CREATE INDEX ef_backfills_unfinished ON ef_backfills (id) WHERE finished IS NULL;
