import EventFleetCore
import EventFleetPostgres
import Foundation
import Logging
import PostgresNIO

extension CartsReadModel {
    /// The streams whose `carts` row is missing or differs from `aggregateStream` of the stream
    /// (state or position): what the demo, the soak, the benchmarks and the tests check at the end.
    ///
    /// - Parameters:
    ///   - streams: (partition, stream id) pairs.
    ///   - concurrency: Streams checked at the same time.
    /// - Returns: One line per wrong row (`partition/stream`, with the row's and the stream's
    ///   positions), sorted; empty when every row is right.
    public static func rowsNotMatchingStreams(
        _ streams: [(String, String)], store: PostgresEventStore, concurrency: Int = 4
    ) async throws -> [String] {
        let lanes = max(1, concurrency)
        return try await withThrowingTaskGroup(of: [String].self) { group in
            for lane in 0..<lanes {
                group.addTask {
                    var wrong: [String] = []
                    for index in stride(from: lane, to: streams.count, by: lanes) {
                        let (partition, stream) = streams[index]
                        if let problem = try await mismatch(stream, partition: partition, store: store) {
                            wrong.append(problem)
                        }
                    }
                    return wrong
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }.sorted()
        }
    }

    /// What is wrong with one stream's row, or `nil` when it equals the fold of the stream.
    private static func mismatch(_ stream: String, partition: String, store: PostgresEventStore) async throws -> String? {
        let folded = try await store.aggregateStream(
            stream, options: AggregateStreamOptions(partition: partition), evolve: CartState.evolve, initialState: CartState.initialState
        )
        let rows = try await store.database.query(
            "read carts row",
            "SELECT snapshot::text, last_stream_position FROM \(store.database.schema.carts) WHERE partition = \(partition) AND stream_id = \(stream)"
        )
        guard let (snapshot, position) = try rows.first?.decode((String, Int64).self) else {
            return "\(partition)/\(stream): no row (stream at \(folded.currentStreamVersion))"
        }
        if position != folded.currentStreamVersion {
            return "\(partition)/\(stream): row at \(position), stream at \(folded.currentStreamVersion)"
        }
        if try JSONDecoder().decode(CartState.self, from: Data(snapshot.utf8)) != folded.state {
            return "\(partition)/\(stream): state differs from the fold at \(position)"
        }
        return nil
    }
}
