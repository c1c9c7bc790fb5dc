import EventFleetCore
import Foundation
import PostgresNIO

/// A worker's registration.
public struct WorkerRegistration: Sendable, Hashable {
    public var id: String
    public var host: String
    public var pid: Int32
    public var lanes: [JobLane]
    public var partitions: [String]?
    public var slots: Int
    /// The projections it runs: it claims only their jobs. `nil` claims jobs of every projection.
    public var projections: [String]?

    public init(
        id: String, host: String, pid: Int32, lanes: [JobLane], partitions: [String]?, slots: Int, projections: [String]? = nil
    ) {
        self.id = id
        self.host = host
        self.pid = pid
        self.lanes = lanes
        self.partitions = partitions
        self.slots = slots
        self.projections = projections
    }
}

/// Completed and failed jobs per (partition, lane) since the last flush.
public struct JobCounts: Sendable, Hashable {
    public var completed: [String: [JobLane: Int64]] = [:]
    public var failed: [String: [JobLane: Int64]] = [:]

    public init() {}

    public var isEmpty: Bool { completed.isEmpty && failed.isEmpty }

    public mutating func recordCompleted(_ job: Job) { completed[job.partition, default: [:]][job.lane, default: 0] += 1 }
    public mutating func recordFailed(_ job: Job) { failed[job.partition, default: [:]][job.lane, default: 0] += 1 }

    /// Adds `other`'s counts (a flush that failed goes back into the next one).
    public mutating func merge(_ other: JobCounts) {
        completed.merge(other.completed) { $0.merging($1, uniquingKeysWith: +) }
        failed.merge(other.failed) { $0.merging($1, uniquingKeysWith: +) }
    }

    /// The counts as columns, one entry per (partition, lane) with any.
    var rows: (partitions: [String], lanes: [String], completed: [Int64], failed: [Int64]) {
        var keys = Set<Key>()
        for (partition, lanes) in completed { for lane in lanes.keys { keys.insert(Key(partition: partition, lane: lane)) } }
        for (partition, lanes) in failed { for lane in lanes.keys { keys.insert(Key(partition: partition, lane: lane)) } }
        var result: (partitions: [String], lanes: [String], completed: [Int64], failed: [Int64]) = ([], [], [], [])
        for key in keys {
            result.partitions.append(key.partition)
            result.lanes.append(key.lane.rawValue)
            result.completed.append(completed[key.partition]?[key.lane] ?? 0)
            result.failed.append(failed[key.partition]?[key.lane] ?? 0)
        }
        return result
    }

    private struct Key: Hashable {
        var partition: String
        var lane: JobLane
    }
}

extension JobQueue {
    /// Registers (or re-registers) a worker. Its claims then take only jobs of the projections it
    /// names (``WorkerRegistration/projections``).
    public func register(_ worker: WorkerRegistration) async throws {
        try await database.query("register worker", """
            INSERT INTO \(schema.ef_workers) (id, host, pid, lanes, partitions, slots, projections)
            VALUES (\(worker.id), \(worker.host), \(worker.pid), \(worker.lanes.map(\.rawValue))::text[], \(worker.partitions)::text[],
                    \(Int32(worker.slots)), \(worker.projections)::text[])
            ON CONFLICT (id) DO UPDATE SET heartbeat = now(), draining = false, projections = EXCLUDED.projections
            """)
    }

    /// Records a heartbeat and flushes the worker's job counts: per tenant, lane and minute into the
    /// fleet's statistics, and into the worker's own totals (``FleetStatus/Worker/completed``).
    ///
    /// - Parameters:
    ///   - worker: The worker's registration id.
    ///   - draining: Whether the worker is shutting down (it claims nothing more).
    ///   - counts: The jobs it completed and failed since its last heartbeat, per partition and lane.
    ///   - inFlight: The ids of the jobs the worker works on now, or `nil` to leave the last report.
    ///     The leading scheduler rescues a running job of the worker that is missing from it though it
    ///     was claimed a heartbeat timeout before (its claim's reply was lost, or its failure could not
    ///     be recorded).
    /// - Returns: `false` when the registration is gone: the worker was declared dead and its jobs
    ///   were rescued; it must stop working on them and register again.
    public func heartbeat(worker: String, draining: Bool, counts: JobCounts, inFlight: [Int64]? = nil) async throws -> Bool {
        let stats = counts.rows
        let beats = try await database.value("heartbeat", """
            WITH beat AS (
                UPDATE \(schema.ef_workers)
                   SET heartbeat = now(), draining = \(draining),
                       completed = completed + \(stats.completed.reduce(0, +)), failed = failed + \(stats.failed.reduce(0, +)),
                       in_flight = coalesce(\(inFlight)::bigint[], in_flight),
                       in_flight_at = CASE WHEN \(inFlight)::bigint[] IS NULL THEN in_flight_at ELSE now() END
                 WHERE id = \(worker) RETURNING 1
            ), stats AS (
                INSERT INTO \(schema.ef_job_stats) AS s (partition, lane, minute, completed, failed)
                SELECT r.partition, r.lane, date_trunc('minute', now()), r.completed, r.failed
                  FROM unnest(\(stats.partitions)::text[], \(stats.lanes)::text[], \(stats.completed)::bigint[], \(stats.failed)::bigint[])
                       AS r(partition, lane, completed, failed)
                ON CONFLICT (minute, partition, lane) DO UPDATE
                   SET completed = s.completed + EXCLUDED.completed, failed = s.failed + EXCLUDED.failed
            )
            SELECT count(*) FROM beat
            """, as: Int64.self)
        return beats > 0
    }

    /// Removes a worker's registration (after it released its jobs).
    public func deregister(worker: String) async throws {
        try await database.query("deregister worker", "DELETE FROM \(schema.ef_workers) WHERE id = \(worker)")
    }

    /// What a rescue did.
    public struct Rescue: Sendable, Hashable {
        /// Workers declared dead.
        public var workers: [String]
        /// Jobs made ready again (or dead, when that was their last attempt).
        public var jobs: Int
    }

    /// Ends the attempts of running jobs that nothing works on: they are ready again, or dead after
    /// their last attempt (a job that kills its workers ends `dead`). Those are the jobs of workers
    /// whose heartbeat is older than `heartbeatTimeout` (declared dead) or that are not registered
    /// at all, jobs their heartbeating worker no longer reports in flight a heartbeat timeout after
    /// their claim, and jobs without a committed batch within their projection's job timeout.
    public func rescue(heartbeatTimeout: Duration) async throws -> Rescue {
        let rows = try await database.query(
            "rescue jobs", "SELECT workers, jobs FROM \(schema.ef_rescue_jobs)(\(heartbeatTimeout.milliseconds))"
        )
        guard let (workers, jobs) = try rows.first?.decode(([String], Int64).self) else { return Rescue(workers: [], jobs: 0) }
        return Rescue(workers: workers, jobs: Int(jobs))
    }
}
