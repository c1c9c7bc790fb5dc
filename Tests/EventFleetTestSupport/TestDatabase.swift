import EventFleetCore
import EventFleetPostgres
import Foundation
import Logging
import PostgresNIO

/// A schema of its own for one test, migrated, with a running client and a store in it.
package typealias TestSchema = SchemaSandbox

extension SchemaSandbox {
    /// Opens a single connection in this schema (for transactions held open on purpose); its
    /// `search_path` is the schema, so the test's own SQL needs no qualification.
    package func connect() async throws -> PostgresConnection {
        try await TestDatabase.connect(configuration)
    }

    /// Runs `body` on a connection of its own inside a transaction held open meanwhile (the other
    /// side of a race), committed when `body` returns; the connection is closed in every case.
    package func withOpenTransaction<T: Sendable>(_ body: @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let connection = try await connect()
        do {
            try await connection.query("BEGIN", logger: TestDatabase.logger)
            let value = try await body(connection)
            try await connection.query("COMMIT", logger: TestDatabase.logger)
            try await connection.close()
            return value
        } catch {
            try? await connection.close()
            throw error
        }
    }

    /// Runs a statement of the test's own to its end, with this schema as the `search_path`.
    package func execute(_ query: PostgresQuery) async throws {
        try await self.query(query)
    }

    /// The first column of the first row, as a count.
    package func count(_ query: PostgresQuery) async throws -> Int64 {
        try await self.query(query).first?.decode(Int64.self) ?? 0
    }

    /// The rows of a statement of the test's own, decoded.
    package func rows<each Column: PostgresDecodable>(
        _ query: PostgresQuery, as columns: (repeat each Column).Type
    ) async throws -> [(repeat each Column)] {
        try await self.query(query).map { try $0.decode(columns) }
    }

    /// Runs a statement of the test's own and returns its rows, with this schema as the
    /// `search_path` (in a transaction of its own): the library qualifies its names, tests need not.
    @discardableResult
    package func query(_ query: PostgresQuery) async throws -> [PostgresRow] {
        try await database.transaction("test statement") { connection in
            try await connection.execute("SELECT set_config('search_path', \(name), true)")
            return try await connection.query(query)
        }
    }
}

/// The test database: the server `DATABASE_URL` names (`scripts/test` starts one and sets it).
package enum TestDatabase {
    package static let logger = Logger(label: "eventfleet.tests")

    /// The base URL. Tests fail, not skip, without it: they are the point of the suite.
    package static func baseURL() throws -> String {
        guard let url = ProcessInfo.processInfo.environment["DATABASE_URL"], !url.isEmpty else {
            throw MissingDatabase()
        }
        return url
    }

    /// A single connection as `configuration` describes it, with its schema as the `search_path`.
    /// Behind a transaction-mode pooler it goes to the server directly (`listen_url`): a test's own
    /// connection holds sessions (a transaction kept open, a backend pid) that a pooler would move.
    package static func connect(_ configuration: DatabaseConfiguration) async throws -> PostgresConnection {
        let server = try configuration.listenConfiguration() ?? configuration
        var connectionConfiguration = PostgresConnection.Configuration(
            host: server.host, port: server.port, username: configuration.username,
            password: configuration.password, database: configuration.database, tls: .disable
        )
        if let schema = configuration.schema {
            connectionConfiguration.options.additionalStartupParameters = [("search_path", schema)]
        }
        return try await PostgresConnection.connect(configuration: connectionConfiguration, id: 1, logger: logger)
    }

    /// Runs `body` with a fresh schema (migrated unless `migrate` is false) and drops it afterwards.
    /// The library's statements run without a `search_path` that finds the schema, as behind a
    /// pooler: one that does not qualify a name fails.
    package static func withSchema<T: Sendable>(
        poolSize: Int = 8, migrate: Bool = true, _ body: @Sendable (TestSchema) async throws -> T
    ) async throws -> T {
        try await TestGate.shared {
            try await SchemaSandbox.with(
                baseURL: baseURL(), prefix: "t_", poolSize: poolSize, applicationName: "eventfleet-tests", migrate: migrate,
                failsUnqualifiedNames: true, logger: logger, body
            )
        }
    }
}

/// The two stores the contract suite runs against.
package enum StoreKind: String, CaseIterable, Sendable {
    case inMemory
    case postgres

    /// Runs `body` with a fresh store of this kind; a PostgreSQL store has `poolSize` connections.
    package func withStore<T: Sendable>(poolSize: Int = 8, _ body: @Sendable (any EventStore) async throws -> T) async throws -> T {
        switch self {
        case .inMemory: try await body(InMemoryEventStore())
        case .postgres: try await TestDatabase.withSchema(poolSize: poolSize) { try await body($0.store) }
        }
    }
}

/// Thrown by every database test when `DATABASE_URL` is missing.
package struct MissingDatabase: Error, CustomStringConvertible {
    package var description: String {
        "DATABASE_URL is not set: run the tests with scripts/test, which starts PostgreSQL and sets it"
    }
}
