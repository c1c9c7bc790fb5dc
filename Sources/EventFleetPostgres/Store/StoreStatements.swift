import EventFleetCore
import Foundation
import PostgresNIO

// The store's frequent statements (see `Statement`).

/// A page of each of several streams (``PostgresEventStore/readStreams(_:maxCountPerStream:connection:)``).
struct ReadStreamsStatement: Statement {
    static func sql(_ schema: Schema) -> String {
        """
        SELECT r.ordinal, m.stream_position, m.global_position, m.transaction_id, m.message_id,
               m.message_type, m.message_data::text, m.message_metadata::text, m.message_schema_version, m.created
          FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[])
               WITH ORDINALITY AS r(partition, stream_id, from_position, to_position, max_count, ordinal)
         CROSS JOIN LATERAL (
                SELECT * FROM \(schema.ef_messages) m
                 WHERE m.partition = r.partition AND m.stream_id = r.stream_id
                   AND m.stream_position >= r.from_position AND m.stream_position <= r.to_position
                 ORDER BY m.stream_position
                 LIMIT r.max_count
               ) m
         ORDER BY r.ordinal, m.stream_position
         LIMIT $6
        """
    }

    static let bindingDataTypes: [PostgresDataType] = [.textArray, .textArray, .int8Array, .int8Array, .int8Array, .int8]
    // Payloads as raw bytes: they become `Data` without a trip through `String`.
    typealias Row = (Int64, Int64, Int64, TransactionID, String, String, ByteBuffer, ByteBuffer, Int32, Date)

    var partitions: [String]
    var streamIds: [String]
    var froms: [Int64]
    var tos: [Int64]
    /// Events of each stream, at most.
    var maxCounts: [Int64]
    /// Rows of the whole statement, at most.
    var limit: Int64

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 6)
        bindings.append(partitions)
        bindings.append(streamIds)
        bindings.append(froms)
        bindings.append(tos)
        bindings.append(maxCounts)
        bindings.append(limit)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row {
        var cells = RowCells(row, statement: "ReadStreamsStatement")
        return (
            try cells.next(), try cells.next(), try cells.next(), try cells.next(), try cells.next(),
            try cells.next(), try cells.next(), try cells.next(), try cells.next(), try cells.next()
        )
    }
}

/// A batch of the global log (``PostgresEventStore/readAll(after:options:)``): the horizon it read
/// under, then its events.
struct ReadLogStatement: Statement {
    static func sql(_ schema: Schema) -> String {
        """
        SELECT e.partition, e.stream_id, e.stream_position, e.global_position, e.transaction_id::xid8, e.message_id,
               e.message_type, e.message_data, e.message_metadata, e.message_schema_version, e.created,
               e.horizon_bound, e.marked_keys, e.marked_bounds
          FROM \(schema.ef_read_log)($1, $2::integer[], $3::bigint[], $4::text[], $5::text[], $6, $7) AS e
        """
    }

    static let bindingDataTypes: [PostgresDataType] = [.int8, .int4Array, .int8Array, .textArray, .textArray, .int8, .bool]

    enum Row: Sendable {
        case horizon(LogHorizon)
        case message(RecordedMessage)
    }

    var checkpoint: GlobalCheckpoint
    var partitions: [String]?
    var types: [String]?
    var limit: Int64
    var includePayload: Bool

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 7)
        bindings.append(checkpoint.position)
        bindings.append(checkpoint.held.map(\.key))
        bindings.append(checkpoint.held.map(\.position))
        if let partitions { bindings.append(partitions) } else { bindings.appendNull() }
        if let types { bindings.append(types) } else { bindings.appendNull() }
        bindings.append(limit)
        bindings.append(includePayload)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row {
        var cells = RowCells(row, statement: "ReadLogStatement")
        guard let partition = try cells.next(String?.self) else {
            for _ in 0..<10 { _ = try cells.next(String?.self) }
            let bound: Int64 = try cells.next()
            let keys: [Int32] = try cells.next()
            let bounds: [Int64] = try cells.next()
            return .horizon(LogHorizon(bound: bound, marked: Dictionary(zip(keys, bounds)) { min($0, $1) }))
        }
        let streamId: String = try cells.next()
        let streamPosition: Int64 = try cells.next()
        let globalPosition: Int64 = try cells.next()
        let transaction: TransactionID = try cells.next()
        let messageId: String = try cells.next()
        let type: String = try cells.next()
        let data: String = try cells.next()
        let metadata: String = try cells.next()
        let schemaVersion: Int32 = try cells.next()
        let created: Date = try cells.next()
        return .message(
            RecordedMessage(
                streamId: streamId, partition: partition, streamPosition: streamPosition, globalPosition: globalPosition,
                transactionId: transaction.value, messageId: messageId, type: type, data: Data(data.utf8), metadata: Data(metadata.utf8),
                schemaVersion: schemaVersion, created: created
            )
        )
    }
}

