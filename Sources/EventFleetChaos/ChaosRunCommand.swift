import ArgumentParser
import CartsExample
import EventFleetCLI
import EventFleetCore
import EventFleetJobs
import EventFleetPostgres
import Foundation
import Logging
import PostgresNIO
import Synchronization

/// `eventfleet-chaos run`: the soak. Writers, two schedulers and N workers run in a schema of their
/// own while faults are injected at seeded random times; then the faults stop, the fleet drains and
/// every invariant is checked. Exits 1 when one does not hold.
struct ChaosRunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the soak: the fleet under faults, then the invariants (PASS/FAIL each)."
    )

    @OptionGroup var database: DatabaseOptions
    @Option(help: "How long to inject faults, in minutes.") var minutes: Double = 2
    @Option(help: "Seed of the fault schedule (default: from the clock; printed).") var seed: UInt64?
    @Option(help: "Tenants (partitions).") var tenants: Int = 4
    @Option(help: "Worker processes.") var workers: Int = 3
    @Option(help: "Command-writer processes.") var writers: Int = 3
    @Option(name: .customLong("restart-command"), help: "A shell command that restarts the database the hard way (scripts/chaos passes `scripts/postgres restart-immediate`).")
    var restartCommand: String?
    @Option(name: .customLong("restart-pooler-command"), help: "A shell command that restarts the connection pooler DATABASE_URL goes through (scripts/test passes `scripts/postgres restart-pooler` for its pooler phase).")
    var restartPoolerCommand: String?
    @Option(name: .customLong("heartbeat-timeout"), help: "Seconds without a heartbeat before a worker's jobs are rescued.") var heartbeatTimeout: Int = 3
    @Option(name: .customLong("writer-pause-ms"), help: "Pause between a writer's commands.") var writerPauseMilliseconds: Int = 20
    @Option(name: .customLong("work-dir"), help: "Where process logs and acknowledgement logs go.") var workDirectory: String = ".chaos"
    @Option(name: .customLong("half-open-proxy"), help: "The proxy the workers connect through, which the half-open fault silences (none: no such fault).")
    var halfOpenProxy: String = "scripts/half-open-proxy"
    @Option(name: .customLong("lost-claim-replies"), help: "The share of the workers' claims whose reply they drop.")
    var lostClaimReplies: Double = 0.02

    /// The application names of the fleet's processes, whose sessions a fault terminates.
    static let fleetApplicationNames = ["eventfleet.worker", "eventfleet.scheduler"]
    @Flag(help: "Keep the soak's schema afterwards (it is kept anyway when an invariant fails).") var keep = false

    func validate() throws {
        guard minutes > 0, tenants > 0, workers > 0, writers > 0, heartbeatTimeout > 0 else {
            throw ValidationError("--minutes, --tenants, --workers, --writers and --heartbeat-timeout must be positive")
        }
        guard (0..<1).contains(lostClaimReplies) else { throw ValidationError("--lost-claim-replies must be at least 0 and below 1") }
    }

    func run() async throws {
        let seed = self.seed ?? UInt64(Date().timeIntervalSince1970 * 1000)
        guard let baseURL = database.databaseURL ?? ProcessInfo.processInfo.environment["DATABASE_URL"] else {
            throw ValidationError("set --database-url or DATABASE_URL")
        }
        let logger = Logger(label: "eventfleet.chaos")
        let keep = self.keep
        let passed = try await SchemaSandbox.with(
            baseURL: baseURL, prefix: "chaos_\(seed)_", poolSize: 8, applicationName: "eventfleet-chaos", logger: logger,
            keep: { (result: Result<Bool, any Error>) in keep || (try? result.get()) != true }
        ) { sandbox -> Bool in
            let directory = "\(workDirectory)/\(sandbox.name)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            sayLine("chaos: seed \(seed), \(minutes) min, \(tenants) tenants, \(writers) writers, 2 schedulers, \(workers) workers; schema \(sandbox.name); logs in \(directory)")
            var environment = ProcessInfo.processInfo.environment
            environment["DATABASE_URL"] = sandbox.url
            environment["LOG_LEVEL"] = environment["CHAOS_LOG_LEVEL"] ?? "warning"
            let tenantNames = (1...tenants).map { "t\($0)" }
            // The workers reach the database through the half-open proxy, when there is one.
            var workerEnvironment = environment
            workerEnvironment[ChaosCommand.lostClaimRepliesVariable] = String(lostClaimReplies)
            var proxy: ChildProcess?
            if FileManager.default.isExecutableFile(atPath: halfOpenProxy) {
                let configuration = try DatabaseConfiguration(url: sandbox.url)
                let started = try ChildProcess(
                    halfOpenProxy, arguments: [configuration.host, String(configuration.port)], environment: environment, output: .lines,
                    error: .file("\(directory)/proxy.log")
                )
                proxy = started
                guard let port = await started.readLine()?.split(separator: " ").last, var url = URLComponents(string: sandbox.url) else {
                    throw ValidationError("\(halfOpenProxy) did not say where it listens")
                }
                url.port = Int(port)
                workerEnvironment["DATABASE_URL"] = url.string
            }
            defer { proxy?.signal(SIGTERM) }
            let soak = ChaosSoak(
                store: sandbox.store, tenants: tenantNames, workerCount: workers, writerCount: writers,
                duration: .milliseconds(Int64(minutes * 60_000)), seed: seed, heartbeatTimeout: .seconds(heartbeatTimeout),
                restartCommand: restartCommand, restartPoolerCommand: restartPoolerCommand, directory: directory, proxy: proxy,
                lostClaimReplies: lostClaimReplies,
                fleet: ChaosFleet(settings: .init(
                    executable: ChildProcess.currentExecutable, environment: environment, directory: directory, tenants: tenantNames,
                    heartbeatTimeoutSeconds: heartbeatTimeout, writerPauseMilliseconds: writerPauseMilliseconds,
                    workerEnvironment: workerEnvironment
                )),
                logger: logger
            )
            let passed = try await soak.run()
            if passed && !keep {
                try? FileManager.default.removeItem(atPath: directory)
            } else {
                sayLine("schema \(sandbox.name) kept for inspection")
            }
            return passed
        }
        guard passed else { throw ExitCode(1) }
    }
}

