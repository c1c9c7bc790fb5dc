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
    /// Rows one statement of ``readStreams(_:maxCountPerStream:connection:)`` returns at most.
    ///
    /// A result of many rows takes the client a while to consume, and the server, done sending it,
    /// counts that time as idle in transaction: an idle timeout can close the connection while rows
    /// of it still wait to be read. postgres-nio 1.33 then fails a precondition in its row stream
    /// and the process dies (docs/postgres-nio-row-stream-crash.md). Bounded pages are consumed in
    /// far less time than any idle timeout, so the state does not arise.
    package static let readPageRows = 1_000

    /// Reads a page of each of several streams, as a projection worker bringing many rows up to date
    /// in one transaction does, in statements of at most 1,000 rows each (keyset pages
    /// over the streams and their positions). A stream's committed events are a prefix of positions
    /// that only grows, so pages read in later snapshots join up without a gap.
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
        var pages = [[RecordedMessage]](repeating: [], count: ranges.count)
        // The ranges still to read, in order: (index in `ranges`, first position, events still wanted).
        var pending = ranges.indices.map { (index: $0, from: ranges[$0].from, wanted: Int64(maxCountPerStream)) }
        while !pending.isEmpty {
            let statement = ReadStreamsStatement(
                partitions: pending.map { ranges[$0.index].partition }, streamIds: pending.map { ranges[$0.index].streamId },
                froms: pending.map(\.from), tos: pending.map { ranges[$0.index].to ?? Int64.max }, maxCounts: pending.map(\.wanted),
                limit: Int64(Self.readPageRows)
            )
            let rows = if let connection {
                try await database.mapErrors("read streams") { try await Database.Connection(connection: connection, database: database).run(statement) }
            } else {
                try await database.run("read streams", statement)
            }
            for (ordinal, position, global, transaction, messageId, type, data, metadata, schemaVersion, created) in rows {
                let index = pending[Int(ordinal) - 1].index
                let range = ranges[index]
                pages[index].append(
                    RecordedMessage(
                        streamId: range.streamId, partition: range.partition, streamPosition: position, globalPosition: global,
                        transactionId: transaction.value, messageId: messageId, type: type,
                        data: Data(data.readableBytesView), metadata: Data(metadata.readableBytesView), schemaVersion: schemaVersion, created: created
                    )
                )
            }
            // A short page holds everything that was left. A full one ends inside the range of its
            // last row (or right after it): the next statement goes on from there.
            guard rows.count == Self.readPageRows, let last = rows.last else { break }
            let stopped = Int(last.0) - 1
            let read = Int64(rows.lazy.filter { $0.0 == last.0 }.count)
            var next = Array(pending[(stopped + 1)...])
            if read < pending[stopped].wanted {
                next.insert((pending[stopped].index, last.1 + 1, pending[stopped].wanted - read), at: 0)
            }
            pending = next
        }
        return pages
    }
}
