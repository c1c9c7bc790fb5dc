import CartsExample
import EventFleetCLI
import EventFleetCore
import EventFleetJobs
import EventFleetPostgres
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// `scripts/demo --upgrade`: a change of the carts read model from version 1 to version 2 while
/// carts are written, as the README's "Changing a projection" walks it. A v1 pool serves `carts`;
/// a v2 pool deployed beside it builds `carts_v2` from the whole history while live writes reach
/// both; status is printed as it builds; once it is ready, v2 is promoted (the view `carts` swapped
/// under the barrier), the v1 pool is stopped and v1 retired; then every row of the active version
/// is checked against the fold of its stream.
///
/// It runs in a schema of its own (dropped afterwards, kept when the check fails), so that it
/// leaves the database's `carts` at version 1 for the plain demo.
struct UpgradeRun: Sendable {
    let baseURL: String
    let tenants: [String]
    let cartsPerTenant: Int
    let writers: Int
    let workers: Int
    let environment: [String: String]
    let logger: Logger
    let runId = String(UUID().uuidString.prefix(8)).lowercased()

    /// How long the v2 build may take before the demo gives up.
    static let buildTimeout: Duration = .seconds(600)

    /// - Returns: Whether every row of the active version (2) matched its stream.
    func execute() async throws -> Bool {
        try await SchemaSandbox.with(
            baseURL: baseURL, prefix: "demo_upgrade_", migrate: false, logger: logger,
            keep: { (result: Result<Bool, any Error>) in (try? result.get()) != true }
        ) { sandbox in
            try await CartsReadModel.migrate(store: sandbox.store, logger: logger)
            var environment = self.environment
            environment["DATABASE_URL"] = sandbox.url
            print("upgrade demo \(runId) in schema \(sandbox.name): \(tenants.count) tenants, \(cartsPerTenant) carts each to start, then live writes")
            let verified = try await run(store: sandbox.store.notifying(on: PostgresEventStore.Options.defaultNotifyChannel), environment: environment)
            if !verified { print("schema \(sandbox.name) kept for inspection") }
            return verified
        }
    }

    private func run(store: PostgresEventStore, environment: [String: String]) async throws -> Bool {
        let queue = JobQueue(store: store)
        let appended = EventCounter()
        let writing = DemoWriters(store: store, runId: runId, appended: appended)
        var configuration = FleetScheduler.Configuration()
        configuration.heartbeatTimeout = .seconds(10)
        let scheduler = FleetScheduler(configuration: configuration, store: store, logger: logger)
        let version1 = pool(version: 1, environment: environment)
        let version2 = pool(version: 2, environment: environment)
        let stopWriting = StopSignal()

        return try await withThrowingTaskGroup(of: [(String, String)].self) { group in
            let fleet = ServiceGroup(configuration: .init(services: [.init(service: scheduler)], logger: logger))
            let pool1 = ServiceGroup(configuration: .init(services: [.init(service: version1)], logger: logger))
            let pool2 = ServiceGroup(configuration: .init(services: [.init(service: version2)], logger: logger))
            group.addTask { try await fleet.run(); return [] }
            group.addTask { try await pool1.run(); return [] }

            print("1. writers and a v1 pool (\(workers) workers): the history version 2 will be built from")
            var streams = try await writing.write(tenants: tenants, numbers: 0..<cartsPerTenant, writers: writers)
            try await drain(scheduler, store: store)
            print("   \(appended.count) events; version 1 serves carts (\(try await rowsThroughView(store)) rows)")

            print("2. live writes go on; a v2 pool (\(workers) workers) is deployed beside the v1 pool")
            // One cart per tenant at a time while the change runs: live load on both versions.
            group.addTask {
                var written: [(String, String)] = []
                var number = cartsPerTenant
                while !stopWriting.isSet {
                    written += try await writing.write(tenants: tenants, numbers: number..<(number + 1), writers: tenants.count)
                    number += 1
                    try await Task.sleep(for: .milliseconds(100))
                }
                return written
            }
            group.addTask { try await pool2.run(); return [] }
            let deadline = ContinuousClock.now + Self.buildTimeout
            var previous: ProjectionVersionStatus?
            var lastSample = ContinuousClock.now
            while true {
                try await Task.sleep(for: .seconds(2))
                let versions = try await queue.projectionVersions(of: "carts")
                let now = ContinuousClock.now
                let rated = versions.map { version in
                    previous.flatMap { $0.version == version.version ? version.rated(since: $0, over: now - lastSample) : nil } ?? version
                }
                previous = rated.first { $0.version == 2 }
                lastSample = now
                print("   status (eventfleet projections status carts):")
                print(ProjectionVersionStatus.text(rated).split(separator: "\n").map { "     " + $0 }.joined(separator: "\n"))
                if rated.contains(where: { $0.version == 2 && $0.state == .ready }) { break }
                guard now < deadline else {
                    print("   version 2 did not catch up within \(Self.buildTimeout)")
                    return false
                }
            }

            print("3. version 2 is ready: eventfleet projections promote carts --version 2")
            print("   " + (try await queue.promote("carts", version: 2, timeout: .seconds(60))).text)
            print("   readers of carts now see version 2 (\(try await rowsThroughView(store, ofVersion2: true)) rows with its status column)")

            print("4. the v1 pool stops; eventfleet projections retire carts --version 1")
            await pool1.triggerGracefulShutdown()
            print("   " + (try await retireVersion1(queue)).text)

            print("5. writers stop; the fleet drains; every row of the active version is checked")
            stopWriting.set()
            var liveStreams: [(String, String)]?
            while liveStreams == nil, let result = try await group.next() {
                if !result.isEmpty { liveStreams = result }
            }
            streams += liveStreams ?? []
            try await drain(scheduler, store: store)
            await pool2.triggerGracefulShutdown()
            await fleet.triggerGracefulShutdown()
            for try await _ in group {}

            let active = try await CartsReadModel.activeVersion(store: store)
            let mismatches = try await CartsReadModel.rowsNotMatchingStreams(streams, store: store)
            print("")
            print("wrote \(appended.count) events to \(streams.count) carts; version \(active) is active")
            if mismatches.isEmpty && active == 2 {
                print("verification: all \(streams.count) rows of carts version 2 equal aggregateStream of their streams")
                return true
            }
            print("verification FAILED: version \(active) active; \(mismatches.count) streams differ: \(mismatches.prefix(5).joined(separator: ", "))")
            return false
        }
    }

