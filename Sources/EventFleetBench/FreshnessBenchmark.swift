import CartsExample
import EventFleetCore
import EventFleetJobs
import EventFleetPostgres
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle

/// Workload 6: under a steady write load, the time from an append's commit to the `carts` row
/// showing it, with the scheduler and 2 workers woken by `NOTIFY`, and with polling alone; with
/// `NOTIFY`, also while a transaction that does not append, or one tenant's append, stays open
/// for the whole run, and the append plus `waitForProjection` of writers that read their writes.
struct FreshnessBenchmark: Sendable {
    /// What else goes on while the load runs.
    enum Disturbance: Sendable, CaseIterable {
        case none
        /// A transaction holding an xid on a table of its own stays open for the whole run.
        case unrelatedTransaction
        /// An append in the first tenant stays open for the whole run; the other tenants are timed.
        case heldTenantAppend
        /// Each writer waits for its event's row (`waitForProjection`, woken through a
        /// `ProjectionWaitListener`); the append and the wait together are timed.
        case readYourWrites

        var variant: String {
            switch self {
            case .none: "NOTIFY wake-ups"
            case .unrelatedTransaction: "NOTIFY, an unrelated transaction open throughout"
            case .heldTenantAppend: "NOTIFY, one tenant's append open throughout (the other tenants timed)"
            case .readYourWrites: "NOTIFY, append + waitForProjection timed"
            }
        }
    }

    let baseURL: String
    /// With a pooler (`--pooler-url`), each variant is also measured four more times, direct,
    /// pooled, pooled, direct, each for half the duration, for the pooler's rows.
    let poolerURL: String?
    let settings: BenchSettings
    let logger: Logger

    /// What one measurement saw: the latencies of the timed events, the events appended, and how
    /// many of them never showed in time.
    struct Outcome: Mergeable {
        var latency: LatencyHistogram
        var appended: Int
        var unshown: Int

        mutating func merge(_ other: Outcome) {
            latency.merge(other.latency)
            appended += other.appended
            unshown += other.unshown
        }
    }

    func run(into report: inout BenchReport) async throws {
        for notify in [true, false] {
            let (latency, appended, unshown) = try await BenchDatabase.with(baseURL: baseURL, poolSize: 32, logger: logger) { database in
                try await measure(database: database, store: database.store, notify: notify, duration: settings.freshnessDuration)
            }
            let p50 = latency.milliseconds(atPercentile: 50) ?? .infinity
            let p99 = latency.milliseconds(atPercentile: 99) ?? .infinity
            report.add(BenchRow(
                workload: "6 freshness",
                variant: notify ? "\(settings.freshnessRate) ev/s, NOTIFY wake-ups" : "\(settings.freshnessRate) ev/s, polling only",
                unit: "ms p50", value: p50, p50Milliseconds: p50, p99Milliseconds: p99,
                target: notify ? "p50 <= 50, p99 <= 250" : nil, targetMet: notify ? p50 <= 50 && p99 <= 250 : nil,
                note: "\(latency.count) events timed of \(appended) appended; scheduler and 2 workers (\(settings.workerConcurrency) slots, \(settings.jobsPerTransaction) jobs per transaction) in the bench process"
                    + (notify ? "" : "; polls at the defaults: scheduler 20-500 ms, worker 1 s")
                    + (unshown > 0 ? "; \(unshown) events not shown 30 s after the load stopped, timed as waited so far (a lower bound): the fleet fell behind" : "")
            ))
            if notify {
                for disturbance in Disturbance.allCases where disturbance != .none {
                    try await measureDisturbed(disturbance, against: latency, into: &report)
                }
            }
            if let poolerURL {
                try await compareThroughPooler(poolerURL, notify: notify, into: &report)
            }
        }
    }

