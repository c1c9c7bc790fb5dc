import EventFleetCore
import EventFleetPostgres
import Foundation
import Logging
import PostgresNIO

/// The PostgreSQL job queue of the projection fleet.
///
/// > Important: At most one live (ready or running) job exists per (projection, partition, stream).
/// > Every claim bumps the job's fencing token; completing, failing or releasing a job only counts
/// > while owner and token still match, so a worker that lost its claim can change nothing.
public struct JobQueue: Sendable {
    package let database: Database

    /// The queue in `store`'s database (and schema).
    public init(store: PostgresEventStore, logger: Logger = Logger(label: "eventfleet.jobs")) {
        self.init(database: store.database.logging(to: logger))
    }

    package init(database: Database) {
        self.database = database
    }

    var schema: Schema { database.schema }

    /// The channel workers listen on to hear about new jobs.
    public static let notifyChannel = "eventfleet_jobs"

    // MARK: Enqueue

    /// Enqueues jobs in one statement. A job for a stream that already has a ready job is a no-op
    /// (a backfill job is promoted to live when live work asks for it); one whose job is running is
    /// marked to run again when it completes, so no new event is left unprojected.
    ///
    /// - Parameters:
    ///   - requests: The jobs; duplicates in the list count once.
    ///   - connection: A connection with an open transaction to enqueue in (the scheduler enqueues in
    ///     the transaction that moves its checkpoint), or `nil` to use the pool.
    ///   - notify: Whether to wake listening workers (once, on commit).
    /// - Returns: How many new jobs were inserted.
    @discardableResult
    public func enqueue(_ requests: [JobRequest], on connection: PostgresConnection? = nil, notify: Bool = true) async throws -> Int {
        guard !requests.isEmpty else { return 0 }
        for request in requests {
            try IdentifierValidation.validate(request.projection, field: "projection")
            try IdentifierValidation.validate(request.partition, field: "partition")
            try IdentifierValidation.validate(request.streamId, field: "streamId")
        }
        // The enqueue the scheduler's pages use too.
        let query: PostgresQuery = """
            SELECT \(schema.ef_enqueue_jobs)(\(requests.map(\.projection))::text[], \(requests.map(\.partition))::text[],
                                   \(requests.map(\.streamId))::text[], \(requests.map(\.lane.rawValue))::text[],
                                   \(requests.map(\.priority))::int[], \(requests.map(\.maxAttempts))::int[],
                                   \(notify ? Self.notifyChannel : nil)::text)
            """
        let enqueued = if let connection {
            try await database.mapErrors("enqueue jobs") {
                try await Database.Connection(connection: connection, database: database).value("enqueue jobs", query, as: Int64.self)
            }
        } else {
            try await database.value("enqueue jobs", query, as: Int64.self)
        }
        return Int(enqueued)
    }

    // MARK: Helpers

    /// Runs a statement in the caller's transaction, or on the pool.
    func run<S: Statement>(_ operation: String, _ statement: S, on connection: PostgresConnection?) async throws -> [S.Row] {
        guard let connection else { return try await database.run(operation, statement) }
        return try await database.mapErrors(operation) { try await Database.Connection(connection: connection, database: database).run(statement) }
    }
}
