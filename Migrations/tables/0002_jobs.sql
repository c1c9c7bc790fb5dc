-- The projection fleet's job queue. A job asks for one stream's projection to be brought up to
-- date: the scheduler enqueues jobs for the streams of the global log's new events
-- (ef_schedule_global_log, ef_enqueue_jobs), and workers claim them with FOR UPDATE SKIP LOCKED
-- (ef_claim_jobs), fence them while they run (ef_fence_jobs) and complete them (ef_complete_jobs).
-- Every table is scoped by partition (tenant).

-- Projections the workers run, registered by the workers themselves, so the scheduler and the
-- monitor need no domain code.
CREATE TABLE ef_projections (
    name        text        PRIMARY KEY,
    version     integer     NOT NULL DEFAULT 1,
    event_types text[]      NOT NULL,
    updated     timestamptz NOT NULL DEFAULT now()
);

-- The hot table: only ready, running and dead jobs. A job is deleted when it completes, so claims
-- stay fast however much history has gone through. A job is in the live lane (new events) or the
-- backfill lane (a projection's existing streams).
--
-- Vacuum never truncates it (vacuum_truncate = false). Jobs are deleted as they finish, so its
-- last pages are often empty, and truncating them takes a lock that stops every claim while vacuum
-- checks them. The empty pages are reused by the next jobs anyway. The leading scheduler vacuums
-- the table when finished jobs have left enough dead rows (JobQueue.vacuumIfWorn).
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
    -- Set when new events arrive while the job runs: on completion it goes back to ready, not away.
    rerun         boolean     NOT NULL DEFAULT false,
    errors        jsonb       NOT NULL DEFAULT '[]',
    created       timestamptz NOT NULL DEFAULT now(),
    updated       timestamptz NOT NULL DEFAULT now()
) WITH (vacuum_truncate = false);

-- At most one ready or running job per (projection, partition, stream): enqueueing a duplicate is
-- a no-op (this index is the conflict target of ef_enqueue_jobs).
CREATE UNIQUE INDEX ef_jobs_one_live ON ef_jobs (projection, partition, stream_id)
    WHERE state IN ('ready', 'running');
-- Claims touch only ready rows, in claim order.
CREATE INDEX ef_jobs_ready ON ef_jobs (partition, lane, priority DESC, run_at, id) WHERE state = 'ready';
-- Running counts per tenant (caps) and per worker (rescue).
CREATE INDEX ef_jobs_running ON ef_jobs (partition, lane) WHERE state = 'running';
CREATE INDEX ef_jobs_running_owner ON ef_jobs (owner) WHERE state = 'running';
-- Dead jobs per tenant, for the operator commands and the monitor.
CREATE INDEX ef_jobs_dead ON ef_jobs (partition, id) WHERE state = 'dead';

-- Per tenant and lane: the cap on running jobs, the weight in fair sharing, a pause switch, and
-- when a claim last served it. A claim locks the row while it claims from the tenant, so the cap
-- holds exactly across concurrent claimers (see ef_claim_jobs). A row appears with the defaults
-- when the tenant first gets a job in the lane (ef_enqueue_jobs).
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
