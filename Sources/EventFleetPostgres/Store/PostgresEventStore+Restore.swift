import EventFleetCore
import PostgresNIO

/// What ``PostgresEventStore/rebaseLog(liveWithin:)`` did to a restored database.
public struct LogRebase: Sendable, Hashable, Codable {
    /// The last global position the sequence had handed out before (`nil`: none).
    public var sequenceBefore: Int64?
    /// The last global position it has handed out now: at least every position in use.
    public var sequenceAfter: Int64
    /// Checkpoints of a previous release (in transaction order) started in position order.
    public var checkpointsConverted: Int

    public init(sequenceBefore: Int64?, sequenceAfter: Int64, checkpointsConverted: Int) {
        self.sequenceBefore = sequenceBefore
        self.sequenceAfter = sequenceAfter
        self.checkpointsConverted = checkpointsConverted
    }
}

/// Why ``PostgresEventStore/rebaseLog(liveWithin:)`` refused.
public enum LogRebaseError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Consumers or schedulers hold unexpired leases, or workers heartbeat, on this database: the
    /// fleet must be stopped first. Each entry names one (`consumer carts-audit (all) owned by …
    /// until …`). Leases and heartbeats copied from the source database expire within their
    /// lease or heartbeat time; run it again after that.
    case fleetLive([String])

    public var description: String {
        switch self {
        case .fleetLive(let live):
            "refusing to rebase the log while a fleet is live on this database (stop it first; leases and heartbeats "
                + "copied from the source database expire on their own, then run it again): " + live.joined(separator: "; ")
        }
    }
}

extension PostgresEventStore {
    /// Makes a restored database safe to append to and read: run it once after `pg_restore` (or a
    /// copy by logical replication) and before the fleet or any application starts on it
    /// (`eventfleet rebase-log`).
    ///
    /// Reading the log depends on positions only (docs/DESIGN.md, "Restoring a database"), so
    /// restored events and checkpoints stay right, but two things a restore can leave behind are
    /// set right, in one transaction that appends wait for: the sequence of global positions moves
    /// above every position in use (logical replication does not copy sequences), and checkpoints a
    /// previous release wrote in transaction order start in position order while the restored
    /// events still carry the source server's transaction ids. Running it again changes nothing.
    ///
    /// - Parameter liveWithin: A worker whose heartbeat is this recent counts as live.
    /// - Throws: ``LogRebaseError/fleetLive(_:)`` when consumers or schedulers hold unexpired leases
    ///   or workers heartbeat (nothing is changed); `EventStoreError` for database errors.
    public func rebaseLog(liveWithin: Duration = .seconds(30)) async throws -> LogRebase {
        try await database.transaction("rebase the log after a restore") { connection in
            let leases = try await connection.query("""
                SELECT s.subscription_id, s.partition, s.owner, s.lease_expires_at::text FROM \(database.schema.ef_subscriptions) s
                 WHERE s.owner IS NOT NULL AND s.lease_expires_at > clock_timestamp()
                 ORDER BY s.subscription_id, s.partition
                """)
            var live = try leases.map { row in
                let (name, scope, owner, until) = try row.decode((String, String, String, String).self)
                return "consumer \(name) (\(scope == "*" ? "all partitions" : scope)) leased by \(owner) until \(until)"
            }
            let workers = try await connection.query("""
                SELECT w.id, w.host, w.pid, w.heartbeat::text FROM \(database.schema.ef_workers) w
                 WHERE w.heartbeat > clock_timestamp() - \(liveWithin.milliseconds) * interval '1 millisecond'
                 ORDER BY w.id
                """)
            live += try workers.map { row in
                let (id, host, pid, heartbeat) = try row.decode((String, String, Int32, String).self)
                return "worker \(id) on \(host) pid \(pid), last heartbeat \(heartbeat)"
            }
            guard live.isEmpty else { throw LogRebaseError.fleetLive(live) }
            let row = try await connection.query("""
                SELECT r.sequence_before, r.sequence_after, r.checkpoints_converted FROM \(database.schema.ef_rebase_log)() r
                """)
            guard let first = row.first else {
                throw EventStoreError.database(operation: "rebase the log after a restore", sqlState: nil, message: "ef_rebase_log answered no row")
            }
            let (before, after, converted) = try first.decode((Int64?, Int64, Int32).self)
            return LogRebase(sequenceBefore: before, sequenceAfter: after, checkpointsConverted: Int(converted))
        }
    }
}