    /// The `NOTIFY` variant again with `disturbance`, against the undisturbed run's latencies.
    private func measureDisturbed(_ disturbance: Disturbance, against undisturbed: LatencyHistogram, into report: inout BenchReport) async throws {
        let (latency, appended, unshown) = try await BenchDatabase.with(baseURL: baseURL, poolSize: 32, logger: logger) { database in
            try await measure(database: database, store: database.store, notify: true, duration: settings.freshnessDuration, disturbance: disturbance)
        }
        let p50 = latency.milliseconds(atPercentile: 50) ?? .infinity
        let p99 = latency.milliseconds(atPercentile: 99) ?? .infinity
        let baseP50 = undisturbed.milliseconds(atPercentile: 50) ?? .infinity
        let baseP99 = undisturbed.milliseconds(atPercentile: 99) ?? .infinity
        report.add(BenchRow(
            workload: "6 freshness", variant: "\(settings.freshnessRate) ev/s, \(disturbance.variant)", unit: "ms p50",
            value: p50, baseline: baseP50, ratio: p50 / baseP50, p50Milliseconds: p50, p99Milliseconds: p99,
            baselineP50Milliseconds: baseP50, baselineP99Milliseconds: baseP99,
            target: "p50 and p99 <= 1.2x the NOTIFY run without it", targetMet: p50 <= 1.2 * baseP50 && p99 <= 1.2 * baseP99,
            note: "baseline: the NOTIFY row above (commit to row shown); \(latency.count) events timed of \(appended) appended"
                + (disturbance == .readYourWrites ? "; timed from the start of the append to the wait's return" : "")
                + (unshown > 0 ? "; \(unshown) events not shown 30 s after the load stopped" : "")
        ))
    }

    /// The same variant with the fleet and the writers on direct connections and through the pooler,
    /// each side twice for half the duration, each time in a schema of its own. The watcher reads the
    /// rows on direct connections on both sides: it observes, it is not measured.
    private func compareThroughPooler(_ poolerURL: String, notify: Bool, into report: inout BenchReport) async throws {
        let duration = settings.freshnessDuration / 2
        let (direct, pooled) = try await measureDirectAndPooled { _ in
            try await outcome(poolerURL: nil, notify: notify, duration: duration)
        } pooled: { _ in
            try await outcome(poolerURL: poolerURL, notify: notify, duration: duration)
        }
        let pooledP50 = pooled.latency.milliseconds(atPercentile: 50) ?? .infinity
        let directP50 = direct.latency.milliseconds(atPercentile: 50) ?? .infinity
        let unshown = direct.unshown + pooled.unshown
        let wakeUps = try Self.wakeUps(poolerURL)
        report.add(.pooler(
            workload: "6 freshness",
            variant: notify ? "\(settings.freshnessRate) ev/s, NOTIFY wake-ups" : "\(settings.freshnessRate) ev/s, polling only",
            unit: "ms p50", pooled: pooledP50, direct: directP50, latency: (pooled.latency, direct.latency),
            note: "baseline: the same fleet and writers on direct connections"
                + (notify ? "; through the pooler \(wakeUps)" : "")
                + "; \(pooled.latency.count) and \(direct.latency.count) events timed"
                + (unshown > 0 ? "; \(pooled.unshown) and \(direct.unshown) events not shown 30 s after the load stopped (the fleet fell behind)" : "")
        ))
    }

    /// How the fleet is woken through the pooler at `poolerURL`, for the note of the `NOTIFY` row.
    private static func wakeUps(_ poolerURL: String) throws -> String {
        let configuration = try DatabaseConfiguration(url: poolerURL)
        guard configuration.pooler == .transaction else { return "the fleet LISTENs on a pooled connection" }
        guard configuration.listenURL != nil else { return "the fleet polls (no listen_url)" }
        return "the fleet LISTENs on the direct listen_url; the appends NOTIFY through the pooler"
    }

    private func outcome(poolerURL: String?, notify: Bool, duration: Duration) async throws -> Outcome {
        let (latency, appended, unshown) = try await BenchDatabase.with(baseURL: baseURL, poolerURL: poolerURL, poolSize: 32, logger: logger) { database in
            // With a pooler URL the database has its pooled side.
            try await measure(database: database, store: database.pooled?.store ?? database.store, notify: notify, duration: duration)
        }
        return Outcome(latency: latency, appended: appended, unshown: unshown)
    }

    /// One event appended, waiting to show in its row.
    struct Pending: Sendable {
        var partition: String
        var streamId: String
        var version: Int64
        var committed: ContinuousClock.Instant
        var timed: Bool
    }

