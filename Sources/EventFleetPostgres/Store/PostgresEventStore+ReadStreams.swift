import EventFleetCore
import Foundation
import PostgresNIO

/// One stream's range in a multi-stream read (``PostgresEventStore/readStreams(_:maxCountPerStream:connection:)``).
public struct StreamRange: Sendable, Hashable {
    public var partition: String
    public var streamId: String
    /// First stream position to return, inclusive.
    public var from: Int64
    /// Last stream position to return, inclusive; `nil` reads to the end.
    public var to: Int64?

    public init(partition: String, streamId: String, from: Int64 = 1, to: Int64? = nil) {
        self.partition = partition
        self.streamId = streamId
        self.from = from
        self.to = to
    }
}

extension PostgresEventStore {
    /// Reads a page of each of several streams in one statement (one snapshot), as a projection
    /// worker bringing many rows up to date in one transaction does.
    ///
    /// - Parameters:
    ///   - ranges: The streams and their ranges.
    ///   - maxCountPerStream: At most this many events of each stream.
    ///   - connection: A connection with an open transaction, or `nil` to use the pool.
    /// - Returns: The events of each range, in stream order, at the index of its range.
    /// - Throws: `EventStoreError.invalidArgument(field:reason:)` for an invalid id or range, and
    ///   the errors of ``readStream(_:options:)``.
    public func readStreams(
        _ ranges: [StreamRange], maxCountPerStream: Int, connection: PostgresConnection?
    ) async throws -> [[RecordedMessage]] {
        guard maxCountPerStream > 0 else {
            throw EventStoreError.invalidArgument(field: "maxCountPerStream", reason: "must be positive (got \(maxCountPerStream))")
        }
        for range in ranges {
            try ReadStreamOptions(partition: range.partition, from: range.from, to: range.to).validate(streamId: range.streamId)
        }
        guard !ranges.isEmpty else { return [] }
        let statement = ReadStreamsStatement(
            partitions: ranges.map(\.partition), streamIds: ranges.map(\.streamId), froms: ranges.map(\.from),
            tos: ranges.map { $0.to ?? Int64.max }, limit: Int64(maxCountPerStream)
        )
        let rows = if let connection {
            try await database.mapErrors("read streams") { try await Database.Connection(connection: connection, database: database).run(statement) }
        } else {
            try await database.run("read streams", statement)
        }
        var pages = [[RecordedMessage]](repeating: [], count: ranges.count)
        for (ordinal, position, global, transaction, messageId, type, data, metadata, schemaVersion, created) in rows {
            let index = Int(ordinal) - 1
            let range = ranges[index]
            pages[index].append(
                RecordedMessage(
                    streamId: range.streamId, partition: range.partition, streamPosition: position, globalPosition: global,
                    transactionId: transaction.value, messageId: messageId, type: type,
                    data: Data(data.readableBytesView), metadata: Data(metadata.readableBytesView), schemaVersion: schemaVersion, created: created
                )
            )
        }
        return pages
    }
}
