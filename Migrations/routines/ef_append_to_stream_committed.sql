-- ef_append_to_stream_committed: appends with ef_append_to_stream and answers only after its own
-- COMMIT, so that an append through the pool is acknowledged in one round trip, and only once it
-- is durable.
--
-- A statement outside a transaction block commits only at the protocol's Sync, after its rows are
-- sent; a client that takes the rows as the acknowledgement (postgres-nio does) could report an
-- append that a crash or a deferred constraint then undoes. The procedure's answer comes after its
-- COMMIT, so it is the acknowledgement of a durable append (or the COMMIT's error). A procedure
-- that commits can only be called outside a transaction block; appends inside a caller's
-- transaction use the function. The arguments are the function's; the INOUT parameters carry the
-- answer (callers pass NULL for them).
--
-- A procedure that commits cannot pin its search_path with a SET clause, as the functions do, so
-- the caller names its schema (p_schema, NULL for the session's search_path): the procedure finds
-- ef_append_to_stream there for the rest of its transaction.
CREATE OR REPLACE PROCEDURE ef_append_to_stream_committed(
    p_partition          text,
    p_stream_id          text,
    p_stream_type        text,
    p_stream_metadata    jsonb,
    p_expected_kind      smallint,
    p_expected_version   bigint,
    p_ids_supplied       boolean,
    p_message_ids        text[],
    p_types              text[],
    p_data               text[],
    p_metadata           text[],
    p_schema_versions    integer[],
    p_notify_channel     text,
    p_schema             text,
    INOUT outcome              text DEFAULT NULL,
    INOUT current_version      bigint DEFAULT NULL,
    INOUT next_expected_version bigint DEFAULT NULL,
    INOUT last_global_position bigint DEFAULT NULL,
    INOUT created_new_stream   boolean DEFAULT NULL
)
LANGUAGE plpgsql
AS $$
BEGIN
    IF p_schema IS NOT NULL THEN
        PERFORM set_config('search_path', quote_ident(p_schema), true);
    END IF;
    SELECT a.outcome, a.current_version, a.next_expected_version, a.last_global_position, a.created_new_stream
      INTO outcome, current_version, next_expected_version, last_global_position, created_new_stream
      FROM ef_append_to_stream(p_partition, p_stream_id, p_stream_type, p_stream_metadata, p_expected_kind,
                               p_expected_version, p_ids_supplied, p_message_ids, p_types, p_data, p_metadata,
                               p_schema_versions, p_notify_channel) a;
    COMMIT;
END;
$$;
