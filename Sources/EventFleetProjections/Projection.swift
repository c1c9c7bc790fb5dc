import EventFleetCore
import EventFleetPostgres
import Logging
import PostgresNIO

/// What a projection works with: a connection inside the transaction that also records the
/// consumer's checkpoint (or completes the fleet's jobs), so the projection's writes and the
/// checkpoint commit together. When a projection validates its tables, the connection is in no
/// transaction.
public struct ProjectionContext: Sendable {
    /// The connection of the open transaction. Do not commit or roll back on it.
    ///
    /// Prefer ``query(_:)`` and ``execute(_:)``: a statement sent on the connection itself right
    /// after the server closed it (a restart) never completes with postgres-nio 1.33, and holds the
    /// consumer or the job until the process ends.
    public var connection: PostgresConnection { database.connection }
    /// The store, for reads inside the transaction (pass `connection`).
    public let store: PostgresEventStore
    public let logger: Logger
    package let database: Database.Connection

    public init(connection: PostgresConnection, store: PostgresEventStore, logger: Logger) {
        self.init(Database.Connection(connection: connection, database: store.database), store: store, logger: logger)
    }

    package init(_ database: Database.Connection, store: PostgresEventStore, logger: Logger) {
        self.database = database
        self.store = store
        self.logger = logger
    }

    /// Runs a statement in the transaction and returns its rows; a connection the server closed
    /// fails it at once (a transient `EventFleetCore.EventStoreError.connectionFailed(target:reason:)`).
    ///
    /// - Throws: `EventFleetCore.EventStoreError` for driver and server errors.
    @discardableResult
    public func query(_ query: PostgresQuery) async throws -> [PostgresRow] {
        try await database.database.mapErrors("projection statement") { try await database.query(query) }
    }

    /// Runs a statement in the transaction to its end; see ``query(_:)``.
    public func execute(_ query: PostgresQuery) async throws {
        try await self.query(query)
    }

    /// A table of the application, as the projection's own SQL names it: qualified with the store's
    /// schema (`EventFleetPostgres.DatabaseConfiguration.schema`) unless `name` names its own, and
    /// quoted. EventFleet does not set the connections' `search_path`, so an unqualified name would
    /// find the server's default schema instead.
    ///
    /// ```swift
    /// let audit = try context.table("audit")
    /// try await context.execute("INSERT INTO \(audit) (stream_id) VALUES (\(message.streamId))")
    /// ```
    ///
    /// - Throws: ``ProjectionError/invalidIdentifier(_:kind:reason:)`` when `name` is not a plain
    ///   identifier (`name` or `schema.name`).
    public func table(_ name: String) throws(ProjectionError) -> SQLIdentifier {
        let table = try SQLIdentifier(name, kind: "table")
        guard table.schema == nil, let schema = database.schema.name else { return table }
        return SQLIdentifier(schema: schema, name: table.name)
    }
}

/// A read-model builder the event consumer feeds, in the consumer's transaction.
public protocol Projection: Sendable {
    /// A stable name, used in logs, errors and the CLI.
    var name: String { get }
    /// The event types it handles; `nil` for all.
    var eventTypes: Set<String>? { get }
    /// Checks at start that the database fits the projection (tables, columns, keys). The context's
    /// connection is in no transaction.
    ///
    /// - Throws: ``ProjectionError/misconfigured(projection:table:problems:)`` naming what is missing.
    func validate(context: ProjectionContext) async throws
    /// Applies events, in global-log order, inside the consumer's transaction.
    func handle(_ messages: [RecordedMessage], context: ProjectionContext) async throws
}

extension Projection {
    /// Whether it handles events of `type`.
    public func handles(_ type: String) -> Bool {
        eventTypes?.contains(type) ?? true
    }
}

/// A projection that keeps one row per stream and can be brought up to date stream by stream,
/// which is what the projection runner and the fleet's jobs do.
public protocol StreamProjection: Projection {
    /// Applies the stream's events after the row's `last_stream_position`, up to `position` (or the
    /// end), at most `batchSize` of them, in the transaction of `context`.
    ///
    /// - Returns: How many events were applied (0 when the row was already there).
    func project(
        streamId: String, partition: String, upTo position: Int64?, batchSize: Int, context: ProjectionContext
    ) async throws -> Int

    /// Brings several streams' rows forward in the transaction of `context`: at most `batchSize`
    /// events of each stream, up to its target's position.
    ///
    /// A failure on any stream fails the call (the caller rolls back and can retry the streams one
    /// by one to find the one at fault). The default applies ``project(streamId:partition:upTo:batchSize:context:)``
    /// to each stream in turn; ``SnapshotProjection`` does all of them in a few statements.
    ///
    /// - Returns: One outcome per target, in the order of `targets`.
    func project(streams targets: [StreamTarget], batchSize: Int, context: ProjectionContext) async throws -> [StreamOutcome]

