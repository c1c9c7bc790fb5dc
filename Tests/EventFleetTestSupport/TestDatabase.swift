import EventFleetCore
import EventFleetPostgres
import Foundation
import Logging
import PostgresNIO

/// A schema of its own for one test, migrated, with a running client and a store in it.
public struct TestSchema: Sendable {
    /// The schema's name (a generated, safe identifier).
    public let name: String
    /// The configuration whose connections use this schema.
    public let configuration: DatabaseConfiguration
    public let client: PostgresClient
    public let store: PostgresEventStore

    /// The `DATABASE_URL` of this schema, for child processes.
    public var url: String { TestDatabase.url(schema: name) }

    /// Opens a single connection in this schema (for transactions held open on purpose).
    public func connect() async throws -> PostgresConnection {
        try await TestDatabase.connect(configuration)
    }
}

/// The test database: the server `DATABASE_URL` names (`scripts/test` starts one and sets it).
public enum TestDatabase {
    public static let logger = Logger(label: "eventfleet.tests")

    /// The base URL. Tests fail, not skip, without it: they are the point of the suite.
    public static func baseURL() throws -> String {
        guard let url = ProcessInfo.processInfo.environment["DATABASE_URL"], !url.isEmpty else {
            throw MissingDatabase()
        }
        return url
    }

    /// The base URL with `schema=NAME` added.
    public static func url(schema: String) -> String {
        let base = (try? baseURL()) ?? ""
        return base + (base.contains("?") ? "&" : "?") + "schema=\(schema)"
    }

    public static func connect(_ configuration: DatabaseConfiguration) async throws -> PostgresConnection {
        var connectionConfiguration = PostgresConnection.Configuration(
            host: configuration.host, port: configuration.port, username: configuration.username,
            password: configuration.password, database: configuration.database, tls: .disable
        )
        if let schema = configuration.schema {
            connectionConfiguration.options.additionalStartupParameters = [("search_path", schema)]
        }
        return try await PostgresConnection.connect(configuration: connectionConfiguration, id: 1, logger: logger)
    }

    /// Runs `body` with a fresh, migrated schema and drops the schema afterwards.
    ///
    /// - Parameters:
    ///   - poolSize: Connections the client may open.
    ///   - migrate: Whether to apply the migrations first.
    public static func withSchema<T: Sendable>(
        poolSize: Int = 8,
        migrate: Bool = true,
        _ body: @Sendable (TestSchema) async throws -> T
    ) async throws -> T {
        let name = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        let adminConfiguration = try DatabaseConfiguration(url: baseURL())
        let admin = try await connect(adminConfiguration)
        do {
            try await admin.query("CREATE SCHEMA \(unescaped: name)", logger: logger)
            try? await admin.close()
        } catch {
            try? await admin.close()
            throw error
        }
        var configuration = try DatabaseConfiguration(url: url(schema: name))
        configuration.poolSize = poolSize
        let client = PostgresClient(configuration: try configuration.clientConfiguration(), backgroundLogger: logger)
        let schema = TestSchema(
            name: name, configuration: configuration, client: client,
            store: PostgresEventStore(client: client, configuration: configuration, logger: logger)
        )
        let result: Result<T, any Error> = await withTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            do {
                if migrate {
                    try await MigrationRunner(client: client, logger: logger).migrate()
                }
                return .success(try await body(schema))
            } catch {
                return .failure(error)
            }
        }
        // A connection of its own: one opened before the test may have been cut meanwhile (the
        // database-restart test), and a query on a closed connection never returns.
        if let dropper = try? await connect(adminConfiguration) {
            _ = try? await dropper.query("DROP SCHEMA \(unescaped: name) CASCADE", logger: logger)
            try? await dropper.close()
        }
        return try result.get()
    }
}

/// The two stores the contract suite runs against.
public enum StoreKind: String, CaseIterable, Sendable {
    case inMemory
    case postgres

    /// Runs `body` with a fresh store of this kind.
    public func withStore<T: Sendable>(_ body: @Sendable (any EventStore) async throws -> T) async throws -> T {
        switch self {
        case .inMemory: try await body(InMemoryEventStore())
        case .postgres: try await TestDatabase.withSchema { try await body($0.store) }
        }
    }
}

/// Thrown by every database test when `DATABASE_URL` is missing.
public struct MissingDatabase: Error, CustomStringConvertible {
    public var description: String {
        "DATABASE_URL is not set: run the tests with scripts/test, which starts PostgreSQL and sets it"
    }
}
