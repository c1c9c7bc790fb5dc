import EventFleetCore
import Foundation
import PostgresNIO

extension JobQueue {
    /// Enqueues a backfill job per stream of a partition (or of all), walking the streams table in
    /// batches by key so that it never holds a long transaction and can be re-run safely.
    ///
    /// - Parameters:
    ///   - projections: The projections to backfill.
    ///   - partition: One partition, or `nil` for all.
    ///   - batchSize: Streams per statement.
    ///   - progress: Called after each batch with streams seen so far and the total.
    /// - Returns: Streams seen and jobs newly enqueued.
    public func backfill(
        projections: [String], partition: String?, batchSize: Int = 1_000,
        progress: (_ seen: Int, _ total: Int) -> Void = { _, _ in }
    ) async throws -> (streams: Int, enqueued: Int) {
        let total = Int(try await database.value(
            "count streams", "SELECT count(*) FROM \(schema.ef_streams) WHERE \(partition)::text IS NULL OR partition = \(partition)", as: Int64.self
        ))
        var after: (partition: String, streamId: String) = ("", "")
        var seen = 0
        var enqueued = 0
        while true {
            let streams = try await database.query("page streams", """
                SELECT partition, stream_id FROM \(schema.ef_streams)
                 WHERE (\(partition)::text IS NULL OR partition = \(partition))
                   AND (partition, stream_id) > (\(after.partition), \(after.streamId))
                 ORDER BY partition, stream_id
                 LIMIT \(Int64(batchSize))
                """).map { try $0.decode((String, String).self) }
            guard let last = streams.last else { break }
            let requests = streams.flatMap { stream in
                projections.map { JobRequest(projection: $0, partition: stream.0, streamId: stream.1, lane: .backfill) }
            }
            enqueued += try await enqueue(requests)
            seen += streams.count
            after = last
            progress(seen, max(total, seen))
        }
        return (seen, enqueued)
    }
}
