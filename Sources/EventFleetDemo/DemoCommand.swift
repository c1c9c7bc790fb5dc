import ArgumentParser
import CartsExample
import EventFleetCLI
import EventFleetCore
import EventFleetJobs
import EventFleetPostgres
import EventFleetProjections
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// `eventfleet-demo`: the example's fleet binary around the demo. `demo` (the default) runs the
/// whole fleet; `worker` is the process it starts from this same executable, as a user's fleet
/// binary mounts it.
@main
struct DemoTool: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eventfleet-demo",
        abstract: "The EventFleet demo: carts for several tenants, projected by a scheduler and worker processes.",
        subcommands: [DemoCommand.self, WorkerCommand<CartsReadModel>.self],
        defaultSubcommand: DemoCommand.self
    )

    static func main() async {
        CommandLineRunner.bootstrapLogging()
        await CommandLineRunner.main(DemoTool.self)
    }
}

/// `eventfleet-demo demo`: the whole fleet on the local database. Concurrent command handlers write
/// carts for several tenants while the scheduler and N worker processes project them; then every
/// `carts` row is checked against `aggregateStream` of its stream.
///
/// `--upgrade` runs a change of the read model instead (``UpgradeRun``).
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run the fleet: write carts for several tenants, project them with a scheduler and N workers, verify every row."
    )

    @OptionGroup var database: DatabaseOptions
    @Option(help: "How many tenants (partitions).") var tenants: Int = 4
    @Option(help: "Carts per tenant.") var carts: Int = 150
    @Option(help: "Worker processes.") var workers: Int = 2
    @Option(help: "Concurrent command handlers writing carts.") var writers: Int = 8
    @Flag(help: "Change the carts read model from version 1 to 2 under live writes: a v2 pool beside the v1 pool, status as it builds, promotion, v1 retired, every row verified (in a schema of its own).")
    var upgrade = false

    func validate() throws {
        guard tenants > 0, carts > 0, workers > 0, writers > 0 else {
            throw ValidationError("--tenants, --carts, --workers and --writers must be positive")
        }
    }

    func run() async throws {
        let logger = Logger(label: "eventfleet.demo")
        let (tenants, carts, workers, writers) = (self.tenants, self.carts, self.workers, self.writers)
        var childEnvironment = ProcessInfo.processInfo.environment
        childEnvironment["DATABASE_URL"] = database.databaseURL ?? childEnvironment["DATABASE_URL"]
        let environment = childEnvironment
        if upgrade {
            guard let url = environment["DATABASE_URL"] else { throw ValidationError("set --database-url or DATABASE_URL") }
            let run = UpgradeRun(baseURL: url, tenants: (1...tenants).map { "tenant-\($0)" }, cartsPerTenant: carts, writers: writers, workers: workers, environment: environment, logger: logger)
            guard try await run.execute() else { throw ExitCode(1) }
            return
        }
        // The demo migrates first, which creates a schema the URL names and the database lacks.
        let verified = try await database.withStore(requiringSchema: false, logger: logger) { store in
            try await CartsReadModel.migrate(store: store, logger: logger)
            let run = DemoRun(
                store: store.notifying(on: PostgresEventStore.Options.defaultNotifyChannel), tenants: (1...tenants).map { "tenant-\($0)" }, cartsPerTenant: carts, writers: writers,
                workers: workers, environment: environment, logger: logger
            )
            return try await run.execute()
        }
        guard verified else { throw ExitCode(1) }
    }
}

/// One demo run: its own cart ids, so runs do not disturb each other.
struct DemoRun: Sendable {
    let store: PostgresEventStore
    let tenants: [String]
    let cartsPerTenant: Int
    let writers: Int
    let workers: Int
    let environment: [String: String]
    let logger: Logger
    let runId = String(UUID().uuidString.prefix(8)).lowercased()

