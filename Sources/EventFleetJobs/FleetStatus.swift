import EventFleetCore
import EventFleetPostgres
import PostgresNIO

/// The fleet at a glance: jobs per tenant and lane, the workers, and the scheduler's lag (and what
/// holds it back). `eventfleet monitor` prints it; operators' tools read it here rather than query
/// the tables themselves.
///
/// It is read in a few statements that only touch the job table's small partial indexes, so
/// reading it often costs the fleet nothing noticeable.
public struct FleetStatus: Codable, Sendable {
    /// Jobs of one tenant in one lane.
    public struct Lane: Codable, Sendable {
        public var partition: String
        public var lane: JobLane
        public var ready: Int64
        public var running: Int64
        public var dead: Int64
        /// The tenant's cap on running jobs in this lane.
        public var maxRunning: Int32
        public var paused: Bool
        /// How long the oldest job that may run now has waited; `nil` when none waits.
        public var oldestReadySeconds: Double?
        /// Jobs completed per minute over the last five minutes.
        public var completedPerMinute: Double
    }

    /// A registered worker.
    public struct Worker: Codable, Sendable {
        public var id: String
        public var host: String
        public var pid: Int32
        public var slots: Int32
        /// Jobs it holds now.
        public var running: Int64
        /// Whether it is shutting down (finishing or handing back its jobs).
        public var draining: Bool
        public var heartbeatAgeSeconds: Double
    }

    /// The scheduler group: its leader and how far it is behind the log.
    public struct Scheduler: Codable, Sendable {
        /// The instance holding the leader lease, if any holds it now.
        public var leader: String?
        public var checkpoint: GlobalCheckpoint?
        /// The newest committed event.
        public var head: GlobalCheckpoint?
        /// Global positions between the checkpoint and the newest event: an estimate of events behind.
        public var lagEvents: Int64
        /// The open transaction holding the log back, when the scheduler is behind.
        public var stalledBy: GlobalLogStall?
    }

    public var lanes: [Lane]
    public var workers: [Worker]
    public var scheduler: Scheduler

    /// Reads the status of the fleet whose tables are in `store`'s database.
    ///
    /// - Parameter schedulerName: The schedulers' consumer name (``FleetScheduler/Configuration/name``).
    public static func read(
        from store: PostgresEventStore, schedulerName: String = FleetScheduler.Configuration().name
    ) async throws -> FleetStatus {
        let database = store.database
        let schema = database.schema
        let lanes = try await database.query("read lane status", """
            SELECT q.partition, q.lane, q.max_running, q.paused,
                   (SELECT count(*) FROM \(schema.ef_jobs) j WHERE j.state = 'ready' AND j.partition = q.partition AND j.lane = q.lane),
                   (SELECT count(*) FROM \(schema.ef_jobs) j WHERE j.state = 'running' AND j.partition = q.partition AND j.lane = q.lane),
                   (SELECT count(*) FROM \(schema.ef_jobs) j WHERE j.state = 'dead' AND j.partition = q.partition AND j.lane = q.lane),
                   (SELECT extract(epoch FROM now() - min(j.run_at))::float8 FROM \(schema.ef_jobs) j
                     WHERE j.state = 'ready' AND j.partition = q.partition AND j.lane = q.lane AND j.run_at <= now()),
                   (SELECT coalesce(sum(s.completed), 0)::float8 / 5 FROM \(schema.ef_job_stats) s
                     WHERE s.partition = q.partition AND s.lane = q.lane AND s.minute >= date_trunc('minute', now()) - interval '5 minutes')
              FROM \(schema.ef_tenant_quotas) q
             ORDER BY q.partition, q.lane
            """).map { row in
            let (partition, lane, maxRunning, paused, ready, running, dead, oldest, perMinute) = try row.decode(
                (String, JobLane, Int32, Bool, Int64, Int64, Int64, Double?, Double).self
            )
            return Lane(
                partition: partition, lane: lane, ready: ready, running: running, dead: dead, maxRunning: maxRunning,
                paused: paused, oldestReadySeconds: oldest, completedPerMinute: perMinute
            )
        }
        let workers = try await database.query("read worker status", """
            SELECT w.id, w.host, w.pid, w.slots, w.draining, extract(epoch FROM now() - w.heartbeat)::float8,
                   (SELECT count(*) FROM \(schema.ef_jobs) j WHERE j.state = 'running' AND j.owner = w.id)
              FROM \(schema.ef_workers) w ORDER BY w.started
            """).map { row in
            let (id, host, pid, slots, draining, age, running) = try row.decode((String, String, Int32, Int32, Bool, Double, Int64).self)
            return Worker(id: id, host: host, pid: pid, slots: slots, running: running, draining: draining, heartbeatAgeSeconds: age)
        }
        var scheduler = Scheduler(leader: nil, checkpoint: nil, head: nil, lagEvents: 0, stalledBy: nil)
        if let row = try await database.query("read scheduler status", """
            SELECT CASE WHEN lease_expires_at > now() THEN owner END, last_transaction_id, last_global_position
              FROM \(schema.ef_subscriptions) WHERE subscription_id = \(schedulerName) ORDER BY updated DESC LIMIT 1
            """).first {
            let (leader, transaction, position) = try row.decode((String?, TransactionID, Int64).self)
            scheduler.leader = leader
            scheduler.checkpoint = GlobalCheckpoint(transactionId: transaction.value, globalPosition: position)
        }
        scheduler.head = try await store.globalLogHead()
        if let head = scheduler.head {
            let checkpoint = scheduler.checkpoint ?? .start
            scheduler.lagEvents = checkpoint >= head ? 0 : max(0, head.globalPosition - checkpoint.globalPosition)
            if scheduler.lagEvents > 0 { scheduler.stalledBy = try await store.globalLogStall() }
        }
        return FleetStatus(lanes: lanes, workers: workers, scheduler: scheduler)
    }
}
