-- ef_projection_progress: how far projection p_projection has brought the row of one stream, for a
-- caller waiting to read its own write (PostgresEventStore.waitForProjection). Every read is by a
-- key: the projection's active version by name (or a version by its key, `name@version`), its row by (partition, stream_id), the stream's events after the
-- row's position by the messages' primary key, the stream's live job by the one-live-job index and
-- a dead one among its partition's dead jobs.
--
-- shown: the row reflects every event up to p_stream_position that the projection handles. Events
-- of other types only move the row's position when a job runs for the stream, and the scheduler
-- makes no job for them, so they are not waited for.
-- registered / has_rows: whether the projection is registered, and with a row table (NULL: not
-- registered). projected_position: the row's last_stream_position (NULL: no row yet).
-- job_state, job_attempt, job_error: the stream's job for the projection, a dead one first (its
-- last error), NULL when there is none.
CREATE OR REPLACE FUNCTION ef_projection_progress(p_projection text, p_partition text, p_stream_id text, p_stream_position bigint)
RETURNS TABLE (registered boolean, has_rows boolean, shown boolean, projected_position bigint,
               job_state text, job_attempt integer, job_error text)
LANGUAGE plpgsql
STABLE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_projection ef_projections%ROWTYPE;
    v_position bigint;
BEGIN
    SELECT * INTO v_projection FROM ef_projections p
     WHERE (p.projection = p_projection AND p.state = 'active')
        OR (p.name = p_projection AND strpos(p_projection, '@') > 0 AND p.state <> 'retired');
    IF NOT FOUND THEN
        RETURN QUERY SELECT false, false, false, NULL::bigint, NULL::text, NULL::integer, NULL::text;
        RETURN;
    END IF;
    IF v_projection.row_table IS NULL THEN
        RETURN QUERY SELECT true, false, false, NULL::bigint, NULL::text, NULL::integer, NULL::text;
        RETURN;
    END IF;
    EXECUTE format('SELECT max(last_stream_position) FROM %s WHERE partition = $1 AND stream_id = $2',
                   ef_qualified_name(v_projection.row_schema, v_projection.row_table))
       INTO v_position USING p_partition, p_stream_id;
    RETURN QUERY
    SELECT true, true,
           NOT EXISTS (SELECT 1 FROM ef_messages m
                        WHERE m.partition = p_partition AND m.stream_id = p_stream_id
                          AND m.stream_position > coalesce(v_position, 0) AND m.stream_position <= p_stream_position
                          AND (v_projection.event_types IS NULL OR m.message_type = ANY (v_projection.event_types))),
           v_position, j.state, j.attempt, j.errors -> -1 ->> 'error'
      FROM (SELECT 1) one
      LEFT JOIN LATERAL ((SELECT d.state, d.attempt, d.errors FROM ef_jobs d
                           WHERE d.state = 'dead' AND d.partition = p_partition
                             AND d.projection = v_projection.name AND d.stream_id = p_stream_id
                           ORDER BY d.id DESC LIMIT 1)
                         UNION ALL
                         (SELECT l.state, l.attempt, l.errors FROM ef_jobs l
                           WHERE l.state IN ('ready', 'running') AND l.projection = v_projection.name
                             AND l.partition = p_partition AND l.stream_id = p_stream_id)
                         LIMIT 1) j ON true;
END;
$$;
