-- The hot statements of the job queue and the global log keep their cost however stale the
-- planner's statistics are, and claims take fewer statements.
--
-- ef_jobs and ef_messages grow faster than autovacuum analyzes them: a backfill or a bulk load adds
-- thousands of rows while the statistics still say the table is small, and plans cached while it
-- was small stay in use after it has grown. Three plans went wrong in the catch-up benchmark:
-- - the "tenant has ready work" EXISTS of the claim's candidate query became a join that read every
--   ready job of every tenant, for every claim (3,500 rows and 2.7 ms per claim);
-- - "id = ANY (ids)" and joins with the claimed ids became sequential scans of the whole job table
--   (1,000 of them, 1.5 million rows read, in one run of 5,000 jobs);
-- - a page of the global log became a bitmap scan of every event past the checkpoint, sorted, for
--   each page of 1,000 (19 ms a page at 10,000 events, growing with the backlog).
-- So:
-- - the ready check is a LATERAL subquery in the ready index's order with LIMIT 1: it cannot be
--   flattened into a join, nor be a sequential scan (which would pass every running job first);
-- - claims, fences, completions, global-log pages and the held-back check of an empty page run in
--   functions whose planner settings leave only the index plans they were written for
--   (enable_seqscan off; for the log also bitmap scans and sorts off, so it is read in index order
--   and the read stops at its limit);
-- - those functions use generic plans (plan_cache_mode): a custom plan per call cost more planning
--   than the statements' own execution (0.7 ms per claim for the candidates alone), and their plans
--   do not depend on the arguments.
--
-- Fewer statements per claim, same rules (order, shares, exact caps):
-- - the candidates come in one statement, as arrays, instead of a row loop;
-- - a tenant's room (cap minus running) is counted once, right after its quota row is locked, and
--   then kept up to date with this claim's own picks: the lock keeps other claimers out until this
--   claim commits, and completions only make room, so the count stays a safe upper bound;
-- - a tenant that gave fewer jobs than asked has no more ready work for this claim and is not asked
--   again in the second pass;
-- - last_served is set for all served tenants in one statement at the end.
CREATE OR REPLACE FUNCTION ef_claim_jobs(
    p_worker     text,
    p_lanes      text[],
    p_partitions text[],
    p_slots      integer
)
RETURNS TABLE (id bigint, projection text, partition text, stream_id text, lane text, attempt integer,
               max_attempts integer, fencing_token bigint)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
AS $$
#variable_conflict use_column
DECLARE
    v_tenants   text[];
    v_lanes     text[];
    v_room      integer[];
    v_served    integer[] := '{}';
    v_count     integer;
    v_left      integer := p_slots;
    v_share     integer;
    v_pass      integer;
    v_i         integer;
    v_cap       integer;
    v_room_now  integer;
    v_take      integer;
    v_claimed   integer;