    /// A pool of `workers` worker processes of one version of carts.
    private func pool(version: Int, environment: [String: String]) -> FleetSupervisor {
        let arguments = ["worker", "--carts-version", "\(version)", "--concurrency", "4", "--poll-interval-ms", "200", "--drain-timeout", "5"]
        return FleetSupervisor(
            executable: ChildProcess.currentExecutable,
            members: (1...workers).map { FleetSupervisor.Member(name: "v\(version) worker \($0)", arguments: arguments, stopTimeout: .seconds(15)) },
            environment: environment, statusInterval: .seconds(3600), logger: logger
        )
    }

    /// Waits until the scheduler has scheduled every event and no job is ready or running, for at
    /// most two minutes: a job nobody takes fails the demo, naming where it waits, rather than
    /// hang it.
    private func drain(_ scheduler: FleetScheduler, store: PostgresEventStore) async throws {
        try await scheduler.whenCaughtUp(timeout: .seconds(120))
        let deadline = ContinuousClock.now + .seconds(120)
        while true {
            let busy = try await FleetStatus.read(from: store).lanes.filter { $0.ready + $0.running > 0 }
            if busy.isEmpty { return }
            guard ContinuousClock.now < deadline else {
                throw DemoError.notDrained(busy.map { "\($0.partition)/\($0.lane.rawValue): \($0.ready) ready, \($0.running) running" })
            }
            try await Task.sleep(for: .milliseconds(500))
        }
    }

    /// Retires version 1 once its pool has stopped: retiring refuses while a registered worker
    /// runs the version, and the pool's workers deregister as they exit.
    private func retireVersion1(_ queue: JobQueue) async throws -> RetiredProjectionVersion {
        let deadline = ContinuousClock.now + .seconds(60)
        while true {
            do {
                return try await queue.retire("carts", version: 1)
            } catch ProjectionVersionError.stillRunning where ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    private func rowsThroughView(_ store: PostgresEventStore, ofVersion2: Bool = false) async throws -> Int64 {
        let schema = store.database.schema
        return try await store.database.value(
            "count carts rows", ofVersion2 ? "SELECT count(*) FROM \(schema.carts) WHERE status IS NOT NULL" : "SELECT count(*) FROM \(schema.carts)",
            as: Int64.self
        )
    }
}

/// Why the upgrade demo stopped short.
enum DemoError: Error, CustomStringConvertible {
    /// Jobs were still ready or running two minutes after the writers stopped.
    case notDrained([String])

    var description: String {
        switch self {
        case .notDrained(let lanes): "the fleet did not drain within 2 minutes: \(lanes.joined(separator: "; "))"
        }
    }
}

/// Tells the live writers to stop after their current carts.
final class StopSignal: Sendable {
    private let value = Atomic(false)

    var isSet: Bool { value.load(ordering: .relaxed) }

    func set() { value.store(true, ordering: .relaxed) }
}
