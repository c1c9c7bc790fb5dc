import EventFleetCore
import Foundation
import PostgresNIO

extension PostgresEventStore {
    public func readAll(after checkpoint: GlobalCheckpoint, options readOptions: ReadAllOptions) async throws -> GlobalLogBatch {
        guard readOptions.batchSize > 0 else {
            throw EventStoreError.invalidArgument(field: "batchSize", reason: "must be positive")
        }
        let partitions = readOptions.scope.partitions
        // Only transactions below the snapshot's xmin have surely ended: everything they wrote is
        // visible now and nothing can appear before them later. Ordering by (transaction id, global
        // position) and checkpointing that pair therefore never skips a late commit.
        let statement = ReadAllStatement(
            transactionId: String(checkpoint.transactionId), globalPosition: checkpoint.globalPosition, partitions: partitions,
            types: readOptions.types, limit: Int64(readOptions.batchSize), includePayload: readOptions.includePayload
        )
        return try await mapErrors("read global log") {
            try await client.withGuardedConnection { [logger] connection in
                var messages: [RecordedMessage] = []
                for try await (partition, streamId, position, global, transaction, messageId, type, data, metadata, schemaVersion, created)
                    in try await connection.checkedExecute(statement, logger: logger)
                {
                    messages.append(
                        RecordedMessage(
                            streamId: streamId, partition: partition, streamPosition: position, globalPosition: global,
                            transactionId: UInt64(transaction) ?? 0, messageId: messageId, type: type,
                            data: Data(data.utf8), metadata: Data(metadata.utf8), schemaVersion: schemaVersion, created: created
                        )
                    )
                }
                guard messages.isEmpty else { return GlobalLogBatch(messages: messages, checkpoint: messages.last!.checkpoint) }
                // Only on an empty batch, so the busy path stays one round trip. Any matching event past
                // the checkpoint now is held back or committed since the read: either way, look again soon.
                // A function of migration 0005, like the page: an index probe whatever the statistics say.
                let heldBack: PostgresQuery = """
                    SELECT ef_global_log_has_more(\(String(checkpoint.transactionId))::xid8, \(checkpoint.globalPosition),
                                                  \(partitions)::text[], \(readOptions.types)::text[])
                    """
                var isHeldBack = false
                for try await hasMore in try await connection.checkedQuery(heldBack, logger: logger).decode(Bool.self) { isHeldBack = hasMore }
                return GlobalLogBatch(messages: [], checkpoint: checkpoint, isHeldBack: isHeldBack)
            }
        }
    }

    public func globalLogStall() async throws -> GlobalLogStall? {
        // The oldest transaction holding an xid sets the snapshot's xmin; events of later transactions
        // wait for it. Transactions of every database count: xids are cluster-wide.
        let query: PostgresQuery = """
            SELECT a.pid, extract(epoch FROM clock_timestamp() - a.xact_start)::float8, a.state, a.application_name, a.query
              FROM pg_stat_activity a
             WHERE a.backend_xid IS NOT NULL AND a.pid <> pg_backend_pid()
             ORDER BY age(a.backend_xid) DESC
             LIMIT 1
            """
        return try await mapErrors("report global log stall") {
            try await client.guardedQuery(query, logger: logger) { rows in
                for try await (pid, age, state, applicationName, statement) in rows.decode((Int32, Double?, String?, String?, String?).self) {
                    return GlobalLogStall(
                        pid: pid, age: .milliseconds(Int64((age ?? 0) * 1000)), state: state,
                        applicationName: applicationName, query: statement
                    )
                }
                return nil
            }
        }
    }
}

extension PostgresEventStore {
    /// The checkpoint of the newest committed event (in `scope`, of `types`), or `nil` when there is none.
    ///
    /// A reader whose checkpoint has reached it has processed everything committed before the call,
    /// once any stall has cleared. The monitor uses it to show a consumer's lag.
    public func globalLogHead(scope: PartitionScope = .all, types: [String]? = nil) async throws -> GlobalCheckpoint? {
        let partitions = scope.partitions
        let query: PostgresQuery = """
            SELECT m.transaction_id::text, m.global_position FROM ef_messages m
             WHERE (\(partitions)::text[] IS NULL OR m.partition = ANY (\(partitions)::text[]))
               AND (\(types)::text[] IS NULL OR m.message_type = ANY (\(types)::text[]))
             ORDER BY m.transaction_id DESC, m.global_position DESC
             LIMIT 1
            """
        return try await mapErrors("read global log head") {
            try await client.guardedQuery(query, logger: logger) { rows in
                for try await (transaction, position) in rows.decode((String, Int64).self) {
                    return GlobalCheckpoint(transactionId: UInt64(transaction) ?? 0, globalPosition: position)
                }
                return nil
            }
        }
    }
}