/// One soak: set-up, faults, drain, invariants.
struct ChaosSoak: Sendable {
    let store: PostgresEventStore
    let tenants: [String]
    let workerCount: Int
    let writerCount: Int
    let duration: Duration
    let seed: UInt64
    let heartbeatTimeout: Duration
    let restartCommand: String?
    let restartPoolerCommand: String?
    let directory: String
    let proxy: ChildProcess?
    let lostClaimReplies: Double
    let fleet: ChaosFleet
    let logger: Logger
    private var database: Database { store.database }
    /// The schedulers' lease (`--lease-seconds` of ChaosFleet.startScheduler).
    static let leaseDuration: Duration = .seconds(3)
    /// When the second pool deploys carts version 2, as a share of the soak: late enough that it
    /// has a history to build, early enough that the build's faults hit it mid-way.
    static let version2DeployedAt = 0.3
    static let version2Workers = 2

    func run() async throws -> Bool {
        try await prepare()
        let started = ContinuousClock.now
        let record = FaultRecord()
        let injector = ChaosInjector(
            fleet: fleet, store: store, tenants: tenants, heartbeatTimeout: heartbeatTimeout,
            restartCommand: restartCommand, restartPoolerCommand: restartPoolerCommand, directory: directory, started: started, leaseDuration: Self.leaseDuration, proxy: proxy,
            record: record, logger: logger
        )
        for _ in 0..<2 { try await fleet.startScheduler() }
        for _ in 0..<workerCount { try await fleet.startWorker() }
        try await fleet.startPartialWorker()
        for _ in 0..<writerCount { try await fleet.startWriter() }

        let caps = CapSampler(database: database)
        let injected: [ChaosFault: Int] = try await withThrowingTaskGroup(of: [ChaosFault: Int]?.self) { group in
            group.addTask {
                await caps.run()
                return nil
            }
            group.addTask {
                while !Task.isCancelled {
                    try await Task.sleep(for: .seconds(15))
                    await progress(injector)
                }
                return nil
            }
            let injected = try await injectFaults(injector, until: started + duration)
            group.cancelAll()
            return injected
        }

        // How the processes that ended so far ended; from here on the soak stops them itself.
        await fleet.recordDeaths()
        let deaths = await fleet.deaths
        injector.say("faults stop; writers stop; the fleet drains")
        for writer in await fleet.writers { await writer.process.stop(grace: .seconds(5)) }
        for child in await fleet.allWorkers + fleet.schedulers { child.signal(SIGCONT) }
        let replaced = try await fleet.replaceDead(workers: workerCount, schedulers: 2, writers: 0)
        if !replaced.isEmpty { injector.say("replaced dead processes: \(replaced.joined(separator: ", "))") }
        let drained = try await waitForDrain(injector)
        let promotion = await promoteVersion2(injector)
        var exits: [(String, ChildProcess.Termination?)] = []
        for child in await fleet.runningWorkers + fleet.runningSchedulers {
            exits.append((child.name, await child.process.stop(grace: .seconds(20))))
        }
        let elapsed = ContinuousClock.now - started

        let invariants = ChaosInvariants(store: store)
        var results: [InvariantResult] = []
        results.append(InvariantResult(
            name: "the fleet drained (scheduler caught up, no job ready or running)",
            held: drained, detail: drained ? "" : "still busy after the drain timeout"
        ))
        results.append(try await invariants.cartsRowsMatchStreams(version: 1))
        results.append(try await invariants.promotedVersionMatchesStreams(promotion))
        results.append(try await invariants.everyEventAppliedOnce())
        results.append(try await invariants.acknowledgedInStore(ackLogs: await fleet.writerNames.map { fleet.ackLog($0) }))
        results.append(try await invariants.jobsSettled())
        results.append(try await invariants.backfillsFinished())
        results.append(caps.result())
        results.append(caps.tenantsResult())
        let takeovers = record.takeoverTimes
        let slowest = takeovers.max() ?? .zero
        results.append(InvariantResult(
            name: "a standby led within the lease plus 5 s after the leader froze",
            held: slowest <= Self.leaseDuration + .seconds(5),
            detail: takeovers.isEmpty ? "the leader never froze" : "\(takeovers.count) freezes; slowest takeover \(slowest)"
        ))
        for fault in [ChaosFault.unrelatedTransaction, .heldAppend] {
            let probes = record.probeResults.filter { $0.fault == fault }
            let missed = probes.filter { $0.shownAfter == nil }
            let slowest = probes.compactMap(\.shownAfter).max()
            results.append(InvariantResult(
                name: fault == .heldAppend
                    ? "while a tenant's append was held open, a new cart of another tenant was projected"
                    : "while a transaction that does not append was held open, a new cart was projected",
                held: missed.isEmpty,
                detail: probes.isEmpty
                    ? "not injected"
                    : "\(probes.count) holds" + (slowest.map { "; slowest \($0)" } ?? "")
                        + (missed.isEmpty ? "" : "; not within \(ChaosInjector.probeTimeout) in \(missed.map(\.tenant).joined(separator: ", "))")
            ))
        }
        let crashes = deaths.filter { $0.termination != .signalled(SIGKILL) && $0.termination != .exited(0) }
        results.append(InvariantResult(
            name: "no process crashed while the faults ran: every one that ended was the soak's kill -9",
            held: crashes.isEmpty,
            detail: crashes.isEmpty ? "\(deaths.count) killed" : crashes.map { "\($0.name) \($0.termination)" }.joined(separator: ", ")
        ))
        let unclean = exits.filter { $0.1 != .exited(0) }
        results.append(InvariantResult(
            name: "every process still up at the end shut down cleanly on SIGTERM",
            held: unclean.isEmpty,
            detail: unclean.isEmpty ? "\(exits.count) processes exited 0" : unclean.map { "\($0.0) \($0.1.map(String.init(describing:)) ?? "did not stop")" }.joined(separator: ", ")
        ))

        let events = try await database.value("count events", "SELECT count(*) FROM \(database.schema.ef_messages)", as: Int64.self)
        sayLine("")
        sayLine("faults injected (\(injected.values.reduce(0, +))):")
        for fault in ChaosFault.allCases where fault != .restartPooler || restartPoolerCommand != nil {
            sayLine("  \(injected[fault, default: 0])× \(fault.rawValue)")
        }
        sayLine("  throughout: a worker without the chaos_applications projection; workers drop \(lostClaimReplies * 100)% of claim replies")
        sayLine("  from \(Int(Self.version2DeployedAt * 100))% of the soak: a second pool of \(Self.version2Workers) workers builds carts version 2, promoted after the drain")
        sayLine("processes started: \(await fleet.started); events written: \(events); elapsed \(elapsed.formatted(.units(allowed: [.minutes, .seconds], width: .narrow)))")
        sayLine("invariants:")
        for result in results {
            sayLine("  \(result.held ? "PASS" : "FAIL")  \(result.name)\(result.detail.isEmpty ? "" : ": \(result.detail)")")
        }
        let passed = results.allSatisfy(\.held)
        sayLine(passed ? "chaos: all invariants held (seed \(seed))" : "chaos: INVARIANTS FAILED (seed \(seed); logs in \(directory))")
        return passed
    }

