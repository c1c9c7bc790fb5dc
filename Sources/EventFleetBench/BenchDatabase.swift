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
    /// The same schema through the pooler, when the run compares it with direct connections
    /// (`--pooler-url`).
    let pooled: Pooled?

    /// The schema reached through the pooler: the other side of the pooler's rows.
    struct Pooled: Sendable {
        /// The URL of the schema through the pooler, for the processes the bench starts.
        let url: String
        /// A store on a client of its own whose connections go through the pooler. Its appends do
        /// not `NOTIFY`.
        let store: PostgresEventStore
    }

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

    /// Creates the schema, runs `body` with it, and drops it (also when `body` throws).
    ///
    /// - Parameter poolerURL: A pooler in front of the same database: `body` then also gets the
    ///   schema through it, on a client of its own with `poolSize` connections. The schema is
    ///   created and migrated on direct connections either way.
    static func with<T: Sendable>(
        baseURL: String, poolerURL: String? = nil, poolSize: Int, logger: Logger, _ body: @Sendable (BenchDatabase) async throws -> T
    ) async throws -> T {
        try await DatabaseConfiguration(url: baseURL).checkConnection(logger: logger)
        let result = try await SchemaSandbox.with(
            baseURL: baseURL, prefix: "bench_", poolSize: poolSize, applicationName: "eventfleet-bench", logger: logger
        ) { sandbox in
            BenchInterruption.created(schema: sandbox.name, baseURL: baseURL)
            do {
                try await BenchDatabase(sandbox: sandbox, logger: logger, pooled: nil).prepare()
                let value = try await withPooled(poolerURL: poolerURL, schema: sandbox.name, poolSize: poolSize, logger: logger) { pooled in
                    let database = BenchDatabase(sandbox: sandbox, logger: logger, pooled: pooled)
                    let serverStarted = try await database.serverStarted()
                    let value = try await body(database)
                    if try await database.serverStarted() != serverStarted {
                        print("warning: the server restarted during this part of the run; its figures are not comparable")
                    }
                    return value
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

    /// Runs `body` with the schema `schema` through the pooler at `poolerURL`, on a client that runs
    /// meanwhile, or with `nil` without a pooler.
    private static func withPooled<T: Sendable>(
        poolerURL: String?, schema: String, poolSize: Int, logger: Logger, _ body: @Sendable (Pooled?) async throws -> T
    ) async throws -> T {
        guard let poolerURL else { return try await body(nil) }
        let url = SchemaSandbox.url(poolerURL, schema: schema)
        var configuration = try DatabaseConfiguration(url: url)
        configuration.poolSize = poolSize
        configuration.applicationName = "eventfleet-bench"
        // Finding the schema just created on the direct connections proves that the pooler fronts
        // the same database: otherwise the two sides would measure different servers.
        try await configuration.checkConnection(requiringSchema: true, logger: logger)
        var quiet = logger
        quiet.logLevel = .error
        let client = PostgresClient(configuration: try configuration.clientConfiguration(), backgroundLogger: quiet)
        let pooled = Pooled(url: url, store: PostgresEventStore(client: client, configuration: configuration, logger: logger))
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                await client.run()
                return nil
            }
            defer { group.cancelAll() }
            return try await body(pooled)
        }
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
