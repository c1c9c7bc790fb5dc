-- ef_complete_jobs: completes several jobs of a worker, each fenced by its token: a completed job
-- is deleted, or is ready again when new events arrive while it runs (rerun). Jobs whose claim the
-- worker has lost are left as they are and are not returned.
--
-- It repeats ef_fence_jobs' check rather than call it: rerun must be read from the row version it
-- locks (an enqueue may set rerun right up to the moment the lock is granted), and only its own
-- SELECT ... FOR UPDATE returns that version; the rest of the statement reads its snapshot. The
-- lock is FOR UPDATE because the job may be deleted.
--
-- Planner settings hold the plan however stale the statistics of ef_jobs are (it grows faster than
-- autovacuum analyzes it): with enable_seqscan off, "id = ANY (ids)" stays a primary-key probe and
-- never turns into a sequential scan of the whole job table; plan_cache_mode forces a generic plan,
-- which does not depend on the arguments and saves planning on every call.
CREATE OR REPLACE FUNCTION ef_complete_jobs(p_worker text, p_ids bigint[], p_tokens bigint[])
RETURNS TABLE (id bigint, outcome text)
LANGUAGE plpgsql
SET search_path FROM CURRENT
SET plan_cache_mode = force_generic_plan
SET jit = off
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