    /// Tables, the soak's projection tables, and per-tenant caps to check.
    private func prepare() async throws {
        try await CartsReadModel.migrate(store: store, logger: logger)
        for statement in EventApplications.tables(in: database.schema).components(separatedBy: ";") {
            try await database.query("create the soak's tables", PostgresQuery(unsafeSQL: statement))
        }
        // What an unrelated long transaction writes: a table no projection reads.
        try await database.query("create the unrelated table", "CREATE TABLE IF NOT EXISTS \(database.schema.chaos_unrelated) (at timestamptz NOT NULL)")
        let queue = JobQueue(store: store)
        for tenant in tenants {
            try await queue.setQuota(partition: tenant, lane: .live, maxRunning: 2, weight: nil, paused: nil)
            try await queue.setQuota(partition: tenant, lane: .backfill, maxRunning: 1, weight: nil, paused: nil)
        }
    }

    /// Faults one after another, in a seeded random order (each kind once per round), with
    /// seeded random pauses; dead processes are replaced after each.
    private func injectFaults(_ injector: ChaosInjector, until deadline: ContinuousClock.Instant) async throws -> [ChaosFault: Int] {
        var random = SplitMix64(seed: seed)
        var injected: [ChaosFault: Int] = [:]
        var round: [ChaosFault] = []
        var poisoned = false
        var buildFaults: [ChaosFault]?
        let deployAt = deadline - duration * (1 - Self.version2DeployedAt)
        // A little traffic first, so the first faults hit work in progress.
        try await Task.sleep(for: .seconds(3))
        while ContinuousClock.now < deadline {
            if buildFaults == nil, ContinuousClock.now >= deployAt {
                try await deployVersion2(injector)
                buildFaults = ChaosFault.ofVersionBuild
            }
            if round.isEmpty {
                round = ChaosFault.allCases
                    .filter { ($0 != .poisonStream || !poisoned) && ($0 != .restartPooler || restartPoolerCommand != nil) }
                    .filter { !ChaosFault.ofVersionBuild.contains($0) }
                    .shuffled(using: &random)
            }
            // The build's faults come first once its pool is deployed, while it is still building.
            let fault = buildFaults?.isEmpty == false ? buildFaults!.removeFirst() : round.removeFirst()
            if await injector.inject(fault, random: &random) {
                injected[fault, default: 0] += 1
                if fault == .poisonStream { poisoned = true }
            }
            try await Task.sleep(for: .milliseconds(Int64.random(in: 300...2_500, using: &random)))
            let replaced = try await fleet.replaceDead(workers: workerCount, schedulers: 2, writers: writerCount)
            if !replaced.isEmpty { injector.say("       started \(replaced.joined(separator: ", "))") }
            try await Task.sleep(for: .milliseconds(Int64.random(in: 500...3_000, using: &random)))
        }
        if !poisoned, await injector.inject(.poisonStream, random: &random) { injected[.poisonStream, default: 0] += 1 }
        if buildFaults == nil { try await deployVersion2(injector) }
        return injected
    }

