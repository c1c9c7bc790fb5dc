-- EventFleet core store: streams, messages (the global log) and subscription checkpoints.
-- Every row is scoped by partition (tenant).

CREATE TABLE ef_streams (
    partition        text        NOT NULL,
    stream_id        text        NOT NULL,
    stream_type      text        NOT NULL DEFAULT '',
    stream_position  bigint      NOT NULL CHECK (stream_position >= 0),
    stream_metadata  jsonb       NOT NULL DEFAULT '{}',
    is_archived      boolean     NOT NULL DEFAULT false,
    created          timestamptz NOT NULL DEFAULT now(),
    updated          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (partition, stream_id)
);

CREATE SEQUENCE ef_global_position AS bigint;

CREATE TABLE ef_messages (
    partition              text        NOT NULL,
    stream_id              text        NOT NULL,
    stream_position        bigint      NOT NULL CHECK (stream_position >= 1),
    message_type           text        NOT NULL,
    message_data           jsonb       NOT NULL,
    message_metadata       jsonb       NOT NULL DEFAULT '{}',
    message_schema_version integer     NOT NULL DEFAULT 1,
    message_id             text        NOT NULL,
    global_position        bigint      NOT NULL DEFAULT nextval('ef_global_position'),
    transaction_id         xid8        NOT NULL DEFAULT pg_current_xact_id(),
    created                timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (partition, stream_id, stream_position),
    UNIQUE (partition, message_id)
);
ALTER SEQUENCE ef_global_position OWNED BY ef_messages.global_position;

-- The global log is read in (transaction id, global position) order; see ef_read_all below.
CREATE INDEX ef_messages_global_log ON ef_messages (transaction_id, global_position);

-- Consumer checkpoints: the last (transaction id, global position) a subscription has processed,
-- per partition scope (`partition` holds the scope: '*' for all partitions, else a JSON array of
-- them), updated by compare-and-set in the consumer's own transaction. The row is also the lease
-- that keeps one instance active: `owner` holds it until `lease_expires_at`, and every takeover
-- bumps `fencing_token`, so a stale instance's checkpoint write matches no row.
CREATE TABLE ef_subscriptions (
    subscription_id          text        NOT NULL,
    partition                text        NOT NULL,
    version                  integer     NOT NULL DEFAULT 1,
    last_transaction_id      xid8        NOT NULL DEFAULT '0',
    last_global_position     bigint      NOT NULL DEFAULT 0,
    fencing_token            bigint      NOT NULL DEFAULT 0,
    owner                    text,
    lease_expires_at         timestamptz,
    updated                  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subscription_id, partition, version)
);

-- Events a consumer gave up on after its retries, with the error, when it is configured to park
-- them and go on instead of stopping.
CREATE TABLE ef_dead_letters (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscription_id  text        NOT NULL,
    scope            text        NOT NULL,
    partition        text        NOT NULL,
    stream_id        text        NOT NULL,
    stream_position  bigint      NOT NULL,
    global_position  bigint      NOT NULL,
    transaction_id   xid8        NOT NULL,
    message_id       text        NOT NULL,
    message_type     text        NOT NULL,
    error            text        NOT NULL,
    attempts         integer     NOT NULL,
    created          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ef_dead_letters_subscription ON ef_dead_letters (subscription_id, scope, id);

-- Appends events to one stream in one round trip, enforcing the expected version under the stream
-- row lock. Never raises for a version conflict: it returns outcome 'conflict' with the real
-- version, so a caller's surrounding transaction stays usable.
--
-- p_expected_kind: 0 any, 1 no stream, 2 stream exists, 3 exact p_expected_version.
-- p_metadata: '' for an event without metadata.
-- p_notify_channel: when set, wakes listeners with pg_notify(channel, partition) on commit
-- (PostgreSQL delivers one notification per distinct payload per transaction).
-- p_ids_supplied: the caller chose the message ids, so a repeat of an earlier append is answered
-- with that append's result instead of storing the events again.
CREATE FUNCTION ef_append_to_stream(
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

    IF p_ids_supplied THEN
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

    INSERT INTO ef_messages (partition, stream_id, stream_position, message_type, message_data,
                             message_metadata, message_schema_version, message_id)
    SELECT p_partition, p_stream_id, v_current + m.ordinality, m.message_type, m.message_data::jsonb,
           coalesce(nullif(m.message_metadata, '')::jsonb, '{}'), m.schema_version, m.message_id
      FROM unnest(p_types, p_data, p_metadata, p_schema_versions, p_message_ids)
           WITH ORDINALITY AS m(message_type, message_data, message_metadata, schema_version, message_id, ordinality)
     ORDER BY m.ordinality;

    UPDATE ef_streams
       SET stream_position = v_current + v_count, updated = now()
     WHERE partition = p_partition AND stream_id = p_stream_id;

    IF p_notify_channel IS NOT NULL THEN
        PERFORM pg_notify(p_notify_channel, p_partition);
    END IF;

    outcome := 'appended';
    next_expected_version := v_current + v_count;
    last_global_position := currval('ef_global_position');
    created_new_stream := v_current = 0;
END;
$$;
