import EventFleetCore
import Foundation
import PostgresNIO

extension PostgresEventStore {
    public func readStream(_ streamId: String, options readOptions: ReadStreamOptions) async throws -> ReadStreamResult<RecordedMessage> {
        try await readStream(streamId, options: readOptions, connection: nil)
    }

    /// Reads inside the caller's transaction on `connection`, seeing its uncommitted writes.
    ///
    /// - Parameters:
    ///   - streamId: The stream.
    ///   - readOptions: Partition, range and maximum count.
    ///   - connection: A connection with an open transaction, or `nil` to use the pool.
    /// - Throws: As ``readStream(_:options:)``.
    public func readStream(
        _ streamId: String, options readOptions: ReadStreamOptions, connection: PostgresConnection?
    ) async throws -> ReadStreamResult<RecordedMessage> {
        try readOptions.validate(streamId: streamId)
        if readOptions.maxCount == 0 {
            let version = try await streamVersion(streamId, partition: readOptions.partition, connection: connection)
            return ReadStreamResult(currentStreamVersion: version ?? 0, streamExists: version != nil, events: [])
        }
        let partition = readOptions.partition
        let to = readOptions.to ?? Int64.max
        let limit = readOptions.maxCount.map(Int64.init)
        // One statement, one snapshot: the version and the events agree with each other.
        let query: PostgresQuery = """
            SELECT s.stream_position, m.stream_position, m.global_position, m.transaction_id, m.message_id,
                   m.message_type, m.message_data::text, m.message_metadata::text, m.message_schema_version, m.created
              FROM \(database.schema.ef_streams) s
              LEFT JOIN LATERAL (
                    SELECT * FROM \(database.schema.ef_messages) m
                     WHERE m.partition = s.partition AND m.stream_id = s.stream_id
                       AND m.stream_position >= \(readOptions.from) AND m.stream_position <= \(to)
                     ORDER BY m.stream_position
                     LIMIT \(limit)
                   ) m ON true
             WHERE s.partition = \(partition) AND s.stream_id = \(streamId)
            """
        let rows = if let connection {
            try await database.mapErrors("read stream") { try await Database.Connection(connection: connection, database: database).query(query) }
        } else {
            try await database.query("read stream", query)
        }
        var version: Int64?
        var events: [RecordedMessage] = []
        for row in rows {
            var cells = RowCells(row, statement: "read stream")
            version = try cells.next(Int64.self)
            // No event in the range: the stream row alone, with NULLs for the event's columns.
            guard let position = try cells.next(Int64?.self) else { continue }
            events.append(
                RecordedMessage(
                    streamId: streamId, partition: partition, streamPosition: position, globalPosition: try cells.next(),
                    transactionId: try cells.next(TransactionID.self).value, messageId: try cells.next(), type: try cells.next(),
                    data: Data(try cells.next(ByteBuffer.self).readableBytesView), metadata: Data(try cells.next(ByteBuffer.self).readableBytesView),
                    schemaVersion: try cells.next(), created: try cells.next()
                )
            )
        }
        return ReadStreamResult(currentStreamVersion: version ?? 0, streamExists: version != nil, events: events)
    }

    /// The stream's current version, or `nil` when it does not exist.
    public func streamVersion(_ streamId: String, partition: String = defaultPartition) async throws -> Int64? {
        try await streamVersion(streamId, partition: partition, connection: nil)
    }

    /// The stream's current version on `connection` (inside its transaction), or through the pool.
    private func streamVersion(_ streamId: String, partition: String, connection: PostgresConnection?) async throws -> Int64? {
        let query: PostgresQuery = "SELECT stream_position FROM \(database.schema.ef_streams) WHERE partition = \(partition) AND stream_id = \(streamId)"
        let rows = if let connection {
            try await database.mapErrors("read stream version") { try await Database.Connection(connection: connection, database: database).query(query) }
        } else {
            try await database.query("read stream version", query)
        }
        return try rows.first?.decode(Int64.self)
    }
}
