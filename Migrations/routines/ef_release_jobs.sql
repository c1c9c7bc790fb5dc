-- ef_release_jobs: a draining worker hands back the jobs it could not finish in time. Each counts
-- only while the worker still holds it (owner and fencing token); it is ready at once, and the
-- attempt does not count, since the job did not fail. Returns how many it handed back.
CREATE OR REPLACE FUNCTION ef_release_jobs(p_worker text, p_ids bigint[], p_tokens bigint[])
RETURNS bigint
LANGUAGE plpgsql
SET search_path FROM CURRENT
SET plan_cache_mode = force_generic_plan
SET jit = off
SET enable_seqscan = off
AS $$
DECLARE
    v_released bigint;
BEGIN
    UPDATE ef_jobs j
       SET state = 'ready', owner = NULL, claimed_at = NULL, attempt = greatest(j.attempt - 1, 0), run_at = now(), updated = now()
     WHERE j.id = ANY (p_ids) AND j.fencing_token = p_tokens[array_position(p_ids, j.id)]
       AND j.owner = p_worker AND j.state = 'running';
    GET DIAGNOSTICS v_released = ROW_COUNT;
    RETURN v_released;
END;
$$;
