import EventFleetDashboard
import EventFleetJobs
import Foundation
import Hummingbird
import Logging
import PostgresNIO

/// Workload 11: the dashboard's pages with 1,000 tenants after a million jobs have passed through
/// the queue, against the raw read of the fleet's status that feeds them; and the claim latency
/// while a dashboard reads the fleet every 100 ms, against the same claims without it.
struct DashboardBenchmark: Sendable {
    let database: BenchDatabase
    let settings: BenchSettings
    static let tenants = (0..<1_000).map { String(format: "tenant-%04d", $0) }
    /// Ready jobs of each tenant, and of the one tenant with a deep backlog.
    static let readyPerTenant = 100
    static let deepBacklog = 200_000
    /// The pages timed, as an operator opens them.
    static let pages = [
        "/", "/tenants", "/tenants?sort=ready", "/tenants?q=tenant-09", "/tenants/tenant-0500", "/workers", "/projections",
        "/dead", "/dead?error=poison", "/audit",
    ]
    /// The refresh interval of the dashboard whose reads the claims are measured beside.
    static let refresh = Duration.milliseconds(100)

    func run(into report: inout BenchReport) async throws {
        let rows = try await withClaimersAndScheduler(database, claimers: ["bench-history", "bench-claimer"]) {
            let pushed = try await pushHistory()
            try await seedBacklog()
            var rows = try await timePages(pushed: pushed)
            rows.append(try await claimCost())
            return rows
        }
        for row in rows { report.add(row) }
    }

