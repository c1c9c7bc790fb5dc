-- ef_log_horizon: how far the global log can be read now, and which appends in flight hold which
-- partitions back (their marks: ef_mark_append). docs/DESIGN.md, "The log horizon", has the proof.
--
-- Step order is the proof's: the sequence's last value first (bound), then the marks; the caller
-- reads the log with a snapshot taken after this function's look at the marks, which READ
-- COMMITTED gives to every later statement (a REPEATABLE READ snapshot may be older, so such a
-- caller is refused).
--
-- Answers one row per backend of this schema's store holding a mark on a partition key in p_keys
-- (all keys when NULL): the key (hashtext(partition)), the backend's bound (no position of its
-- appends is at or below it), and who it is, as pg_stat_activity reports it (behind a pooler the
-- pid and address are the pooler's; the application name is the appender's own). bound is the same
-- in every row: the last position handed out (NULL for a role without USAGE or SELECT on the
-- sequence); with no mark in flight, one row with only bound set.
CREATE OR REPLACE FUNCTION ef_log_horizon(p_keys integer[])
RETURNS TABLE (bound bigint, partition_key integer, appender_bound bigint, pid integer, application_name text,
               client_addr text, state text, transaction_seconds float8)
LANGUAGE plpgsql
VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_bound bigint;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'ef_log_horizon needs READ COMMITTED (the transaction is %)', current_setting('transaction_isolation')
              USING ERRCODE = 'feature_not_supported';
    END IF;
    -- A role that may only look (the monitor's read-only role) gets the marks without the bound.
    IF has_sequence_privilege('ef_global_position', 'SELECT, USAGE') THEN
        v_bound := coalesce(pg_sequence_last_value('ef_global_position'), 0);
    END IF;
    RETURN QUERY
    WITH marks AS MATERIALIZED (
        SELECT l.pid, l.classid::bigint AS classid, l.objid::bigint AS objid
          FROM pg_locks l
         WHERE l.locktype = 'advisory' AND l.objsubid = 2 AND l.granted
           AND l.classid::bigint BETWEEN 1162215424 AND 1162280959
           AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
    ),
    appenders AS (
        SELECT p.pid,
               (p.objid - CASE WHEN p.objid >= 2147483648 THEN 4294967296 ELSE 0 END)::integer AS partition_key,
               (SELECT min(((b.classid - 1162215424) << 32) | b.objid) FROM marks b
                 WHERE b.pid = p.pid AND b.classid < 1162280958) AS appender_bound
          FROM marks p
         WHERE p.classid = 1162280959
           AND EXISTS (SELECT 1 FROM marks s
                        WHERE s.pid = p.pid AND s.classid = 1162280958
                          AND s.objid = (hashtext(current_schema())::bigint & 4294967295))
    )
    SELECT v_bound, a.partition_key, least(a.appender_bound, v_bound), a.pid, s.application_name,
           host(s.client_addr), s.state, extract(epoch FROM clock_timestamp() - s.xact_start)::float8
      FROM appenders a
      LEFT JOIN pg_stat_activity s ON s.pid = a.pid
     WHERE p_keys IS NULL OR a.partition_key = ANY (p_keys)
    UNION ALL
    SELECT v_bound, NULL, NULL, NULL, NULL, NULL, NULL, NULL
     WHERE NOT EXISTS (SELECT 1 FROM appenders a WHERE p_keys IS NULL OR a.partition_key = ANY (p_keys));
END;
$$;
