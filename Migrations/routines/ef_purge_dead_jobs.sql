-- ef_purge_dead_jobs: an operator deletes dead jobs: those of p_ids, or of the partition
-- p_partition, or all when both are NULL. Returns how many it deleted.
CREATE OR REPLACE FUNCTION ef_purge_dead_jobs(p_ids bigint[], p_partition text)
RETURNS bigint
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    v_purged bigint;
BEGIN
    DELETE FROM ef_jobs d
     WHERE d.state = 'dead'
       AND (p_ids IS NULL OR d.id = ANY (p_ids))
       AND (p_partition IS NULL OR d.partition = p_partition);
    GET DIAGNOSTICS v_purged = ROW_COUNT;
    RETURN v_purged;
END;
$$;
