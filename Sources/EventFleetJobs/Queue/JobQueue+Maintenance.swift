import EventFleetCore
import Foundation
import PostgresNIO

// What the leading scheduler does between its pages: prune statistics, vacuum the job table.

extension JobQueue {
    /// Deletes per-minute statistics older than `age`.
    public func prune(statisticsOlderThan age: Duration) async throws {
        try await database.query(
            "prune", "DELETE FROM \(schema.ef_job_stats) WHERE minute < now() - \(age.components.seconds) * interval '1 second'"
        )
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
    ///
    /// - Returns: The dead rows the statistics counted, when it vacuumed; `nil` when it did not.
    @discardableResult
    public func vacuumIfWorn(minimumDeadRows: Int) async throws -> Int? {
        let rows = try await database.query(
            "read job table statistics",
            "SELECT n_dead_tup, n_live_tup FROM pg_stat_user_tables WHERE relid = \(schema.ef_jobs.description)::regclass"
        )
        guard let (dead, live) = try rows.first?.decode((Int64, Int64).self), dead >= Int64(minimumDeadRows), dead > live else { return nil }
        try await database.withoutDeadline().query("vacuum the job table", "VACUUM \(schema.ef_jobs)")
        return Int(dead)
    }
}
