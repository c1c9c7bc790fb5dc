-- The event store: streams, their messages (which make up the global log), subscription
-- checkpoints and dead letters. Every row is scoped by partition (tenant). Events are appended by
-- ef_append_to_stream and ef_append_to_stream_committed, and the global log is read by
-- ef_read_global_log and ef_global_log_has_more (see routines/).

-- One row per stream: its version (stream_position, the position of its last message; 0 while it
-- holds none), type and metadata. Every append locks the stream's row, so concurrent appends to a
-- stream serialize and the expected-version check is exact.
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

-- Global positions, taken when a message is inserted. Transactions therefore commit out of
-- position order, which is why the global log is ordered by (transaction id, global position) and
-- read only up to transactions that have surely ended (see ef_read_global_log).
CREATE SEQUENCE ef_global_position AS bigint;

-- The messages, numbered from 1 within their stream. A message id is unique within its partition,
-- which lets an append with caller-chosen ids recognize a repeat. transaction_id is the id of the
-- appending transaction. The sequence belongs to global_position (it goes with the table).
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

-- The global log's order: ef_read_global_log and ef_global_log_has_more read in this index's order
-- and stop at their limit.
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
-- them and go on rather than stop.
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
-- A subscription's dead letters per scope, in the order they were parked.
CREATE INDEX ef_dead_letters_subscription ON ef_dead_letters (subscription_id, scope, id);
