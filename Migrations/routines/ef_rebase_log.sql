-- ef_rebase_log: makes a restored database safe to append to and read (docs/DESIGN.md, "Restoring a
-- database"; the command `eventfleet rebase-log` runs it, after checking that no fleet is live).
--
-- 1. The sequence of global positions moves above every position in use: the events' and every
--    checkpoint's. pg_restore sets it, but a copy by logical replication does not copy sequences,
--    and new appends would draw positions below checkpoints that readers have passed (skipped).
-- 2. Every checkpoint still in transaction order is started in position order
--    (ef_convert_checkpoints), while the events past it still carry the source server's
--    transaction ids: after the first new append on the restored server, whose ids start over,
--    that order no longer says which events came after a pair.
--
-- Appends wait for it (their INSERT's lock conflicts with EXCLUSIVE), and readers of checkpoints
-- too; reads of events go on. Running it again changes nothing.
CREATE OR REPLACE FUNCTION ef_rebase_log()
RETURNS TABLE (sequence_before bigint, sequence_after bigint, checkpoints_converted integer)
LANGUAGE plpgsql
VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_before    bigint;
    v_needed    bigint;
    v_converted integer;
BEGIN
    LOCK TABLE ef_messages IN EXCLUSIVE MODE;
    LOCK TABLE ef_subscriptions IN EXCLUSIVE MODE;
    v_before := pg_sequence_last_value('ef_global_position');
    SELECT greatest(
               (SELECT coalesce(max(m.global_position), 0) FROM ef_messages m),
               (SELECT coalesce(max(greatest(s.last_global_position, s.log_position,
                                             (SELECT max(h) FROM unnest(s.log_held_positions) h))), 0)
                  FROM ef_subscriptions s))
      INTO v_needed;
    IF coalesce(v_before, 0) < v_needed THEN
        PERFORM setval('ef_global_position', v_needed);
    END IF;
    SELECT count(*) INTO v_converted FROM ef_convert_checkpoints(NULL, NULL, NULL);
    RETURN QUERY SELECT v_before, greatest(coalesce(v_before, 0), v_needed), v_converted;
END;
$$;
