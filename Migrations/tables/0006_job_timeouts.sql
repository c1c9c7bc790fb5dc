-- Running jobs that nothing works on, though their worker heartbeats (ef_rescue_jobs): a claim
-- whose reply was lost, a failure that could not be recorded, a batch that never ends.
--
-- A worker reports the jobs it holds with every heartbeat (NULL: a worker of an earlier release,
-- which does not).
ALTER TABLE ef_workers ADD COLUMN in_flight bigint[];
ALTER TABLE ef_workers ADD COLUMN in_flight_at timestamptz;
-- A projection's job timeout: a running job of it without a committed batch for this long is
-- rescued. NULL (a projection registered by an earlier release): none.
ALTER TABLE ef_projections ADD COLUMN job_timeout interval CHECK (job_timeout > interval '0');
-- When the job's last committed batch started (ef_fence_jobs sets it in the batch's transaction).
ALTER TABLE ef_jobs ADD COLUMN progressed timestamptz;
