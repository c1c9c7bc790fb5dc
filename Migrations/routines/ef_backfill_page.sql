-- ef_backfill_page: advances one unfinished backfill (p_id, or the oldest one no other driver holds)
-- by one page of at most p_batch streams: it enqueues a backfill job per stream and projection
-- through ef_enqueue_jobs and moves the backfill's cursor past the page in the same transaction, so
-- a driver that dies loses nothing and repeats nothing. The backfill row stays locked until the
-- caller commits; a concurrent driver skips it (SKIP LOCKED) rather than wait. A page shorter than
-- p_batch is the last: the backfill is finished.
--
-- It returns the backfill's progress after the page, or no row when no unfinished backfill was free.
CREATE OR REPLACE FUNCTION ef_backfill_page(p_id bigint, p_batch integer, p_max_attempts integer, p_notify_channel text)
RETURNS TABLE (id bigint, projections text[], partition text, streams bigint, enqueued bigint, total bigint,
               finished boolean)
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
#variable_conflict use_column
DECLARE
    v_backfill   ef_backfills%ROWTYPE;
    v_partitions text[];
    v_streams    text[];
    v_count      integer;
    v_enqueued   bigint := 0;
BEGIN
    SELECT * INTO v_backfill FROM ef_backfills b
     WHERE b.finished IS NULL AND (p_id IS NULL OR b.id = p_id)
     ORDER BY b.id
     LIMIT 1
       FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT array_agg(s.partition ORDER BY s.partition, s.stream_id), array_agg(s.stream_id ORDER BY s.partition, s.stream_id)
      INTO v_partitions, v_streams
      FROM (SELECT s.partition, s.stream_id FROM ef_streams s
             WHERE (v_backfill.partition IS NULL OR s.partition = v_backfill.partition)
               AND (s.partition, s.stream_id) > (v_backfill.after_partition, v_backfill.after_stream)
             ORDER BY s.partition, s.stream_id
             LIMIT p_batch) s;
    v_count := coalesce(cardinality(v_streams), 0);
    IF v_count > 0 THEN
        SELECT ef_enqueue_jobs(array_agg(p.name), array_agg(s.partition), array_agg(s.stream_id),
                               array_agg('backfill'::text), array_agg(0), array_agg(p_max_attempts), p_notify_channel)
          INTO v_enqueued
          FROM unnest(v_partitions, v_streams) AS s(partition, stream_id)
         CROSS JOIN unnest(v_backfill.projections) AS p(name);
    END IF;
    RETURN QUERY
    UPDATE ef_backfills b
       SET after_partition = coalesce(v_partitions[v_count], b.after_partition),
           after_stream = coalesce(v_streams[v_count], b.after_stream),
           streams = b.streams + v_count,
           enqueued = b.enqueued + v_enqueued,
           updated = now(),
           finished = CASE WHEN v_count < p_batch THEN now() END
     WHERE b.id = v_backfill.id
    RETURNING b.id, b.projections, b.partition, b.streams, b.enqueued, b.total, b.finished IS NOT NULL;
END;
$$;
