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
    public let client: PostgresClient
    public let options: Options
    let logger: Logger
    let notifier: AppendNotifier?

    /// - Parameters:
    ///   - client: A client whose `run()` the application runs.
    ///   - options: Store settings.
    ///   - logger: Where the store logs.
    public init(client: PostgresClient, options: Options = Options(), logger: Logger = Logger(label: "eventfleet.store")) {
        self.client = client
        self.options = options
        self.logger = logger
        self.notifier = options.notifyChannel.map { AppendNotifier(channel: $0, client: client, logger: logger) }
    }

    /// A store whose connection errors name the configured host and port.
    public init(
        client: PostgresClient, configuration: DatabaseConfiguration, notifyChannel: String? = nil,
        logger: Logger = Logger(label: "eventfleet.store")
    ) {
        self.init(client: client, options: Options(databaseTarget: configuration.target, notifyChannel: notifyChannel), logger: logger)
    }

    /// Runs a database call, mapping its errors to ``EventStoreError``.
    func mapErrors<T>(_ operation: String, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            throw PostgresErrorMapping.map(error, operation: operation, target: options.databaseTarget)
        }
    }
}
