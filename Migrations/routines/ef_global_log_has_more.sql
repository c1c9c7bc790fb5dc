-- ef_global_log_has_more: whether any event (in p_partitions, of p_types) follows the checkpoint,
-- whether or not its transaction has ended. After an empty page of ef_read_global_log it tells a
-- log held back by an open transaction from one read to its end, so the reader knows to look again
-- soon (PostgresEventStore.readAll, and ef_schedule_global_log's held_back).
--
-- It looks for the first such event in the global-log index's order, with the same planner settings
-- as ef_read_global_log and for the same reason: however stale the statistics of ef_messages are,
-- the read stays an index scan that stops at the first matching event, never a scan and sort of
-- every event past the checkpoint.
CREATE OR REPLACE FUNCTION ef_global_log_has_more(
    p_transaction_id  xid8,
    p_global_position bigint,
    p_partitions      text[],
    p_types           text[]
)
RETURNS boolean
LANGUAGE plpgsql
SET search_path FROM CURRENT
SET plan_cache_mode = force_generic_plan
SET jit = off
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_sort = off
AS $$
BEGIN
    PERFORM 1
       FROM ef_messages m
      WHERE (m.transaction_id, m.global_position) > (p_transaction_id, p_global_position)
        AND (p_partitions IS NULL OR m.partition = ANY (p_partitions))
        AND (p_types IS NULL OR m.message_type = ANY (p_types))
      ORDER BY m.transaction_id, m.global_position
      LIMIT 1;
    RETURN FOUND;
END;
$$;
