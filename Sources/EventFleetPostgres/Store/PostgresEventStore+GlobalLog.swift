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
            transactionId: TransactionID(checkpoint.transactionId), globalPosition: checkpoint.globalPosition, partitions: partitions,
            types: readOptions.types, limit: Int64(readOptions.batchSize), includePayload: readOptions.includePayload
        )
        return try await database.withConnection("read global log") { connection in
            let messages = try await connection.run(statement).map { partition, streamId, position, global, transaction, messageId, type, data, metadata, schemaVersion, created in
                RecordedMessage(
                    streamId: streamId, partition: partition, streamPosition: position, globalPosition: global,
                    transactionId: transaction.value, messageId: messageId, type: type,
                    data: Data(data.utf8), metadata: Data(metadata.utf8), schemaVersion: schemaVersion, created: created
                )
            }
            guard let last = messages.last else {
                // Only on an empty batch, so the busy path stays one round trip. Any matching event
                // past the checkpoint now is held back or committed since the read: either way, look
                // again soon. An index probe, like the page, whatever the statistics say.
                let isHeldBack = try await connection.value("check the global log for held-back events", """
                    SELECT \(connection.schema.ef_global_log_has_more)(\(TransactionID(checkpoint.transactionId)), \(checkpoint.globalPosition),
                                                  \(partitions)::text[], \(readOptions.types)::text[])
                    """, as: Bool.self)
                return GlobalLogBatch(messages: [], checkpoint: checkpoint, isHeldBack: isHeldBack)
            }
            return GlobalLogBatch(messages: messages, checkpoint: last.checkpoint)
        }
    }

    public func globalLogStall() async throws -> GlobalLogStall? {
        // The oldest transaction holding an xid sets the snapshot's xmin; events of later transactions
        // wait for it. Transactions of every database count: xids are cluster-wide.
        let rows = try await database.query("report global log stall", """
            SELECT a.pid, extract(epoch FROM clock_timestamp() - a.xact_start)::float8, a.state, a.application_name, a.query
              FROM pg_stat_activity a
             WHERE a.backend_xid IS NOT NULL AND a.pid <> pg_backend_pid()
             ORDER BY age(a.backend_xid) DESC
             LIMIT 1
            """)
        return try rows.first.map { row in
            let (pid, age, state, applicationName, statement) = try row.decode((Int32, Double?, String?, String?, String?).self)
            return GlobalLogStall(
                pid: pid, age: .milliseconds(Int64((age ?? 0) * 1000)), state: state, applicationName: applicationName, query: statement
            )
        }
    }

    /// The checkpoint of the newest committed event (in `scope`, of `types`), or `nil` when there is none.
    ///
    /// A reader whose checkpoint has reached it has processed everything committed before the call,
    /// once any stall has cleared. The monitor uses it to show a consumer's lag.
    public func globalLogHead(scope: PartitionScope = .all, types: [String]? = nil) async throws -> GlobalCheckpoint? {
        let partitions = scope.partitions
        let rows = try await database.query("read global log head", """
            SELECT m.transaction_id, m.global_position FROM \(database.schema.ef_messages) m
             WHERE (\(partitions)::text[] IS NULL OR m.partition = ANY (\(partitions)::text[]))
               AND (\(types)::text[] IS NULL OR m.message_type = ANY (\(types)::text[]))
             ORDER BY m.transaction_id DESC, m.global_position DESC
             LIMIT 1
            """)
        return try rows.first.map { row in
            let (transaction, position) = try row.decode((TransactionID, Int64).self)
            return GlobalCheckpoint(transactionId: transaction.value, globalPosition: position)
        }
    }
}
