import EventFleetCLI
import EventFleetJobs
import EventFleetPostgres
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A process of the soak, with the name its log file and the report use.
struct SoakProcess: Sendable {
    let name: String
    let process: ChildProcess

    var pid: Int32 { process.pid }
    var isRunning: Bool { process.isRunning }
    func signal(_ signal: Int32) { process.signal(signal) }
}

/// The processes of a soak: schedulers, workers and writers, started from this same executable.
actor ChaosFleet {
    struct Settings: Sendable {
        var executable: String
        var environment: [String: String]
        var directory: String
        var tenants: [String]
        var heartbeatTimeoutSeconds: Int
        var writerPauseMilliseconds: Int
        /// The workers' environment: their database URL (through the half-open proxy, when there
        /// is one) and the share of claim replies they drop.
        var workerEnvironment: [String: String]
    }

    let settings: Settings
    private(set) var schedulers: [SoakProcess] = []
    private(set) var workers: [SoakProcess] = []
    private(set) var writers: [SoakProcess] = []
    /// Workers that run only the carts projection, so that the other's jobs are never theirs.
    private(set) var partialWorkers: [SoakProcess] = []
    /// The second pool: workers of version 2 of carts, once the soak deployed it.
    private(set) var versionWorkers: [SoakProcess] = []
    /// How many workers the second pool keeps (0 until it is deployed).
    private var versionWorkerCount = 0
    /// How each process that ended before the drain ended, by name.
    private(set) var deaths: [(name: String, termination: ChildProcess.Termination)] = []
    /// Every process ever started, for the final report.
    private(set) var started = 0
    private var counters: [String: Int] = [:]

    init(settings: Settings) {
        self.settings = settings
    }

    private func nextName(_ kind: String) -> String {
        counters[kind, default: 0] += 1
        return "\(kind)-\(counters[kind]!)"
    }

    private func spawn(_ name: String, _ arguments: [String], environment: [String: String]? = nil) throws -> SoakProcess {
        started += 1
        let process = try ChildProcess(
            settings.executable, arguments: arguments, environment: environment ?? settings.environment,
            error: .file("\(settings.directory)/\(name).log")
        )
        return SoakProcess(name: name, process: process)
    }

    private static let workerArguments = [
        "worker", "--concurrency", "3", "--batch-size", "20", "--heartbeat-interval-ms", "500",
        "--poll-interval-ms", "200", "--drain-timeout", "5", "--idle-transaction-timeout-ms", "2000", "--retry-delay-ms", "200",
    ]

    @discardableResult
    func startScheduler() throws -> SoakProcess {
        let child = try spawn(nextName("scheduler"), [
            "scheduler", "--lease-seconds", "3", "--heartbeat-timeout", "\(settings.heartbeatTimeoutSeconds)", "--max-attempts", "5",
        ])
        schedulers.append(child)
        return child
    }

    @discardableResult
    func startWorker() throws -> SoakProcess {
        let child = try spawn(nextName("worker"), Self.workerArguments, environment: settings.workerEnvironment)
        workers.append(child)
        return child
    }

    /// A worker without the chaos_applications projection, as in a rolling deploy that adds one.
    @discardableResult
    func startPartialWorker() throws -> SoakProcess {
        let child = try spawn(nextName("partial-worker"), Self.workerArguments + ["--projections", "carts"], environment: settings.workerEnvironment)
        partialWorkers.append(child)
        return child
    }

    /// Deploys the second pool: `count` workers of carts version 2 beside the running ones, as a
    /// blue/green change of the read model does.
    func deployVersion2(workers count: Int) throws -> [SoakProcess] {
        versionWorkerCount = count
        return try (0..<count).map { _ in try startVersionWorker() }
    }

    private func startVersionWorker() throws -> SoakProcess {
        let child = try spawn(
            nextName("v2-worker"), Self.workerArguments + ["--projections", "carts", "--carts-version", "2"], environment: settings.workerEnvironment
        )
        versionWorkers.append(child)
        return child
    }

    @discardableResult
    func startWriter() throws -> SoakProcess {
        let name = nextName("writer")
        let child = try spawn(name, [
            "writer", "--tenants", settings.tenants.joined(separator: ","), "--writer-id", name,
            "--ack-log", ackLog(name), "--pause-ms", "\(settings.writerPauseMilliseconds)",
        ])
        writers.append(child)
        return child
    }

    nonisolated func ackLog(_ writer: String) -> String {
        "\(settings.directory)/acks-\(writer).log"
    }

    /// Every writer that was ever started, by name.
    var writerNames: [String] { writers.map(\.name) }

    func running(_ children: [SoakProcess]) -> [SoakProcess] { children.filter(\.isRunning) }
    /// Every worker ever started, of both pools.
    var allWorkers: [SoakProcess] { workers + partialWorkers + versionWorkers }
    var runningWorkers: [SoakProcess] { running(allWorkers) }
    var runningSchedulers: [SoakProcess] { running(schedulers) }
    var runningWriters: [SoakProcess] { running(writers) }

    /// Starts new processes for those that died, so the fleet keeps its size.
    func replaceDead(workers workerCount: Int, schedulers schedulerCount: Int, writers writerCount: Int) throws -> [String] {
        recordDeaths()
        var replaced: [String] = []
        while running(partialWorkers).isEmpty && workerCount > 0 { replaced.append(try startPartialWorker().name) }
        while running(workers).count < workerCount { replaced.append(try startWorker().name) }
        while running(versionWorkers).count < versionWorkerCount { replaced.append(try startVersionWorker().name) }
        while running(schedulers).count < schedulerCount { replaced.append(try startScheduler().name) }
        while running(writers).count < writerCount { replaced.append(try startWriter().name) }
        return replaced
    }

    /// Notes how the processes that ended meanwhile ended.
    func recordDeaths() {
        let recorded = Set(deaths.map(\.name))
        for child in schedulers + allWorkers + writers where !recorded.contains(child.name) {
            if let termination = child.process.termination { deaths.append((child.name, termination)) }
        }
    }

    /// The scheduler process holding the leader lease, if it is one of ours and alive.
    func leader(in database: Database) async throws -> SoakProcess? {
        guard let owner = try await database.query("find the leader", """
            SELECT owner FROM \(database.schema.ef_subscriptions)
             WHERE subscription_id = \(FleetScheduler.Configuration().name) AND lease_expires_at > now()
            """).first?.decode(String?.self) else { return nil }
        return running(schedulers).first { owner.contains("-\($0.pid)-") }
    }
}
