-- ef_schedule_log: the scheduler turns a page of the global log into jobs on the server. The page's
-- events never leave the server: the client would only move and decode rows that say where events
-- are (partition, stream, type) and send one job request per stream back.
--
-- It reads the page with ef_read_log (the same events in the same order, held back by the same
-- rule as any consumer's read) and enqueues, through ef_enqueue_jobs, one job per (projection
-- version, partition, stream) whose events include a type the version handles (every type, for a
-- version registered without event types), except for retired versions. Jobs of the active version
-- go to the live lane; jobs of a version built or kept beside it go to the backfill lane, so a
-- build never takes a tenant's live capacity from what its readers see. ef_projections is read by one statement, so a
-- whole page is scheduled against one set of projections; the streams of a projection registered
-- after their events are scheduled get the backfill recorded with its registration.
--
-- It answers the page's size, its last position, the horizon it was read under (as ef_read_log's
-- first row) and how many jobs it enqueued; the caller moves its checkpoint from them
-- (GlobalCheckpoint.advanced(through:horizon:)) in the same transaction.
CREATE OR REPLACE FUNCTION ef_schedule_log(
    p_position       bigint,
    p_held_keys      integer[],
    p_held_positions bigint[],
    p_partitions     text[],
    p_limit          bigint,
    p_max_attempts   integer,
    p_notify_channel text,
    OUT events        bigint,
    OUT last_position bigint,
    OUT horizon_bound bigint,
    OUT marked_keys   integer[],
    OUT marked_bounds bigint[],
    OUT enqueued      bigint
)
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    v_partitions text[];
    v_streams    text[];
    v_types      text[];
BEGIN
    -- One read of the page: its horizon (the row without a partition), its streams and types, and
    -- its last position.
    WITH page AS MATERIALIZED (
        SELECT * FROM ef_read_log(p_position, p_held_keys, p_held_positions, p_partitions, NULL, p_limit, false)
    )
    SELECT count(e.partition), array_agg(e.partition) FILTER (WHERE e.partition IS NOT NULL),
           array_agg(e.stream_id) FILTER (WHERE e.partition IS NOT NULL),
           array_agg(e.message_type) FILTER (WHERE e.partition IS NOT NULL), max(e.global_position), max(e.horizon_bound),
           (SELECT h.marked_keys FROM page h WHERE h.partition IS NULL), (SELECT h.marked_bounds FROM page h WHERE h.partition IS NULL)
      INTO events, v_partitions, v_streams, v_types, last_position, horizon_bound, marked_keys, marked_bounds
      FROM page e;
    enqueued := 0;
    IF events = 0 THEN
        RETURN;
    END IF;

    SELECT ef_enqueue_jobs(array_agg(r.projection), array_agg(r.partition), array_agg(r.stream_id),
                           array_agg(r.lane), array_agg(0), array_agg(p_max_attempts), p_notify_channel)
      INTO enqueued
      FROM (SELECT DISTINCT p.name AS projection, e.partition, e.stream_id,
                   CASE WHEN p.state = 'active' THEN 'live' ELSE 'backfill' END AS lane
              FROM unnest(v_partitions, v_streams, v_types) AS e(partition, stream_id, message_type)
              JOIN ef_projections p ON p.state <> 'retired'
                                   AND (p.event_types IS NULL OR e.message_type = ANY (p.event_types))) r;
END;
$$;
