-- Claims lock a tenant's quota row only when they get to that tenant, instead of every tenant with
-- work up front. Before, whichever claim came first held every tenant until it committed, and
-- concurrent claimers (other workers, other slots) found all of them locked and claimed nothing:
-- across the fleet, claims ran one at a time. The order, the shares and the exact caps are as before:
-- a tenant's running jobs are still counted under its quota row's lock.
--
-- A claim also commits without waiting for its WAL flush (synchronous_commit off, for the claim's
-- own transaction only): claims are many and cheap, and on a busy disk the flush dominated them.
-- Nothing is at risk: a claim lost in a server crash leaves the job as it was before the claim, and
-- the worker's fence (owner and token) then fails, so it commits nothing for that job. Any job work
-- that does commit flushes the WAL up to its own commit, and with it every earlier claim.
CREATE OR REPLACE FUNCTION ef_claim_jobs(
    p_worker     text,
    p_lanes      text[],
    p_partitions text[],
    p_slots      integer
)
RETURNS TABLE (id bigint, projection text, partition text, stream_id text, lane text, attempt integer,
               max_attempts integer, fencing_token bigint)
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    v_tenants   text[] := '{}';
    v_lanes     text[] := '{}';
    v_locked    boolean[] := '{}';
    v_caps      integer[] := '{}';
    v_left      integer := p_slots;
    v_share     integer;
    v_pass      integer;
    v_i         integer;
    v_cap       integer;
    v_running   integer;
    v_take      integer;
    v_claimed   integer;
    t           record;
BEGIN
    IF p_slots <= 0 THEN
        RETURN;
    END IF;
    PERFORM set_config('synchronous_commit', 'off', true);
    -- The candidates in claim order: least loaded (running / weight) first, then least recently served.
    FOR t IN
        SELECT q.partition, q.lane
          FROM ef_tenant_quotas q
         WHERE q.lane = ANY (p_lanes)
           AND NOT q.paused
           AND q.max_running > 0
           AND (p_partitions IS NULL OR q.partition = ANY (p_partitions))
           AND EXISTS (SELECT 1 FROM ef_jobs j
                        WHERE j.state = 'ready' AND j.partition = q.partition AND j.lane = q.lane AND j.run_at <= now())
         ORDER BY (SELECT count(*) FROM ef_jobs r
                    WHERE r.state = 'running' AND r.partition = q.partition AND r.lane = q.lane)::float8 / q.weight,
                  q.last_served NULLS FIRST
    LOOP
        v_tenants := v_tenants || t.partition;
        v_lanes := v_lanes || t.lane;
        v_locked := v_locked || false;
        v_caps := v_caps || 0;
    END LOOP;
    IF cardinality(v_tenants) = 0 THEN
        RETURN;
    END IF;

    v_share := greatest(1, p_slots / cardinality(v_tenants));
    FOR v_pass IN 1..2 LOOP
        FOR v_i IN 1..cardinality(v_tenants) LOOP
            EXIT WHEN v_left <= 0;
            IF NOT v_locked[v_i] THEN
                -- Held until this claim commits; a tenant another claimer holds is skipped.
                SELECT q.max_running INTO v_cap
                  FROM ef_tenant_quotas q
                 WHERE q.partition = v_tenants[v_i] AND q.lane = v_lanes[v_i] AND NOT q.paused AND q.max_running > 0
                   FOR UPDATE SKIP LOCKED;
                CONTINUE WHEN NOT FOUND;
                v_locked[v_i] := true;
                v_caps[v_i] := v_cap;
            END IF;
            -- Counted under the quota row's lock: concurrent claimers of this tenant skip it meanwhile.
            SELECT count(*) INTO v_running FROM ef_jobs r
             WHERE r.state = 'running' AND r.partition = v_tenants[v_i] AND r.lane = v_lanes[v_i];
            v_take := least(v_caps[v_i] - v_running, v_left, CASE WHEN v_pass = 1 THEN v_share ELSE v_left END);
            CONTINUE WHEN v_take <= 0;
            RETURN QUERY
            WITH picked AS (
                SELECT j.id FROM ef_jobs j
                 WHERE j.state = 'ready' AND j.partition = v_tenants[v_i] AND j.lane = v_lanes[v_i] AND j.run_at <= now()
                 ORDER BY j.priority DESC, j.run_at, j.id
                 LIMIT v_take
                   FOR UPDATE SKIP LOCKED
            )
            UPDATE ef_jobs j
               SET state = 'running', owner = p_worker, fencing_token = j.fencing_token + 1,
                   attempt = j.attempt + 1, claimed_at = now(), updated = now()
              FROM picked
             WHERE j.id = picked.id
            RETURNING j.id, j.projection, j.partition, j.stream_id, j.lane, j.attempt, j.max_attempts, j.fencing_token;
            GET DIAGNOSTICS v_claimed = ROW_COUNT;
            IF v_claimed > 0 THEN
                v_left := v_left - v_claimed;
                UPDATE ef_tenant_quotas q SET last_served = now()
                 WHERE q.partition = v_tenants[v_i] AND q.lane = v_lanes[v_i];
            END IF;
        END LOOP;
    END LOOP;
END;
$$;
