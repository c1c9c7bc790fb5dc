-- ef_fence_jobs: checks and locks a worker's claims of several jobs, in the caller's transaction.
-- It returns the jobs the worker still holds (running, with its name as owner and the fencing token
-- of its claim), locked (FOR NO KEY UPDATE, in id order, so that fences and enqueues never
-- deadlock) until that transaction ends: a rescue skips them meanwhile, and a worker whose claim
-- is lost gets nothing back, so it commits nothing for that job.
--
-- It also sets the jobs' progressed time, which commits with the batch: a job's timeout
-- (ef_projections.job_timeout, checked by ef_rescue_jobs) counts from its last committed batch,
-- so a long stream that keeps committing batches runs as long as it needs. It writes it only when
-- the job's last mark (its claim, or an earlier batch) is more than 10 seconds old: most jobs end
-- in their first batches, so the fence, on every batch's path, adds no write for them, and a
-- timeout of minutes loses nothing to the coarser mark.
--
-- Planner settings hold the plan however stale the statistics of ef_jobs are (it grows faster than
-- autovacuum analyzes it): with enable_seqscan off, "id = ANY (ids)" stays a primary-key probe and
-- never turns into a sequential scan of the whole job table; plan_cache_mode forces a generic plan,
-- which does not depend on the arguments and saves planning on every call.
CREATE OR REPLACE FUNCTION ef_fence_jobs(p_worker text, p_ids bigint[], p_tokens bigint[])
RETURNS TABLE (id bigint)
LANGUAGE plpgsql
SET search_path FROM CURRENT
SET plan_cache_mode = force_generic_plan
SET jit = off
SET enable_seqscan = off
AS $$
#variable_conflict use_column
DECLARE
    v_held bigint[];
BEGIN
    SELECT coalesce(array_agg(f.id ORDER BY f.id), '{}') INTO v_held FROM (
        SELECT j.id FROM ef_jobs j
         WHERE j.id = ANY (p_ids) AND j.fencing_token = p_tokens[array_position(p_ids, j.id)]
           AND j.owner = p_worker AND j.state = 'running'
         ORDER BY j.id
           FOR NO KEY UPDATE OF j
    ) f;
    UPDATE ef_jobs j SET progressed = now()
     WHERE j.id = ANY (v_held) AND greatest(j.claimed_at, j.progressed) < now() - interval '10 seconds';
    RETURN QUERY SELECT unnest(v_held);
END;
$$;
