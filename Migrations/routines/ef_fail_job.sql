-- ef_fail_job: a worker reports that its attempt of a job failed. The job counts only while the
-- worker still holds it (owner and fencing token, as for ef_complete_jobs); then the attempt ends
-- as every failed attempt does (ef_settle_failed_jobs): ready again after p_retry_delay_ms, or dead
-- after its last attempt. No row: the claim was lost (rescued, or finished elsewhere).
CREATE OR REPLACE FUNCTION ef_fail_job(p_worker text, p_id bigint, p_token bigint, p_error text, p_retry_delay_ms bigint)
RETURNS TABLE (state text, run_at timestamptz)
LANGUAGE plpgsql
SET search_path FROM CURRENT
SET plan_cache_mode = force_generic_plan
SET jit = off
SET enable_seqscan = off
AS $$
#variable_conflict use_column
BEGIN
    PERFORM 1 FROM ef_jobs j
     WHERE j.id = p_id AND j.fencing_token = p_token AND j.owner = p_worker AND j.state = 'running'
       FOR UPDATE OF j;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    RETURN QUERY
    SELECT s.state, s.run_at FROM ef_settle_failed_jobs(ARRAY[p_id], p_error, p_retry_delay_ms * interval '1 millisecond') s;
END;
$$;