    /// Enqueues, claims and completes `historyJobs` jobs over the 1,000 tenants, as workload 7 does.
    private func pushHistory() async throws -> Int {
        try await database.execute("""
            INSERT INTO \(database.names.ef_tenant_quotas) (partition, lane, max_running, weight, paused)
            SELECT t, 'live', 100000, 1, false FROM unnest(\(Self.tenants)::text[]) t
            """)
        let queue = JobQueue(store: database.store, logger: database.logger)
        let burner = JobBurner(store: database.store, worker: "bench-history", logger: database.logger)
        let clock = ContinuousClock()
        let started = clock.now
        var pushed = 0
        while pushed < settings.historyJobs, clock.now - started < settings.historyTimeLimit {
            let count = min(10_000, settings.historyJobs - pushed)
            let requests = (0..<count).map { index in
                JobRequest(projection: QueueBenchmark.projection, partition: Self.tenants[(pushed + index) % Self.tenants.count], streamId: "h-\(pushed + index)")
            }
            for chunk in stride(from: 0, to: requests.count, by: 5_000) {
                try await queue.enqueue(Array(requests[chunk..<min(chunk + 5_000, requests.count)]), notify: false)
            }
            _ = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<4 { group.addTask { try await burner.burn(mode: .library, batch: 100) } }
                return try await group.reduce(0, +)
            }
            // The burner's completions reach the per-minute counts as a worker's heartbeat flushes them.
            var counts = JobCounts()
            for (index, tenant) in Self.tenants.enumerated() {
                counts.completed[tenant] = [.live: Int64(count / Self.tenants.count + (index < count % Self.tenants.count ? 1 : 0))]
            }
            _ = try await queue.heartbeat(worker: "bench-history", draining: false, counts: counts)
            pushed += count
        }
        return pushed
    }

    /// A backlog as a busy fleet has one: ready jobs in every tenant, one tenant far behind, and a
    /// dead job in every tenant with its error.
    private func seedBacklog() async throws {
        let queue = JobQueue(store: database.store, logger: database.logger)
        var requests = Self.tenants.flatMap { tenant in (0..<Self.readyPerTenant).map { JobRequest(projection: QueueBenchmark.projection, partition: tenant, streamId: "r-\($0)") } }
        requests += (0..<Self.deepBacklog).map { JobRequest(projection: QueueBenchmark.projection, partition: Self.tenants[0], streamId: "deep-\($0)") }
        for chunk in stride(from: 0, to: requests.count, by: 5_000) {
            try await queue.enqueue(Array(requests[chunk..<min(chunk + 5_000, requests.count)]), notify: false)
        }
        try await queue.enqueue(Self.tenants.map { JobRequest(projection: "bench-dead", partition: $0, streamId: "poison", lane: .backfill, maxAttempts: 1) }, notify: false)
        try await queue.register(WorkerRegistration(
            id: "bench-poison", host: ProcessInfo.processInfo.hostName, pid: ProcessInfo.processInfo.processIdentifier,
            lanes: [.backfill], partitions: nil, slots: 1_000
        ))
        while true {
            let jobs = try await queue.claim(worker: "bench-poison", lanes: [.backfill], partitions: nil, slots: 1_000)
            if jobs.isEmpty { break }
            for job in jobs { _ = try await queue.fail(job, worker: "bench-poison", error: "poison: cannot decode event 7", retryDelay: .zero) }
        }
        try await database.execute("VACUUM ANALYZE \(database.names.ef_jobs)")
    }

    /// Each page's time while the dashboard's service keeps its read of the fleet current, against
    /// the raw read of `ef_fleet_status` alone.
    private func timePages(pushed: Int) async throws -> [BenchRow] {
        let samples = settings.dashboardSamples
        var raw = LatencyHistogram()
        let clock = ContinuousClock()
        for _ in 0..<samples {
            let before = clock.now
            try await database.execute("SELECT \(database.names.ef_fleet_status)(\(FleetScheduler.Configuration().name))::text")
            raw.record(clock.now - before)
        }
        // As `eventfleet dashboard` runs it: its service reads the fleet every refresh interval
        // (the default), and a page renders the last read.
        let router = Router(context: PageContext.self)
        let dashboard = Dashboard(store: database.store)
        dashboard.addRoutes(to: router)
        let responder = router.buildResponder()
        let logger = database.logger
        let timings = try await withThrowingTaskGroup(of: [(String, LatencyHistogram)]?.self) { group in
            group.addTask {
                try? await dashboard.run()
                return nil
            }
            defer { group.cancelAll() }
            func request(_ page: String) -> Request {
                Request(head: HTTPRequest(method: .get, scheme: "http", authority: "bench", path: page), body: RequestBody(buffer: ByteBuffer()))
            }
            // The first page after the start waits for the first read; every later one renders the
            // last read.
            _ = try await responder.respond(to: request("/"), context: PageContext(source: .init(logger: logger)))
            var timings: [(String, LatencyHistogram)] = []
            for page in Self.pages {
                var latency = LatencyHistogram()
                for _ in 0..<samples {
                    try await Task.sleep(for: .milliseconds(50))
                    let before = clock.now
                    let response = try await responder.respond(to: request(page), context: PageContext(source: .init(logger: logger)))
                    latency.record(clock.now - before)
                    guard response.status == .ok else {
                        throw BenchError.verificationFailed(workload: "11 dashboard", reason: "\(page) answered \(response.status)")
                    }
                }
                timings.append((page, latency))
            }
            return timings
        }
        let rawP99 = raw.milliseconds(atPercentile: 99) ?? 0
        return timings.map { page, latency in
            let p99 = latency.milliseconds(atPercentile: 99) ?? 0
            return BenchRow(
                workload: "11 dashboard", variant: "page \(page)", unit: "ms",
                value: p99, baseline: rawP99, ratio: rawP99 > 0 ? p99 / rawP99 : nil,
                p50Milliseconds: latency.milliseconds(atPercentile: 50), p99Milliseconds: p99,
                baselineP50Milliseconds: raw.milliseconds(atPercentile: 50), baselineP99Milliseconds: rawP99,
                target: "p99 <= 100 ms", targetMet: p99 <= 100,
                note: "1,000 tenants, \(Self.readyPerTenant) ready each and \(Self.deepBacklog) in one, 1,000 dead, after \(pushed) jobs; "
                    + "the dashboard's service reads the fleet every 2 s and pages render its last read (timed from the second page on); "
                    + "baseline: SELECT ef_fleet_status alone, which each page waited for before"
            )
        }
    }

    /// Claim latency by one claimer, without and then with a dashboard reading the fleet every
    /// 100 ms (twenty times its default rate).
    private func claimCost() async throws -> BenchRow {
        let alone = try await claimLatency()
        let dashboard = Dashboard(store: database.store, configuration: Dashboard.Configuration(refreshInterval: Self.refresh))
        let read = try await withThrowingTaskGroup(of: LatencyHistogram?.self) { group in
            group.addTask {
                try? await dashboard.run()
                return nil
            }
            let latency = try await claimLatency()
            group.cancelAll()
            return latency
        }
        let (aloneP99, readP99) = (alone.milliseconds(atPercentile: 99) ?? 0, read.milliseconds(atPercentile: 99) ?? 0)
        return BenchRow(
            workload: "11 dashboard", variant: "claim p99 while it reads every 100 ms", unit: "ms",
            value: readP99, baseline: aloneP99, ratio: aloneP99 > 0 ? readP99 / aloneP99 : nil,
            p50Milliseconds: read.milliseconds(atPercentile: 50), p99Milliseconds: readP99,
            baselineP50Milliseconds: alone.milliseconds(atPercentile: 50), baselineP99Milliseconds: aloneP99,
            note: "baseline: the same claims with no dashboard; the backlog above, one claimer claiming and completing one job at a time"
        )
    }

    /// Times `claimSamples` claims of one job each from the backlog, completing each in turn.
    private func claimLatency() async throws -> LatencyHistogram {
        let queue = JobQueue(store: database.store, logger: database.logger)
        let clock = ContinuousClock()
        var latency = LatencyHistogram()
        for _ in 0..<settings.claimSamples {
            let before = clock.now
            guard let job = try await queue.claim(worker: "bench-claimer", lanes: [.live], partitions: nil, slots: 1).first else { break }
            latency.record(clock.now - before)
            try await queue.complete(job, worker: "bench-claimer")
        }
        return latency
    }
}

/// The context of the pages the bench requests straight from the dashboard's router: a page's time
/// is its reads and its rendering, with no network between.
struct PageContext: RequestContext {
    struct Source: RequestContextSource {
        let logger: Logger
    }

    var coreContext: CoreRequestContextStorage

    init(source: Source) {
        coreContext = CoreRequestContextStorage(source: source)
    }
}
