import EventFleetCore
import EventFleetPostgres
import Foundation
import PostgresNIO

/// How far a backfill has come: streams of its scope that have their jobs, of those in scope when
/// it started.
public struct BackfillProgress: Sendable, Hashable {
    public var id: Int64
    public var projections: [String]
    /// Its partition, or `nil` for every partition.
    public var partition: String?
    /// Streams walked so far.
    public var streams: Int64
    /// Jobs it enqueued that were not already ready or running.
    public var enqueued: Int64
    /// Streams in scope when it started.
    public var total: Int64
    public var isFinished: Bool
}

// A backfill is a row of ef_backfills with a cursor; ef_backfill_page advances it a page at a time,
// moving the cursor in the transaction that enqueues the page's jobs. Whoever drives it (the worker
// that registered a projection, the `backfill` command, the leading scheduler) can die at any point
// and the next driver goes on from the cursor.

extension JobQueue {
    /// Enqueues a backfill job per stream of a partition (or of all) and projection, and returns
    /// when every stream has one. The backfill is recorded first: when this caller dies, the leading
    /// scheduler finishes it, and `monitor` shows it until then.
    ///
    /// - Parameters:
    ///   - projections: The projections to backfill.
    ///   - partition: One partition, or `nil` for all.
    ///   - batchSize: Streams per page (one transaction each).
    ///   - progress: Called after each page with the streams walked so far and the total.
    /// - Returns: Streams walked and jobs newly enqueued.
    public func backfill(
        projections: [String], partition: String?, batchSize: Int = 1_000,
        progress: (_ seen: Int, _ total: Int) -> Void = { _, _ in }
    ) async throws -> (streams: Int, enqueued: Int) {
        let id = try await startBackfill(projections: projections, partition: partition)
        while true {
            // No page: another driver (the leading scheduler) holds the backfill for one of its
            // pages, or finished it. Either way its progress tells, and the walk goes on from there.
            let page = try await advanceBackfill(id: id, batchSize: batchSize)
            let read = if let page { page } else { try await backfillProgress(id: id) }
            guard let current = read else { return (0, 0) }
            progress(Int(current.streams), Int(max(current.total, current.streams)))
            if current.isFinished { return (Int(current.streams), Int(current.enqueued)) }
            if page == nil { try await Task.sleep(for: .milliseconds(20)) }
        }
    }

    /// A backfill's progress; `nil` when there is no such backfill.
    public func backfillProgress(id: Int64) async throws -> BackfillProgress? {
        let rows = try await database.query("read backfill progress", """
            SELECT id, projections, partition, streams, enqueued, total, finished IS NOT NULL
              FROM \(schema.ef_backfills) WHERE id = \(id)
            """)
        return try rows.first.map(Self.backfillProgress)
    }

    /// Records a backfill of `projections` over a partition's streams (or every partition's),
    /// without enqueueing anything yet: ``advanceBackfill(id:batchSize:)`` does that.
    ///
    /// - Parameters:
    ///   - projections: The projections whose jobs it enqueues; not empty.
    ///   - partition: The partition whose streams it walks, or `nil` for every partition's.
    ///   - connection: A transaction to record it in (a projection's registration), or `nil` to use
    ///     the pool.
    /// - Returns: The backfill's id.
    @discardableResult
    public func startBackfill(projections: [String], partition: String?, on connection: PostgresConnection? = nil) async throws -> Int64 {
        for projection in projections { try IdentifierValidation.validate(projection, field: "projection") }
        if let partition { try IdentifierValidation.validate(partition, field: "partition") }
        guard !projections.isEmpty else { throw JobQueueError.invalidConfiguration(field: "projections", reason: "names no projection") }
        let query: PostgresQuery = """
            INSERT INTO \(schema.ef_backfills) (projections, partition, total)
            SELECT \(projections)::text[], \(partition)::text, count(*) FROM \(schema.ef_streams)
             WHERE \(partition)::text IS NULL OR partition = \(partition)
            RETURNING id
            """
        // Counting the streams of a large store can take longer than a statement's deadline.
        let database = database.withoutDeadline()
        if let connection {
            return try await database.mapErrors("start backfill") {
                try await Database.Connection(connection: connection, database: database).value("start backfill", query, as: Int64.self)
            }
        }
        return try await database.value("start backfill", query, as: Int64.self)
    }

    /// Advances an unfinished backfill by one page of streams, in one transaction.
    ///
    /// - Parameters:
    ///   - id: The backfill, or `nil` for the oldest unfinished one that no other driver holds.
    ///   - batchSize: Streams in the page.
    /// - Returns: Its progress after the page; `nil` when there was no unfinished backfill free to
    ///   advance.
    public func advanceBackfill(id: Int64? = nil, batchSize: Int = 1_000) async throws -> BackfillProgress? {
        guard batchSize > 0 else { throw JobQueueError.invalidConfiguration(field: "batchSize", reason: "must be positive") }
        let rows = try await database.query("advance backfill", """
            SELECT id, projections, partition, streams, enqueued, total, finished
              FROM \(schema.ef_backfill_page)(\(id)::bigint, \(Int32(clamping: batchSize)), \(JobRequest.defaultMaxAttempts), \(Self.notifyChannel))
            """)
        return try rows.first.map(Self.backfillProgress)
    }

    /// Reads a row of (id, projections, partition, streams, enqueued, total, finished).
    private static func backfillProgress(_ row: PostgresRow) throws -> BackfillProgress {
        let (id, projections, partition, streams, enqueued, total, finished) =
            try row.decode((Int64, [String], String?, Int64, Int64, Int64, Bool).self)
        return BackfillProgress(
            id: id, projections: projections, partition: partition, streams: streams, enqueued: enqueued, total: total,
            isFinished: finished
        )
    }

    /// Advances unfinished backfills page by page until none is left free to advance or `deadline`
    /// passes, and reports each backfill that finished.
    ///
    /// - Returns: The pages advanced.
    @discardableResult
    public func advanceBackfills(
        batchSize: Int = 1_000, until deadline: ContinuousClock.Instant? = nil, finished: (BackfillProgress) -> Void = { _ in }
    ) async throws -> Int {
        var pages = 0
        while deadline.map({ ContinuousClock.now < $0 }) ?? true, let page = try await advanceBackfill(batchSize: batchSize) {
            pages += 1
            if page.isFinished { finished(page) }
        }
        return pages
    }
}