    /// Recomputes the rows of `streams` from each stream's first event to its end, in the
    /// transaction of `context`, without a moment where a row is missing or behind where it was:
    /// what `eventfleet projections rebuild` runs for a bad row or a fixed bug that needs no new
    /// version. The default refuses (a custom projection's rows are its own business);
    /// ``SnapshotProjection`` recomputes each row under its lock.
    ///
    /// - Returns: One outcome per stream, in the order of `streams`.
    /// - Throws: ``ProjectionError/invalidArgument(field:reason:)`` when the projection cannot rebuild rows.
    func rebuild(streams: [StreamTarget], batchSize: Int, context: ProjectionContext) async throws -> [StreamOutcome]

    /// How long a job of this projection may go without a committed batch before the fleet's
    /// leading scheduler hands it to another worker (the attempt counts). It bounds one batch (at
    /// most the worker's batch size of events per stream), not a whole stream: a long stream that
    /// keeps committing batches runs as long as it needs. Five minutes unless a projection says
    /// otherwise.
    var jobTimeout: Duration { get }

    /// The table holding the projection's row per stream, with the columns `partition`,
    /// `stream_id` and `last_stream_position` (the last event of the stream the row has moved
    /// past), or `nil` when it keeps no such row. The fleet records it, so that a caller can wait
    /// for the projection to show an append (`PostgresEventStore.waitForProjection`); a
    /// projection without it cannot be waited for. A name without a schema is in the store's.
    var rowTable: SQLIdentifier? { get }

    /// The projection's version, from 1. Bump it when its rows change shape or meaning (a new
    /// column, a fixed `evolve`, another key): the fleet builds the new version in its own table
    /// beside the active one, and `eventfleet projections promote` switches readers to it. A
    /// version's table must not be another version's.
    var version: Int { get }

    /// The view readers query (`name` or `schema.name`), which the fleet points at the active
    /// version's ``rowTable`` when a version is promoted or rolled back; `nil` when readers name
    /// the version's table themselves. Every version of a projection names the same view.
    var view: SQLIdentifier? { get }

    /// Whether the fleet's leading scheduler promotes this version once every row of it is at or
    /// ahead of the active version's. `false` unless a projection says otherwise: an operator
    /// promotes with `eventfleet projections promote`.
    var promotesWhenCaughtUp: Bool { get }

    /// Whether a new version is built by replaying every stream into it from the start. A replay
    /// runs the projection's code again for every past event, side effects included, so it is
    /// `false` unless a projection says otherwise; ``SnapshotProjection``, which only writes its
    /// rows, says `true`. Version 1 of a projection new to the fleet is always backfilled.
    var replaysHistoryOnNewVersion: Bool { get }
}

extension StreamProjection {
    public var jobTimeout: Duration { .seconds(300) }
    public var rowTable: SQLIdentifier? { nil }
    public var version: Int { 1 }
    public var view: SQLIdentifier? { nil }
    public var promotesWhenCaughtUp: Bool { false }
    public var replaysHistoryOnNewVersion: Bool { false }

    public func rebuild(streams: [StreamTarget], batchSize: Int, context: ProjectionContext) async throws -> [StreamOutcome] {
        throw ProjectionError.invalidArgument(
            field: "projection", reason: "'\(name)' does not recompute its rows (snapshot projections do); give it a new version to rebuild it"
        )
    }

    public func project(streams targets: [StreamTarget], batchSize: Int, context: ProjectionContext) async throws -> [StreamOutcome] {
        var outcomes: [StreamOutcome] = []
        outcomes.reserveCapacity(targets.count)
        for target in targets {
            let applied = try await project(
                streamId: target.streamId, partition: target.partition, upTo: target.upTo, batchSize: batchSize, context: context
            )
            outcomes.append(StreamOutcome(applied: applied, caughtUp: applied < batchSize))
        }
        return outcomes
    }
}

/// A stream a stream projection is to bring its row forward for.
public struct StreamTarget: Sendable, Hashable {
    public var partition: String
    public var streamId: String
    /// The last position to apply; `nil` for the end of the stream.
    public var upTo: Int64?

    public init(partition: String, streamId: String, upTo: Int64? = nil) {
        self.partition = partition
        self.streamId = streamId
        self.upTo = upTo
    }
}

/// What ``StreamProjection/project(streams:batchSize:context:)`` did for one stream.
public struct StreamOutcome: Sendable, Hashable {
    /// Events the row moved past (handled or not).
    public var applied: Int
    /// Whether the row reached the target (or the stream's end): `false` when a full batch was
    /// applied and more events may follow.
    public var caughtUp: Bool

    public init(applied: Int, caughtUp: Bool) {
        self.applied = applied
        self.caughtUp = caughtUp
    }
}