    private func deployVersion2(_ injector: ChaosInjector) async throws {
        let pool = try await fleet.deployVersion2(workers: Self.version2Workers)
        injector.say("a second pool deploys carts version 2: \(pool.map(\.name).joined(separator: ", "))")
        // The build's faults are to hit it mid-way: wait until the pool registered it and built
        // its first rows.
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            let version = try? await JobQueue(store: store).projectionVersions(of: "carts").first { $0.version == 2 }
            if let version, (version.streamsDone ?? 0) > 0 || version.state != .building {
                injector.say("       carts version 2 is \(version.state): \(version.streamsDone ?? 0) of \(version.streams ?? 0) streams")
                return
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        injector.say("       carts version 2 has built no row within 20 s")
    }

    /// Promotes carts version 2 once the fleet drained, without force: its build under faults must
    /// have caught up with version 1 by then. The switch's result, or why it was refused.
    private func promoteVersion2(_ injector: ChaosInjector) async -> Result<ProjectionVersionSwitch, any Error> {
        do {
            let switched = try await JobQueue(store: store).promote("carts", version: 2, timeout: .seconds(60))
            injector.say("promoted carts version 2 (was \(switched.from.map(String.init) ?? "none"))")
            return .success(switched)
        } catch {
            injector.say("promoting carts version 2 failed: \(error)")
            return .failure(error)
        }
    }

    /// Waits until the scheduler has scheduled every event and no job is ready or running (the
    /// poison stream's has used its attempts up and is dead), twice in a row. A longer soak leaves a longer backlog of backfill jobs (one
    /// running per tenant at a time), so it gets as long as the faults ran, at least 5 minutes.
    private func waitForDrain(_ injector: ChaosInjector) async throws -> Bool {
        let deadline = ContinuousClock.now + max(.seconds(300), duration)
        var quietChecks = 0
        while ContinuousClock.now < deadline {
            try await Task.sleep(for: .seconds(1))
            let schema = database.schema
            let busy: Bool
            do {
                let pending = try await database.value("check the drain", """
                    SELECT count(*) FROM \(schema.ef_jobs) WHERE state IN ('ready', 'running')
                    """, as: Int64.self)
                // Caught up: the scheduler's stored checkpoint covers the log's head, its held
                // partitions included.
                let stored = try await database.query("read the scheduler's checkpoint", """
                    SELECT log_position, log_held_keys, log_held_positions FROM \(schema.ef_subscriptions)
                     WHERE subscription_id = \(FleetScheduler.Configuration().name) AND log_position IS NOT NULL
                     ORDER BY updated DESC LIMIT 1
                    """).first?.decode((Int64, [Int32], [Int64]).self)
                var caughtUp = false
                if let (position, keys, positions) = stored {
                    let checkpoint = GlobalCheckpoint(position: position, held: zip(keys, positions).map { GlobalCheckpoint.HeldPartition(key: $0, position: $1) })
                    caughtUp = try await store.covers(checkpoint, head: store.globalLogHead() ?? 0, scope: .all, types: nil)
                }
                busy = pending > 0 || !caughtUp
            } catch {
                continue
            }
            quietChecks = busy ? 0 : quietChecks + 1
            if quietChecks >= 2 {
                injector.say("drained")
                return true
            }
        }
        return false
    }

    private func progress(_ injector: ChaosInjector) async {
        let schema = database.schema
        do {
            for row in try await database.query("report progress", """
                SELECT (SELECT count(*) FROM \(schema.ef_messages)), (SELECT count(*) FROM \(schema.ef_jobs) WHERE state = 'ready'),
                       (SELECT count(*) FROM \(schema.ef_jobs) WHERE state = 'running'), (SELECT count(*) FROM \(schema.ef_jobs) WHERE state = 'dead')
                """) {
                let (events, ready, running, dead) = try row.decode((Int64, Int64, Int64, Int64).self)
                injector.say("progress: \(events) events, jobs ready \(ready) running \(running) dead \(dead)")
            }
        } catch where !(error is CancellationError) {
            injector.say("progress: database unavailable (\(error))")
        } catch {}
    }
}

/// Samples running jobs per tenant and lane against their caps, until cancelled.
final class CapSampler: Sendable {
    private struct State {
        var samples = 0
        var violations: [String] = []
        var highest: [String: Int64] = [:]
        var failures = 0
        var lastError: String?
        /// The longest any tenant's due live job waited, and whose.
        var longestWait: (seconds: Double, tenant: String) = (0, "")
    }

