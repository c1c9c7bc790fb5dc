import EventFleetCore
import Foundation
import PostgresNIO

// What the leading scheduler does between its pages: record the fleet's minute, prune statistics,
// vacuum the job table.

extension JobQueue {
    /// Deletes per-minute statistics, and the points of the fleet's history (``FleetHistory``),
    /// older than `age`.
    public func prune(statisticsOlderThan age: Duration) async throws {
        let seconds = age.components.seconds
        try await database.query("prune", """
            WITH stats AS (
                DELETE FROM \(schema.ef_job_stats) WHERE minute < now() - \(seconds) * interval '1 second'
            )
            DELETE FROM \(schema.ef_fleet_minutes) WHERE minute < now() - \(seconds) * interval '1 second'
            """)
    }

    /// Records the fleet's point of a minute in its history (``FleetHistory``), unless the minute
    /// has one: the jobs ready, running and dead, the oldest ready job's wait, the log's head, and
    /// the schedulers' checkpoint and lag.
    ///
    /// The leading scheduler calls this once a minute. A minute keeps the first point recorded for
    /// it, so a scheduler that takes the lead within a minute records nothing more; a minute nobody
    /// records stays a gap in the history. The point counts only the job table's partial indexes
    /// and probes the log's position index (`ef_record_fleet_minute`).
    ///
    /// - Parameters:
    ///   - schedulerName: The schedulers' consumer name (``FleetScheduler/Configuration/name``),
    ///     whose checkpoint the lag is measured from.
    ///   - minute: The minute the point stands for (its start is taken), with the fleet as it is
    ///     now; `nil` for the database's current minute.
    /// - Returns: Whether it recorded the point: `false` when the minute already had one.
    @discardableResult
    public func recordFleetMinute(schedulerName: String = FleetScheduler.Configuration().name, minute: Date? = nil) async throws -> Bool {
        try await database.value(
            "record the fleet's minute", "SELECT \(schema.ef_record_fleet_minute)(\(schedulerName), \(minute)::timestamptz)", as: Bool.self
        )
    }

    /// What ``vacuumIfWorn(minimumDeadRows:)`` did.
    public enum Vacuum: Sendable, Hashable {
        /// It vacuumed the table, which had this many dead rows.
        case vacuumed(deadRows: Int)
        /// The table is not worn enough yet.
        case notNeeded
        /// The table is worn, but this session's role may not vacuum it: PostgreSQL 15 lets only the
        /// table's owner (or a member of its role, or a superuser) vacuum it, and otherwise skips it
        /// with a warning. Autovacuum alone keeps it then (see deploy/README.md, "Database roles").
        case notPermitted(role: String, deadRows: Int)
    }

    /// Vacuums the job table when finished jobs have left at least `minimumDeadRows` dead rows, and
    /// more dead rows than live ones.
    ///
    /// Every job is inserted, updated and deleted, so the table and its indexes fill with dead
    /// entries that every claim steps over until they are vacuumed. Autovacuum visits a table at
    /// most once a minute (`autovacuum_naptime`), and a busy queue finishes far more jobs than that
    /// in that time (docs/BENCHMARKS.md, workload 7). The leading scheduler calls this every
    /// maintenance interval. Vacuum takes no lock that blocks claims: the table has
    /// `vacuum_truncate` off, so it is never truncated.
    @discardableResult
    public func vacuumIfWorn(minimumDeadRows: Int) async throws -> Vacuum {
        let rows = try await database.query("read job table statistics", """
            SELECT s.n_dead_tup, s.n_live_tup, current_user::text,
                   pg_has_role(current_user, c.relowner, 'USAGE') OR (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user)
              FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
             WHERE s.relid = \(schema.ef_jobs.description)::regclass
            """)
        guard let (dead, live, role, permitted) = try rows.first?.decode((Int64, Int64, String, Bool).self),
              dead >= Int64(minimumDeadRows), dead > live
        else { return .notNeeded }
        guard permitted else { return .notPermitted(role: role, deadRows: Int(dead)) }
        try await database.withoutDeadline().query("vacuum the job table", "VACUUM \(schema.ef_jobs)")
        return .vacuumed(deadRows: Int(dead))
    }
}
