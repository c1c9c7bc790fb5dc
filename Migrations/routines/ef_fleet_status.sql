-- ef_fleet_status: the fleet at a glance, as one JSON document read in one snapshot: jobs per tenant
-- and lane, the workers (with the jobs each has completed and failed), ready jobs that no live worker runs, the backfills that have not finished,
-- the job table's wear (dead rows and its last vacuum: a leader whose role may not vacuum it shows
-- as dead rows that grow), the database's connections per application name (what counts against
-- max_connections: behind a pooler, its server connections and the direct LISTEN ones), and the
-- scheduler's progress (its leader, checkpoint, the log's head), and the appends in flight that
-- hold partitions of the log back (ef_log_holds). FleetStatus reads it; every view of
-- the fleet (the monitor, and what shows projections and backfills) goes through it, so the numbers
-- an operator sees are counted in one place.
--
-- Each part reads only small partial indexes of ef_jobs (ready, running, dead) and the head of the
-- global log's index, so reading it often costs the fleet little. A lane's ready and dead jobs are
-- counted up to v_count_limit + 1 index entries (readyBeyondLimit / deadBeyondLimit say when it
-- has more), so a tenant with a deep backlog costs a read what one at the limit costs; the oldest
-- ready job is found among the same entries, in claim order (exact while the lane's due jobs share
-- a priority, as they do unless an application sets priorities). Completions per minute come from
-- one pass over the last five minutes of ef_job_stats.
CREATE OR REPLACE FUNCTION ef_fleet_status(p_scheduler text)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT
-- Polled by dashboards, monitors and autoscalers: compiling it (which the job table's cost
-- estimates trigger once it has churned) would cost several times the read itself.
SET jit = off
AS $$
DECLARE
    v_lanes      jsonb;
    v_workers    jsonb;
    v_backfills  jsonb;
    v_orphans    jsonb := '[]';
    v_job_table  jsonb;
    v_connections jsonb;
    v_leader     text;
    v_checkpoint ef_subscriptions%ROWTYPE;
    v_head       bigint;
    v_position   bigint;
    v_lag        bigint;
    v_holds      jsonb;
    v_count_limit constant bigint := 10000;
