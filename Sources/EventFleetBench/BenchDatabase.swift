import CartsExample
import EventFleetPostgres
import Foundation
import Logging
import PostgresNIO

/// A schema of its own for one bench run: migrated, with the raw baseline tables beside the
/// library's, and dropped at the end, so runs never touch other data on the server.
struct BenchDatabase: Sendable {
    let sandbox: SchemaSandbox
    let logger: Logger

    /// The schema's generated name.
    var schema: String { sandbox.name }
    /// Qualifies the names of the library's tables and of the baseline tables in statements.
    var names: Schema { sandbox.schema }
    /// The URL of the schema, for the worker and scheduler processes the bench starts.
    var url: String { sandbox.url }
    /// The client the library and the baselines share.
    var client: PostgresClient { sandbox.client }
    /// A store whose appends do not `NOTIFY`.
    var store: PostgresEventStore { sandbox.store }

    /// A store on the same client whose appends wake listeners with `NOTIFY`.
    var notifyingStore: PostgresEventStore {
        store.notifying(on: PostgresEventStore.Options.defaultNotifyChannel)
    }

    /// Creates the schema, runs `body` with it, and drops it (also when `body` throws).
    static func with<T: Sendable>(
        baseURL: String, poolSize: Int, logger: Logger, _ body: @Sendable (BenchDatabase) async throws -> T
    ) async throws -> T {
        try await DatabaseConfiguration(url: baseURL).checkConnection(logger: logger)
        let result = try await SchemaSandbox.with(
            baseURL: baseURL, prefix: "bench_", poolSize: poolSize, applicationName: "eventfleet-bench", logger: logger
        ) { sandbox in
            BenchInterruption.created(schema: sandbox.name, baseURL: baseURL)
            let database = BenchDatabase(sandbox: sandbox, logger: logger)
            do {
                try await database.prepare()
                let serverStarted = try await database.serverStarted()
                let value = try await body(database)
                if try await database.serverStarted() != serverStarted {
                    print("warning: the server restarted during this part of the run; its figures are not comparable")
                }
                return (sandbox.name, value)
            } catch {
                await BenchInterruption.holdIfInterrupted()
                throw error
            }
        }
        BenchInterruption.dropped(schema: result.0)
        return result.1
    }

    /// Applies the carts example's migrations, then creates the baseline tables with exactly the
    /// shape (columns, defaults, constraints, indexes) of the library's, and the least a gapless
    /// per-stream position needs: one counter row per stream.
    private func prepare() async throws {
        try await CartsReadModel.migrate(store: store, logger: logger)
        try await execute("CREATE TABLE \(names.bench_raw_messages) (LIKE \(names.ef_messages) INCLUDING ALL)")
        try await execute("CREATE TABLE \(names.bench_raw_stream_versions) (stream_id text PRIMARY KEY, version bigint NOT NULL)")
        try await execute("CREATE TABLE \(names.bench_raw_jobs) (LIKE \(names.ef_jobs) INCLUDING ALL)")
    }

    /// The server's version string, e.g. `PostgreSQL 15.18`.
    func serverVersion() async throws -> String {
        let version = try await sandbox.database.value("read the server version", "SHOW server_version", as: String.self)
        return "PostgreSQL \(version.split(separator: " ").first ?? "")"
    }

    /// When the server last started, to notice a restart (by other work on a shared server) mid-run.
    func serverStarted() async throws -> String {
        try await sandbox.database.value("read the server start", "SELECT pg_postmaster_start_time()::text", as: String.self)
    }

    /// Runs a statement and discards its rows: straight on the driver, as the baselines measure it.
    func execute(_ query: PostgresQuery) async throws {
        for try await _ in try await client.query(query, logger: logger) {}
    }

    /// The first column of the first row as an integer.
    func count(_ query: PostgresQuery) async throws -> Int {
        Int(try await sandbox.database.value("bench count", query, as: Int64.self))
    }
}
