-- ef_schedule_global_log: the scheduler turns a page of the global log into jobs on the server.
-- The page's events never leave the server: the client would only move and decode rows that say
-- where events are (partition, stream, type) and send one job request per stream back.
--
-- It reads the page with ef_read_global_log (the same events in the same order, held back by the
-- same rule as any consumer's read) and enqueues, through ef_enqueue_jobs, one job in the live lane
-- per (projection, partition, stream) whose events include a type the projection handles (every
-- type, for a projection registered without event types).
-- ef_projections is read by one statement, so a whole page is scheduled against one set of
-- projections; the streams of a projection registered after their events are scheduled get the
-- backfill its first worker enqueues.
--
-- It schedules the page of up to p_limit events (in p_partitions, or all when NULL) after the
-- checkpoint and returns the page's size and last checkpoint; the scheduler moves its checkpoint
-- to it in the same transaction. events = 0 means the page is empty (last_* are then NULL);
-- held_back then says whether events follow that an open transaction holds back
-- (ef_global_log_has_more, as after an empty read), so the caller knows to look again soon without
-- another round trip.
CREATE OR REPLACE FUNCTION ef_schedule_global_log(
    p_transaction_id     xid8,
    p_global_position    bigint,
    p_partitions         text[],
    p_limit              bigint,
    p_max_attempts       integer,
    p_notify_channel     text,
    OUT events               bigint,
    OUT last_transaction_id  xid8,
    OUT last_global_position bigint,
    OUT enqueued             bigint,
    OUT held_back            boolean
)
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    v_partitions text[];
    v_streams    text[];
    v_types      text[];
BEGIN
    -- One read of the page: its streams and types, and its last (transaction, position): the page
    -- is in (transaction id, global position) order, so its last row has the greatest transaction
    -- id and the greatest ordinality.
    SELECT count(*), array_agg(e.partition), array_agg(e.stream_id), array_agg(e.message_type),
           max(e.transaction_id), (max(ARRAY[e.n, e.global_position]))[2]
      INTO events, v_partitions, v_streams, v_types, last_transaction_id, last_global_position
      FROM ef_read_global_log(p_transaction_id, p_global_position, p_partitions, NULL, p_limit, false)
           WITH ORDINALITY AS e(partition, stream_id, stream_position, global_position, transaction_id, message_id,
                                message_type, message_data, message_metadata, message_schema_version, created, n);
    enqueued := 0;
    held_back := false;
    IF events = 0 THEN
        held_back := ef_global_log_has_more(p_transaction_id, p_global_position, p_partitions, NULL);
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
