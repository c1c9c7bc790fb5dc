import CartsExample
import EventFleetCore
import EventFleetJobs
import EventFleetPostgres
import EventFleetProjections
import Foundation
import Logging
import ServiceLifecycle

/// Workload 10: version 2 of `carts` built beside the active version 1 from a preloaded history,
/// while live writes run. Against the same run's baselines: the build's events/s against version 1
/// catching up on the same history (workload 5's shape, in process), and version 1's freshness p99
/// during the build against the same live load without one.
struct VersionBuildBenchmark: Sendable {
    let baseURL: String
    let settings: BenchSettings
    let logger: Logger

    /// Workers per version, in the bench process.
    static let workersPerVersion = 2

    struct Result: Sendable {
        var historyEvents: Int
        var catchUp: Throughput
        var build: Throughput
        var idle: LatencyHistogram
        var duringBuild: LatencyHistogram
        var liveEvents: Int
        /// How long recording version 2's backfill (a job per stream of the history) took.
        var backfillSeconds: Double
    }

    func run(into report: inout BenchReport) async throws {
        let result = try await BenchDatabase.with(baseURL: baseURL, poolSize: 32, logger: logger) { database in
            try await measure(database)
        }
        let workers = "\(Self.workersPerVersion) workers per version"
        let history = "\(result.historyEvents) ev of history, \(settings.versionBuildRate) ev/s live"
        let ratio = result.build.itemsPerSecond / result.catchUp.itemsPerSecond
        report.add(BenchRow(
            workload: "10 version build", variant: "\(history), \(workers)", unit: "events/s",
            value: result.build.itemsPerSecond, baseline: result.catchUp.itemsPerSecond, ratio: ratio,
            target: ">= 0.8x the catch-up", targetMet: ratio >= 0.8,
            note: "baseline: version 1 catching up on the same history with its \(Self.workersPerVersion) workers, without live writes, in the same run; "
                + "the build runs on the backfill lane (its per-tenant caps) while version 1 keeps the live lane; "
                + String(
                    format: "the history was built in %.1f s, of which %.1f s recording the backfill (a job per stream); both versions' rows verified afterwards",
                    result.build.elapsed.seconds, result.backfillSeconds
                )
        ))
        let p50 = result.duringBuild.milliseconds(atPercentile: 50) ?? .infinity
        let p99 = result.duringBuild.milliseconds(atPercentile: 99) ?? .infinity
        let idleP50 = result.idle.milliseconds(atPercentile: 50) ?? .infinity
        let idleP99 = result.idle.milliseconds(atPercentile: 99) ?? .infinity
        report.add(BenchRow(
            workload: "10 version build", variant: "version 1's freshness during the build, \(settings.versionBuildRate) ev/s", unit: "ms p99",
            value: p99, baseline: idleP99, ratio: p99 / idleP99, p50Milliseconds: p50, p99Milliseconds: p99,
            baselineP50Milliseconds: idleP50, baselineP99Milliseconds: idleP99,
            target: "p99 <= 2x without the build", targetMet: p99 <= 2 * idleP99,
            note: "baseline: the same live load on version 1 just before the build; \(result.duringBuild.count) events timed during the build, "
                + "\(result.idle.count) without it (commit to row shown through the view carts)"
        ))
    }

