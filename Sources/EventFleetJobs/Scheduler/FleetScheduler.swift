import EventFleetCore
import EventFleetPostgres
import EventFleetProjections
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle

/// Follows the global log and enqueues one live job per (projection, partition, stream) with new
/// events of a type the projection handles; the leader also rescues jobs of dead workers, finishes
/// backfills whose driver died, records the fleet's history a point a minute, and prunes.
///
/// The scheduler is an `EventConsumer`: its checkpoint moves in the same transaction as the
/// enqueue, so a crash never loses or duplicates work, and its lease elects the leader among
/// several schedulers: the others stand by and take over within ``Configuration/leaseDuration``.
/// It needs no domain code: workers register their projections and event types in `ef_projections`.
public final class FleetScheduler: Service, ReadinessReporting, Sendable {
    /// Settings of a scheduler.
    public struct Configuration: Sendable {
        /// The consumer name (and so the checkpoint and the leader lease) all schedulers share.
        public var name = "eventfleet-scheduler"
        /// Partitions to schedule for; one scheduler group can serve all.
        public var scope: PartitionScope = .all
        /// Events per transaction, at most. A page costs a transaction, a read of the projections and
        /// an enqueue statement whatever its size, so large pages cut the scheduler's cost per event
        /// when it catches up; under a steady load pages are as small as what arrived since the last
        /// one.
        public var batchSize = 5_000
        public var pollInterval: Duration = .milliseconds(20)
        public var maxPollInterval: Duration = .milliseconds(500)
        /// The store's `NOTIFY` channel for appends, to react at once.
        public var notifyChannel: String? = PostgresEventStore.Options.defaultNotifyChannel
        /// A dead leader is replaced after about this long.
        public var leaseDuration: Duration = .seconds(5)
        /// A worker whose heartbeat is older than this is declared dead and its jobs rescued.
        public var heartbeatTimeout: Duration = .seconds(15)
        /// How often the leader rescues and prunes.
        public var maintenanceInterval: Duration = .seconds(1)
        /// How often the leader looks for projection versions that promote themselves once caught
        /// up (``JobQueue/promoteCaughtUpVersions(hold:)``); each look compares their rows with the
        /// active versions'.
        public var autoPromotionInterval: Duration = .seconds(5)
        /// Per-minute job statistics older than this are deleted.
        public var statisticsRetention: Duration = .seconds(24 * 3600)
        /// The leader vacuums the job table when finished jobs have left at least this many dead
        /// rows (and more dead than live), rather than wait up to a minute for autovacuum; `nil`
        /// leaves it to autovacuum. See ``JobQueue/vacuumIfWorn(minimumDeadRows:)``.
        public var vacuumDeadJobs: Int? = 20_000
        /// Jobs enqueued by the scheduler get this many attempts.
        public var maxAttempts: Int32 = 10
        /// The leader logs a warning, once per append, when an append in flight has held a
        /// partition of its scope back this long, naming the partition and the appender (the
        /// gauge `eventfleet_log_held_back_seconds{partition}` shows every hold each maintenance
        /// round); `nil` leaves the warning out.
        public var heldBackWarning: Duration? = .seconds(30)

        public init() {}
    }

    public let configuration: Configuration
    public let store: PostgresEventStore
    public let queue: JobQueue
    let consumer: EventConsumer
    let logger: Logger
    let metrics = JobMetrics()

    public init(configuration: Configuration = Configuration(), store: PostgresEventStore, logger: Logger = Logger(label: "eventfleet.scheduler")) {
        self.configuration = configuration
        self.store = store
        self.logger = logger
        let queue = JobQueue(store: store, logger: logger)
        self.queue = queue
        var consumerConfiguration = EventConsumer.Configuration(name: configuration.name, scope: configuration.scope)
        consumerConfiguration.batchSize = configuration.batchSize
        consumerConfiguration.pollInterval = configuration.pollInterval
        consumerConfiguration.maxPollInterval = configuration.maxPollInterval
        consumerConfiguration.notifyChannel = configuration.notifyChannel
        consumerConfiguration.leaseDuration = configuration.leaseDuration
        consumerConfiguration.serverSidePages = Self.schedulingPages(
            scope: configuration.scope, maxAttempts: configuration.maxAttempts, metrics: metrics
        )
        self.consumer = EventConsumer(configuration: consumerConfiguration, store: store, registry: ProjectionRegistry(), logger: logger)
    }

