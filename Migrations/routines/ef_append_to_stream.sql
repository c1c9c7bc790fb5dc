-- ef_append_to_stream: appends events to one stream in one round trip, enforcing the expected
-- version under the stream row's lock. It never raises for a version conflict: it returns outcome
-- 'conflict' with the stream's real version, so a caller's surrounding transaction stays usable.
--
-- When the caller does not choose the message ids (the common case), one statement creates or
-- advances the stream row and checks the expected version: an upsert, or an UPDATE with the
-- expectation in its WHERE. That statement takes the row lock, so concurrent appends to a stream
-- serialize and the version check is exact (READ COMMITTED re-checks the WHERE against the newest
-- row version), and the append needs no separate locking SELECT. With chosen ids the stream row is
-- locked first (SELECT ... FOR UPDATE, creating the row when the expectation allows a new stream):
-- the duplicate check must see every earlier append of the same ids.
--
-- p_expected_kind: 0 any, 1 no stream, 2 stream exists, 3 exact p_expected_version.
-- p_metadata: '' for an event without metadata.
-- p_notify_channel: when set, wakes listeners with pg_notify(channel, partition) on commit
-- (PostgreSQL delivers one notification per distinct payload per transaction).
-- p_ids_supplied: the caller chose the message ids, so a repeat of an earlier append (all of its
-- ids, one run of positions in this stream) is answered with that append's result (outcome
-- 'duplicate') and stores nothing; any other overlap with stored ids gives outcome
-- 'message_id_conflict' and stores nothing.
--
-- Appends inside a caller's transaction use this function; a standalone append that must be
-- acknowledged only once it is durable goes through ef_append_to_stream_committed.
CREATE OR REPLACE FUNCTION ef_append_to_stream(
    p_partition          text,
    p_stream_id          text,
    p_stream_type        text,
    p_stream_metadata    jsonb,
    p_expected_kind      smallint,
    p_expected_version   bigint,
    p_ids_supplied       boolean,
    p_message_ids        text[],
    p_types              text[],
    p_data               text[],
    p_metadata           text[],
    p_schema_versions    integer[],
    p_notify_channel     text,
    OUT outcome              text,
    OUT current_version      bigint,
    OUT next_expected_version bigint,
    OUT last_global_position bigint,
    OUT created_new_stream   boolean
)
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    v_current   bigint;
    v_count     integer := cardinality(p_types);
    v_known     integer;
    v_min_pos   bigint;
    v_max_pos   bigint;
    v_max_glob  bigint;
    v_same      boolean;
    v_expected_ok boolean;
    v_created   boolean := false;
