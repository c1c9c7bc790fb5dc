import EventFleetCore
import EventFleetPostgres
import EventFleetProjections
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// Claims projection jobs and runs the projection runner for each, as many at a time as it has slots.
///
/// Run as many workers on as many machines as you like: they coordinate through the job table only.
///
/// > Important: Every batch of a job is written in a transaction that first re-checks the claim
/// > (owner and fencing token) and locks the job row, and the job's completion commits with its last
/// > batch. A worker whose jobs were rescued (it stopped heartbeating) therefore commits nothing
/// > more for them. On graceful shutdown it stops claiming, lets in-flight jobs finish within
/// > ``Configuration/drainTimeout``, hands the rest back, and deregisters.
public final class ProjectionWorker: Service, ReadinessReporting, Sendable {
    /// Settings of a worker.
    public struct Configuration: Sendable {
        /// Jobs run at the same time.
        public var concurrency: Int = 64
        /// Jobs of one projection that share a transaction: their streams are read, folded and
        /// written together, and they complete together. One is the classic job-per-transaction
        /// worker; larger groups cut the statements per job several times over.
        ///
        /// The worker runs at most ``maxTransactions`` such transactions at a time (so holds about
        /// that many connections): when all are busy, jobs that become ready wait a moment and are
        /// then claimed and projected together, which keeps a busy worker batching.
        public var jobsPerTransaction: Int = 32
        public var lanes: [JobLane] = JobLane.allCases
        /// Tenants this worker is dedicated to; `nil` for all.
        public var partitions: [String]? = nil
        /// How long in-flight jobs may run on after SIGTERM before they are handed back.
        public var drainTimeout: Duration = .seconds(30)
        public var heartbeatInterval: Duration = .seconds(2)
        /// How often to look for jobs when no notification comes.
        public var pollInterval: Duration = .seconds(1)
        /// Events per projection transaction.
        public var batchSize: Int = 500
        /// Delay before a failed job runs again (jittered, growing with its attempts).
        public var retryBackoff: RetryPolicy = RetryPolicy(maxRetries: .max, initialDelay: .seconds(1), maxDelay: .seconds(60))
        /// The server ends a job transaction left idle this long (a frozen worker), freeing the job.
        public var idleTransactionTimeout: Duration = .seconds(10)
        /// Wake up on `NOTIFY` from the scheduler instead of waiting for the next poll.
        public var listenForJobs: Bool = true
        public var workerId: String = "\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString.prefix(8).lowercased())"

        public init() {}

        /// Job transactions at the same time: `concurrency / jobsPerTransaction` rounded up, and at
        /// least two (so that one long stream, projected batch after batch, does not hold up all
        /// other work), but never more than `concurrency`.
        public var maxTransactions: Int {
            min(concurrency, max(2, (concurrency + jobsPerTransaction - 1) / max(1, jobsPerTransaction)))
        }
    }

    struct State {
        var inFlight: [Int64: Job] = [:]
        /// Tasks running job transactions.
        var transactions = 0
        var counts = JobCounts()
        var registered = false
        var stopped = false
        /// When the registration or a heartbeat last went through.
        var lastHeartbeat: ContinuousClock.Instant?

        /// Frees a job's slot, unless the slot now holds a newer claim of the same job (a job
        /// requeued when it completed can be claimed again while its old group still runs).
        mutating func release(_ job: Job) {
            if inFlight[job.id]?.fencingToken == job.fencingToken { inFlight[job.id] = nil }
        }
    }

    public let configuration: Configuration
    public let store: PostgresEventStore
    public let queue: JobQueue
    /// The stream projections it runs, by version key (``ProjectionVersionKey``), as its jobs name them.
    let projections: [String: any StreamProjection]
    let logger: Logger
    let state = Mutex(State())
    let wakeup = Wakeup()
    let metrics = JobMetrics()

    /// - Parameters:
    ///   - configuration: Worker settings.
    ///   - store: The event store (its client is used for everything).
    ///   - registry: The projections this worker runs; the stream projections among them get jobs.
    ///   - logger: Where the worker logs its claims, failures and drain.
    public init(configuration: Configuration, store: PostgresEventStore, registry: ProjectionRegistry, logger: Logger = Logger(label: "eventfleet.worker")) {
        self.configuration = configuration
        self.store = store
        self.queue = JobQueue(store: store, logger: logger)
        self.projections = Dictionary(
            registry.streamProjections.map { (ProjectionRegistration($0).key, $0) }, uniquingKeysWith: { first, _ in first }
        )
        var logger = logger
        logger[metadataKey: "eventfleet.worker"] = "\(configuration.workerId)"
        self.logger = logger
    }

