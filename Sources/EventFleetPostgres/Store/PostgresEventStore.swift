import EventFleetCore
import Foundation
import Logging
import PostgresNIO

/// The event store on PostgreSQL.
///
/// It uses a `PostgresClient` that the application runs (the client's `run()` must be running, usually
/// in a `ServiceGroup`, or every call waits for a connection):
///
/// ```swift
/// let configuration = try DatabaseConfiguration(url: databaseURL)
/// let client = PostgresClient(configuration: try configuration.clientConfiguration())
/// let store = PostgresEventStore(client: client, configuration: configuration)
/// ```
///
/// Apply the schema first with ``MigrationRunner`` or `eventfleet migrate`.
public struct PostgresEventStore: EventStore {
    /// Settings of the store.
    public struct Options: Sendable {
        /// The host and port shown in connection errors.
        public var databaseTarget: String
        /// When set, every append wakes listeners of this channel (`LISTEN`) once it has committed,
        /// with the partition as payload. Consumers and workers use it to react at once instead of
        /// polling. Appends through the pool notify from a separate, coalesced statement right after
        /// they commit (see `AppendNotifier` for why); appends in a caller's transaction notify as
        /// part of it, on its commit.
        public var notifyChannel: String?

        public init(databaseTarget: String = "the configured database", notifyChannel: String? = nil) {
            self.databaseTarget = databaseTarget
            self.notifyChannel = notifyChannel
        }

        /// The channel EventFleet's consumers listen on by default.
        public static let defaultNotifyChannel = "eventfleet_appended"
    }

    /// The client all queries go through.
    public var client: PostgresClient { database.client }
    public let options: Options
    /// The database seam every statement goes through; the fleet's components share it.
    package let database: Database
    let notifier: AppendNotifier?
    /// Says that projected rows were committed, for ``ProjectionWaitListener``s.
    let projectedNotifier: AppendNotifier?
    /// The calls of this store (and of the stores made from it) waiting for projections.
    let projectionWaits: ProjectionWaits
    var logger: Logger { database.logger }

    /// A store in the server's default schema, with named statements.
    ///
    /// - Parameters:
    ///   - client: A client whose `run()` the application runs.
    ///   - options: Store settings.
    ///   - logger: Where the store logs.
    public init(client: PostgresClient, options: Options = Options(), logger: Logger = Logger(label: "eventfleet.store")) {
        self.init(database: Database(client: client, target: options.databaseTarget, logger: logger), notifyChannel: options.notifyChannel)
    }

    /// A store as `configuration` describes it: its schema, its statements, and connection errors
    /// that name its host and port.
    public init(
        client: PostgresClient, configuration: DatabaseConfiguration, notifyChannel: String? = nil,
        logger: Logger = Logger(label: "eventfleet.store")
    ) {
        self.init(database: Database(client: client, configuration: configuration, logger: logger), notifyChannel: notifyChannel)
    }

    package init(database: Database, notifyChannel: String?) {
        self.init(database: database, notifyChannel: notifyChannel, projectionWaits: ProjectionWaits())
    }

    private init(database: Database, notifyChannel: String?, projectionWaits: ProjectionWaits) {
        self.database = database
        self.options = Options(databaseTarget: database.target, notifyChannel: notifyChannel)
        self.notifier = notifyChannel.map { AppendNotifier(channel: $0, database: database) }
        self.projectedNotifier = notifyChannel.map { _ in AppendNotifier(channel: Self.projectedChannel, database: database) }
        self.projectionWaits = projectionWaits
    }

    /// The same store, notifying on `channel` after each append (or not, for `nil`).
    package func notifying(on channel: String?) -> PostgresEventStore {
        PostgresEventStore(database: database, notifyChannel: channel, projectionWaits: projectionWaits)
    }
}
