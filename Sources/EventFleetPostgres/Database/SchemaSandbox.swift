import Foundation
import Logging
import PostgresNIO

/// A schema of its own on a shared server: created, with a running client and a store in it, and
/// dropped afterwards. The tests, the benchmarks and the chaos soak each work in one, so they run
/// side by side on one server and never touch other data there.
package struct SchemaSandbox: Sendable {
    /// The schema's generated name (letters, digits and underscores).
    package let name: String
    /// The configuration of the schema (`schema=` set).
    package let configuration: DatabaseConfiguration
    /// The `DATABASE_URL` of the schema, for the processes a test or tool starts.
    package let url: String
    package let store: PostgresEventStore

    package var client: PostgresClient { store.client }
    package var database: Database { store.database }
    package var schema: Schema { database.schema }

    /// `base` with its `schema` parameter set to `schema`.
    package static func url(_ base: String, schema: String) -> String {
        guard var components = URLComponents(string: base) else { return base }
        var items = (components.queryItems ?? []).filter { $0.name != "schema" }
        items.append(URLQueryItem(name: "schema", value: schema))
        components.queryItems = items
        return components.string ?? base
    }

    /// Creates a schema named `prefix` and a random suffix, runs `body` with a client and store in it,
    /// and drops it, also when `body` throws, unless `keep` says otherwise.
    ///
    /// - Parameters:
    ///   - migrate: Whether to apply the library's migrations first.
    ///   - failsUnqualifiedNames: Whether the client's connections get a `search_path` that finds
    ///     nothing, so that a statement that does not qualify a name of the schema fails (the tests
    ///     prove that EventFleet works without `search_path`, as behind a pooler). Not behind a
    ///     transaction-mode pooler, which refuses the parameter.
    ///   - keep: Whether to leave the schema in place after `body` ended this way (for inspection).
    package static func with<T: Sendable>(
        baseURL: String, prefix: String, poolSize: Int = 10, applicationName: String = "eventfleet", migrate: Bool = true,
        failsUnqualifiedNames: Bool = false,
        logger: Logger, keep: @Sendable (Result<T, any Error>) -> Bool = { _ in false },
        _ body: @Sendable (SchemaSandbox) async throws -> T
    ) async throws -> T {
        let base = try DatabaseConfiguration(url: baseURL)
        let name = prefix + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
        try await administer(base, "CREATE SCHEMA \(SQLName.quote(name))", logger: logger)
        let url = Self.url(baseURL, schema: name)
        var configuration = try DatabaseConfiguration(url: url)
        configuration.poolSize = poolSize
        configuration.applicationName = applicationName
        var quiet = logger
        quiet.logLevel = .error
        var clientConfiguration = try configuration.clientConfiguration()
        // A transaction-mode pooler refuses a `search_path` startup parameter; behind one the suite
        // runs as it does directly, and the direct run proves that names are qualified.
        if failsUnqualifiedNames, configuration.pooler != .transaction {
            clientConfiguration.options.additionalStartupParameters.append(("search_path", "ef_unqualified_names_fail_here"))
        }
        let client = PostgresClient(configuration: clientConfiguration, backgroundLogger: quiet)
        let sandbox = SchemaSandbox(
            name: name, configuration: configuration, url: url,
            store: PostgresEventStore(client: client, configuration: configuration, logger: logger)
        )
        let result: Result<T, any Error> = await withTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            do {
                if migrate { try await MigrationRunner(store: sandbox.store, logger: logger).migrate() }
                return .success(try await body(sandbox))
            } catch {
                return .failure(error)
            }
        }
        if !keep(result) {
            do {
                try await drop(name, baseURL: baseURL, logger: logger)
            } catch {
                logger.error("could not drop a sandbox schema; drop it by hand", metadata: ["eventfleet.schema": "\(name)", "eventfleet.error": "\(error)"])
            }
        }
        return try result.get()
    }

    /// Drops the schema `name` (and everything in it) from the database of `baseURL`.
    package static func drop(_ name: String, baseURL: String, logger: Logger) async throws {
        try await administer(try DatabaseConfiguration(url: baseURL), "DROP SCHEMA IF EXISTS \(SQLName.quote(name)) CASCADE", logger: logger)
    }

    /// Runs a statement on a connection of its own to the base database: a client's connections may
    /// have been cut meanwhile (a test that restarts the server).
    private static func administer(_ configuration: DatabaseConfiguration, _ sql: String, logger: Logger) async throws {
        let connection = try await PostgresConnection.connect(configuration: try configuration.connectionConfiguration(), id: 0, logger: logger)
        do {
            _ = try await connection.send(PostgresQuery(unsafeSQL: sql), deadline: nil, logger: logger)
        } catch {
            try? await connection.close()
            throw error
        }
        try await connection.close()
    }
}
