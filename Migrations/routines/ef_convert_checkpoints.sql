-- ef_convert_checkpoints: starts in position order the checkpoints still in transaction order (docs/
-- DESIGN.md, "The log horizon", rolling deploy and restores): a row a previous release moved last
-- (log_position NULL), or moved since this release read it (its pair is no longer its base), starts
-- from ef_log_position_after(pair), a position below every event the pair has not covered, and
-- remembers the pair as its base. One row (p_subscription_id, p_partition, p_version: a consumer
-- taking its lease), or every row (p_subscription_id NULL: ef_rebase_log after a restore).
--
-- The pair's order is the transaction ids', so the answer is right only while the events past the
-- pair carry transaction ids of the server that wrote the pair: a restored database converts every
-- row before anything is appended to it (ef_rebase_log holds off appends while it does).
CREATE OR REPLACE FUNCTION ef_convert_checkpoints(p_subscription_id text, p_partition text, p_version integer)
RETURNS TABLE (subscription_id text, partition text, version integer, log_position bigint)
LANGUAGE plpgsql
VOLATILE
SET search_path FROM CURRENT
AS $$
BEGIN
    RETURN QUERY
    UPDATE ef_subscriptions s
       SET log_position = ef_log_position_after(s.last_transaction_id, s.last_global_position),
           log_held_keys = '{}', log_held_positions = '{}',
           log_base_transaction_id = s.last_transaction_id, log_base_global_position = s.last_global_position
     WHERE (p_subscription_id IS NULL
            OR (s.subscription_id = p_subscription_id AND s.partition = p_partition AND s.version = p_version))
       AND (s.log_position IS NULL
            OR (s.log_base_transaction_id, s.log_base_global_position)
               IS DISTINCT FROM (s.last_transaction_id, s.last_global_position))
    RETURNING s.subscription_id, s.partition, s.version, s.log_position;
END;
$$;
