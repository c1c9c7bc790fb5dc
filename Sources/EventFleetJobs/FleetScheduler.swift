import EventFleetCore
import EventFleetPostgres
import EventFleetProjections
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle

/// Follows the global log and enqueues one live job per (projection, partition, stream) with new
/// events of a type the projection handles; the leader also rescues jobs of dead workers and prunes.
///
/// The scheduler is an ``EventConsumer``: its checkpoint moves in the same transaction as the
/// enqueue, so a crash never loses or duplicates work, and its lease elects the leader among
/// several schedulers: the others stand by and take over within ``Configuration/leaseDuration``.
/// It needs no domain code: workers register their projections and event types in `ef_projections`.
public final class FleetScheduler: Service, Sendable {
    /// Settings of a scheduler.
    public struct Configuration: Sendable {
        /// The consumer name (and so the checkpoint and the leader lease) all schedulers share.
        public var name = "eventfleet-scheduler"
        /// Partitions to schedule for; one scheduler group can serve all.
        public var scope: PartitionScope = .all
        /// Events per transaction, at most. A page costs a transaction, a read of the projections and
        /// an enqueue statement whatever its size, so large pages cut the scheduler's cost per event
        /// when it catches up (5,000 jobs enqueued in about 0.6 s against 1.0 s with pages of 1,000);
        /// under a steady load pages are as small as what arrived since the last one.
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
        /// Per-minute job statistics older than this are deleted.
        public var statisticsRetention: Duration = .seconds(24 * 3600)
        /// The leader vacuums the job table when finished jobs have left at least this many dead
        /// rows (and more dead than live), rather than wait up to a minute for autovacuum; `nil`
        /// leaves it to autovacuum. See ``JobQueue/vacuumIfWorn(minimumDeadRows:)``.
        public var vacuumDeadJobs: Int? = 20_000
        /// Jobs enqueued by the scheduler get this many attempts.
        public var maxAttempts: Int32 = 10

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
        let queue = JobQueue(client: store.client, databaseTarget: store.options.databaseTarget, logger: logger)
        self.queue = queue
        var consumerConfiguration = EventConsumer.Configuration(name: configuration.name, scope: configuration.scope)
        consumerConfiguration.batchSize = configuration.batchSize
        consumerConfiguration.pollInterval = configuration.pollInterval
        consumerConfiguration.maxPollInterval = configuration.maxPollInterval
        consumerConfiguration.notifyChannel = configuration.notifyChannel
        consumerConfiguration.leaseDuration = configuration.leaseDuration
        // Jobs need only each event's stream and type.
        consumerConfiguration.readsPayload = false
        let scheduling = JobScheduling(queue: queue, maxAttempts: configuration.maxAttempts, metrics: metrics)
        consumerConfiguration.serverSidePages = scheduling.serverSidePages(scope: configuration.scope)
        self.consumer = EventConsumer(configuration: consumerConfiguration, store: store, registry: ProjectionRegistry([scheduling]), logger: logger)
    }

    /// Whether this scheduler currently leads.
    public var isLeader: Bool { consumer.isActive }

    /// Waits until every event committed before the call has been turned into jobs.
    public func whenCaughtUp(timeout: Duration = .seconds(30)) async throws {
        try await consumer.whenCaughtUp(timeout: timeout)
    }

    public func run() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.consumer.run() }
            group.addTask { await self.maintenanceLoop() }
            try await group.next()
            group.cancelAll()
        }
    }

    /// While leading: rescue the jobs of workers that stopped heartbeating, vacuum the job table
    /// when finished jobs have worn it, and prune statistics.
    private func maintenanceLoop() async {
        var lastPrune = ContinuousClock.now - .seconds(3600)
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
                if let minimum = configuration.vacuumDeadJobs, let dead = try await queue.vacuumIfWorn(minimumDeadRows: minimum) {
                    logger.debug("vacuumed the job table", metadata: ["eventfleet.dead_rows": "\(dead)"])
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

/// The scheduler's handler: turns a batch of the global log into jobs, in the consumer's transaction.
///
/// Pages are scheduled on the server (``serverSidePages(scope:)``, `ef_schedule_global_log`); the
/// handler proper, the same work in Swift, takes a batch whose server-side page failed, so that the
/// consumer's retries and failure policy apply to it.
struct JobScheduling: Projection {
    let name = "eventfleet-job-scheduling"
    let eventTypes: Set<String>? = nil
    let queue: JobQueue
    let maxAttempts: Int32
    let metrics: JobMetrics

    func validate(on connection: PostgresConnection, logger: Logger) async throws {}

    /// Reads a page of the log and enqueues its jobs in one statement on the server (migration 0006):
    /// the same events, projections and jobs as ``handle(_:context:)``, without moving the page's
    /// rows to the scheduler and its job requests back.
    func serverSidePages(scope: PartitionScope) -> EventConsumer.ServerSidePages {
        let partitions = scope.partitions
        return EventConsumer.ServerSidePages { [maxAttempts, metrics] after, limit, connection, logger in
            let query: PostgresQuery = """
                SELECT events, last_transaction_id, last_global_position, enqueued, held_back
                  FROM ef_schedule_global_log(\(String(after.transactionId))::xid8, \(after.globalPosition), \(partitions)::text[],
                                              \(Int64(limit)), \(maxAttempts), \(JobQueue.notifyChannel))
                """
            var page = EventConsumer.ServerSidePages.Page(events: 0, last: nil, isHeldBack: false)
            for try await row in try await connection.checkedQuery(query, logger: logger) {
                var cells = RowCells(row, statement: "ef_schedule_global_log")
                let events = try cells.next(Int64.self), transaction = try cells.next(String?.self), position = try cells.next(Int64?.self)
                metrics.enqueued.increment(by: Int(try cells.next(Int64.self)))
                page.isHeldBack = try cells.next(Bool.self)
                if let transaction, let position, let transactionId = UInt64(transaction) {
                    page.events = Int(events)
                    page.last = GlobalCheckpoint(transactionId: transactionId, globalPosition: position)
                }
            }
            return page
        }
    }

    func handle(_ messages: [RecordedMessage], context: ProjectionContext) async throws {
        // Read in the same transaction, so a projection registered after this batch's events were
        // written is scheduled from the next batch on, never half.
        var projectionsByType: [String: [String]] = [:]
        for try await (name, types) in try await context.connection.checkedQuery(
            "SELECT name, event_types FROM ef_projections ORDER BY name", logger: context.logger
        ).decode((String, [String]).self) {
            for type in types { projectionsByType[type, default: []].append(name) }
        }
        var requests: [JobRequest] = []
        var seen = Set<[String]>()
        for message in messages {
            for projection in projectionsByType[message.type] ?? [] where seen.insert([projection, message.partition, message.streamId]).inserted {
                requests.append(JobRequest(projection: projection, partition: message.partition, streamId: message.streamId, lane: .live, maxAttempts: maxAttempts))
            }
        }
        let inserted = try await queue.enqueue(requests, on: context.connection, notify: !requests.isEmpty)
        metrics.enqueued.increment(by: inserted)
    }
}
