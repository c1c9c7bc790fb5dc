-- ef_claim_jobs: claims up to p_slots ready jobs for a worker in one round trip, fairly across
-- tenants and within each tenant's cap on running jobs (ef_tenant_quotas.max_running).
--
-- Only jobs the worker can run. A worker claims only jobs of the projections its registration
-- names (ef_workers.projections; NULL, or no registration, for every projection): a worker that
-- does not run a projection (a rolling deploy that adds one, a pool dedicated to some) would only
-- fail its jobs until they are dead. A job of another projection is passed over in the ready
-- index's order, so a worker pays for the ready jobs ahead of its own that it cannot run.
--
-- Order and shares. The candidates are the quota rows (tenant and lane) of p_lanes, and of
-- p_partitions when given, that are not paused, have a cap above zero and have a ready job that is
-- due and that the worker runs. They are served least loaded first (running / weight), then least recently served;
-- (partition, lane) breaks ties, so the order is total. A first pass gives each candidate an equal
-- share of the slots, a second pass fills what is left in the same order.
--
-- Exact caps without serializing claims. A claim locks a tenant's quota row (FOR UPDATE SKIP
-- LOCKED) only when it gets to that tenant, and holds it until it commits; a tenant another claimer
-- holds is skipped. Locking every candidate up front would let whichever claim comes first hold
-- every tenant until it commits: concurrent claimers (other workers, other slots) would find all of
-- them locked and claim nothing, and across the fleet claims would run one at a time. The tenant's
-- room (cap minus running jobs) is counted once, right after its quota row is locked, in a snapshot
-- taken after the lock is granted, and then kept up to date with this claim's own picks: the lock
-- keeps other claimers out until this claim commits, and completions only make room, so the count
-- stays a safe upper bound and the cap holds exactly. A tenant that gives fewer jobs than asked has
-- no more ready work this claim can take (the picks skip jobs locked elsewhere) and is not asked
-- again in the second pass. last_served is set for all served tenants in one statement at the end.
--
-- The claim commits without waiting for its WAL flush: it sets synchronous_commit off for its own
-- transaction (set_config with is_local; a SET clause would be undone when the function returns,
-- ahead of the commit). Claims are many and cheap, and on a busy disk the flush dominates them.
-- Nothing is at risk: a claim lost in a server crash leaves the job as the claim found it, and the
-- worker's fence (owner and token) then fails, so it commits nothing for that job. Any job work
-- that does commit flushes the WAL up to its own commit, and with it every claim logged ahead of
-- it. Call it as a statement of its own: the setting lasts to the end of the transaction it runs in.
--
-- Plans that hold however stale the statistics are. ef_jobs grows faster than autovacuum analyzes
-- it: a backfill or a bulk load adds many rows while the statistics still say the table is small,
-- and plans cached while it is small stay in use after it grows. So:
-- - the "tenant has ready work" check is a LATERAL subquery in the ready index's order with LIMIT 1:
--   it cannot be flattened into a join that reads every ready job of every tenant on every claim,
--   nor be a sequential scan (which would pass every running job first);
-- - the picked ids reach the UPDATE as an array, so it probes the primary key (a join with the
--   picks may become a hash join over the whole table);
-- - enable_seqscan is off, which leaves only the index plans the statements are written for;
-- - plan_cache_mode forces generic plans: a custom plan per call costs more planning than the
--   statements' own execution, and their plans do not depend on the arguments.
-- The candidates come in one statement, as two arrays in claim order, so a claim takes few
-- statements.
CREATE OR REPLACE FUNCTION ef_claim_jobs(
    p_worker     text,
    p_lanes      text[],
    p_partitions text[],
    p_slots      integer
)
RETURNS TABLE (id bigint, projection text, partition text, stream_id text, lane text, attempt integer,
               max_attempts integer, fencing_token bigint)
LANGUAGE plpgsql
SET search_path FROM CURRENT
SET plan_cache_mode = force_generic_plan
SET jit = off
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
    v_runs      text[];
BEGIN
    IF p_slots <= 0 THEN
        RETURN;
    END IF;
    PERFORM set_config('synchronous_commit', 'off', true);
    SELECT w.projections INTO v_runs FROM ef_workers w WHERE w.id = p_worker;
    -- The candidates in claim order: least loaded (running / weight) first, then least recently served.
    -- (partition, lane) breaks ties, so both arrays come in the same order.
    WITH candidates AS MATERIALIZED (
        SELECT q.partition, q.lane, q.last_served,
               (SELECT count(*) FROM ef_jobs r
                 WHERE r.state = 'running' AND r.partition = q.partition AND r.lane = q.lane)::float8 / q.weight AS load
          FROM ef_tenant_quotas q
         CROSS JOIN LATERAL (SELECT 1 FROM ef_jobs j
                              WHERE j.state = 'ready' AND j.partition = q.partition AND j.lane = q.lane
                                AND j.run_at <= now() AND (v_runs IS NULL OR j.projection = ANY (v_runs))
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
                      AND (v_runs IS NULL OR p.projection = ANY (v_runs))
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
