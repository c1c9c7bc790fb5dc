-- The fleet's recent history, for the dashboard's charts (docs/DESIGN.md, "The dashboard").
--
-- A point a minute: the leading scheduler records the backlog, the log's head, its own checkpoint
-- and its lag once each minute (ef_record_fleet_minute). The minute is the key and a recording
-- inserts nothing when its minute already has a point, so a change of leader never records a
-- minute twice. A minute without a point is a minute nobody led: the charts show it as a gap.
-- Jobs done per minute are not repeated here: ef_job_stats has them. Pruned with ef_job_stats.
CREATE TABLE ef_fleet_minutes (
    minute               timestamptz PRIMARY KEY,
    ready                bigint      NOT NULL,
    running              bigint      NOT NULL,
    dead                 bigint      NOT NULL,
    -- How long the oldest job that may run had waited; NULL when none waited.
    oldest_ready_seconds float8,
    -- The global position of the newest event, NULL while the log is empty.
    head_position        bigint,
    -- The scheduler's checkpoint: every event at or below it has its jobs (but in held partitions).
    scheduled_position   bigint,
    lag_events           bigint      NOT NULL,
    -- How long the oldest event without its jobs had waited; 0 when the scheduler was caught up.
    lag_seconds          float8      NOT NULL,
    recorded             timestamptz NOT NULL DEFAULT now()
);

-- Jobs each worker completed and failed since it registered, added by its heartbeats with the
-- counts they flush to ef_job_stats. A worker of an earlier release adds nothing: its counts stay 0.
ALTER TABLE ef_workers ADD COLUMN completed bigint NOT NULL DEFAULT 0;
ALTER TABLE ef_workers ADD COLUMN failed bigint NOT NULL DEFAULT 0;
