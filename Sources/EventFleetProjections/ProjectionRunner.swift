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
