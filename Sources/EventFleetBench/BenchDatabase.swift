import CartsExample
import EventFleetPostgres
import Foundation
import Logging
import PostgresNIO

/// A schema of its own for one bench run: migrated, with the raw baseline tables beside the
/// library's, and dropped at the end, so runs never touch other data on the server.
struct BenchDatabase: Sendable {
    /// The schema's generated name (letters, digits and underscores only).
    let schema: String
    let configuration: DatabaseConfiguration
    /// The URL of the schema, for the worker and scheduler processes the bench starts.
    let url: String
    let client: PostgresClient
    /// A store whose appends do not `NOTIFY`.
    let store: PostgresEventStore
    let logger: Logger

    /// A store on the same client whose appends wake listeners with `NOTIFY`.
    var notifyingStore: PostgresEventStore {
        PostgresEventStore(client: client, configuration: configuration, notifyChannel: PostgresEventStore.Options.defaultNotifyChannel, logger: logger)
    }

    /// Creates the schema, runs `body` with it, and drops it (also when `body` throws).
    static func with<T: Sendable>(
        baseURL: String, poolSize: Int, logger: Logger, _ body: @Sendable (BenchDatabase) async throws -> T
    ) async throws -> T {
        let base = try DatabaseConfiguration(url: baseURL)
        try await base.checkConnection(logger: logger)
        let schema = "bench_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
        let url = baseURL + (baseURL.contains("?") ? "&" : "?") + "schema=\(schema)"
        var configuration = try DatabaseConfiguration(url: url)
        configuration.poolSize = poolSize
        configuration.applicationName = "eventfleet-bench"
        var quiet = logger
        quiet.logLevel = .error
        let admin = PostgresClient(configuration: try base.clientConfiguration(), backgroundLogger: quiet)
        let client = PostgresClient(configuration: try configuration.clientConfiguration(), backgroundLogger: quiet)
        let database = BenchDatabase(
            schema: schema, configuration: configuration, url: url, client: client,
            store: PostgresEventStore(client: client, configuration: configuration, logger: logger), logger: logger
        )
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                await admin.run()
                return nil
            }
            group.addTask {
                await client.run()
                return nil
            }
            defer { group.cancelAll() }
            let quoted = "\"\(schema)\""
            for try await _ in try await admin.query("CREATE SCHEMA \(unescaped: quoted)", logger: logger) {}
            BenchInterruption.created(schema: schema, baseURL: baseURL)
            let result: Result<T, any Error>
            do {
                try await database.prepare()
                let serverStarted = try await database.serverStarted()
                let value = try await body(database)
                if try await database.serverStarted() != serverStarted {
                    print("warning: the server restarted during this part of the run; its figures are not comparable")
                }
                result = .success(value)
            } catch {
                result = .failure(error)
            }
            do {
                for try await _ in try await admin.query("DROP SCHEMA IF EXISTS \(unescaped: quoted) CASCADE", logger: logger) {}
                BenchInterruption.dropped(schema: schema)
            } catch {
                await BenchInterruption.holdIfInterrupted()
                logger.error("could not drop the bench schema; drop it by hand", metadata: ["eventfleet.schema": "\(schema)", "eventfleet.error": "\(error)"])
            }
            return try result.get()
        }
    }

    /// Applies the library's and the carts example's migrations, then creates the baseline tables
    /// with exactly the shape (columns, defaults, constraints, indexes) of the library's, and the
    /// least a gapless per-stream position needs: one counter row per stream.
    private func prepare() async throws {
        try await CartsReadModel.migrate(client: client, logger: logger)
        try await execute("CREATE TABLE bench_raw_messages (LIKE ef_messages INCLUDING ALL)")
        try await execute("CREATE TABLE bench_raw_stream_versions (stream_id text PRIMARY KEY, version bigint NOT NULL)")
        try await execute("CREATE TABLE bench_raw_jobs (LIKE ef_jobs INCLUDING ALL)")
    }

    /// The server's version string, e.g. `PostgreSQL 15.18`.
    func serverVersion() async throws -> String {
        for try await version in try await client.query("SHOW server_version", logger: logger).decode(String.self) {
            return "PostgreSQL \(version.split(separator: " ").first ?? "")"
        }
        return "PostgreSQL"
    }

    /// When the server last started, to notice a restart (by other work on a shared server) mid-run.
    func serverStarted() async throws -> String {
        for try await started in try await client.query("SELECT pg_postmaster_start_time()::text", logger: logger).decode(String.self) {
            return started
        }
        return ""
    }

    /// Runs a statement and discards its rows.
    func execute(_ query: PostgresQuery) async throws {
        for try await _ in try await client.query(query, logger: logger) {}
    }

    /// The first column of the first row as an integer.
    func count(_ query: PostgresQuery) async throws -> Int {
        for try await value in try await client.query(query, logger: logger).decode(Int64.self) { return Int(value) }
        return 0
    }
}