BEGIN
    IF p_slots <= 0 THEN
        RETURN;
    END IF;
    PERFORM set_config('synchronous_commit', 'off', true);
    -- The candidates in claim order: least loaded (running / weight) first, then least recently served.
    -- (partition, lane) breaks ties, so both arrays come in the same order.
    WITH candidates AS MATERIALIZED (
        SELECT q.partition, q.lane, q.last_served,
               (SELECT count(*) FROM ef_jobs r
                 WHERE r.state = 'running' AND r.partition = q.partition AND r.lane = q.lane)::float8 / q.weight AS load
          FROM ef_tenant_quotas q
         CROSS JOIN LATERAL (SELECT 1 FROM ef_jobs j
                              WHERE j.state = 'ready' AND j.partition = q.partition AND j.lane = q.lane
                                AND j.run_at <= now()
                              ORDER BY j.priority DESC, j.run_at, j.id
                              LIMIT 1) AS has_ready
         WHERE q.lane = ANY (p_lanes)
           AND NOT q.paused
           AND q.max_running > 0
           AND (p_partitions IS NULL OR q.partition = ANY (p_partitions))
    )
    SELECT array_agg(c.partition ORDER BY c.load, c.last_served NULLS FIRST, c.partition, c.lane),
           array_agg(c.lane ORDER BY c.load, c.last_served NULLS FIRST, c.partition, c.lane)
      INTO v_tenants, v_lanes
      FROM candidates AS c;
    v_count := coalesce(cardinality(v_tenants), 0);
    IF v_count = 0 THEN
        RETURN;
    END IF;

    -- NULL: quota row not locked (yet); otherwise the jobs this claim may still start in the tenant.
    v_room := array_fill(NULL::integer, ARRAY[v_count]);
    v_share := greatest(1, p_slots / v_count);
    FOR v_pass IN 1..2 LOOP
        FOR v_i IN 1..v_count LOOP
            EXIT WHEN v_left <= 0;
            IF v_room[v_i] IS NULL THEN
                -- Held until this claim commits; a tenant another claimer holds is skipped.
                SELECT q.max_running INTO v_cap
                  FROM ef_tenant_quotas q
                 WHERE q.partition = v_tenants[v_i] AND q.lane = v_lanes[v_i] AND NOT q.paused AND q.max_running > 0
                   FOR UPDATE SKIP LOCKED;
                CONTINUE WHEN NOT FOUND;
                -- Counted under the lock, in a snapshot taken after it was granted.
                SELECT v_cap - count(*) INTO v_room_now FROM ef_jobs r
                 WHERE r.state = 'running' AND r.partition = v_tenants[v_i] AND r.lane = v_lanes[v_i];
                v_room[v_i] := v_room_now;
            END IF;
            v_take := least(v_room[v_i], v_left, CASE WHEN v_pass = 1 THEN v_share ELSE v_left END);
            CONTINUE WHEN v_take <= 0;
            -- The picked ids as an array: primary-key probes (a join may become a hash join).
            RETURN QUERY
            UPDATE ef_jobs j
               SET state = 'running', owner = p_worker, fencing_token = j.fencing_token + 1,
                   attempt = j.attempt + 1, claimed_at = now(), updated = now()
             WHERE j.id = ANY (ARRAY(
                   SELECT p.id FROM ef_jobs p
                    WHERE p.state = 'ready' AND p.partition = v_tenants[v_i] AND p.lane = v_lanes[v_i] AND p.run_at <= now()
                    ORDER BY p.priority DESC, p.run_at, p.id
                    LIMIT v_take
                      FOR UPDATE SKIP LOCKED))
            RETURNING j.id, j.projection, j.partition, j.stream_id, j.lane, j.attempt, j.max_attempts, j.fencing_token;
            GET DIAGNOSTICS v_claimed = ROW_COUNT;
            v_left := v_left - v_claimed;
            -- Fewer than asked: nothing more is ready for this claim here.
            v_room[v_i] := CASE WHEN v_claimed < v_take THEN 0 ELSE v_room[v_i] - v_claimed END;
            IF v_claimed > 0 AND NOT (v_i = ANY (v_served)) THEN
                v_served := v_served || v_i;
            END IF;
        END LOOP;
    END LOOP;
    IF cardinality(v_served) > 0 THEN
        UPDATE ef_tenant_quotas q SET last_served = now()
          FROM unnest(v_served) AS s(i)
         WHERE q.partition = v_tenants[s.i] AND q.lane = v_lanes[s.i];
    END IF;
END;
$$;

-- Checks and locks a worker's claims of several jobs, in the caller's transaction: the jobs it still
-- holds (owner and fencing token), locked until that transaction ends.
CREATE FUNCTION ef_fence_jobs(p_worker text, p_ids bigint[], p_tokens bigint[])
RETURNS TABLE (id bigint)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT j.id FROM ef_jobs j
     WHERE j.id = ANY (p_ids) AND j.fencing_token = p_tokens[array_position(p_ids, j.id)]
       AND j.owner = p_worker AND j.state = 'running'
     ORDER BY j.id
       FOR NO KEY UPDATE OF j;
END;
$$;

