-- ef_projection_versions: the registered versions of one projection (every projection when
-- p_projection is NULL) and how far each has come, per tenant: the operator's status
-- (JobQueue.projectionVersions, `eventfleet projections status`) and the checks before a promotion.
--
-- Per version and partition: streams (every stream of the partition), streams_done (streams whose
-- row has every event of a type the version handles), events_behind (those events its rows still
-- lack), jobs_pending (ready and running) and jobs_dead. The rows are compared with the streams
-- table, and only a stream whose row is behind its stream position has its events counted, so a
-- version close to the head costs a join of the two tables. A version without a row table (a
-- custom projection), or whose table is missing, reports its jobs only (streams NULL). A version
-- with nothing to report for any partition gets one row with partition NULL.
CREATE OR REPLACE FUNCTION ef_projection_versions(p_projection text)
RETURNS TABLE (key text, projection text, version integer, state text, was_active boolean, auto_promote boolean,
               row_schema text, row_table text, view_schema text, view_name text, backfilling boolean, state_changed timestamptz,
               partition text, streams bigint, streams_done bigint, events_behind bigint, jobs_pending bigint, jobs_dead bigint)
LANGUAGE plpgsql
STABLE
SET search_path FROM CURRENT
-- Polled by dashboards, monitors and autoscalers: compiling it (which the job table's cost
-- estimates trigger once it has churned) would cost several times the read itself.
SET jit = off
AS $$
#variable_conflict use_column
DECLARE
    v        ef_projections%ROWTYPE;
    v_table  text;
    v_found  boolean;
    v_tenant record;
BEGIN
    FOR v IN SELECT * FROM ef_projections p
              WHERE p_projection IS NULL OR p.projection = p_projection
              ORDER BY p.projection, p.version LOOP
        key := v.name;
        projection := v.projection;
        version := v.version;
        state := v.state;
        was_active := v.was_active;
        auto_promote := v.auto_promote;
        row_schema := v.row_schema;
        row_table := v.row_table;
        view_schema := v.view_schema;
        view_name := v.view_name;
        state_changed := v.state_changed;
        backfilling := EXISTS (SELECT 1 FROM ef_backfills b WHERE b.finished IS NULL AND v.name = ANY (b.projections));
        v_table := CASE WHEN v.state <> 'retired' THEN ef_qualified_name(v.row_schema, v.row_table) END;
        IF v_table IS NOT NULL AND to_regclass(v_table) IS NULL THEN
            v_table := NULL;
        END IF;
        v_found := false;
        FOR v_tenant IN EXECUTE format($q$
            WITH lag AS (
                SELECT s.partition,
                       CASE WHEN s.stream_position > coalesce(r.last_stream_position, 0) THEN
                           (SELECT count(*) FROM ef_messages m
                             WHERE m.partition = s.partition AND m.stream_id = s.stream_id
                               AND m.stream_position > coalesce(r.last_stream_position, 0)
                               AND ($1 IS NULL OR m.message_type = ANY ($1)))
                       ELSE 0 END AS events
                  FROM ef_streams s
                  LEFT JOIN %s r ON r.partition = s.partition AND r.stream_id = s.stream_id
                 WHERE %s
            ), tenant_rows AS (
                SELECT lag.partition, count(*) AS streams, count(*) FILTER (WHERE lag.events = 0) AS done,
                       sum(lag.events)::bigint AS behind
                  FROM lag GROUP BY lag.partition
            ), jobs AS (
                SELECT j.partition, count(*) FILTER (WHERE j.state <> 'dead') AS pending,
                       count(*) FILTER (WHERE j.state = 'dead') AS dead
                  FROM ef_jobs j WHERE j.projection = $2 GROUP BY j.partition
            )
            SELECT coalesce(t.partition, jobs.partition) AS partition, t.streams, t.done, t.behind,
                   coalesce(jobs.pending, 0) AS pending, coalesce(jobs.dead, 0) AS dead
              FROM tenant_rows t FULL JOIN jobs ON jobs.partition = t.partition
             ORDER BY 1
            $q$,
            -- Without a table: no row is compared (the join finds nothing, the filter keeps nothing).
            coalesce(v_table, '(SELECT NULL::text AS partition, NULL::text AS stream_id, NULL::bigint AS last_stream_position)'),
            CASE WHEN v_table IS NULL THEN 'false' ELSE 'true' END)
            USING v.event_types, v.name
        LOOP
            v_found := true;
            partition := v_tenant.partition;
            streams := v_tenant.streams;
            streams_done := v_tenant.done;
            events_behind := v_tenant.behind;
            jobs_pending := v_tenant.pending;
            jobs_dead := v_tenant.dead;
            RETURN NEXT;
        END LOOP;
        IF NOT v_found THEN
            partition := NULL;
            streams := NULL;
            streams_done := NULL;
            events_behind := NULL;
            jobs_pending := 0;
            jobs_dead := 0;
            RETURN NEXT;
        END IF;
    END LOOP;
END;
$$;