    private func measure(_ database: BenchDatabase) async throws -> Result {
        let preload = CartsPreload(database: database)
        try await preload.registerCartsProjection()
        let tenants = (1...settings.catchUpTenants).map { "tenant-\($0)" }
        let perStream = settings.catchUpEvents / settings.catchUpStreams
        let loaded = try await preload.load(streams: settings.catchUpStreams, eventsPerStream: perStream, tenants: tenants)
        let historyEvents = loaded.streams.count * perStream

        let store = database.store.notifying(on: PostgresEventStore.Options.defaultNotifyChannel)
        let quiet = {
            var quiet = logger
            quiet.logLevel = .error
            return quiet
        }()
        let scheduler = FleetScheduler(configuration: FleetScheduler.Configuration(), store: store, logger: quiet)
        let version1 = try workers(version: 1, store: store, logger: quiet)
        let started = ContinuousClock.now
        return try await withInProcessFleet(scheduler: scheduler, services: [.init(service: scheduler)] + version1, logger: quiet) {
            let deadline = started + .seconds(600)
            while try await preload.upToDateRows() < loaded.streams.count {
                guard ContinuousClock.now < deadline else { throw BenchError.timedOut(workload: "10 version build", waitingFor: "version 1's catch-up") }
                try await Task.sleep(for: .milliseconds(50))
            }
            let catchUp = Throughput(items: historyEvents, elapsed: ContinuousClock.now - started)

            let live = LiveCarts(store: store, database: database, tenants: tenants, rate: settings.versionBuildRate)
            let idle = try await live.run { try await Task.sleep(for: settings.freshnessDuration / 2) }

            let version2 = ServiceGroup(configuration: .init(services: try workers(version: 2, store: store, logger: quiet), logger: quiet))
            let (duringBuild, build, backfillSeconds) = try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await version2.run() }
                let buildStarted = ContinuousClock.now
                let built = Locked<Throughput?>(nil)
                let timed = try await live.run {
                    // Built: every stream of the history has its row at its head in version 2.
                    while try await upToDateRows(version: 2, includingLive: false, database: database) < loaded.streams.count {
                        guard ContinuousClock.now < buildStarted + .seconds(600) else {
                            throw BenchError.timedOut(workload: "10 version build", waitingFor: "version 2's history")
                        }
                        try await Task.sleep(for: .milliseconds(50))
                    }
                    built.withLock { $0 = Throughput(items: historyEvents, elapsed: ContinuousClock.now - buildStarted) }
                }
                // Both versions take the last live events, then both are checked against the streams.
                try await scheduler.whenCaughtUp(timeout: .seconds(60))
                let streams = loaded.streams + live.streams
                for version in [2, 1] {
                    let deadline = ContinuousClock.now + .seconds(120)
                    while try await upToDateRows(version: version, includingLive: true, database: database) < streams.count {
                        guard ContinuousClock.now < deadline else {
                            throw BenchError.timedOut(workload: "10 version build", waitingFor: "version \(version)'s last rows")
                        }
                        try await Task.sleep(for: .milliseconds(100))
                    }
                }
                for version in 1...2 {
                    let wrong = try await CartsReadModel.rowsNotMatchingStreams(streams, store: store, concurrency: 8, version: version)
                    guard wrong.isEmpty else {
                        throw BenchError.verificationFailed(workload: "10 version build", reason: "\(wrong.count) rows of version \(version) differ: \(wrong.prefix(5))")
                    }
                }
                await version2.triggerGracefulShutdown()
                try await group.waitForAll()
                let backfill = try await database.sandbox.database.value("time the backfill", """
                    SELECT coalesce(extract(epoch FROM max(finished - created)), 0)::float8 FROM \(database.names.ef_backfills)
                     WHERE 'carts@2' = ANY (projections)
                    """, as: Double.self)
                guard let build = built.value else { throw BenchError.timedOut(workload: "10 version build", waitingFor: "version 2 to be ready") }
                return (timed, build, backfill)
            }
            return Result(
                historyEvents: historyEvents, catchUp: catchUp, build: build, idle: idle, duringBuild: duringBuild, liveEvents: live.streams.count,
                backfillSeconds: backfillSeconds
            )
        }
    }

    /// The in-process workers of one version of `carts`.
    private func workers(version: Int, store: PostgresEventStore, logger: Logger) throws -> [ServiceGroupConfiguration.ServiceConfiguration] {
        let registry = ProjectionRegistry([try CartsReadModel.projection(version: version)])
        return (0..<Self.workersPerVersion).map { _ in
            var configuration = ProjectionWorker.Configuration()
            configuration.workerId = "bench-v\(version)-\(UUID().uuidString.prefix(8).lowercased())"
            configuration.concurrency = settings.workerConcurrency
            configuration.jobsPerTransaction = settings.jobsPerTransaction
            return .init(service: ProjectionWorker(configuration: configuration, store: store, registry: registry, logger: logger))
        }
    }

    /// Rows of `version`'s table at their stream's head; the live load's streams left out unless
    /// `includingLive`.
    private func upToDateRows(version: Int, includingLive: Bool, database: BenchDatabase) async throws -> Int {
        let table = database.names.qualifying(try SQLIdentifier(CartsReadModel.table(version: version), kind: "table"))
        return try await database.count("""
            SELECT count(*) FROM \(database.names.ef_streams) s
              JOIN \(table) c ON c.partition = s.partition AND c.stream_id = s.stream_id AND c.last_stream_position = s.stream_position
             WHERE \(includingLive) OR s.stream_id NOT LIKE \(LiveCarts.streamPrefix + "%")
            """)
    }
}