BEGIN
    WITH done AS (
        SELECT s.partition, s.lane, sum(s.completed)::float8 / 5 AS per_minute
          FROM ef_job_stats s
         WHERE s.minute >= date_trunc('minute', now()) - interval '5 minutes'
         GROUP BY s.partition, s.lane
    )
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'partition', q.partition, 'lane', q.lane, 'maxRunning', q.max_running, 'weight', q.weight, 'paused', q.paused,
               'ready', least(r.ready, v_count_limit), 'readyBeyondLimit', r.ready > v_count_limit,
               'running', (SELECT count(*) FROM ef_jobs j WHERE j.state = 'running' AND j.partition = q.partition AND j.lane = q.lane),
               'dead', least(d.dead, v_count_limit), 'deadBeyondLimit', d.dead > v_count_limit,
               'oldestReadySeconds', extract(epoch FROM now() - r.oldest)::float8,
               'completedPerMinute', coalesce(done.per_minute, 0)
           ) ORDER BY q.partition, q.lane), '[]')
      INTO v_lanes
      FROM ef_tenant_quotas q
     CROSS JOIN LATERAL (SELECT count(*) AS ready, min(b.run_at) FILTER (WHERE b.run_at <= now()) AS oldest
                           FROM (SELECT j.run_at FROM ef_jobs j
                                  WHERE j.state = 'ready' AND j.partition = q.partition AND j.lane = q.lane
                                  ORDER BY j.priority DESC, j.run_at, j.id
                                  LIMIT v_count_limit + 1) b) r
     CROSS JOIN LATERAL (SELECT count(*) AS dead
                           FROM (SELECT 1 FROM ef_jobs j
                                  WHERE j.state = 'dead' AND j.partition = q.partition AND j.lane = q.lane
                                  LIMIT v_count_limit + 1) b) d
      LEFT JOIN done ON done.partition = q.partition AND done.lane = q.lane;

    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'id', w.id, 'host', w.host, 'pid', w.pid, 'slots', w.slots, 'draining', w.draining,
               'lanes', w.lanes, 'partitions', w.partitions, 'projections', w.projections,
               'ageSeconds', extract(epoch FROM now() - w.started)::float8,
               'heartbeatAgeSeconds', extract(epoch FROM now() - w.heartbeat)::float8,
               'completed', w.completed, 'failed', w.failed,
               'running', (SELECT count(*) FROM ef_jobs j WHERE j.state = 'running' AND j.owner = w.id)
           ) ORDER BY w.started), '[]')
      INTO v_workers
      FROM ef_workers w;

    -- Ready jobs that no live (registered, not draining) worker runs: of a projection, lane or
    -- partition that no such worker takes. Counted while any worker is registered (a fleet scaled to
    -- zero runs nothing, which the workers' list shows), and only for a projection and lane that no
    -- worker of every partition covers, so a fully covered fleet reads no job here.
    IF EXISTS (SELECT 1 FROM ef_workers) THEN
        SELECT coalesce(jsonb_agg(jsonb_build_object('projection', o.projection, 'lane', o.lane, 'ready', o.ready)
                                  ORDER BY o.projection, o.lane), '[]')
          INTO v_orphans
          FROM (SELECT p.name AS projection, l.lane,
                       (SELECT count(*) FROM ef_jobs j
                         WHERE j.projection = p.name AND j.state = 'ready' AND j.lane = l.lane
                           AND NOT EXISTS (SELECT 1 FROM ef_workers w
                                            WHERE NOT w.draining AND l.lane = ANY (w.lanes)
                                              AND (w.projections IS NULL OR p.name = ANY (w.projections))
                                              AND (w.partitions IS NULL OR j.partition = ANY (w.partitions)))) AS ready
                  FROM ef_projections p
                 CROSS JOIN (VALUES ('live'), ('backfill')) AS l(lane)
                 WHERE NOT EXISTS (SELECT 1 FROM ef_workers w
                                    WHERE NOT w.draining AND l.lane = ANY (w.lanes) AND w.partitions IS NULL
                                      AND (w.projections IS NULL OR p.name = ANY (w.projections)))) AS o
         WHERE o.ready > 0;
    END IF;

    SELECT coalesce(jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
               'id', b.id, 'projections', b.projections, 'partition', b.partition, 'streams', b.streams, 'total', b.total,
               'enqueued', b.enqueued, 'ageSeconds', extract(epoch FROM now() - b.created)::float8,
               'idleSeconds', extract(epoch FROM now() - b.updated)::float8
           )) ORDER BY b.id), '[]')
      INTO v_backfills
      FROM ef_backfills b
     WHERE b.finished IS NULL;

    -- The oldest transaction of the database that has a snapshot or an xid: the row versions the
    -- fleet deletes and updates since it began cannot be removed while it stays open, so claims
    -- pass more of them the longer it does (it does not hold the log back: only appends do).
    SELECT jsonb_strip_nulls(jsonb_build_object(
               'liveRows', s.n_live_tup, 'deadRows', s.n_dead_tup,
               'lastVacuumSeconds', extract(epoch FROM now() - greatest(s.last_vacuum, s.last_autovacuum))::float8,
               'oldestTransaction', (SELECT jsonb_build_object('pid', a.pid, 'applicationName', a.application_name, 'state', a.state,
                                                               'ageSeconds', extract(epoch FROM now() - a.xact_start)::float8)
                                       FROM pg_stat_activity a
                                      WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
                                        AND (a.backend_xid IS NOT NULL OR a.backend_xmin IS NOT NULL) AND a.xact_start IS NOT NULL
                                      ORDER BY a.xact_start
                                      LIMIT 1)))
      INTO v_job_table
      FROM pg_stat_user_tables s
     WHERE s.relid = 'ef_jobs'::regclass;

    SELECT coalesce(jsonb_agg(jsonb_build_object('applicationName', c.application_name, 'count', c.count)
                              ORDER BY c.count DESC, c.application_name), '[]')
      INTO v_connections
      FROM (SELECT a.application_name, count(*) AS count FROM pg_stat_activity a
             WHERE a.datname = current_database() AND a.backend_type = 'client backend'
             GROUP BY a.application_name) c;

    SELECT * INTO v_checkpoint FROM ef_subscriptions s WHERE s.subscription_id = p_scheduler ORDER BY s.updated DESC LIMIT 1;
    IF FOUND AND v_checkpoint.lease_expires_at > now() THEN
        v_leader := v_checkpoint.owner;
    END IF;
    SELECT m.global_position INTO v_head FROM ef_messages m ORDER BY m.global_position DESC LIMIT 1;
    v_position := coalesce(v_checkpoint.log_position, v_checkpoint.last_global_position);
    v_lag := greatest(0, coalesce(v_head, 0) - coalesce(v_position, 0));
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'partition', h.partition, 'partitionKey', h.partition_key, 'pid', h.pid, 'ageSeconds', h.transaction_seconds,
               'state', h.state, 'applicationName', h.application_name, 'clientAddress', h.client_addr)), '[]')
      INTO v_holds
      FROM ef_log_holds(NULL) h;

    RETURN jsonb_build_object(
        'lanes', v_lanes,
        'workers', v_workers,
        'backfills', v_backfills,
        'unrunnable', v_orphans,
        'jobTable', coalesce(v_job_table, '{"liveRows": 0, "deadRows": 0}'),
        'connections', v_connections,
        'scheduler', jsonb_strip_nulls(jsonb_build_object(
            'leader', v_leader,
            -- transactionId, globalPosition and head are the previous release's monitor's (a
            -- rolling deploy); this release reads position, held and headPosition.
            'checkpoint', CASE WHEN v_position IS NOT NULL THEN jsonb_build_object(
                'position', v_position,
                'held', (SELECT coalesce(jsonb_agg(jsonb_build_object('key', k.key, 'position', k.position) ORDER BY k.key), '[]')
                           FROM unnest(v_checkpoint.log_held_keys, v_checkpoint.log_held_positions) AS k(key, position)),
                'transactionId', v_checkpoint.last_transaction_id::text::numeric, 'globalPosition', v_position) END,
            'headPosition', v_head,
            'head', CASE WHEN v_head IS NOT NULL THEN jsonb_build_object('transactionId', 0, 'globalPosition', v_head) END,
            'lagEvents', v_lag,
            'heldBack', v_holds))
    );
END;
$$;