    /// - Parameter store: The store of the fleet and the writers: the database's direct one, or its
    ///   pooled one.
    private func measure(
        database: BenchDatabase, store chosen: PostgresEventStore, notify: Bool, duration: Duration, disturbance: Disturbance = .none
    ) async throws -> (LatencyHistogram, Int, Int) {
        try await CartsPreload(database: database).registerCartsProjection()
        let store = chosen.notifying(on: notify ? PostgresEventStore.Options.defaultNotifyChannel : nil)
        var schedulerConfiguration = FleetScheduler.Configuration()
        schedulerConfiguration.notifyChannel = notify ? PostgresEventStore.Options.defaultNotifyChannel : nil
        var quiet = logger
        quiet.logLevel = .error
        let scheduler = FleetScheduler(configuration: schedulerConfiguration, store: store, logger: quiet)
        var workerConfiguration = ProjectionWorker.Configuration()
        workerConfiguration.listenForJobs = notify
        workerConfiguration.concurrency = settings.workerConcurrency
        workerConfiguration.jobsPerTransaction = settings.jobsPerTransaction
        let registry = try CartsReadModel.registry()
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: scheduler)]
        for _ in 0..<2 {
            var configuration = workerConfiguration
            configuration.workerId = "bench-\(UUID().uuidString.prefix(8).lowercased())"
            services.append(.init(service: ProjectionWorker(configuration: configuration, store: store, registry: registry, logger: quiet)))
        }
        if disturbance == .readYourWrites { services.append(.init(service: ProjectionWaitListener(store: store))) }
        return try await withInProcessFleet(scheduler: scheduler, services: services, logger: quiet) {
            try await load(store: store, database: database, duration: duration, disturbance: disturbance)
        }
    }

    /// Appends at the configured rate over many streams while timing when each append shows.
    /// - Returns: The latencies, the events appended, and how many never showed in time.
    private func load(
        store: PostgresEventStore, database: BenchDatabase, duration: Duration, disturbance: Disturbance
    ) async throws -> (LatencyHistogram, Int, Int) {
        let pending = Locked<[Pending]>([])
        let appended = Locked(0)
        let latency = Locked(LatencyHistogram())
        let finished = Locked(false)
        let settings = self.settings
        let tenants = (1...4).map { "tenant-\($0)" }
        let run = UUID().uuidString.prefix(6).lowercased()
        let untimed = disturbance == .heldTenantAppend ? tenants[0] : nil
        let hold = try await HeldTransaction.begin(disturbance, database: database, store: store, tenant: tenants[0], logger: logger)
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await Self.watch(pending: pending, latency: latency, finished: finished, database: database)
                }
                try await withThrowingTaskGroup(of: Void.self) { writers in
                    let clock = ContinuousClock()
                    let started = clock.now
                    let timedFrom = started + settings.freshnessWarmup
                    let end = timedFrom + duration
                    let tick = Duration.milliseconds(10)
                    let perTick = max(1, settings.freshnessRate / 100)
                    var sequence = 0
                    var next = started
                    while next < end {
                        try await clock.sleep(until: next)
                        for _ in 0..<perTick {
                            let index = sequence
                            sequence += 1
                            writers.addTask {
                                let streamNumber = index % settings.freshnessStreams
                                let tenant = tenants[streamNumber % tenants.count]
                                let cartId = "\(run)-\(streamNumber)"
                                let event: CartEvent = index < settings.freshnessStreams
                                    ? .created(CartCreated(tenantId: tenant, cartId: cartId, currency: "EUR"))
                                    : .itemAdded(ItemAddedToCart(sku: "SKU-\(index % 5)", name: "Item", unitPrice: 100, quantity: 1))
                                let started = clock.now
                                let result = try await store.appendToStream(
                                    "cart-\(cartId)", events: [event], options: AppendOptions(partition: tenant, streamType: "cart")
                                )
                                appended.withLock { $0 += 1 }
                                if disturbance == .readYourWrites {
                                    try await store.waitForProjection("carts", token: result.token, timeout: .seconds(30))
                                    let shown = clock.now
                                    if started >= timedFrom { latency.withLock { $0.record(shown - started) } }
                                    return
                                }
                                let now = clock.now
                                pending.withLock {
                                    $0.append(Pending(
                                        partition: tenant, streamId: "cart-\(cartId)", version: result.nextExpectedVersion,
                                        committed: now, timed: now >= timedFrom && tenant != untimed
                                    ))
                                }
                            }
                        }
                        next += tick
                    }
                    try await writers.waitForAll()
                }
                // The held append commits now, and its tenant's events show after it.
                try await hold?.end()
                // Let the last appends show, then stop watching.
                let deadline = ContinuousClock.now + .seconds(30)
                while pending.withLock({ !$0.isEmpty }), ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(20))
                }
                finished.withLock { $0 = true }
                try await group.waitForAll()
            }
        } catch {
            await hold?.abandon()
            throw error
        }
        let now = ContinuousClock.now
        let unshown = pending.value
        latency.withLock { histogram in
            for item in unshown where item.timed { histogram.record(now - item.committed) }
        }
        return (latency.value, appended.value, unshown.count)
    }

    /// Every 5 ms, looks up the rows of the streams with pending events and times those now shown.
    static func watch(
        pending: Locked<[Pending]>, latency: Locked<LatencyHistogram>, finished: Locked<Bool>, database: BenchDatabase
    ) async throws {
        let clock = ContinuousClock()
        while !finished.value {
            try await clock.sleep(for: .milliseconds(5))
            let waiting = pending.value
            guard !waiting.isEmpty else { continue }
            var keys = Set<[String]>()
            for item in waiting { keys.insert([item.partition, item.streamId]) }
            let partitions = keys.map { $0[0] }
            let streams = keys.map { $0[1] }
            let query: PostgresQuery = """
                SELECT c.partition, c.stream_id, c.last_stream_position FROM \(database.names.carts) c
                  JOIN unnest(\(partitions)::text[], \(streams)::text[]) AS p(partition, stream_id)
                    ON c.partition = p.partition AND c.stream_id = p.stream_id
                """
            var positions: [[String]: Int64] = [:]
            for try await (partition, stream, position) in try await database.client.query(query, logger: database.logger)
                .decode((String, String, Int64).self)
            {
                positions[[partition, stream]] = position
            }
            let seen = clock.now
            let shown = pending.withLock { pending in
                var shown: [Pending] = []
                pending.removeAll { item in
                    guard let position = positions[[item.partition, item.streamId]], position >= item.version else { return false }
                    shown.append(item)
                    return true
                }
                return shown
            }
            latency.withLock { histogram in
                for item in shown where item.timed { histogram.record(seen - item.committed) }
            }
        }
    }
}

