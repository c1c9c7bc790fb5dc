import EventFleetCore
import EventFleetPostgres
import EventFleetProjections
import Foundation
import Logging
import PostgresNIO

extension CartsReadModel {
    /// The streams whose `carts` row is missing or differs from `aggregateStream` of the stream
    /// (state, position, and version 2's own columns): what the demo, the soak, the benchmarks and
    /// the tests check at the end. It reads the version's table, not the view.
    ///
    /// - Parameters:
    ///   - streams: (partition, stream id) pairs.
    ///   - concurrency: Streams checked at the same time.
    ///   - version: The version whose rows to check; the active one (1 before any is registered) when `nil`.
    /// - Returns: One line per wrong row (`partition/stream`, with the row's and the stream's
    ///   positions), sorted; empty when every row is right.
    public static func rowsNotMatchingStreams(
        _ streams: [(String, String)], store: PostgresEventStore, concurrency: Int = 4, version: Int? = nil
    ) async throws -> [String] {
        let lanes = max(1, concurrency)
        let version = if let version { version } else { try await activeVersion(store: store) }
        return try await withThrowingTaskGroup(of: [String].self) { group in
            for lane in 0..<lanes {
                group.addTask {
                    var wrong: [String] = []
                    for index in stride(from: lane, to: streams.count, by: lanes) {
                        let (partition, stream) = streams[index]
                        if let problem = try await mismatch(stream, partition: partition, version: version, store: store) {
                            wrong.append(problem)
                        }
                    }
                    return wrong
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }.sorted()
        }
    }

    /// The active version of `carts`: 1 before any worker registered it.
    public static func activeVersion(store: PostgresEventStore) async throws -> Int {
        let rows = try await store.database.query(
            "read active carts version",
            "SELECT version FROM \(store.database.schema.ef_projections) WHERE projection = 'carts' AND state = 'active'"
        )
        return Int(try rows.first?.decode(Int32.self) ?? 1)
    }

    /// What is wrong with one stream's row, or `nil` when it equals the fold of the stream.
    private static func mismatch(_ stream: String, partition: String, version: Int, store: PostgresEventStore) async throws -> String? {
        let folded = try await store.aggregateStream(
            stream, options: AggregateStreamOptions(partition: partition), evolve: CartState.evolve, initialState: CartState.initialState
        )
        let table = store.database.schema.qualifying(try SQLIdentifier(self.table(version: version), kind: "table"))
        // Version 1 has no columns of version 2: it answers the values they would have.
        let versionColumns = version >= 2 ? "item_count, status" : "0, 'open'"
        let rows = try await store.database.query(
            "read carts row",
            "SELECT snapshot::text, last_stream_position, \(unescaped: versionColumns) FROM \(table) WHERE partition = \(partition) AND stream_id = \(stream)"
        )
        guard let (snapshot, position, itemCount, status) = try rows.first?.decode((String, Int64, Int32, String).self) else {
            return "\(partition)/\(stream): no row (stream at \(folded.currentStreamVersion))"
        }
        if position != folded.currentStreamVersion {
            return "\(partition)/\(stream): row at \(position), stream at \(folded.currentStreamVersion)"
        }
        if try JSONDecoder().decode(CartState.self, from: Data(snapshot.utf8)) != folded.state {
            return "\(partition)/\(stream): state differs from the fold at \(position)"
        }
        if version >= 2 {
            let expected = columnsOfVersion2(for: folded.state)
            if expected["item_count"] != .int(Int64(itemCount)) || expected["status"] != .text(status) {
                return "\(partition)/\(stream): item_count \(itemCount) or status '\(status)' differs from the fold at \(position)"
            }
        }
        return nil
    }
}