    /// A tenant whose due live job waits longer than this is blocked.
    static let blockedAfter: Double = 60

    private let database: Database
    private let state = Mutex(State())

    init(database: Database) {
        self.database = database
    }

    func run() async {
        let schema = database.schema
        let query: PostgresQuery = """
            SELECT q.partition, q.lane, q.max_running, count(j.id)
              FROM \(schema.ef_tenant_quotas) q
              LEFT JOIN \(schema.ef_jobs) j ON j.partition = q.partition AND j.lane = q.lane AND j.state = 'running'
             GROUP BY q.partition, q.lane, q.max_running
            """
        let waits: PostgresQuery = """
            SELECT j.partition, extract(epoch FROM now() - min(j.run_at))::float8
              FROM \(schema.ef_jobs) j
              JOIN \(schema.ef_tenant_quotas) q ON q.partition = j.partition AND q.lane = j.lane AND NOT q.paused
             WHERE j.state = 'ready' AND j.lane = 'live' AND j.run_at <= now()
               AND NOT (j.projection = 'carts' AND j.stream_id = \(ChaosInjector.poisonStream))
             GROUP BY j.partition
            """
        while !Task.isCancelled {
            do {
                let waited = try await database.query("sample waiting jobs", waits).map { try $0.decode((String, Double).self) }
                state.withLock { state in
                    for (tenant, seconds) in waited where seconds > state.longestWait.seconds { state.longestWait = (seconds, tenant) }
                }
                let rows = try await database.query("sample running jobs", query).map { try $0.decode((String, String, Int32, Int64).self) }
                state.withLock { state in
                    state.samples += 1
                    for (partition, lane, cap, running) in rows {
                        let key = "\(partition)/\(lane)"
                        state.highest[key] = max(state.highest[key] ?? 0, running)
                        if running > Int64(cap) { state.violations.append("\(key): \(running) running, cap \(cap)") }
                    }
                }
            } catch {
                // The database is restarting: no sample.
                state.withLock { state in
                    state.failures += 1
                    state.lastError = String(String(reflecting: error).prefix(120))
                }
            }
            try? await Task.sleep(for: .milliseconds(200))
        }
    }

    /// No tenant's due live job waited past ``blockedAfter``.
    func tenantsResult() -> InvariantResult {
        state.withLock { state in
            InvariantResult(
                name: "no tenant blocked: no due live job waited \(Int(Self.blockedAfter)) s (sampled every 200 ms)",
                held: state.longestWait.seconds <= Self.blockedAfter,
                detail: String(format: "longest wait %.1f s%@", state.longestWait.seconds, state.longestWait.tenant.isEmpty ? "" : " (\(state.longestWait.tenant))")
            )
        }
    }

    func result() -> InvariantResult {
        state.withLock { state in
            let highest = state.highest.sorted { $0.key < $1.key }.map { "\($0.key) ≤ \($0.value)" }.joined(separator: ", ")
            return InvariantResult(
                name: "tenant caps never exceeded (sampled every 200 ms)",
                held: state.violations.isEmpty && state.samples > 0,
                detail: "\(state.samples) samples (\(state.failures) failed\(state.lastError.map { ", last: \($0)" } ?? "")); highest running: \(highest)"
                    + (state.violations.isEmpty ? "" : "; violations: \(state.violations.prefix(5).joined(separator: "; "))")
            )
        }
    }
}
