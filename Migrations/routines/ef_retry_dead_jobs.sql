-- ef_retry_dead_jobs: an operator makes dead jobs ready again with fresh attempts: those of
-- p_ids, or of the partition p_partition, or all when both are NULL. A dead job whose stream
-- already has a ready or running job of the same projection is left dead (that job covers it), as
-- is all but the newest of several dead jobs of one stream. Wakes listening workers (p_notify_channel)
-- when it retried any. Returns how many it retried.
CREATE OR REPLACE FUNCTION ef_retry_dead_jobs(p_ids bigint[], p_partition text, p_notify_channel text)
RETURNS bigint
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    v_retried bigint;
BEGIN
    WITH chosen AS (
        SELECT DISTINCT ON (d.projection, d.partition, d.stream_id) d.id FROM ef_jobs d
         WHERE d.state = 'dead'
           AND (p_ids IS NULL OR d.id = ANY (p_ids))
           AND (p_partition IS NULL OR d.partition = p_partition)
           AND NOT EXISTS (SELECT 1 FROM ef_jobs l WHERE l.state IN ('ready', 'running')
                              AND l.projection = d.projection AND l.partition = d.partition AND l.stream_id = d.stream_id)
         ORDER BY d.projection, d.partition, d.stream_id, d.id DESC
    )
    UPDATE ef_jobs j SET state = 'ready', attempt = 0, run_at = now(), updated = now()
      FROM chosen WHERE j.id = chosen.id;
    GET DIAGNOSTICS v_retried = ROW_COUNT;
    IF v_retried > 0 AND p_notify_channel IS NOT NULL THEN
        PERFORM pg_notify(p_notify_channel, '');
    END IF;
    RETURN v_retried;
END;
$$;