/// A transaction of workload 6's disturbances, open on a connection of its own while the load runs.
struct HeldTransaction: Sendable {
    let connection: PostgresConnection
    let logger: Logger

    /// Opens the transaction `disturbance` holds (`nil` for none): one that holds an xid on a table
    /// of its own, or one that has appended to `tenant` and not committed.
    static func begin(
        _ disturbance: FreshnessBenchmark.Disturbance, database: BenchDatabase, store: PostgresEventStore, tenant: String, logger: Logger
    ) async throws -> HeldTransaction? {
        guard disturbance == .unrelatedTransaction || disturbance == .heldTenantAppend else { return nil }
        if disturbance == .unrelatedTransaction {
            try await database.execute("CREATE TABLE \(database.names.bench_unrelated) (id integer)")
        }
        let connection = try await PostgresConnection.connect(
            configuration: try database.sandbox.configuration.connectionConfiguration(), id: 1, logger: logger
        )
        do {
            try await connection.query("BEGIN", logger: logger)
            if disturbance == .unrelatedTransaction {
                try await connection.query("INSERT INTO \(database.names.bench_unrelated) VALUES (1)", logger: logger)
            } else {
                try await store.appendToStream(
                    "cart-held", messages: [try ProposedMessage(CartEvent.created(CartCreated(tenantId: tenant, cartId: "held", currency: "EUR")))],
                    options: AppendOptions(partition: tenant, streamType: "cart"), connection: connection
                )
            }
        } catch {
            try? await connection.close()
            throw error
        }
        return HeldTransaction(connection: connection, logger: logger)
    }

    /// Commits and closes.
    func end() async throws {
        do {
            try await connection.query("COMMIT", logger: logger)
        } catch {
            try? await connection.close()
            throw error
        }
        try await connection.close()
    }

    /// Closes without committing, after a failure.
    func abandon() async {
        try? await connection.close()
    }
}
