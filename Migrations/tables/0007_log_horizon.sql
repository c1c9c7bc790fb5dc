-- The log horizon (docs/DESIGN.md, "The log horizon"): the log is read in global-position order,
-- held back per partition only by appends in flight (ef_log_horizon, ef_read_log).
--
-- The log in position order, and the events of one partition key in position order: a partition
-- held back for an hour costs a reader a probe of the second index, not a scan of the hour's log.
CREATE INDEX ef_messages_position ON ef_messages (global_position);
CREATE INDEX ef_messages_partition_position ON ef_messages (hashtext(partition), global_position);

-- A consumer's checkpoint in position order: every event at or below log_position has been
-- processed, except in the held partition keys, each processed only up to its own position (the
-- arrays go together, in key order). NULL log_position: the row was last moved by a release that
-- knows only (last_transaction_id, last_global_position); the consumer then starts from a position
-- below every event past that pair (ef_log_position_after). This release leaves that pair as it
-- found it and remembers it in log_base_*: when a previous release's instance moves the pair during
-- a rolling deploy, the pair no longer matches and the consumer starts from it again.
ALTER TABLE ef_subscriptions ADD COLUMN log_position bigint;
ALTER TABLE ef_subscriptions ADD COLUMN log_held_keys integer[] NOT NULL DEFAULT '{}';
ALTER TABLE ef_subscriptions ADD COLUMN log_held_positions bigint[] NOT NULL DEFAULT '{}';
ALTER TABLE ef_subscriptions ADD COLUMN log_base_transaction_id xid8;
ALTER TABLE ef_subscriptions ADD COLUMN log_base_global_position bigint;
