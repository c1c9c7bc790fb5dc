import EventFleetCore
import EventFleetPostgres
import Foundation
import PostgresNIO

/// The fleet at a glance: jobs per tenant and lane, the workers, ready jobs no live worker runs,
/// unfinished backfills, and the scheduler's lag (and what holds it back). `eventfleet monitor` prints it; every view of the fleet reads it here rather
/// than query the tables itself.
///
/// It is one document the database assembles in one snapshot (the routine `ef_fleet_status`), from
/// small partial indexes only, so reading it often costs the fleet little.
public struct FleetStatus: Codable, Sendable {
    /// Jobs of one tenant in one lane.
    public struct Lane: Codable, Sendable {
        public var partition: String
        public var lane: JobLane
        /// Ready jobs, counted up to a limit (10,000) so that a deep backlog costs a read no more
        /// than one at the limit: ``readyBeyondLimit`` says when there are more.
        public var ready: Int64
        public var running: Int64
        /// Dead jobs, counted up to the same limit: ``deadBeyondLimit`` says when there are more.
        public var dead: Int64
        /// Whether the lane has more ready jobs than ``ready`` (`nil` from a status routine older
        /// than this build, which counted them all).
        public var readyBeyondLimit: Bool?
        /// Whether the lane has more dead jobs than ``dead`` (`nil` as for ``readyBeyondLimit``).
        public var deadBeyondLimit: Bool?
        /// The tenant's cap on running jobs in this lane.
        public var maxRunning: Int32
        /// The tenant's share of the lane's claims against other tenants' (`nil` from a status
        /// routine older than this build).
        public var weight: Int32?
        public var paused: Bool
        /// How long the oldest job that may run now has waited; `nil` when none waits. Beyond the
        /// count limit it is the oldest of the jobs next in claim order.
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
        /// The lanes it claims from (`nil` from a status routine older than this build).
        public var lanes: [JobLane]?
        /// The partitions it claims from; `nil` for every one.
        public var partitions: [String]?
        /// The projection versions it runs (their keys); `nil` for a worker that registered none.
        public var projections: [String]?
        /// Since it registered.
        public var ageSeconds: Double?
        public var heartbeatAgeSeconds: Double
        /// Jobs it completed since it registered, as its heartbeats flushed them (`nil` from a
        /// status routine older than this build; 0 for a worker of an earlier release, which does
        /// not report them).
        public var completed: Int64?
        /// Jobs whose attempt failed on it since it registered, as its heartbeats flushed them
        /// (`nil` from a status routine older than this build).
        public var failed: Int64?
    }

    /// Ready jobs of one projection and lane that no live worker runs: no registered worker that is
    /// not draining takes that projection, that lane and their partition. They wait until one does.
    public struct Unrunnable: Codable, Sendable {
        public var projection: String
        public var lane: JobLane
        public var ready: Int64
    }

    /// The job table's wear: finished jobs leave dead rows until a vacuum removes them.
    public struct JobTable: Codable, Sendable {
        public var liveRows: Int64
        public var deadRows: Int64
        /// Since the last vacuum, by the leading scheduler or autovacuum; `nil` when never. Dead rows
        /// that grow while this does too mean that nothing vacuums the table: the leader's role may
        /// not (only the owner may), and autovacuum does not keep up.
        public var lastVacuumSeconds: Double?
        /// The database's oldest open transaction (one with a snapshot or a transaction id), `nil`
        /// when there is none. It holds back no read of the log, but PostgreSQL keeps every row
        /// version the fleet deletes or updates after it began until it ends, so the job table's
        /// claims pass more of them, and slow down, the longer it stays open.
        public var oldestTransaction: Transaction?
    }

    /// An open transaction of the database, as `pg_stat_activity` reports it (behind a pooler the
    /// pid is the pooler's server connection's).
    public struct Transaction: Codable, Sendable {
        public var pid: Int32
        public var applicationName: String?
        public var state: String?
        public var ageSeconds: Double
    }

    /// The database's client connections with one application name: a fleet process's role
    /// (`eventfleet.worker`, `eventfleet.scheduler`), or whatever else connects.
    public struct Connections: Codable, Sendable {
        public var applicationName: String
        public var count: Int64
    }

    /// A backfill that has not finished: its streams do not all have their jobs yet.
    public struct Backfill: Codable, Sendable {
        public var id: Int64
        public var projections: [String]
        /// Its partition, or `nil` for every partition.
        public var partition: String?
        /// Streams walked so far.
        public var streams: Int64
        /// Streams in scope when it started.
        public var total: Int64
        /// Jobs it enqueued.
        public var enqueued: Int64
        /// Since it started.
        public var ageSeconds: Double
        /// Since its last page: a backfill nobody advances grows idle until the leading scheduler
        /// takes it up.
        public var idleSeconds: Double
    }

    /// The scheduler group: its leader, how far it is behind the log, and what holds the log back.
    public struct Scheduler: Codable, Sendable {
        /// The instance holding the leader lease, if any holds it now.
        public var leader: String?
        public var checkpoint: GlobalCheckpoint?
        /// The global position of the newest committed event.
        public var headPosition: Int64?
        /// Global positions between the checkpoint and the newest event: an estimate of events behind.
        public var lagEvents: Int64
        /// The appends in flight, oldest first: each holds its partition back for every reader until
        /// it commits or rolls back.
        public var heldBack: [Hold]
    }

    /// An append in flight that holds a partition of the log back (`PostgresEventStore.logHolds(scope:)`).
    public struct Hold: Codable, Sendable {
        /// The partition, as its newest committed event names it; `nil` while it has none.
        public var partition: String?
        /// The partition's key (`hashtext` of its name).
        public var partitionKey: Int32
        /// The appending session's server process: behind a pooler, the pooler's connection.
        public var pid: Int32
        /// How long the appending transaction has been open.
        public var ageSeconds: Double
        public var state: String?
        /// The application name the appender reported: its own, even behind a pooler.
        public var applicationName: String?
        /// The address it connects from (the pooler's, behind one).
        public var clientAddress: String?
    }

    public var lanes: [Lane]
    public var workers: [Worker]
    public var backfills: [Backfill]
    /// Ready jobs no live worker runs, per projection and lane; read while any worker is registered.
    public var unrunnable: [Unrunnable]
    public var jobTable: JobTable
    /// The database's client connections per application name, most first: what counts against
    /// the server's `max_connections`. Behind a transaction-mode pooler these are the pooler's
    /// server connections (named after the client that used each last) and the direct `LISTEN`
    /// connections.
    public var connections: [Connections]
    public var scheduler: Scheduler

    /// Reads the status of the fleet whose tables are in `store`'s database.
    ///
    /// - Parameters:
    ///   - store: The store whose database (and schema) holds the fleet's tables.
    ///   - schedulerName: The schedulers' consumer name (``FleetScheduler/Configuration/name``).
    public static func read(
        from store: PostgresEventStore, schedulerName: String = FleetScheduler.Configuration().name
    ) async throws -> FleetStatus {
        let database = store.database
        let rows = try await database.query(
            "read fleet status", "SELECT \(database.schema.ef_fleet_status)(\(schedulerName))::text"
        )
        guard let document = try rows.first?.decode(String.self) else {
            throw EventStoreError.database(operation: "read fleet status", sqlState: nil, message: "ef_fleet_status returned no row")
        }
        do {
            return try JSONDecoder().decode(FleetStatus.self, from: Data(document.utf8))
        } catch {
            throw EventStoreError.database(
                operation: "read fleet status", sqlState: nil, message: "ef_fleet_status returned a document this build cannot read: \(error)"
            )
        }
    }
}
