-- The scheduler turns a page of the global log into jobs on the server.
--
-- Until now the scheduler read each page (up to 5,000 events) into Swift, decoded every event's
-- partition, stream and type, and sent one job request per stream back in an unnest INSERT. In the
-- catch-up benchmark the scheduler and the server's work for it took about a fifth of the machine,
-- most of it moving and decoding rows that only say where events are.
--
-- ef_schedule_global_log reads the page with ef_read_global_log (the same events in the same order,
-- held back by the same rule) and enqueues one job per (projection, partition, stream) whose events
-- include a type the projection handles. ef_projections is read by one statement, so a whole page
-- is scheduled against one set of projections; the streams of a projection registered after their
-- events were scheduled get the backfill its first worker enqueues. It returns the page's size and
-- last checkpoint; the scheduler moves its checkpoint to it in the same transaction.
-- ef_enqueue_jobs is the enqueue that it and JobQueue.enqueue share.

-- Enqueues one live job per (projection, partition, stream): a duplicate of a ready job is a no-op
-- (a live request promotes a ready backfill job to the live lane), a running job is marked to run
-- again when it completes. Returns how many jobs are new; notifies p_notify_channel (on commit)
-- when there was any request.
CREATE FUNCTION ef_enqueue_jobs(
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
AS $$
DECLARE
    v_inserted bigint;
BEGIN
    WITH requests AS (
        SELECT DISTINCT ON (r.projection, r.partition, r.stream_id) r.*
          FROM unnest(p_projections, p_partitions, p_stream_ids, p_lanes, p_priorities, p_max_attempts)
               AS r(projection, partition, stream_id, lane, priority, max_attempts)
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

-- Schedules the page of up to p_limit events (in p_partitions, or all when NULL) after the
-- checkpoint. events = 0 means the page was empty (last_* are then NULL); held_back then says
-- whether events follow that an open transaction holds back (ef_global_log_has_more, as after an
-- empty read), so the caller knows to look again soon without another round trip.
CREATE FUNCTION ef_schedule_global_log(
    p_transaction_id     xid8,
    p_global_position    bigint,
    p_partitions         text[],
    p_limit              bigint,
    p_max_attempts       integer,
    p_notify_channel     text,
    OUT events               bigint,
    OUT last_transaction_id  text,
    OUT last_global_position bigint,
    OUT enqueued             bigint,
    OUT held_back            boolean
)
LANGUAGE plpgsql
AS $$
DECLARE
    v_partitions text[];
    v_streams    text[];
    v_types      text[];
    v_last       bigint[];
BEGIN
    -- One read of the page: its streams and types, and its last (transaction, position), which is
    -- the row with the highest ordinality.
    SELECT count(*), array_agg(e.partition), array_agg(e.stream_id), array_agg(e.message_type),
           max(ARRAY[e.n, e.transaction_id::bigint, e.global_position])
      INTO events, v_partitions, v_streams, v_types, v_last
      FROM ef_read_global_log(p_transaction_id, p_global_position, p_partitions, NULL, p_limit, false)
           WITH ORDINALITY AS e(partition, stream_id, stream_position, global_position, transaction_id, message_id,
                                message_type, message_data, message_metadata, message_schema_version, created, n);
    enqueued := 0;
    held_back := false;
    IF events = 0 THEN
        held_back := ef_global_log_has_more(p_transaction_id, p_global_position, p_partitions, NULL);
        RETURN;
    END IF;
    last_transaction_id := v_last[2]::text;
    last_global_position := v_last[3];

    SELECT ef_enqueue_jobs(array_agg(r.projection), array_agg(r.partition), array_agg(r.stream_id),
                           array_agg('live'::text), array_agg(0), array_agg(p_max_attempts), p_notify_channel)
      INTO enqueued
      FROM (SELECT DISTINCT p.name AS projection, e.partition, e.stream_id
              FROM unnest(v_partitions, v_streams, v_types) AS e(partition, stream_id, message_type)
              JOIN ef_projections p ON e.message_type = ANY (p.event_types)) r;
END;
$$;
