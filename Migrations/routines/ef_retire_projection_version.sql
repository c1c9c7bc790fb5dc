-- ef_retire_projection_version: retires version p_version of projection p_projection, which is
-- neither active nor run by a registered worker: drops its table (unless another version that is
-- not retired, or a projection's view, still uses it), deletes its jobs, takes it out of unfinished
-- backfills, and keeps its registration as 'retired', so a worker of it that starts again is
-- refused rather than bring it back.
--
-- Outcomes: retired, unknown, already_retired, active, running (workers names the workers that run it).
CREATE OR REPLACE FUNCTION ef_retire_projection_version(
    p_projection text,
    p_version    integer,
    OUT outcome       text,
    OUT workers       text[],
    OUT dropped_table text,
    OUT deleted_jobs  bigint
)
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    v_target ef_projections%ROWTYPE;
    v_table  text;
BEGIN
    deleted_jobs := 0;
    -- FOR UPDATE: it waits for enqueues of the versions' jobs in flight (ef_enqueue_jobs locks the
    -- rows FOR KEY SHARE), so the jobs deleted below include theirs, and later ones read it retired.
    PERFORM 1 FROM ef_projections p WHERE p.projection = p_projection ORDER BY p.name FOR UPDATE;
    SELECT * INTO v_target FROM ef_projections p WHERE p.projection = p_projection AND p.version = p_version;
    IF NOT FOUND THEN
        outcome := 'unknown';
        RETURN;
    END IF;
    IF v_target.state = 'retired' THEN
        outcome := 'already_retired';
        RETURN;
    END IF;
    IF v_target.state = 'active' THEN
        outcome := 'active';
        RETURN;
    END IF;
    SELECT array_agg(w.id ORDER BY w.id) INTO workers
      FROM ef_workers w
     -- A worker without a list (of a release before lists) runs names only: version 1.
     WHERE (w.projections IS NULL AND v_target.version = 1) OR v_target.name = ANY (w.projections);
    IF workers IS NOT NULL THEN
        outcome := 'running';
        RETURN;
    END IF;

    IF v_target.row_table IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM ef_projections o
         WHERE o.name <> v_target.name AND o.state <> 'retired'
           AND ((o.row_table = v_target.row_table AND o.row_schema IS NOT DISTINCT FROM v_target.row_schema)
             OR (o.view_name = v_target.row_table AND o.view_schema IS NOT DISTINCT FROM v_target.row_schema))) THEN
        v_table := ef_qualified_name(v_target.row_schema, v_target.row_table);
        IF to_regclass(v_table) IS NOT NULL THEN
            EXECUTE format('DROP TABLE %s', v_table);
            dropped_table := v_table;
        END IF;
    END IF;
    DELETE FROM ef_jobs j WHERE j.projection = v_target.name;
    GET DIAGNOSTICS deleted_jobs = ROW_COUNT;
    DELETE FROM ef_backfills b WHERE b.finished IS NULL AND b.projections = ARRAY[v_target.name];
    UPDATE ef_backfills b SET projections = array_remove(b.projections, v_target.name), updated = now()
     WHERE b.finished IS NULL AND v_target.name = ANY (b.projections);
    UPDATE ef_projections p SET state = 'retired', state_changed = now(), updated = now() WHERE p.name = v_target.name;
    outcome := 'retired';
END;
$$;
