import CartsExample
import EventFleetCLI
import EventFleetCore
import EventFleetJobs
import EventFleetPostgres
import EventFleetTestSupport
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Testing

/// The supported restore: pg_dump, pg_restore into another cluster, `eventfleet rebase-log`, then
/// the fleet. A fresh cluster's transaction ids start over, so nothing of the log may depend on them.
@Suite("Restoring a database", .exclusive, .timeLimit(.minutes(5)))
struct RestoreTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test("a store restored into a fresh cluster keeps every read model right: rebase-log refuses while a worker is live, then sets the sequence and a previous release's checkpoint right")
    func restoreIntoFreshCluster() async throws {
        try await withCartsSchema(poolSize: 20) { source in
            let before = try await writeCarts(source.store, tenants: ["a", "b", "c"], cartsPerTenant: 3)
            try await Self.runFleet(on: source.store, until: before)
            // The scheduler's checkpoint as a previous release leaves it when it stops: a
            // (transaction id, global position) pair at the head, in the source server's ids.
            try await source.execute("""
                UPDATE ef_subscriptions s
                   SET log_position = NULL, owner = NULL, lease_expires_at = NULL,
                       last_transaction_id = h.transaction_id, last_global_position = h.global_position
                  FROM (SELECT transaction_id, global_position FROM ef_messages
                         ORDER BY transaction_id DESC, global_position DESC LIMIT 1) h
                """)
            let work = FileManager.default.temporaryDirectory.appendingPathComponent("eventfleet-restore-\(UUID().uuidString.prefix(8))")
            try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
            let dump = work.appendingPathComponent("store.dump").path
            let state = work.appendingPathComponent("cluster").path
            let dumped = try await Self.postgres(["tool", "pg_dump", "--format=custom", "--schema=\(source.name)", "--file=\(dump)", try TestDatabase.baseURL()])
            #expect(dumped.status == 0, "\(dumped.stderr)")

            let started = try await Self.postgres(["start"], state: state)
            #expect(started.status == 0, "\(started.stderr)")
            do {
                let targetBase = try #require(started.stdout.split(separator: "\n").first { $0.hasPrefix("DATABASE_URL=") }?.dropFirst("DATABASE_URL=".count))
                let restored = try await Self.postgres(["tool", "pg_restore", "--no-owner", "--no-privileges", "--dbname=\(targetBase)", dump])
                #expect(restored.status == 0, "\(restored.stderr)")
                let target = SchemaSandbox.url(String(targetBase), schema: source.name)
                try await Self.withStore(url: target) { store in
                    // A copy by logical replication leaves the sequence where it started.
                    let sequence = "\(source.name).ef_global_position"
                    try await store.database.query("restart the sequence", "SELECT setval(\(sequence)::regclass, 1, false)")

                    // A worker is live on the restored database: refused, and nothing changed.
                    try await Self.withLiveWorker(on: store) {
                        let refused = try await eventfleet(["rebase-log"], url: target)
                        #expect(refused.status == 1)
                        #expect(refused.stderr.contains("refusing to rebase the log while a fleet is live"), "\(refused.stderr)")
                        #expect(refused.stderr.contains("worker "), "\(refused.stderr)")
                    }
                    #expect(try await store.database.value("read the sequence", "SELECT pg_sequence_last_value(\(sequence)::regclass)", as: Int64?.self) == nil)

                    let rebased = try await eventfleet(["rebase-log"], url: target)
                    #expect(rebased.status == 0, "\(rebased.stderr)")
                    let report = try JSONDecoder().decode(LogRebase.self, from: Data(rebased.stdout.utf8))
                    let head = try #require(try await store.globalLogHead())
                    #expect(report == LogRebase(sequenceBefore: nil, sequenceAfter: head, checkpointsConverted: 1))
                    let again = try await eventfleet(["rebase-log"], url: target)
                    #expect(try JSONDecoder().decode(LogRebase.self, from: Data(again.stdout.utf8)) == LogRebase(sequenceBefore: head, sequenceAfter: head, checkpointsConverted: 0))

                    // Appends on the restored server, to old carts and new ones, before the fleet starts.
                    for (tenant, stream) in before.prefix(4) {
                        try await store.appendToStream(stream, events: [
                            CartEvent.itemAdded(ItemAddedToCart(sku: "R", name: "restored", unitPrice: 9, quantity: 1)),
                        ], options: AppendOptions(partition: tenant))
                    }
                    let after = try await writeCarts(store, tenants: ["a", "d"], cartsPerTenant: 2)
                    try await Self.runFleet(on: store, until: before + after)
                    #expect(try await CartsReadModel.rowsNotMatchingStreams(before + after, store: store).isEmpty)
                }
            } catch {
                _ = try? await Self.postgres(["stop"], state: state)
                try? FileManager.default.removeItem(at: work)
                throw error
            }
            let stopped = try await Self.postgres(["stop"], state: state)
            #expect(stopped.status == 0, "\(stopped.stderr)")
            try? FileManager.default.removeItem(at: work)
        }
    }

    /// Runs `scripts/postgres` (on the cluster in `state`, when given).
    static func postgres(_ arguments: [String], state: String? = nil) async throws -> ChildProcess.Result {
        var environment = ProcessInfo.processInfo.environment
        if let state { environment["EVENTFLEET_PG_STATE"] = state }
        return try await ChildProcess.run(root.appendingPathComponent("scripts/postgres").path, arguments: arguments, environment: environment)
    }

    /// A store on the database at `url`, its client running for `body`.
    static func withStore<T: Sendable>(url: String, _ body: @Sendable (PostgresEventStore) async throws -> T) async throws -> T {
        let configuration = try DatabaseConfiguration(url: url)
        let client = PostgresClient(configuration: try configuration.clientConfiguration(), backgroundLogger: TestDatabase.logger)
        let store = PostgresEventStore(client: client, configuration: configuration, logger: TestDatabase.logger)
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { await client.run(); return nil }
            defer { group.cancelAll() }
            return try await body(store)
        }
    }

    /// A scheduler and a worker on `store` until every stream of `streams` has its row equal to its
    /// fold; then they shut down gracefully (the worker deregisters, as a stopped fleet's do).
    static func runFleet(on store: PostgresEventStore, until streams: [(String, String)]) async throws {
        let scheduler = FleetScheduler(store: store)
        let worker = ProjectionWorker(configuration: ProjectionWorker.Configuration(), store: store, registry: try CartsReadModel.registry())
        try await withServices([scheduler, worker]) {
            try await waitUntil(timeout: .seconds(90), "every cart is projected") {
                try await CartsReadModel.rowsNotMatchingStreams(streams, store: store).isEmpty
            }
        }
    }

    /// Runs a worker on `store` during `body`.
    static func withLiveWorker(on store: PostgresEventStore, _ body: @Sendable () async throws -> Void) async throws {
        let worker = ProjectionWorker(configuration: ProjectionWorker.Configuration(), store: store, registry: try CartsReadModel.registry())
        try await withServices([worker]) {
            try await waitUntil(timeout: .seconds(30), "the worker has started") { worker.isStarted }
            try await body()
        }
    }
}
