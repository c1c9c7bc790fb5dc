-- ef_read_log: a page of the global log in position order, held back per partition only by the
-- appends in flight (PostgresEventStore.readAll; the scheduler reads its pages through
-- ef_schedule_log). docs/DESIGN.md, "The log horizon", has the rule and its proof.
--
-- The checkpoint read from is a position and the held partition keys, each with its own position
-- below it (p_held_keys and p_held_positions go together). The first row answers the horizon:
-- horizon_bound (B, the last position handed out) and, for each partition key (of p_partitions,
-- or all) an append in flight marks, the bound below which that key is readable (marked_keys and
-- marked_bounds; the event columns are NULL in that row). The events follow, at most p_limit, in
-- global-position order: for a key held or marked, those in (its held position, or p_position;
-- its marked bound, or B]; for every other key those in (p_position, B]. The caller moves its
-- checkpoint from these (GlobalCheckpoint.advanced(through:horizon:)).
--
-- The read stays in index order whatever the statistics of ef_messages say (see
-- ef_read_global_log for why): no sequential scans, bitmap scans or sorts, and a generic plan.
CREATE OR REPLACE FUNCTION ef_read_log(
    p_position       bigint,
    p_held_keys      integer[],
    p_held_positions bigint[],
    p_partitions     text[],
    p_types          text[],
    p_limit          bigint,
    p_payload        boolean
)
RETURNS TABLE (partition text, stream_id text, stream_position bigint, global_position bigint, transaction_id xid8,
               message_id text, message_type text, message_data text, message_metadata text,
               message_schema_version integer, created timestamptz,
               horizon_bound bigint, marked_keys integer[], marked_bounds bigint[])
LANGUAGE plpgsql
SET search_path FROM CURRENT
SET plan_cache_mode = force_generic_plan
SET jit = off
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_sort = off
AS $$
#variable_conflict use_column
DECLARE
    v_bound  bigint;
    v_marked integer[];
    v_limits bigint[];
    v_keys   integer[];
    v_from   bigint[];
    v_to     bigint[];
BEGIN
    IF cardinality(p_held_keys) IS DISTINCT FROM cardinality(p_held_positions) THEN
        RAISE EXCEPTION 'held keys (%) and held positions (%) do not pair up',
              cardinality(p_held_keys), cardinality(p_held_positions)
              USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- The horizon first: the page's snapshot (a later statement's) must be younger than this look
    -- at the marks.
    SELECT max(h.bound), array_agg(h.partition_key ORDER BY h.partition_key) FILTER (WHERE h.partition_key IS NOT NULL),
           array_agg(h.appender_bound ORDER BY h.partition_key) FILTER (WHERE h.partition_key IS NOT NULL)
      INTO v_bound, v_marked, v_limits
      FROM (SELECT max(r.bound) AS bound, r.partition_key, min(r.appender_bound) AS appender_bound
              FROM ef_log_horizon((SELECT array_agg(hashtext(s.p)) FROM unnest(p_partitions) AS s(p))) r
             GROUP BY r.partition_key) h;
    IF v_bound IS NULL THEN
        RAISE EXCEPTION 'reading the log needs USAGE or SELECT on ef_global_position'
              USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN QUERY SELECT NULL::text, NULL::text, NULL::bigint, NULL::bigint, NULL::xid8, NULL::text, NULL::text,
                        NULL::text, NULL::text, NULL::integer, NULL::timestamptz,
                        v_bound, coalesce(v_marked, '{}'), coalesce(v_limits, '{}');

    -- The keys read in ranges of their own: held ones from their held position, marked ones up to
    -- their bound.
    SELECT array_agg(k.key ORDER BY k.key), array_agg(k.from_position ORDER BY k.key), array_agg(k.to_position ORDER BY k.key)
      INTO v_keys, v_from, v_to
      FROM (SELECT coalesce(h.key, m.key) AS key, coalesce(h.position, p_position) AS from_position,
                   least(v_bound, coalesce(m.bound, v_bound)) AS to_position
              FROM unnest(p_held_keys, p_held_positions) AS h(key, position)
              FULL JOIN unnest(v_marked, v_limits) AS m(key, bound) ON m.key = h.key) k;
    v_keys := coalesce(v_keys, '{}');

    RETURN QUERY
    SELECT e.partition, e.stream_id, e.stream_position, e.global_position, e.transaction_id, e.message_id,
           e.message_type,
           CASE WHEN p_payload THEN e.message_data::text ELSE '{}' END,
           CASE WHEN p_payload THEN e.message_metadata::text ELSE '{}' END,
           e.message_schema_version, e.created, NULL::bigint, NULL::integer[], NULL::bigint[]
      FROM ((SELECT m.* FROM ef_messages m
              WHERE m.global_position > p_position AND m.global_position <= v_bound
                AND NOT (hashtext(m.partition) = ANY (v_keys))
                AND (p_partitions IS NULL OR m.partition = ANY (p_partitions))
                AND (p_types IS NULL OR m.message_type = ANY (p_types))
              ORDER BY m.global_position
              LIMIT p_limit)
            UNION ALL
            (SELECT r.* FROM unnest(v_keys, v_from, v_to) AS s(key, from_position, to_position)
               CROSS JOIN LATERAL (
                   SELECT m.* FROM ef_messages m
                    WHERE hashtext(m.partition) = s.key
                      AND m.global_position > s.from_position AND m.global_position <= s.to_position
                      AND (p_partitions IS NULL OR m.partition = ANY (p_partitions))
                      AND (p_types IS NULL OR m.message_type = ANY (p_types))
                    ORDER BY hashtext(m.partition), m.global_position
                    LIMIT p_limit) r)) e
     ORDER BY e.global_position
     LIMIT p_limit;
END;
$$;
