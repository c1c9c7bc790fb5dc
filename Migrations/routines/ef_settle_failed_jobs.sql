-- ef_settle_failed_jobs: the one place where a failed attempt ends, for ef_fail_job (the job
-- failed on its worker) and ef_rescue_jobs (its worker stopped heartbeating). The caller has
-- locked the running jobs p_ids. Each is dead after its last attempt (max_attempts), kept with its
-- error history for an operator, or else ready again after p_retry_delay. Either way it records
-- the attempt in its error history (attempt, worker, error, time) and leaves its worker.
CREATE OR REPLACE FUNCTION ef_settle_failed_jobs(p_ids bigint[], p_error text, p_retry_delay interval)
RETURNS TABLE (id bigint, state text, run_at timestamptz)
LANGUAGE plpgsql
SET search_path FROM CURRENT
SET plan_cache_mode = force_generic_plan
SET jit = off
SET enable_seqscan = off
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    UPDATE ef_jobs j
       SET state = CASE WHEN j.attempt >= j.max_attempts THEN 'dead' ELSE 'ready' END,
           run_at = CASE WHEN j.attempt >= j.max_attempts THEN j.run_at ELSE now() + p_retry_delay END,
           errors = j.errors || jsonb_build_array(jsonb_build_object(
               'attempt', j.attempt, 'worker', j.owner, 'error', p_error, 'at', now())),
           owner = NULL, claimed_at = NULL, rerun = false, updated = now()
     WHERE j.id = ANY (p_ids) AND j.state = 'running'
    RETURNING j.id, j.state, j.run_at;
END;
$$;
