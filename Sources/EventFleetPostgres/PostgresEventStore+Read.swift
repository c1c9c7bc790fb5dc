import EventFleetCore
import Foundation
import PostgresNIO

extension PostgresEventStore {
    public func readStream(_ streamId: String, options readOptions: ReadStreamOptions) async throws -> ReadStreamResult<RecordedMessage> {
        try await readStream(streamId, options: readOptions, connection: nil)
    }

    /// Reads inside the caller's transaction on `connection`, seeing its uncommitted writes.
    ///
    /// - Parameter connection: A connection with an open transaction, or `nil` to use the pool.
    /// - Throws: As ``readStream(_:options:)``.
    public func readStream(
        _ streamId: String, options readOptions: ReadStreamOptions, connection: PostgresConnection?
    ) async throws -> ReadStreamResult<RecordedMessage> {
        try readOptions.validate(streamId: streamId)
        if readOptions.maxCount == 0 {
            let version = try await streamVersion(streamId, partition: readOptions.partition)
            return ReadStreamResult(currentStreamVersion: version ?? 0, streamExists: version != nil, events: [])
        }
        let partition = readOptions.partition
        let to = readOptions.to ?? Int64.max
        let limit = readOptions.maxCount.map(Int64.init)
        // One statement, one snapshot: the version and the events agree with each other.
        let query: PostgresQuery = """
            SELECT s.stream_position, m.stream_position, m.global_position, m.transaction_id::text, m.message_id,
                   m.message_type, m.message_data::text, m.message_metadata::text, m.message_schema_version, m.created
              FROM ef_streams s
              LEFT JOIN LATERAL (
                    SELECT * FROM ef_messages m
                     WHERE m.partition = s.partition AND m.stream_id = s.stream_id
                       AND m.stream_position >= \(readOptions.from) AND m.stream_position <= \(to)
                     ORDER BY m.stream_position
                     LIMIT \(limit)
                   ) m ON true
             WHERE s.partition = \(partition) AND s.stream_id = \(streamId)
            """
        let consume: @Sendable (PostgresRowSequence) async throws -> ReadStreamResult<RecordedMessage> = { rows in
            var version: Int64?
            var events: [RecordedMessage] = []
            for try await row in rows {
                var cells = RowCells(row, statement: "read stream")
                version = try cells.next(Int64.self)
                let position = try cells.next(Int64?.self), global = try cells.next(Int64?.self)
                let transaction = try cells.next(String?.self), messageId = try cells.next(String?.self)
                let type = try cells.next(String?.self), data = try cells.next(ByteBuffer?.self), metadata = try cells.next(ByteBuffer?.self)
                let schemaVersion = try cells.next(Int32?.self), created = try cells.next(Date?.self)
                guard let position, let global, let transaction, let messageId, let type, let data, let metadata,
                      let schemaVersion, let created
                else { continue }
                events.append(
                    RecordedMessage(
                        streamId: streamId, partition: partition, streamPosition: position, globalPosition: global,
                        transactionId: UInt64(transaction) ?? 0, messageId: messageId, type: type,
                        data: Data(data.readableBytesView), metadata: Data(metadata.readableBytesView), schemaVersion: schemaVersion,
                        created: created
                    )
                )
            }
            return ReadStreamResult(currentStreamVersion: version ?? 0, streamExists: version != nil, events: events)
        }
        return try await mapErrors("read stream") {
            if let connection {
                return try await consume(try await connection.checkedQuery(query, logger: logger))
            }
            return try await client.guardedQuery(query, logger: logger, consume)
        }
    }

    /// The stream's current version, or `nil` when it does not exist.
    public func streamVersion(_ streamId: String, partition: String = defaultPartition) async throws -> Int64? {
        try await mapErrors("read stream version") {
            try await client.guardedQuery(
                "SELECT stream_position FROM ef_streams WHERE partition = \(partition) AND stream_id = \(streamId)",
                logger: logger
            ) { rows in
                for try await version in rows.decode(Int64.self) { return version }
                return nil
            }
        }
    }
}
