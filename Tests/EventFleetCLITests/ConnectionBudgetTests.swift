import CartsExample
import EventFleetCLI
import EventFleetCore
import EventFleetJobs
import EventFleetPostgres
import EventFleetTestSupport
import Foundation
import PostgresNIO
import Synchronization
import Testing

/// The connections a fleet holds on the server behind a pooler (README, "Connections").
@Suite(
    "Connection budget behind a pooler", .exclusive, .timeLimit(.minutes(5)),
    .enabled("runs through a transaction-mode pooler: the pooler phase of scripts/test") {
        (try? DatabaseConfiguration(url: TestDatabase.baseURL()))?.pooler == .transaction
    }
)
struct ConnectionBudgetTests {
    static let workers = 20
    static let schedulers = 2
    /// PostgreSQL's default `max_connections`.
    static let budget = 100

    @Test("20 workers at their default concurrency and 2 schedulers, projecting, hold at most 100 server connections, their direct LISTEN connections included")
    func fleetFitsDefaultMaxConnections() async throws {
        try await withCartsSchema { schema in
            let environment = childEnvironment(url: schema.url, ["LOG_LEVEL": "error"])
            let executable = try builtProduct("eventfleet")
            var processes: [ChildProcess] = []
            defer { for process in processes { process.signal(SIGKILL) } }
            for _ in 0..<Self.schedulers {
                processes.append(try ChildProcess(executable, arguments: ["scheduler"], environment: environment, error: .capture))
            }
            for _ in 0..<Self.workers {
                processes.append(try ChildProcess(executable, arguments: ["worker"], environment: environment, error: .capture))
            }
            // Sampled on a direct connection: client backends of the whole server, this one too.
            let sampler = try await TestDatabase.connect(schema.configuration)
            let peak = PeakConnections()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    while !Task.isCancelled {
                        let rows = try await sampler.query(
                            "SELECT application_name, count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' GROUP BY 1",
                            logger: TestDatabase.logger
                        )
                        var byName: [String: Int] = [:]
                        for try await (name, count) in rows.decode((String, Int).self) { byName[name] = count }
                        let total = byName.values.reduce(0, +)
                        peak.state.withLock { if total > $0.total { $0 = (total, byName) } }
                        try? await Task.sleep(for: .milliseconds(50))
                    }
                }
                try await waitUntil(timeout: .seconds(90), "every worker registered") {
                    try await schema.count("SELECT count(*) FROM ef_workers") == Self.workers
                }
                let streams = try await writeCarts(schema.store, tenants: ["a", "b", "c", "d"], cartsPerTenant: 25)
                try await waitUntil(timeout: .seconds(120), "every cart is projected") {
                    try await cartRowsNotMatchingStreams(schema, streams: streams).isEmpty
                }
                // The monitor counts them per role: at least each worker's LISTEN connection.
                let status = try await FleetStatus.read(from: schema.store)
                let workers = status.connections.first { $0.applicationName == "eventfleet.worker" }?.count ?? 0
                #expect(workers >= Int64(Self.workers), "\(status.connections)")
                group.cancelAll()
            }
            try? await sampler.close()
            let (total, byName) = peak.state.withLock { $0 }
            print("connection budget: peak \(total) client backends: \(byName.sorted { $0.key < $1.key })")
            #expect(total <= Self.budget, "peak \(total) server connections: \(byName)")
            #expect(total > Self.workers + Self.schedulers, "the direct LISTEN connections were counted")

            for process in processes { process.signal(SIGTERM) }
            for process in processes {
                let exit = try await process.exit(within: .seconds(60))
                let log = await process.capturedError()
                #expect(exit == .exited(0), "\(log.suffix(2_000))")
            }
            processes = []
        }
    }
}

/// The most client backends seen at once, and how many each application name had then.
private final class PeakConnections: Sendable {
    let state = Mutex((total: 0, byName: [String: Int]()))
}
