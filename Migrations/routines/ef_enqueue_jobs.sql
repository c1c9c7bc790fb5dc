-- ef_enqueue_jobs: the enqueue that ef_schedule_global_log and JobQueue.enqueue share. It enqueues
-- one job per (projection, partition, stream), with at most one ready or running job per stream
-- and projection (ef_jobs_one_live): a duplicate of a ready job is a no-op (a live request promotes
-- a ready backfill job to the live lane), and a running job is marked to run again when it
-- completes (rerun). It creates a tenant's quota row for the lane, with the defaults, when the
-- tenant first gets a job there. It returns how many jobs are new, and notifies p_notify_channel
-- (on commit) when the call holds any request.
--
-- A retired projection version gets no job. The versions' registration rows are locked FOR KEY
-- SHARE, in name order, so that a retirement (ef_retire_projection_version locks them FOR UPDATE,
-- then deletes the version's jobs) either waits for this enqueue to commit, and deletes what it
-- enqueued, or has committed before, and this reads the row as retired: no job of a retired version
-- outlives its retirement, even from a scheduler page that read the versions before it.
CREATE OR REPLACE FUNCTION ef_enqueue_jobs(
    p_projections    text[],
    p_partitions     text[],
    p_stream_ids     text[],
    p_lanes          text[],
    p_priorities     integer[],
    p_max_attempts   integer[],
    p_notify_channel text
)
RETURNS bigint
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    v_inserted bigint;
    v_retired  text[];
BEGIN
    -- Two statements: a filter on the state in the locking one would lock only the rows that pass
    -- it, and the second one's snapshot sees a retirement the lock waited for.
    PERFORM 1 FROM ef_projections p WHERE p.name = ANY (p_projections) ORDER BY p.name FOR KEY SHARE;
    SELECT coalesce(array_agg(p.name), '{}') INTO v_retired
      FROM ef_projections p WHERE p.name = ANY (p_projections) AND p.state = 'retired';
    WITH requests AS (
        SELECT DISTINCT ON (r.projection, r.partition, r.stream_id) r.*
          FROM unnest(p_projections, p_partitions, p_stream_ids, p_lanes, p_priorities, p_max_attempts)
               AS r(projection, partition, stream_id, lane, priority, max_attempts)
         WHERE NOT (r.projection = ANY (v_retired))
         ORDER BY r.projection, r.partition, r.stream_id, (r.lane = 'live') DESC
    ), quotas AS (
        INSERT INTO ef_tenant_quotas (partition, lane)
        SELECT DISTINCT requests.partition, requests.lane FROM requests
        ON CONFLICT DO NOTHING
    ), upserted AS (
        INSERT INTO ef_jobs (projection, partition, stream_id, lane, priority, max_attempts)
        SELECT requests.projection, requests.partition, requests.stream_id, requests.lane, requests.priority,
               requests.max_attempts
          FROM requests
        ON CONFLICT (projection, partition, stream_id) WHERE state IN ('ready', 'running')
        DO UPDATE SET rerun = ef_jobs.rerun OR ef_jobs.state = 'running',
                      lane = CASE WHEN ef_jobs.state = 'ready' AND EXCLUDED.lane = 'live' THEN 'live' ELSE ef_jobs.lane END,
                      updated = now()
                WHERE (ef_jobs.state = 'running' AND NOT ef_jobs.rerun)
                   OR (ef_jobs.state = 'ready' AND ef_jobs.lane <> EXCLUDED.lane AND EXCLUDED.lane = 'live')
        RETURNING (xmax = 0) AS is_new
    )
    SELECT count(*) FILTER (WHERE upserted.is_new) INTO v_inserted FROM upserted;
    IF p_notify_channel IS NOT NULL AND coalesce(cardinality(p_projections), 0) > 0 THEN
        PERFORM pg_notify(p_notify_channel, '');
    END IF;
    RETURN v_inserted;
END;
$$;
