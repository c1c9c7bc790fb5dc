import EventFleetCore
import Foundation
import PostgresNIO

/// A dead job, as an operator sees it.
public struct DeadJob: Sendable, Hashable {
    public var id: Int64
    public var projection: String
    public var partition: String
    public var streamId: String
    public var lane: JobLane
    public var attempts: Int
    /// The error history as JSON: one object per attempt (attempt, worker, error, at).
    public var errors: String
    public var updated: Date
}

/// Which dead jobs an operator command addresses.
public enum DeadJobSelection: Sendable, Hashable {
    case ids([Int64])
    case partition(String)
    case all

    /// The ids or partition to match, `nil` for any.
    var filter: (ids: [Int64]?, partition: String?) {
        switch self {
        case .ids(let ids): (ids, nil)
        case .partition(let partition): (nil, partition)
        case .all: (nil, nil)
        }
    }
}

extension JobQueue {
    /// Sets a tenant's quota for a lane; `nil` leaves a value as it is.
    public func setQuota(partition: String, lane: JobLane, maxRunning: Int?, weight: Int?, paused: Bool?) async throws {
        try IdentifierValidation.validate(partition, field: "partition")
        try await database.query("set quota", """
            INSERT INTO \(schema.ef_tenant_quotas) AS q (partition, lane, max_running, weight, paused)
            VALUES (\(partition), \(lane.rawValue), coalesce(\(maxRunning.map(Int32.init))::int, 16),
                    coalesce(\(weight.map(Int32.init))::int, 1), coalesce(\(paused)::bool, false))
            ON CONFLICT (partition, lane) DO UPDATE
               SET max_running = coalesce(\(maxRunning.map(Int32.init))::int, q.max_running),
                   weight = coalesce(\(weight.map(Int32.init))::int, q.weight),
                   paused = coalesce(\(paused)::bool, q.paused)
            """)
    }

    /// Dead jobs, newest first.
    public func deadJobs(partition: String? = nil, limit: Int = 100) async throws -> [DeadJob] {
        let rows = try await database.query("list dead jobs", """
            SELECT id, projection, partition, stream_id, lane, attempt, errors::text, updated
              FROM \(schema.ef_jobs) WHERE state = 'dead' AND (\(partition)::text IS NULL OR partition = \(partition))
             ORDER BY id DESC LIMIT \(Int64(limit))
            """)
        return try rows.map { row in
            let (id, projection, partition, stream, lane, attempts, errors, updated) = try row.decode(
                (Int64, String, String, String, JobLane, Int32, String, Date).self
            )
            return DeadJob(
                id: id, projection: projection, partition: partition, streamId: stream, lane: lane,
                attempts: Int(attempts), errors: errors, updated: updated
            )
        }
    }

    /// Makes dead jobs ready again with fresh attempts. A dead job whose stream already has a live
    /// job is left as it is: the live job covers it.
    ///
    /// - Returns: How many jobs were retried.
    @discardableResult
    public func retryDead(_ selection: DeadJobSelection) async throws -> Int {
        let (ids, partition) = selection.filter
        return Int(try await database.value(
            "retry dead jobs", "SELECT \(schema.ef_retry_dead_jobs)(\(ids)::bigint[], \(partition)::text, \(JobQueue.notifyChannel))",
            as: Int64.self
        ))
    }

    /// Deletes dead jobs.
    ///
    /// - Returns: How many were deleted.
    @discardableResult
    public func purgeDead(_ selection: DeadJobSelection) async throws -> Int {
        let (ids, partition) = selection.filter
        return Int(try await database.value(
            "purge dead jobs", "SELECT \(schema.ef_purge_dead_jobs)(\(ids)::bigint[], \(partition)::text)", as: Int64.self
        ))
    }
}

/// A ready job that has waited to be claimed, as an operator sees it.
public struct WaitingJob: Sendable, Hashable {
    public var id: Int64
    public var projection: String
    public var partition: String
    public var streamId: String
    public var lane: JobLane
    /// Attempts made so far (a job retried after a failure waits again).
    public var attempts: Int
    /// Since it could first run.
    public var waitedSeconds: Double
}

extension JobQueue {
    /// A tenant's ready jobs that could have run for at least `atLeast` and no worker has claimed,
    /// longest waiting first: the streams whose rows are late.
    ///
    /// - Parameters:
    ///   - partition: The tenant.
    ///   - atLeast: How long a job must have waited.
    ///   - limit: At most this many.
    public func waitingJobs(partition: String, atLeast: Duration, limit: Int = 100) async throws -> [WaitingJob] {
        let rows = try await database.query("list waiting jobs", """
            SELECT id, projection, partition, stream_id, lane, attempt, extract(epoch FROM now() - run_at)::float8
              FROM \(schema.ef_jobs)
             WHERE state = 'ready' AND partition = \(partition) AND run_at <= now() - \(atLeast.milliseconds)::bigint * interval '1 millisecond'
             ORDER BY run_at LIMIT \(Int64(limit))
            """)
        return try rows.map { row in
            let (id, projection, partition, stream, lane, attempts, waited) = try row.decode(
                (Int64, String, String, String, JobLane, Int32, Double).self
            )
            return WaitingJob(
                id: id, projection: projection, partition: partition, streamId: stream, lane: lane, attempts: Int(attempts), waitedSeconds: waited
            )
        }
    }
}

/// Ready jobs of one tenant and lane.
public struct ReadyDepth: Sendable, Hashable {
    public var partition: String
    public var lane: JobLane
    /// Jobs waiting to be claimed (including those whose retry time has not come yet).
    public var ready: Int64
}

extension JobQueue {
    /// Ready jobs per tenant and lane, read from the partial index of ready jobs only.
    ///
    /// - Parameter partitions: Only these tenants; `nil` for all.
    public func readyDepth(partitions: [String]? = nil) async throws -> [ReadyDepth] {
        let rows = try await database.query("count ready jobs", """
            SELECT partition, lane, count(*) FROM \(schema.ef_jobs)
             WHERE state = 'ready' AND (\(partitions == nil) OR partition = ANY(\(partitions ?? [])::text[]))
             GROUP BY partition, lane
            """)
        return try rows.map { row in
            let (partition, lane, ready) = try row.decode((String, JobLane, Int64).self)
            return ReadyDepth(partition: partition, lane: lane, ready: ready)
        }
    }
}
