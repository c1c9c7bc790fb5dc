-- The carts read model in versions: each version of the `carts` projection keeps its rows in a
-- table of its own (carts_v1, carts_v2), and readers query the view `carts`, which the fleet points
-- at the active version (`eventfleet projections promote`). Version 1's table is the table that
-- was `carts`; the view shows it until version 2 is promoted.
ALTER TABLE carts RENAME TO carts_v1;
ALTER TABLE carts_v1 RENAME CONSTRAINT carts_pkey TO carts_v1_pkey;
ALTER INDEX carts_stream RENAME TO carts_v1_stream;
CREATE VIEW carts AS SELECT * FROM carts_v1;

-- Version 1 may have recorded its row table under its old name.
UPDATE ef_projections SET row_table = 'carts_v1' WHERE name = 'carts' AND row_table = 'carts';

-- Version 2: version 1's columns, then the number of items in the cart and its status.
CREATE TABLE carts_v2 (
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
    item_count           integer     NOT NULL DEFAULT 0,
    status               text        NOT NULL CHECK (status IN ('open', 'checked_out', 'cancelled')),
    PRIMARY KEY (tenant_id, cart_id, partition)
);
CREATE UNIQUE INDEX carts_v2_stream ON carts_v2 (partition, stream_id);
