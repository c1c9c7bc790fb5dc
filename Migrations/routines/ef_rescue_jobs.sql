-- ef_rescue_jobs: the leading scheduler declares workers whose heartbeat is older than
-- p_heartbeat_timeout_ms dead (their registration goes) and ends the attempts of their running
-- jobs as every failed attempt ends (ef_settle_failed_jobs): ready again at once, or dead when that
-- was the last attempt, so a job that kills every worker it runs on ends dead instead of looping.
-- Running jobs whose owner is not registered at all are rescued too. A slow but heartbeating
-- worker keeps its jobs.
--
-- A job whose row is locked is inside a transaction of its (frozen) worker: the server ends that
-- transaction after its idle timeout (set by ef_fence_jobs' caller), and a later rescue gets the
-- job; SKIP LOCKED keeps this one from waiting for it.
CREATE OR REPLACE FUNCTION ef_rescue_jobs(p_heartbeat_timeout_ms bigint, OUT workers text[], OUT jobs bigint)
LANGUAGE plpgsql
SET search_path FROM CURRENT
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
AS $$
DECLARE
    v_ids bigint[];
BEGIN
    WITH dead AS (
        DELETE FROM ef_workers w WHERE w.heartbeat < now() - p_heartbeat_timeout_ms * interval '1 millisecond' RETURNING w.id
    )
    SELECT coalesce(array_agg(dead.id), '{}') INTO workers FROM dead;
    SELECT coalesce(array_agg(r.id), '{}') INTO v_ids FROM (
        SELECT r.id FROM ef_jobs r
         WHERE r.state = 'running'
           AND (r.owner = ANY (workers) OR NOT EXISTS (SELECT 1 FROM ef_workers w WHERE w.id = r.owner))
           FOR UPDATE SKIP LOCKED
    ) r;
    SELECT count(*) INTO jobs FROM ef_settle_failed_jobs(v_ids, 'the worker stopped heartbeating', interval '0');
END;
$$;