BEGIN
    IF p_ids_supplied THEN
        -- Lock the stream row, creating it when the expectation allows a new stream.
        SELECT s.stream_position INTO v_current
          FROM ef_streams s
         WHERE s.partition = p_partition AND s.stream_id = p_stream_id
           FOR UPDATE;
        IF NOT FOUND AND (p_expected_kind IN (0, 1) OR (p_expected_kind = 3 AND p_expected_version = 0)) THEN
            INSERT INTO ef_streams (partition, stream_id, stream_type, stream_position, stream_metadata)
            VALUES (p_partition, p_stream_id, coalesce(p_stream_type, ''), 0, coalesce(p_stream_metadata, '{}'))
            ON CONFLICT DO NOTHING
            RETURNING 0 INTO v_current;
            v_created := FOUND;
            IF NOT v_created THEN
                -- Another transaction created it first; wait for it and lock the committed row.
                SELECT s.stream_position INTO v_current
                  FROM ef_streams s
                 WHERE s.partition = p_partition AND s.stream_id = p_stream_id
                   FOR UPDATE;
            END IF;
        END IF;
        v_current := coalesce(v_current, 0);
        current_version := v_current;

        SELECT count(*), min(m.stream_position), max(m.stream_position), max(m.global_position),
               coalesce(bool_and(m.stream_id = p_stream_id), true)
          INTO v_known, v_min_pos, v_max_pos, v_max_glob, v_same
          FROM ef_messages m
         WHERE m.partition = p_partition AND m.message_id = ANY (p_message_ids);
        IF v_known > 0 THEN
            IF v_known = v_count AND v_same AND v_max_pos - v_min_pos + 1 = v_count THEN
                outcome := 'duplicate';
                next_expected_version := v_max_pos;
                last_global_position := v_max_glob;
                created_new_stream := v_min_pos = 1;
            ELSE
                outcome := 'message_id_conflict';
                IF v_created THEN
                    -- Leave no empty stream behind for an append that stored nothing.
                    DELETE FROM ef_streams WHERE partition = p_partition AND stream_id = p_stream_id;
                END IF;
            END IF;
            RETURN;
        END IF;

        v_expected_ok := CASE p_expected_kind
                             WHEN 0 THEN true
                             WHEN 1 THEN v_current = 0
                             WHEN 2 THEN v_current > 0
                             ELSE v_current = p_expected_version
                         END;
        IF NOT v_expected_ok THEN
            outcome := 'conflict';
            RETURN;
        END IF;
        UPDATE ef_streams
           SET stream_position = v_current + v_count, updated = now()
         WHERE partition = p_partition AND stream_id = p_stream_id;
    ELSIF p_expected_kind = 0 THEN
        -- Any version: create the stream or advance it, in one statement.
        INSERT INTO ef_streams AS s (partition, stream_id, stream_type, stream_position, stream_metadata)
        VALUES (p_partition, p_stream_id, coalesce(p_stream_type, ''), v_count, coalesce(p_stream_metadata, '{}'))
        ON CONFLICT (partition, stream_id) DO UPDATE
           SET stream_position = s.stream_position + v_count, updated = now()
        RETURNING s.stream_position - v_count INTO v_current;
    ELSIF p_expected_kind = 1 OR (p_expected_kind = 3 AND p_expected_version = 0) THEN
        -- No stream: create it, or take a stream row that holds no events yet.
        INSERT INTO ef_streams AS s (partition, stream_id, stream_type, stream_position, stream_metadata)
        VALUES (p_partition, p_stream_id, coalesce(p_stream_type, ''), v_count, coalesce(p_stream_metadata, '{}'))
        ON CONFLICT (partition, stream_id) DO UPDATE
           SET stream_position = v_count, updated = now()
         WHERE s.stream_position = 0
        RETURNING 0 INTO v_current;
    ELSE
        -- Stream exists, or an exact version: advance the row only if it matches.
        UPDATE ef_streams s
           SET stream_position = s.stream_position + v_count, updated = now()
         WHERE s.partition = p_partition AND s.stream_id = p_stream_id
           AND CASE p_expected_kind WHEN 2 THEN s.stream_position > 0 ELSE s.stream_position = p_expected_version END
        RETURNING s.stream_position - v_count INTO v_current;
    END IF;

    IF v_current IS NULL THEN
        -- The expectation failed: report the stream's version as it is now.
        SELECT s.stream_position INTO v_current
          FROM ef_streams s
         WHERE s.partition = p_partition AND s.stream_id = p_stream_id;
        current_version := coalesce(v_current, 0);
        outcome := 'conflict';
        RETURN;
    END IF;
    current_version := v_current;

    -- Readers hold this partition back from here until the commit (before any position is drawn).
    PERFORM ef_mark_append(p_partition);
    INSERT INTO ef_messages (partition, stream_id, stream_position, message_type, message_data,
                             message_metadata, message_schema_version, message_id)
    SELECT p_partition, p_stream_id, v_current + m.ordinality, m.message_type, m.message_data::jsonb,
           coalesce(nullif(m.message_metadata, '')::jsonb, '{}'), m.schema_version, m.message_id
      FROM unnest(p_types, p_data, p_metadata, p_schema_versions, p_message_ids)
           WITH ORDINALITY AS m(message_type, message_data, message_metadata, schema_version, message_id, ordinality)
     ORDER BY m.ordinality;

    IF p_notify_channel IS NOT NULL THEN
        PERFORM pg_notify(p_notify_channel, p_partition);
    END IF;

    outcome := 'appended';
    next_expected_version := v_current + v_count;
    last_global_position := currval('ef_global_position');
    created_new_stream := v_current = 0;
END;
$$;