    /// Whether this scheduler currently leads.
    public var isLeader: Bool { consumer.isActive }

    /// Whether the scheduler reached the database for its lease within three lease renewals: a
    /// standby that does so is ready too, since it takes over when the leader goes.
    public var isReady: Bool {
        guard let contact = consumer.lastContact else { return false }
        return ContinuousClock.now - contact <= configuration.leaseDuration
    }

    /// Waits until every event committed before the call has been turned into jobs.
    public func whenCaughtUp(timeout: Duration = .seconds(30)) async throws {
        try await consumer.whenCaughtUp(timeout: timeout)
    }

    public func run() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.consumer.run() }
            group.addTask { await self.maintenanceLoop() }
            // On graceful shutdown both end on their own, the consumer after giving its lease up (a
            // cancelled one could not): only an error ends the other at once.
            do {
                while try await group.next() != nil {}
            } catch {
                group.cancelAll()
                throw error
            }
        }
    }

    /// While leading: rescue the jobs of workers that stopped heartbeating, advance unfinished
    /// backfills, vacuum the job table when finished jobs have worn it, record the fleet's minute
    /// in its history, and prune statistics.
    private func maintenanceLoop() async {
        var lastPrune = ContinuousClock.now - .seconds(3600)
        // The minute (of this host's clock) whose point was recorded: the database labels the
        // point with its own minute, this only keeps the leader from asking every round.
        var recordedMinute: Int64?
        // A role that may not vacuum is reported once (and counted every time), not every second.
        var reportedVacuumSkip = false
        var holds = HoldsReported()
        var lastAutoPromotion = ContinuousClock.now
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            try? await cancelWhenGracefulShutdown {
                try await Task.sleep(for: self.configuration.maintenanceInterval)
            }
            guard consumer.isActive, !Task.isCancelled else { continue }
            do {
                let rescue = try await queue.rescue(heartbeatTimeout: configuration.heartbeatTimeout)
                if rescue.jobs > 0 || !rescue.workers.isEmpty {
                    metrics.rescued.increment(by: rescue.jobs)
                    logger.warning(
                        "rescued jobs of workers that stopped heartbeating",
                        metadata: ["eventfleet.workers": "\(rescue.workers)", "eventfleet.jobs": "\(rescue.jobs)"]
                    )
                }
                // Backfills whose driver died: about one maintenance interval of pages per round.
                try await queue.advanceBackfills(until: .now + configuration.maintenanceInterval) { backfill in
                    logger.info(
                        "backfill finished",
                        metadata: ["eventfleet.projections": "\(backfill.projections)", "eventfleet.streams": "\(backfill.streams)"]
                    )
                }
                if let minimum = configuration.vacuumDeadJobs {
                    switch try await queue.vacuumIfWorn(minimumDeadRows: minimum) {
                    case .vacuumed(let dead):
                        logger.debug("vacuumed the job table", metadata: ["eventfleet.dead_rows": "\(dead)"])
                    case .notPermitted(let role, let dead):
                        metrics.vacuumsSkipped.increment()
                        if !reportedVacuumSkip {
                            reportedVacuumSkip = true
                            logger.warning(
                                "cannot vacuum the job table: only its owner may; autovacuum alone keeps it (run the scheduler as the table's owner, or tune the table's autovacuum: deploy/README.md, Database roles)",
                                metadata: ["eventfleet.role": "\(role)", "eventfleet.dead_rows": "\(dead)"]
                            )
                        }
                    case .notNeeded:
                        break
                    }
                }
                if ContinuousClock.now - lastAutoPromotion >= configuration.autoPromotionInterval {
                    lastAutoPromotion = .now
                    for switched in try await queue.promoteCaughtUpVersions() {
                        logger.notice(
                            "promoted a caught-up projection version",
                            metadata: ["eventfleet.projection": "\(switched.projection)", "eventfleet.version": "\(switched.to)",
                                       "eventfleet.previous_version": "\(switched.from.map(String.init) ?? "none")"]
                        )
                    }
                }
                holds = try await reportHolds(holds)
                let minute = Int64((Date().timeIntervalSince1970 / 60).rounded(.down))
                if recordedMinute != minute {
                    try await queue.recordFleetMinute(schedulerName: configuration.name)
                    recordedMinute = minute
                }
                if ContinuousClock.now - lastPrune > .seconds(60) {
                    try await queue.prune(statisticsOlderThan: configuration.statisticsRetention)
                    lastPrune = .now
                }
            } catch {
                // Stopping cancels a maintenance statement in flight: that is no failure.
                if error is CancellationError || Task.isCancelled { break }
                logger.warning("maintenance failed; retrying", metadata: ["eventfleet.error": "\(error)"])
            }
        }
    }
}

