-- ef_read_global_log: a page of the global log (PostgresEventStore.readAll; the scheduler reads its
-- pages through ef_schedule_global_log): events past (p_transaction_id, p_global_position) of
-- transactions that have surely ended (below the snapshot's xmin), in (transaction id, global
-- position) order, with or without their payloads (without: data and metadata are '{}').
--
-- Why that order and that bound: global positions are taken at insert time, so transactions
-- commit out of position order. Every transaction that has not ended has an id at or above the
-- snapshot's xmin, so a page that stops below it never passes an event that is still to commit,
-- and a checkpoint (transaction id, global position) never has to be revisited.
--
-- ef_messages grows faster than autovacuum analyzes it (a bulk load or a backfill adds many rows
-- while the statistics still say the table is small), and a plan chosen on those statistics reads
-- every event past the checkpoint with a bitmap scan and sorts them, for every page, at a cost that
-- grows with the backlog. So the function turns off sequential scans, bitmap scans and sorts,
-- which leaves the read in the order of the ef_messages_global_log index, stopping at its limit,
-- and forces a generic plan (plan_cache_mode): a custom plan per call costs more planning than the
-- page, and the plan does not depend on the arguments.
CREATE OR REPLACE FUNCTION ef_read_global_log(
    p_transaction_id  xid8,
    p_global_position bigint,
    p_partitions      text[],
    p_types           text[],
    p_limit           bigint,
    p_payload         boolean
)
RETURNS TABLE (partition text, stream_id text, stream_position bigint, global_position bigint, transaction_id xid8,
               message_id text, message_type text, message_data text, message_metadata text,
               message_schema_version integer, created timestamptz)
LANGUAGE plpgsql
SET search_path FROM CURRENT
SET plan_cache_mode = force_generic_plan
SET jit = off
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_sort = off
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT m.partition, m.stream_id, m.stream_position, m.global_position, m.transaction_id, m.message_id,
           m.message_type,
           CASE WHEN p_payload THEN m.message_data::text ELSE '{}' END,
           CASE WHEN p_payload THEN m.message_metadata::text ELSE '{}' END,
           m.message_schema_version, m.created
      FROM ef_messages m
     WHERE (m.transaction_id, m.global_position) > (p_transaction_id, p_global_position)
       AND m.transaction_id < pg_snapshot_xmin(pg_current_snapshot())
       AND (p_partitions IS NULL OR m.partition = ANY (p_partitions))
       AND (p_types IS NULL OR m.message_type = ANY (p_types))
     ORDER BY m.transaction_id, m.global_position
     LIMIT p_limit;
END;
$$;
