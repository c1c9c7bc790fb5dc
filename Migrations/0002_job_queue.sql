-- The projection fleet's job queue. A job asks for one stream's projection to be brought up to
-- date; workers claim jobs with FOR UPDATE SKIP LOCKED. Every table is scoped by partition (tenant).

-- Projections the workers run, registered by the workers themselves, so the scheduler and the
-- monitor need no domain code.
CREATE TABLE ef_projections (
    name        text        PRIMARY KEY,
    version     integer     NOT NULL DEFAULT 1,
    event_types text[]      NOT NULL,
    updated     timestamptz NOT NULL DEFAULT now()
);

-- The hot table: only live (ready, running) and dead jobs. Finished jobs are deleted at
-- completion, so claims stay fast however much history has gone through.
CREATE TABLE ef_jobs (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    projection    text        NOT NULL,
    partition     text        NOT NULL,
    stream_id     text        NOT NULL,
    lane          text        NOT NULL CHECK (lane IN ('live', 'backfill')),
    state         text        NOT NULL DEFAULT 'ready' CHECK (state IN ('ready', 'running', 'dead')),
    priority      integer     NOT NULL DEFAULT 0,
    run_at        timestamptz NOT NULL DEFAULT now(),
    attempt       integer     NOT NULL DEFAULT 0,
    max_attempts  integer     NOT NULL DEFAULT 10 CHECK (max_attempts > 0),
    -- Bumped by every claim; completion and failure count only with the owner's token.
    fencing_token bigint      NOT NULL DEFAULT 0,
    owner         text,
    claimed_at    timestamptz,
    -- New events arrived while the job ran: on completion it goes back to ready instead of away.
    rerun         boolean     NOT NULL DEFAULT false,
    errors        jsonb       NOT NULL DEFAULT '[]',
    created       timestamptz NOT NULL DEFAULT now(),
    updated       timestamptz NOT NULL DEFAULT now()
);

-- At most one live job per (projection, partition, stream): enqueueing a duplicate is a no-op.
CREATE UNIQUE INDEX ef_jobs_one_live ON ef_jobs (projection, partition, stream_id)
    WHERE state IN ('ready', 'running');
-- Claims touch only ready rows, in claim order.
CREATE INDEX ef_jobs_ready ON ef_jobs (partition, lane, priority DESC, run_at, id) WHERE state = 'ready';
-- Running counts per tenant (caps) and per worker (rescue).
CREATE INDEX ef_jobs_running ON ef_jobs (partition, lane) WHERE state = 'running';
CREATE INDEX ef_jobs_running_owner ON ef_jobs (owner) WHERE state = 'running';
CREATE INDEX ef_jobs_dead ON ef_jobs (partition, id) WHERE state = 'dead';

-- Per tenant and lane: the cap on running jobs, the weight in fair sharing, a pause switch, and
-- when a claim last served it. A row appears with the defaults when the tenant first gets a job.
CREATE TABLE ef_tenant_quotas (
    partition   text        NOT NULL,
    lane        text        NOT NULL CHECK (lane IN ('live', 'backfill')),
    max_running integer     NOT NULL DEFAULT 16 CHECK (max_running >= 0),
    weight      integer     NOT NULL DEFAULT 1 CHECK (weight > 0),
    paused      boolean     NOT NULL DEFAULT false,
    last_served timestamptz,
    PRIMARY KEY (partition, lane)
);

-- Workers register and heartbeat; the leading scheduler rescues the jobs of workers whose
-- heartbeat stopped.
CREATE TABLE ef_workers (
    id         text        PRIMARY KEY,
    host       text        NOT NULL,
    pid        integer     NOT NULL,
    lanes      text[]      NOT NULL,
    partitions text[],
    slots      integer     NOT NULL,
    started    timestamptz NOT NULL DEFAULT now(),
    heartbeat  timestamptz NOT NULL DEFAULT now(),
    draining   boolean     NOT NULL DEFAULT false
);

-- Completed and failed jobs per tenant, lane and minute, flushed by workers with their heartbeat.
CREATE TABLE ef_job_stats (
    partition text        NOT NULL,
    lane      text        NOT NULL,
    minute    timestamptz NOT NULL,
    completed bigint      NOT NULL DEFAULT 0,
    failed    bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (minute, partition, lane)
);

-- Claims up to p_slots ready jobs for a worker in one round trip. Tenants are locked one at a time
-- (their quota row, SKIP LOCKED) so a cap holds exactly across concurrent claimers; the least
-- loaded tenant (running / weight) goes first, then the least recently served. A first pass gives
-- each tenant with work an equal share of the slots, a second pass fills what is left.
CREATE FUNCTION ef_claim_jobs(
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
    v_caps      integer[] := '{}';
    v_left      integer := p_slots;
    v_share     integer;
    v_pass      integer;
    v_i         integer;
    v_running   integer;
    v_take      integer;
    v_claimed   integer;
    t           record;
BEGIN
    IF p_slots <= 0 THEN
        RETURN;
    END IF;
    FOR t IN
        SELECT q.partition, q.lane, q.max_running
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
           FOR UPDATE OF q SKIP LOCKED
    LOOP
        v_tenants := v_tenants || t.partition;
        v_lanes := v_lanes || t.lane;
        v_caps := v_caps || t.max_running;
    END LOOP;
    IF cardinality(v_tenants) = 0 THEN
        RETURN;
    END IF;

    v_share := greatest(1, p_slots / cardinality(v_tenants));
    FOR v_pass IN 1..2 LOOP
        FOR v_i IN 1..cardinality(v_tenants) LOOP
            EXIT WHEN v_left <= 0;
            -- Counted under the quota row's lock: concurrent claimers of this tenant wait or skip it.
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