-- Completes several jobs of a worker, each fenced by its token: deleted, or ready again when new
-- events arrived while it ran (rerun). Jobs the worker no longer holds are left as they are.
-- It repeats ef_fence_jobs' check rather than call it: rerun must be read from the row version it
-- locks (an enqueue may have set it just before), which only its own SELECT ... FOR UPDATE sees.
CREATE FUNCTION ef_complete_jobs(p_worker text, p_ids bigint[], p_tokens bigint[])
RETURNS TABLE (id bigint, outcome text)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH job AS (
        SELECT j.id, j.rerun FROM ef_jobs j
         WHERE j.id = ANY (p_ids) AND j.fencing_token = p_tokens[array_position(p_ids, j.id)]
           AND j.owner = p_worker AND j.state = 'running'
         ORDER BY j.id
           FOR UPDATE OF j
    ), requeued AS (
        UPDATE ef_jobs j
           SET state = 'ready', owner = NULL, claimed_at = NULL, rerun = false, attempt = 0, run_at = now(), updated = now()
         WHERE j.id = ANY (ARRAY(SELECT job.id FROM job WHERE job.rerun))
        RETURNING j.id, 'requeued'::text
    ), deleted AS (
        DELETE FROM ef_jobs j WHERE j.id = ANY (ARRAY(SELECT job.id FROM job WHERE NOT job.rerun))
        RETURNING j.id, 'completed'::text
    )
    SELECT * FROM requeued UNION ALL SELECT * FROM deleted;
END;
$$;

-- A page of the global log (see PostgresEventStore.readAll): events past (p_transaction_id,
-- p_global_position) of transactions that have surely ended (below the snapshot's xmin), in
-- (transaction id, global position) order, with or without their payloads.
CREATE FUNCTION ef_read_global_log(
    p_transaction_id  xid8,
    p_global_position bigint,
    p_partitions      text[],
    p_types           text[],
    p_limit           bigint,
    p_payload         boolean
)
RETURNS TABLE (partition text, stream_id text, stream_position bigint, global_position bigint, transaction_id text,
               message_id text, message_type text, message_data text, message_metadata text,
               message_schema_version integer, created timestamptz)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_sort = off
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT m.partition, m.stream_id, m.stream_position, m.global_position, m.transaction_id::text, m.message_id,
           m.message_type,
           CASE WHEN p_payload THEN m.message_data::text ELSE '{}' END,
           CASE WHEN p_payload THEN m.message_metadata::text ELSE '{}' END,
           m.message_schema_version, m.created
      FROM ef_messages m
     WHERE (m.transaction_id, m.global_position) > (p_transaction_id, p_global_position)
       AND m.transaction_id < pg_snapshot_xmin(pg_current_snapshot())
       AND (p_partitions IS NULL OR m.partition = ANY (p_partitions))
       AND (p_types IS NULL OR m.message_type = ANY (p_types))
     ORDER BY m.transaction_id, m.global_position
     LIMIT p_limit;
END;
$$;

-- Whether any event (in p_partitions, of p_types) follows the checkpoint, whether or not its
-- transaction has ended: after an empty page, it tells a log held back by an open transaction from
-- one read to its end. The first such event in index order, with the same settings as the page.
CREATE FUNCTION ef_global_log_has_more(
    p_transaction_id  xid8,
    p_global_position bigint,
    p_partitions      text[],
    p_types           text[]
)
RETURNS boolean
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_sort = off
AS $$
BEGIN
    PERFORM 1
       FROM ef_messages m
      WHERE (m.transaction_id, m.global_position) > (p_transaction_id, p_global_position)
        AND (p_partitions IS NULL OR m.partition = ANY (p_partitions))
        AND (p_types IS NULL OR m.message_type = ANY (p_types))
      ORDER BY m.transaction_id, m.global_position
      LIMIT 1;
    RETURN FOUND;
END;
$$;

-- Vacuum never truncates the job table. Jobs are deleted as they finish, so its last pages are often
-- empty, and truncating them takes a lock that stops every claim while vacuum checks them. The empty
-- pages are reused by the next jobs anyway. (The leading scheduler vacuums the table as jobs finish;
-- see JobQueue.vacuumIfWorn.)
ALTER TABLE ef_jobs SET (vacuum_truncate = false);