/// Carts written at a steady rate, each append timed until its row shows through the view
/// `carts`: the live load of workload 10.
final class LiveCarts: Sendable {
    let store: PostgresEventStore
    let database: BenchDatabase
    let tenants: [String]
    let rate: Int
    private let written = Locked<Set<[String]>>([])
    private let sequence = Locked(0)
    private let run = UUID().uuidString.prefix(6).lowercased()
    /// Streams the load spreads its events over.
    static let streamCount = 500
    /// How the load's stream ids begin.
    static let streamPrefix = "cart-live-"

    init(store: PostgresEventStore, database: BenchDatabase, tenants: [String], rate: Int) {
        self.store = store
        self.database = database
        self.tenants = tenants
        self.rate = rate
    }

    /// Every (partition, stream) written so far.
    var streams: [(String, String)] { written.value.map { ($0[0], $0[1]) } }

    /// Writes at the rate while `during` runs, and until the last append shows (30 s at most).
    ///
    /// - Returns: The commit-to-row latencies of the appends made while `during` ran.
    func run(during: @Sendable () async throws -> Void) async throws -> LatencyHistogram {
        let pending = Locked<[FreshnessBenchmark.Pending]>([])
        let latency = Locked(LatencyHistogram())
        let finished = Locked(false)
        let stopped = Locked(false)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await FreshnessBenchmark.watch(pending: pending, latency: latency, finished: finished, database: self.database)
            }
            group.addTask {
                try await self.write(pending: pending, until: stopped)
            }
            do {
                try await during()
            } catch {
                stopped.withLock { $0 = true }
                finished.withLock { $0 = true }
                throw error
            }
            stopped.withLock { $0 = true }
            let deadline = ContinuousClock.now + .seconds(30)
            while pending.withLock({ !$0.isEmpty }), ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            finished.withLock { $0 = true }
            try await group.waitForAll()
        }
        return latency.value
    }

    private func write(pending: Locked<[FreshnessBenchmark.Pending]>, until stopped: Locked<Bool>) async throws {
        let clock = ContinuousClock()
        let perTick = max(1, rate / 100)
        var next = clock.now
        try await withThrowingTaskGroup(of: Void.self) { writers in
            while !stopped.value {
                try await clock.sleep(until: next)
                for _ in 0..<perTick {
                    let index = sequence.withLock { value in
                        defer { value += 1 }
                        return value
                    }
                    writers.addTask {
                        let number = index % Self.streamCount
                        let tenant = self.tenants[number % self.tenants.count]
                        let cartId = "live-\(self.run)-\(number)"
                        let stream = "cart-\(cartId)"
                        let event: CartEvent = index < Self.streamCount
                            ? .created(CartCreated(tenantId: tenant, cartId: cartId, currency: "EUR"))
                            : .itemAdded(ItemAddedToCart(sku: "SKU-\(index % 5)", name: "Item", unitPrice: 100, quantity: 1))
                        let result = try await self.store.appendToStream(
                            stream, events: [event], options: AppendOptions(partition: tenant, streamType: "cart")
                        )
                        let committed = clock.now
                        self.written.withLock { _ = $0.insert([tenant, stream]) }
                        pending.withLock {
                            $0.append(.init(partition: tenant, streamId: stream, version: result.nextExpectedVersion, committed: committed, timed: true))
                        }
                    }
                }
                next += .milliseconds(10)
            }
            try await writers.waitForAll()
        }
    }
}