extension FleetScheduler {
    /// What the leader reported of the appends in flight that hold partitions back: the gauges it
    /// set, and the appends (pid and partition key) it warned about.
    struct HoldsReported {
        var gauges: Set<String> = []
        var warned: Set<[Int32]> = []
    }

    /// Sets `eventfleet_log_held_back_seconds{partition}` for the partitions of the scope that
    /// appends in flight hold back, warns once about each append that has held one longer than
    /// ``Configuration/heldBackWarning``, and notes when it lets go.
    func reportHolds(_ reported: HoldsReported) async throws -> HoldsReported {
        let holds = try await store.logHolds(scope: configuration.scope)
        var next = HoldsReported(gauges: metrics.recordHeldBack(holds, previously: reported.gauges))
        for hold in holds {
            let key = [hold.pid, hold.partitionKey]
            guard let threshold = configuration.heldBackWarning, hold.age >= threshold || reported.warned.contains(key) else { continue }
            next.warned.insert(key)
            if !reported.warned.contains(key) {
                logger.warning(
                    "an append in flight holds a partition of the log back: its later events wait until it commits or rolls back",
                    metadata: [
                        "eventfleet.partition": "\(hold.partitionLabel)", "eventfleet.held_seconds": "\(Int(hold.age.seconds))",
                        "eventfleet.pid": "\(hold.pid)", "eventfleet.application_name": "\(hold.applicationName ?? "")",
                        "eventfleet.client_address": "\(hold.clientAddress ?? "local")", "eventfleet.state": "\(hold.state ?? "")",
                    ]
                )
            }
        }
        for key in reported.warned.subtracting(next.warned) {
            logger.info(
                "the append in flight no longer holds its partition back",
                metadata: ["eventfleet.pid": "\(key[0])", "eventfleet.partition_key": "\(key[1])"]
            )
        }
        return next
    }

    /// Turns each page of the log into jobs on the server, in one statement (`ef_schedule_log`): it
    /// reads the page by the global log's rule, joins its events' types with `ef_projections` and
    /// enqueues one live job per (projection, partition, stream) through `ef_enqueue_jobs`,
    /// answering with the page's size, last position and horizon rather than its events.
    static func schedulingPages(scope: PartitionScope, maxAttempts: Int32, metrics: JobMetrics) -> EventConsumer.ServerSidePages {
        let partitions = scope.partitions
        return EventConsumer.ServerSidePages { after, limit, connection in
            let row = try await connection.query("""
                SELECT events, last_position, horizon_bound, marked_keys, marked_bounds, enqueued
                  FROM \(connection.schema.ef_schedule_log)(\(after.position), \(after.held.map(\.key)), \(after.held.map(\.position)),
                                       \(partitions)::text[], \(Int64(limit)), \(maxAttempts), \(JobQueue.notifyChannel))
                """).first
            guard let row else { throw EventStoreError.database(operation: "schedule a page", sqlState: nil, message: "ef_schedule_log answered no row") }
            let (events, last, bound, keys, bounds, enqueued) = try row.decode((Int64, Int64?, Int64, [Int32], [Int64], Int64).self)
            metrics.enqueued.increment(by: Int(enqueued))
            let horizon = LogHorizon(bound: bound, marked: Dictionary(zip(keys, bounds)) { min($0, $1) })
            return EventConsumer.ServerSidePages.Page(
                events: Int(events), checkpoint: after.advanced(overPageOf: Int(events), endingAt: last, limit: limit, horizon: horizon),
                isHeldBack: !horizon.marked.isEmpty
            )
        }
    }
}
