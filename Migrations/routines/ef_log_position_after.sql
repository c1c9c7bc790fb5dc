-- ef_log_position_after: where a consumer whose checkpoint is a (transaction id, global position)
-- pair of a previous release starts in position order (EventConsumer's lease; docs/DESIGN.md, "The
-- log horizon", rolling deploy): a position below every event that pair has not covered.
--
-- The old order only passed transactions below the snapshot's xmin, so every event the pair has not
-- covered is past it in that order, or not yet committed. A committed one is found in the old
-- index; one in flight lies above its append's mark (ef_log_horizon); one not yet drawn lies above
-- the sequence's last value. Events at or below the answer are all covered; events above it that
-- the pair covered are met again once, which a consumer's checkpoint moves past.
CREATE OR REPLACE FUNCTION ef_log_position_after(p_transaction_id xid8, p_global_position bigint)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_bound  bigint;
    v_marked bigint;
    v_first  bigint;
BEGIN
    SELECT max(h.bound), min(h.appender_bound) INTO v_bound, v_marked FROM ef_log_horizon(NULL) h;
    SELECT min(m.global_position) INTO v_first
      FROM ef_messages m
     WHERE (m.transaction_id, m.global_position) > (p_transaction_id, p_global_position);
    RETURN least(v_bound, v_marked, v_first - 1);
END;
$$;
