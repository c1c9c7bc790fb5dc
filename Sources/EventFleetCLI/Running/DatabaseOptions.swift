import ArgumentParser
import EventFleetCore
import EventFleetPostgres
import Logging
import PostgresNIO

/// The database options every command shares: `--database-url`, else `DATABASE_URL`.
public struct DatabaseOptions: ParsableArguments, Sendable {
    @Option(name: .customLong("database-url"), help: "postgres://user:password@host:port/database?sslmode=… (default: $DATABASE_URL)")
    public var databaseURL: String?

    public init() {}

    /// The parsed configuration.
    ///
    /// - Throws: `ConfigurationError` naming the wrong part of the URL, or the missing variable.
    public func configuration(applicationName: String = "eventfleet") throws -> DatabaseConfiguration {
        var configuration = if let databaseURL {
            try DatabaseConfiguration(url: databaseURL)
        } else {
            try DatabaseConfiguration.fromEnvironment()
        }
        if configuration.applicationName == "eventfleet" { configuration.applicationName = applicationName }
        return configuration
    }

    /// Checks the server answers, runs a client for the duration of `body`, and hands it a store.
    ///
    /// - Parameters:
    ///   - poolSize: At least this many connections, whatever the URL says.
    ///   - notifyChannel: The store's appends notify this channel (see
    ///     `PostgresEventStore.Options.notifyChannel`); `nil` for none.
    ///   - requiringSchema: Whether the URL's `schema` must exist already: `true` for every command
    ///     but `migrate`, which creates it.
    ///   - logger: The client's and the store's logger.
    ///   - body: Runs while the client does; the client stops when it returns.
    /// - Throws: `EventStoreError.connectionFailed(target:reason:)` at once when the server cannot be
    ///   reached, `MigrationError.schemaNotFound(schema:)` when the schema is required and missing,
    ///   and whatever `body` throws.
    @discardableResult
    public func withStore<T: Sendable>(
        poolSize: Int? = nil, notifyChannel: String? = nil, requiringSchema: Bool = true,
        logger: Logger = Logger(label: "eventfleet.command"),
        _ body: @Sendable (PostgresEventStore) async throws -> T
    ) async throws -> T {
        let store = try await connectedStore(poolSize: poolSize, notifyChannel: notifyChannel, requiringSchema: requiringSchema, logger: logger)
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                await store.client.run()
                return nil
            }
            defer { group.cancelAll() }
            return try await body(store)
        }
    }

    /// A store on a new client (not yet running), once the server has answered (and shown that the
    /// URL's schema exists, unless `requiringSchema` is false).
    func connectedStore(
        applicationName: String = "eventfleet", poolSize: Int? = nil, notifyChannel: String? = nil, requiringSchema: Bool = true,
        logger: Logger
    ) async throws -> PostgresEventStore {
        var configuration = try configuration(applicationName: applicationName)
        if let poolSize, configuration.poolSize < poolSize { configuration.poolSize = poolSize }
        try await configuration.checkConnection(requiringSchema: requiringSchema, logger: logger)
        // The pool's own warnings would race with our errors (and warn that `run()` has not started
        // yet when the first query beats the task that starts it); failures reach us as errors.
        var backgroundLogger = logger
        backgroundLogger.logLevel = .error
        let client = PostgresClient(configuration: try configuration.clientConfiguration(), backgroundLogger: backgroundLogger)
        return PostgresEventStore(client: client, configuration: configuration, notifyChannel: notifyChannel, logger: logger)
    }
}
