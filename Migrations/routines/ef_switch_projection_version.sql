-- ef_switch_projection_version: makes version p_version of projection p_projection the active one
-- (a promotion, or a rollback to a version that was active before), and points the projection's
-- view at its table, in one transaction: a reader's statement sees the old version or the new one,
-- never neither. docs/DESIGN.md, "Projection versions", has the proof that no reader sees a row
-- go back.
--
-- The barrier: the active version's table is locked in SHARE mode, which lets readers read and
-- stops its writers (its workers wait at their next write) until the switch commits. Its rows no
-- longer move, so "every row of the new version is at or ahead of its active row" can be checked
-- once and stays true: the new version's rows only move forward. The check is repeated, up to
-- p_hold, while the new version's workers (whose table is not locked) catch up with the frozen
-- rows. A version still behind after that answers outcome 'behind' with how far (rows_behind rows,
-- events_behind events), and nothing changes, unless p_force.
--
-- The view: CREATE OR REPLACE VIEW keeps its privileges and serves when the new table's columns
-- begin with the view's. Otherwise (a column dropped, renamed or retyped) the view is dropped and
-- created again, and its privileges granted again; a view of the user's own that depends on it
-- stops that, and the switch fails with the server's error naming it.
--
-- Outcomes: switched, behind, unknown (no such version), retired, active (already active),
-- no_active (nothing to compare with: it becomes active without a check).
CREATE OR REPLACE FUNCTION ef_switch_projection_version(
    p_projection text,
    p_version    integer,
    p_force      boolean,
    p_hold       interval,
    OUT outcome       text,
    OUT from_version  integer,
    OUT rows_behind   bigint,
    OUT events_behind bigint
)
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    v_target ef_projections%ROWTYPE;
    v_active ef_projections%ROWTYPE;
    v_from   text;
    v_to     text;
    v_view   text;
    v_grants text[];
    v_grant  text;
    v_until  timestamptz := clock_timestamp() + p_hold;
BEGIN
    rows_behind := 0;
    events_behind := 0;
    -- Every version's row, in key order (as registrations lock them). NO KEY UPDATE: enqueues lock
    -- the rows FOR KEY SHARE (ef_enqueue_jobs) and go on during the switch's hold.
    PERFORM 1 FROM ef_projections p WHERE p.projection = p_projection ORDER BY p.name FOR NO KEY UPDATE;
    SELECT * INTO v_target FROM ef_projections p WHERE p.projection = p_projection AND p.version = p_version;
    IF NOT FOUND THEN
        outcome := 'unknown';
        RETURN;
    END IF;
    IF v_target.state = 'retired' THEN
        outcome := 'retired';
        RETURN;
    END IF;
    IF v_target.state = 'active' THEN
        outcome := 'active';
        RETURN;
    END IF;
    SELECT * INTO v_active FROM ef_projections p WHERE p.projection = p_projection AND p.state = 'active';
    from_version := v_active.version;
    v_to := ef_qualified_name(v_target.row_schema, v_target.row_table);
    v_from := ef_qualified_name(v_active.row_schema, v_active.row_table);
    IF v_active.name IS NULL THEN
        outcome := 'no_active';
    ELSIF v_from IS NOT NULL AND v_to IS NOT NULL AND to_regclass(v_from) IS NOT NULL THEN
        PERFORM set_config('lock_timeout', '5s', true);
        EXECUTE format('LOCK TABLE %s IN SHARE MODE', v_from);
        LOOP
            EXECUTE format($q$
                SELECT count(*), coalesce(sum(f.last_stream_position - coalesce(t.last_stream_position, 0)), 0)::bigint
                  FROM %s f LEFT JOIN %s t ON t.partition = f.partition AND t.stream_id = f.stream_id
                 WHERE t.stream_id IS NULL OR t.last_stream_position < f.last_stream_position
                $q$, v_from, v_to)
              INTO rows_behind, events_behind;
            EXIT WHEN rows_behind = 0 OR p_force OR clock_timestamp() >= v_until;
            PERFORM pg_sleep(0.02);
        END LOOP;
        IF rows_behind > 0 AND NOT p_force THEN
            outcome := 'behind';
            RETURN;
        END IF;
    END IF;

    UPDATE ef_projections p SET state = 'standby', state_changed = now(), updated = now() WHERE p.name = v_active.name;
    UPDATE ef_projections p SET state = 'active', was_active = true, state_changed = now(), updated = now()
     WHERE p.name = v_target.name;

    IF v_target.view_name IS NOT NULL AND v_to IS NOT NULL THEN
        v_view := ef_qualified_name(v_target.view_schema, v_target.view_name);
        BEGIN
            EXECUTE format('CREATE OR REPLACE VIEW %s AS SELECT * FROM %s', v_view, v_to);
        EXCEPTION WHEN invalid_table_definition OR datatype_mismatch OR feature_not_supported THEN
            SELECT array_agg(format('GRANT %s ON %s TO %s', a.privilege_type, v_view,
                                    CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END))
              INTO v_grants
              FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
             WHERE c.oid = to_regclass(v_view) AND a.grantee <> c.relowner;
            EXECUTE format('DROP VIEW %s', v_view);
            EXECUTE format('CREATE VIEW %s AS SELECT * FROM %s', v_view, v_to);
            FOREACH v_grant IN ARRAY coalesce(v_grants, '{}') LOOP
                EXECUTE v_grant;
            END LOOP;
        END;
    END IF;
    outcome := CASE WHEN outcome = 'no_active' THEN 'no_active' ELSE 'switched' END;
END;
$$;
