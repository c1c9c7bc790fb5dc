-- The carts read model: one row per cart stream, kept by the `carts` snapshot projection.
CREATE TABLE carts (
    tenant_id            text        NOT NULL,
    cart_id              text        NOT NULL,
    partition            text        NOT NULL,
    stream_id            text        NOT NULL,
    last_stream_position bigint      NOT NULL,
    last_global_position bigint      NOT NULL,
    snapshot             jsonb       NOT NULL,
    currency             text,
    total                bigint,
    order_id             text,
    items_json           jsonb       NOT NULL DEFAULT '[]',
    is_checked_out       boolean     NOT NULL DEFAULT false,
    is_cancelled         boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (tenant_id, cart_id, partition)
);

-- Projections find a stream's row by (partition, stream_id).
CREATE UNIQUE INDEX carts_stream ON carts (partition, stream_id);
