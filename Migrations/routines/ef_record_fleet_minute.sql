-- ef_record_fleet_minute: the leading scheduler records the fleet's point of a minute in
-- ef_fleet_minutes (the minute of p_minute, or the current one when it is NULL): jobs ready, running
-- and dead, how long the oldest job that may run has waited, the log's head, the checkpoint of the
-- schedulers named p_scheduler (as ef_fleet_status reads it), and their lag in events and in
-- seconds (how long the oldest event without its jobs has waited). Returns whether it recorded
-- one: a minute that has its point keeps it, so schedulers that take over from each other within a
-- minute record it once.
--
-- It reads only the partial indexes of ef_jobs (one pass each over the ready, running and dead
-- entries), the head of the log's position index, and per held partition one probe of the
-- partition's position index: a backlog of jobs costs its index entries once a minute, the log
-- costs nothing however long it is.
CREATE OR REPLACE FUNCTION ef_record_fleet_minute(p_scheduler text, p_minute timestamptz)
RETURNS boolean
LANGUAGE plpgsql
SET search_path FROM CURRENT
-- Polled by dashboards, monitors and autoscalers: compiling it (which the job table's cost
-- estimates trigger once it has churned) would cost several times the read itself.
SET jit = off
AS $$
DECLARE
    v_minute     timestamptz := date_trunc('minute', coalesce(p_minute, now()));
    v_checkpoint ef_subscriptions%ROWTYPE;
    v_position   bigint;
    v_head       bigint;
    v_oldest     timestamptz;
    v_recorded   bigint;
BEGIN
    -- The common case of a leader's call: the minute has its point, nothing is counted.
    IF EXISTS (SELECT 1 FROM ef_fleet_minutes f WHERE f.minute = v_minute) THEN
        RETURN false;
    END IF;

    SELECT * INTO v_checkpoint FROM ef_subscriptions s WHERE s.subscription_id = p_scheduler ORDER BY s.updated DESC LIMIT 1;
    v_position := coalesce(v_checkpoint.log_position, v_checkpoint.last_global_position);
    SELECT m.global_position INTO v_head FROM ef_messages m ORDER BY m.global_position DESC LIMIT 1;
    -- The oldest event without its jobs: the first past the checkpoint, or the first past its own
    -- position in a partition the checkpoint holds back.
    SELECT min(o.created) INTO v_oldest
      FROM (SELECT (SELECT m.created FROM ef_messages m
                     WHERE m.global_position > coalesce(v_position, 0)
                     ORDER BY m.global_position LIMIT 1) AS created
            UNION ALL
            SELECT (SELECT m.created FROM ef_messages m
                     WHERE hashtext(m.partition) = h.key AND m.global_position > h.position
                     ORDER BY m.global_position LIMIT 1)
              FROM unnest(v_checkpoint.log_held_keys, v_checkpoint.log_held_positions) AS h(key, position)) o;

    INSERT INTO ef_fleet_minutes AS f (minute, ready, running, dead, oldest_ready_seconds, head_position, scheduled_position,
                                       lag_events, lag_seconds)
    SELECT v_minute, r.ready,
           (SELECT count(*) FROM ef_jobs j WHERE j.state = 'running'),
           (SELECT count(*) FROM ef_jobs j WHERE j.state = 'dead'),
           extract(epoch FROM now() - r.oldest)::float8,
           v_head, v_position,
           greatest(0, coalesce(v_head, 0) - coalesce(v_position, 0)),
           -- An event appended after this statement's start may be visible to it: its age is 0.
           coalesce(greatest(0, extract(epoch FROM now() - v_oldest))::float8, 0)
      FROM (SELECT count(*) AS ready, min(j.run_at) FILTER (WHERE j.run_at <= now()) AS oldest
              FROM ef_jobs j WHERE j.state = 'ready') r
    ON CONFLICT (minute) DO NOTHING;
    GET DIAGNOSTICS v_recorded = ROW_COUNT;
    RETURN v_recorded > 0;
END;
$$;
