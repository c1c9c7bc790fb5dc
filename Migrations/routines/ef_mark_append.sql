-- ef_mark_append: marks the calling transaction as appending to p_partition, before it draws any
-- global position (ef_append_to_stream calls it just before inserting its events). Readers take
-- their horizon from these marks (ef_log_horizon): only appends in flight hold the log back, and
-- each holds back only its own partition. docs/DESIGN.md, "The log horizon", has the proof.
--
-- A mark is three transaction-level, shared advisory locks, visible to every session as soon as
-- they are granted and released only after the transaction's commit is visible:
--   the bound lock: (0x45460000 + (h0 >> 32), h0 & 0xFFFFFFFF), where h0 is the last position the
--     sequence handed out before this append draws its own (so all of them are above h0);
--   the schema lock: (0x4546FFFE, hashtext(current_schema())), so that readers count only the
--     appends to their own store (other schemas of the database have sequences of their own);
--   the partition lock: (0x4546FFFF, hashtext(p_partition)).
-- The bound lock comes first, so a reader that sees the others sees the bound too. A transaction
-- appending in several schemas holds bounds from several sequences, and readers take the smallest
-- of a backend's bounds, which is at most the one of their own schema's append: safe, if slower.
-- Nothing takes these locks exclusively, so marking never waits.
CREATE OR REPLACE FUNCTION ef_mark_append(p_partition text)
RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    v_bound bigint := coalesce(pg_sequence_last_value('ef_global_position'), 0);
BEGIN
    IF v_bound >= (65534::bigint << 32) THEN
        RAISE EXCEPTION 'global position % is beyond what an append mark can encode', v_bound
              USING ERRCODE = 'program_limit_exceeded';
    END IF;
    PERFORM pg_advisory_xact_lock_shared(1162215424 + (v_bound >> 32)::integer,
                                         ((v_bound & 4294967295) - CASE WHEN (v_bound & 2147483648) <> 0 THEN 4294967296 ELSE 0 END)::integer);
    PERFORM pg_advisory_xact_lock_shared(1162280958, hashtext(current_schema()));
    PERFORM pg_advisory_xact_lock_shared(1162280959, hashtext(p_partition));
END;
$$;