    /// - Returns: Whether every row matched its stream.
    func execute() async throws -> Bool {
        let started = ContinuousClock.now
        let appended = EventCounter()
        var schedulerConfiguration = FleetScheduler.Configuration()
        schedulerConfiguration.heartbeatTimeout = .seconds(10)
        let scheduler = FleetScheduler(configuration: schedulerConfiguration, store: store, logger: logger)
        let supervisor = FleetSupervisor(
            executable: ChildProcess.currentExecutable,
            members: FleetSupervisor.Member.workers(
                Array(repeating: ["worker", "--concurrency", "4", "--poll-interval-ms", "200", "--drain-timeout", "5"], count: workers),
                stopTimeout: .seconds(15)
            ),
            environment: environment, statusInterval: .seconds(3600), logger: logger
        )
        print("demo \(runId): \(tenants.count) tenants × \(cartsPerTenant) carts, \(writers) writers, scheduler + \(workers) worker processes")
        let streams: [(String, String)] = try await withThrowingTaskGroup(of: [(String, String)].self) { group in
            let services = ServiceGroup(configuration: ServiceGroupConfiguration(services: [.init(service: scheduler), .init(service: supervisor)], logger: logger))
            group.addTask {
                try await services.run()
                return []
            }
            // Write while printing progress every second.
            let written: [(String, String)] = try await withThrowingTaskGroup(of: [(String, String)]?.self) { writing in
                writing.addTask {
                    try await DemoWriters(store: store, runId: runId, appended: appended).write(tenants: tenants, numbers: 0..<cartsPerTenant, writers: writers)
                }
                writing.addTask {
                    while !Task.isCancelled {
                        try await Task.sleep(for: .seconds(1))
                        _ = try await progress(appended: appended.count, since: started)
                    }
                    return nil
                }
                for try await result in writing {
                    if let result {
                        writing.cancelAll()
                        return result
                    }
                }
                return []
            }
            // Let the fleet finish, showing progress, then stop it gracefully.
            try await scheduler.whenCaughtUp(timeout: .seconds(120))
            while true {
                let status = try await progress(appended: appended.count, since: started)
                if status.pending == 0 { break }
                try await Task.sleep(for: .milliseconds(500))
            }
            await services.triggerGracefulShutdown()
            for try await _ in group {}
            return written
        }
        let elapsed = ContinuousClock.now - started
        let events = appended.count
        print("")
        print("wrote \(events) events to \(streams.count) streams in \(tenants.count) tenants")
        let mismatches = try await CartsReadModel.rowsNotMatchingStreams(streams, store: store)
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print(String(format: "elapsed %.1f s, %.0f events/s end to end (written, scheduled, projected)", seconds, Double(events) / max(seconds, 0.001)))
        if mismatches.isEmpty {
            print("verification: all \(streams.count) carts rows equal aggregateStream of their streams")
            return true
        }
        print("verification FAILED for \(mismatches.count) streams: \(mismatches.prefix(5).joined(separator: ", "))")
        return false
    }

    /// Prints one progress line; returns the jobs still ready or running.
    private func progress(appended: Int, since started: ContinuousClock.Instant) async throws -> (pending: Int64, done: Int64) {
        let status = try await FleetStatus.read(from: store)
        let (ready, running) = status.lanes.reduce((Int64(0), Int64(0))) { ($0.0 + $1.ready, $0.1 + $1.running) }
        let done = status.lanes.reduce(0) { $0 + $1.completedPerMinute * 5 }
        let perTenant = Dictionary(grouping: status.lanes, by: \.partition).mapValues { $0.reduce(0) { $0 + $1.ready } }
            .filter { $0.value > 0 }.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        let elapsed = ContinuousClock.now - started
        print("[\(elapsed.components.seconds)s] events \(appended)  jobs ready \(ready) running \(running) done in the last 5 min \(Int(done))  ready per tenant: \(perTenant.isEmpty ? "-" : perTenant)")
        return (ready + running, Int64(done))
    }
}