/// The row both append statements answer with: outcome, current version, next expected version,
/// last global position, whether the stream was created.
typealias AppendOutcome = (String, Int64, Int64?, Int64?, Bool?)

/// The arguments of `ef_append_to_stream` and `ef_append_to_stream_committed`, in their order.
struct AppendArguments: Sendable {
    var partition: String
    var streamId: String
    var streamType: String?
    var streamMetadata: String?
    var expectedKind: Int16
    var expectedVersion: Int64
    var idsSupplied: Bool
    var ids: [String]
    var types: [String]
    var data: [String]
    var metadata: [String]
    var schemaVersions: [Int32]
    var notifyChannel: String?

    static let dataTypes: [PostgresDataType] = [
        .text, .text, .text, .text, .int2, .int8, .bool, .textArray, .textArray, .textArray, .textArray, .int4Array, .text,
    ]

    var bindings: PostgresBindings {
        var bindings = PostgresBindings(capacity: 13)
        bindings.append(partition)
        bindings.append(streamId)
        if let streamType { bindings.append(streamType) } else { bindings.appendNull() }
        if let streamMetadata { bindings.append(streamMetadata) } else { bindings.appendNull() }
        bindings.append(expectedKind)
        bindings.append(expectedVersion)
        bindings.append(idsSupplied)
        bindings.append(ids)
        bindings.append(types)
        bindings.append(data)
        bindings.append(metadata)
        bindings.append(schemaVersions)
        if let notifyChannel { bindings.append(notifyChannel) } else { bindings.appendNull() }
        return bindings
    }

    static func decodeOutcome(_ row: PostgresRow, statement: StaticString) throws -> AppendOutcome {
        var cells = RowCells(row, statement: statement)
        return (try cells.next(), try cells.next(), try cells.next(), try cells.next(), try cells.next())
    }
}

/// An append through the pool: the procedure commits before it answers (see `appendToStream`).
struct CommittedAppendStatement: Statement {
    static func sql(_ schema: Schema) -> String {
        """
        CALL \(schema.ef_append_to_stream_committed)($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
                                                     NULL, NULL, NULL, NULL, NULL)
        """
    }
    static let bindingDataTypes = AppendArguments.dataTypes + [.text]
    typealias Row = AppendOutcome

    var arguments: AppendArguments
    /// The schema the procedure finds the append function in (it cannot pin one itself).
    var schema: String?

    func makeBindings() throws -> PostgresBindings {
        var bindings = arguments.bindings
        if let schema { bindings.append(schema) } else { bindings.appendNull() }
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try AppendArguments.decodeOutcome(row, statement: "CommittedAppendStatement") }
}

/// An append inside the caller's transaction.
struct AppendStatement: Statement {
    static func sql(_ schema: Schema) -> String {
        """
        SELECT outcome, current_version, next_expected_version, last_global_position, created_new_stream
          FROM \(schema.ef_append_to_stream)($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9, $10, $11, $12, $13)
        """
    }
    static let bindingDataTypes = AppendArguments.dataTypes
    typealias Row = AppendOutcome

    var arguments: AppendArguments

    func makeBindings() throws -> PostgresBindings { arguments.bindings }

    func decodeRow(_ row: PostgresRow) throws -> Row { try AppendArguments.decodeOutcome(row, statement: "AppendStatement") }
}

/// The lock of one stream until the end of the transaction (see `StreamLock`), waited for at most
/// `lockTimeout` milliseconds (`lock_timeout`, for this transaction only; the server then ends the
/// wait with 55P03).
struct StreamLockStatement: Statement {
    static func sql(_ schema: Schema) -> String {
        "SELECT set_config('lock_timeout', $3, true), pg_advisory_xact_lock(hashtext($1), hashtext($2))"
    }
    static let bindingDataTypes: [PostgresDataType] = [.text, .text, .text]
    typealias Row = Void

    /// The schema and the partition.
    var scope: String
    var streamId: String
    var lockTimeoutMilliseconds: Int64

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 3)
        bindings.append(scope)
        bindings.append(streamId)
        bindings.append(String(lockTimeoutMilliseconds))
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row {}
}