    /// The jobs running right now.
    public var inFlight: [Job] { state.withLock { Array($0.inFlight.values) } }

    /// Whether the worker has registered itself and its projections, enqueued the backfill of any
    /// projection new to the fleet (unless the database failed it meanwhile: the scheduler then
    /// finishes it), and claims jobs (until it stops).
    public var isStarted: Bool { state.withLock { $0.registered && !$0.stopped } }

    /// Whether the worker claims jobs and its last heartbeat went through within three heartbeat
    /// intervals: it reaches the database and the scheduler counts it alive.
    public var isReady: Bool {
        state.withLock { state in
            guard state.registered, !state.stopped, let beat = state.lastHeartbeat else { return false }
            return ContinuousClock.now - beat <= configuration.heartbeatInterval * 3
        }
    }

    public func run() async throws {
        guard configuration.concurrency > 0 else { throw JobQueueError.invalidConfiguration(field: "concurrency", reason: "must be positive") }
        guard configuration.jobsPerTransaction > 0 else {
            throw JobQueueError.invalidConfiguration(field: "jobsPerTransaction", reason: "must be positive")
        }
        guard !configuration.lanes.isEmpty else { throw JobQueueError.invalidConfiguration(field: "lanes", reason: "names no lane") }
        let registrations = projections.values.map { ProjectionRegistration($0) }
        try await queue.refuseRetired(registrations)
        let runner = ProjectionRunner(store: store, logger: logger)
        for projection in projections.values {
            try await runner.validate(projection)
        }
        try await queue.register(registration)
        let new = try await queue.registerProjections(registrations)
        if !new.isEmpty {
            logger.info("registered new projection versions; backfilling their streams", metadata: ["eventfleet.projections": "\(new)"])
        }
        await advanceBackfills()
        state.withLock {
            $0.registered = true
            $0.lastHeartbeat = .now
        }
        logger.info("worker started", metadata: ["eventfleet.slots": "\(configuration.concurrency)", "eventfleet.lanes": "\(configuration.lanes.map(\.rawValue))"])

        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.heartbeatLoop() }
            if configuration.listenForJobs {
                group.addTask { await self.wakeup.listen(on: JobQueue.notifyChannel, database: self.queue.database) }
            }
            await withGracefulShutdownHandler {
                await self.claimLoop()
            } onGracefulShutdown: {
                self.wakeup.signal()
            }
            state.withLock { $0.stopped = true }
            group.cancelAll()
        }
        // The last jobs' counts, which no heartbeat carried yet.
        let counts = takeCounts()
        if !counts.isEmpty {
            _ = try? await queue.heartbeat(worker: configuration.workerId, draining: true, counts: counts)
        }
        do {
            try await queue.deregister(worker: configuration.workerId)
        } catch {
            logger.warning("could not deregister; the scheduler will remove the registration", metadata: ["eventfleet.error": "\(error)"])
        }
        logger.info("worker stopped")
    }

    /// Enqueues the jobs of unfinished backfills (a projection this worker registered, or one whose
    /// driver died) before claiming, so a projection new to the fleet gets every stream's job at
    /// once. A failure here costs nothing: the backfill stays recorded, and the leading scheduler
    /// finishes it.
    private func advanceBackfills() async {
        do {
            try await queue.advanceBackfills { backfill in
                logger.info(
                    "backfill finished",
                    metadata: ["eventfleet.projections": "\(backfill.projections)", "eventfleet.streams": "\(backfill.streams)"]
                )
            }
        } catch {
            logger.warning("could not advance backfills; the leading scheduler finishes them", metadata: ["eventfleet.error": "\(error)"])
        }
    }

    /// The job counts since the last flush, which start over.
    func takeCounts() -> JobCounts {
        state.withLock { state in
            defer { state.counts = JobCounts() }
            return state.counts
        }
    }

    var registration: WorkerRegistration {
        WorkerRegistration(
            id: configuration.workerId, host: ProcessInfo.processInfo.hostName, pid: ProcessInfo.processInfo.processIdentifier,
            lanes: configuration.lanes, partitions: configuration.partitions, slots: configuration.concurrency,
            projections: projections.keys.sorted()
        )
    }
}
