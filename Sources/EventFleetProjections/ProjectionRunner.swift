import EventFleetCore
import EventFleetPostgres
import Logging
import PostgresNIO

/// Brings stream projections up to date on demand, one stream at a time.
///
/// Each batch is folded and written in its own transaction with the row locked, so re-running is
/// harmless and two runners on the same stream at the same moment end with the correct row.
public struct ProjectionRunner: Sendable {
    /// What a run did.
    public struct Result: Sendable, Hashable {
        /// Events applied to the row by this run.
        public var eventsProcessed: Int
        /// The stream's version when the run ended.
        public var streamVersion: Int64
        /// Transactions committed (batches).
        public var batches: Int
    }

    public let store: PostgresEventStore
    let logger: Logger

    public init(store: PostgresEventStore, logger: Logger = Logger(label: "eventfleet.projection-runner")) {
        self.store = store
        self.logger = logger
    }

    /// Projects a stream's events after the row's `last_stream_position`.
    ///
    /// - Parameters:
    ///   - projection: The projection.
    ///   - streamId: The stream.
    ///   - partition: Its partition.
    ///   - batchSize: Events per transaction.
    ///   - untilCaughtUp: Keep going batch after batch until the row reaches the stream's version;
    ///     otherwise stop after one batch.
    /// - Throws: ``ProjectionError`` and `EventStoreError`; the failed batch is rolled back.
    @discardableResult
    public func projectEvents(
        _ projection: some StreamProjection,
        streamId: String,
        partition: String = defaultPartition,
        batchSize: Int = 500,
        untilCaughtUp: Bool = true
    ) async throws -> Result {
        guard batchSize > 0 else { throw ProjectionError.invalidArgument(field: "batchSize", reason: "must be positive (got \(batchSize))") }
        var result = Result(eventsProcessed: 0, streamVersion: 0, batches: 0)
        while true {
            let applied = try await inTransaction(operation: "project \(projection.name)") { context in
                try await projection.project(streamId: streamId, partition: partition, upTo: nil, batchSize: batchSize, context: context)
            }
            result.eventsProcessed += applied
            if applied > 0 { result.batches += 1 }
            if applied == 0 || !untilCaughtUp { break }
        }
        result.streamVersion = try await store.streamVersion(streamId, partition: partition) ?? 0
        logger.debug(
            "projected stream",
            metadata: [
                "eventfleet.projection": "\(projection.name)", "eventfleet.stream_id": "\(streamId)",
                "eventfleet.partition": "\(partition)", "eventfleet.events": "\(result.eventsProcessed)",
            ]
        )
        return result
    }

    /// What a rebuild of a partition did.
    public struct Rebuild: Sendable, Hashable {
        public var partition: String
        /// Streams whose rows were recomputed (or created).
        public var streams: Int
        /// Transactions committed.
        public var batches: Int
    }

    /// Recomputes the projection's rows of every stream of `partition` from their events
    /// (``StreamProjection/rebuild(streams:batchSize:context:)``), `streamsPerTransaction` streams
    /// at a time in stream-id order. Unlike a backfill, which only brings rows forward, it recomputes
    /// rows that exist: for a bad row or a fixed bug that needs no new version. Other partitions'
    /// rows and every checkpoint stay as they are; events appended meanwhile are projected by the
    /// fleet as usual (a rebuilt row ends at the stream's end when it was rebuilt, and the stream's
    /// job goes on from there).
    ///
    /// - Parameters:
    ///   - projection: The projection (the version whose table is rebuilt).
    ///   - partition: The tenant.
    ///   - streamsPerTransaction: Streams recomputed per transaction (each read to its end).
    ///   - batchSize: Events read from a stream per page.
    ///   - progress: Called after each transaction with the streams done so far.
    /// - Throws: ``ProjectionError`` and `EventStoreError`; the failed transaction is rolled back and
    ///   the rows before it stay rebuilt.
    @discardableResult
    public func rebuild(
        _ projection: some StreamProjection, partition: String, streamsPerTransaction: Int = 100, batchSize: Int = 1_000,
        progress: @Sendable (Int) -> Void = { _ in }
    ) async throws -> Rebuild {
        try IdentifierValidation.validate(partition, field: "partition")
        guard streamsPerTransaction > 0 else {
            throw ProjectionError.invalidArgument(field: "streamsPerTransaction", reason: "must be positive (got \(streamsPerTransaction))")
        }
        var result = Rebuild(partition: partition, streams: 0, batches: 0)
        var after = ""
        while true {
            let page = try await store.database.query("read streams to rebuild", """
                SELECT stream_id FROM \(store.database.schema.ef_streams)
                 WHERE partition = \(partition) AND stream_id > \(after)
                 ORDER BY stream_id LIMIT \(Int64(streamsPerTransaction))
                """).map { try $0.decode(String.self) }
            guard let last = page.last else { break }
            try await inTransaction(operation: "rebuild \(projection.name)") { context in
                _ = try await projection.rebuild(
                    streams: page.map { StreamTarget(partition: partition, streamId: $0) }, batchSize: batchSize, context: context
                )
            }
            result.streams += page.count
            result.batches += 1
            progress(result.streams)
            after = last
        }
        logger.info(
            "rebuilt partition",
            metadata: ["eventfleet.projection": "\(projection.name)", "eventfleet.partition": "\(partition)", "eventfleet.streams": "\(result.streams)"]
        )
        return result
    }

    /// Every partition that has a stream, in order: what a rebuild of all partitions goes through.
    public func partitions() async throws -> [String] {
        try await store.database.query("read partitions", "SELECT DISTINCT partition FROM \(store.database.schema.ef_streams) ORDER BY 1")
            .map { try $0.decode(String.self) }
    }

    /// Checks that the database fits the projection.
    ///
    /// - Throws: ``ProjectionError/misconfigured(projection:table:problems:)``.
    public func validate(_ projection: some Projection) async throws {
        try await store.database.withConnection("validate \(projection.name)") { [store, logger] connection in
            try await projection.validate(context: ProjectionContext(connection, store: store, logger: logger))
        }
    }

    /// Runs `body` in a transaction on one connection: commit on success, roll back on error.
    func inTransaction<T: Sendable>(operation: String, _ body: @escaping @Sendable (ProjectionContext) async throws -> T) async throws -> T {
        try await store.database.transaction(operation) { [store, logger] connection in
            try await body(ProjectionContext(connection, store: store, logger: logger))
        }
    }
}
