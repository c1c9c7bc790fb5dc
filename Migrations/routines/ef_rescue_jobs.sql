-- ef_rescue_jobs: the leading scheduler ends the attempts of running jobs that nothing works on, as
-- every failed attempt ends (ef_settle_failed_jobs): ready again at once, or dead when that was the
-- last attempt, so a job that kills every worker it runs on ends dead instead of looping. A slow
-- job of a heartbeating worker keeps running, within its projection's job timeout. Nothing works on
-- a running job when:
--
-- 1. Its worker stopped heartbeating: workers whose heartbeat is older than p_heartbeat_timeout_ms
--    are declared dead (their registration goes). Running jobs whose owner is not registered at
--    all are rescued too.
-- 2. Its worker heartbeats but does not hold it: the job is missing from the in-flight jobs the
--    worker reported with its last heartbeat, though it was claimed a heartbeat timeout before
--    that report. A claim whose reply was lost, or a failure the worker could not record, leaves
--    such a job; without this it stayed running, holding its tenant's slot, for as long as the
--    worker lived. The heartbeat timeout gives a claim's reply ample time to arrive.
-- 3. It had no committed batch within its projection's job timeout (ef_projections.job_timeout,
--    from the later of its claim and its last committed batch, ef_jobs.progressed).
--
-- A job whose row is locked is inside a transaction of its worker: a batch in progress, or a
-- frozen worker's transaction, which the server ends after its idle timeout (set by
-- ef_fence_jobs' caller), and a later rescue gets the job; SKIP LOCKED keeps this one from waiting.
CREATE OR REPLACE FUNCTION ef_rescue_jobs(p_heartbeat_timeout_ms bigint, OUT workers text[], OUT jobs bigint)
LANGUAGE plpgsql
SET search_path FROM CURRENT
SET plan_cache_mode = force_generic_plan
SET jit = off
SET enable_seqscan = off
AS $$
DECLARE
    v_timeout  interval := p_heartbeat_timeout_ms * interval '1 millisecond';
    v_gone     bigint[];
    v_unheld   bigint[];
    v_overdue  bigint[];
    v_settled  bigint;
BEGIN
    WITH dead AS (
        DELETE FROM ef_workers w WHERE w.heartbeat < now() - v_timeout RETURNING w.id
    )
    SELECT coalesce(array_agg(dead.id), '{}') INTO workers FROM dead;
    SELECT coalesce(array_agg(r.id), '{}') INTO v_gone FROM (
        SELECT r.id FROM ef_jobs r
         WHERE r.state = 'running'
           AND (r.owner = ANY (workers) OR NOT EXISTS (SELECT 1 FROM ef_workers w WHERE w.id = r.owner))
           FOR UPDATE SKIP LOCKED
    ) r;
    SELECT coalesce(array_agg(r.id), '{}') INTO v_unheld FROM (
        SELECT r.id FROM ef_jobs r
          JOIN ef_workers w ON w.id = r.owner
         WHERE r.state = 'running'
           AND w.in_flight IS NOT NULL AND NOT (r.id = ANY (w.in_flight)) AND r.claimed_at < w.in_flight_at - v_timeout
           FOR UPDATE OF r SKIP LOCKED
    ) r;
    SELECT coalesce(array_agg(r.id), '{}') INTO v_overdue FROM (
        SELECT r.id FROM ef_jobs r
          JOIN ef_projections p ON p.name = r.projection
         WHERE r.state = 'running' AND NOT (r.id = ANY (v_unheld))
           AND greatest(r.claimed_at, r.progressed) < now() - p.job_timeout
           FOR UPDATE OF r SKIP LOCKED
    ) r;
    SELECT count(*) INTO jobs FROM ef_settle_failed_jobs(v_gone, 'the worker stopped heartbeating', interval '0');
    SELECT count(*) INTO v_settled FROM ef_settle_failed_jobs(v_unheld, 'no work held the job on its worker (a lost claim reply, or a failure that could not be recorded)', interval '0');
    jobs := jobs + v_settled;
    SELECT count(*) INTO v_settled FROM ef_settle_failed_jobs(v_overdue, 'no batch committed within the projection''s job timeout', interval '0');
    jobs := jobs + v_settled;
END;
$$;
