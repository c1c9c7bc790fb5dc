-- ef_log_holds: the appends in flight that hold partitions of the global log back, oldest first
-- (PostgresEventStore.logHolds, ef_fleet_status): one row per appending backend and partition key
-- (ef_log_horizon), the partition named by its newest committed event (NULL while it has none), and
-- the appender as pg_stat_activity reports it (behind a pooler the pid and address are the pooler's;
-- the application name is the appender's own). p_partitions narrows it to a scope's partitions (NULL:
-- all), as ef_log_horizon does.
CREATE OR REPLACE FUNCTION ef_log_holds(p_partitions text[])
RETURNS TABLE (partition text, partition_key integer, pid integer, application_name text, client_addr text, state text,
               transaction_seconds float8)
LANGUAGE plpgsql
VOLATILE
SET search_path FROM CURRENT
AS $$
BEGIN
    RETURN QUERY
    SELECT (SELECT m.partition FROM ef_messages m
             WHERE hashtext(m.partition) = h.partition_key
             ORDER BY hashtext(m.partition) DESC, m.global_position DESC
             LIMIT 1),
           h.partition_key, h.pid, h.application_name, h.client_addr, h.state, coalesce(h.transaction_seconds, 0)
      FROM ef_log_horizon((SELECT array_agg(hashtext(s.p)) FROM unnest(p_partitions) AS s(p))) h
     WHERE h.partition_key IS NOT NULL
     ORDER BY h.transaction_seconds DESC NULLS LAST, h.pid, h.partition_key;
END;
$$;
