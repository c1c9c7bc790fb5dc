import EventFleetCore
import EventFleetJobs
import EventFleetPostgres
import EventFleetTestSupport
import Foundation
import PostgresNIO
import Testing

/// The queue's and the log's hot statements keep their plans when the tables grew after the plans
/// were made: a backfill or a bulk load fills them long before autovacuum analyzes them, and plans
/// cached while they were nearly empty stay in use (migration 0005).
@Suite("Plans with stale statistics")
struct StalePlanTests {
    @Test("claims, fences and completions planned on a nearly empty job table never scan it once it has grown")
    func jobStatementsStayOnIndexes() async throws {
        try await TestDatabase.withSchema { schema in
            let queue = JobQueue(store: schema.store)
            try await schema.register("w1")
            let connection = try await schema.connect()
            do {
                // Plans are cached per connection at first use: make them while ef_jobs holds 4 jobs.
                try await queue.enqueue((1...4).map { JobRequest(projection: "p", partition: "a", streamId: "first-\($0)") })
                #expect(try await claimFenceComplete(on: connection, slots: 4) == 4)

                for tenant in ["a", "b", "c", "d"] {
                    try await queue.enqueue((1...1_500).map { JobRequest(projection: "p", partition: tenant, streamId: "s\($0)") })
                }
                // The counters' change across the statements measured: nothing else in between touches
                // ef_jobs. (PostgreSQL 15's per-transaction counters can still hold earlier transactions'
                // counts that were not flushed yet, so they are read before and after.)
                try await connection.query("BEGIN", logger: TestDatabase.logger)
                let before = try await tableCounters("ef_jobs", on: connection)
                #expect(try await claimFenceComplete(on: connection, slots: 32, inTransaction: true) == 32)
                let after = try await tableCounters("ef_jobs", on: connection)
                let (scans, rowsRead) = (after.scans - before.scans, after.rows - before.rows)
                try await connection.query("COMMIT", logger: TestDatabase.logger)
                #expect(scans == 0, "sequential scans of ef_jobs (\(rowsRead) rows read)")
            } catch {
                try? await connection.close()
                throw error
            }
            try await connection.close()
        }
    }

    @Test("a page of the global log and a held partition's page, planned on a nearly empty log, read a few rows once it has grown")
    func globalLogPageStaysOnIndex() async throws {
        try await TestDatabase.withSchema { schema in
            let store = schema.store
            let connection = try await schema.connect()
            do {
                try await store.appendToStream("first", messages: (1...3).map { _ in message("E") }, options: AppendOptions())
                // The first calls plan the read and the check while the log holds 3 events (past the 5 custom plans).
                for _ in 1...8 {
                    _ = try await readPage(on: connection, limit: 10)
                    _ = try await readPage(on: connection, limit: 10, heldFrom: 0)
                }

                for stream in 1...50 {
                    try await store.appendToStream("s\(stream)", messages: (1...100).map { _ in message("E", #"{"n": 1}"#) }, options: AppendOptions())
                }
                // Near the end of the log: a scan from its start would read almost all of it.
                let nearEnd = try await secondToLast(on: connection)
                // The counters' change across the two calls (see above).
                try await connection.query("BEGIN", logger: TestDatabase.logger)
                let before = try await tableCounters("ef_messages", on: connection)
                let fetchedBefore = try await indexFetches("ef_messages", on: connection)
                let page = try await readPage(on: connection, limit: 10)
                let held = try await readPage(on: connection, limit: 10, heldFrom: nearEnd)
                let after = try await tableCounters("ef_messages", on: connection)
                let (scans, rowsRead) = (after.scans - before.scans, after.rows - before.rows)
                let fetched = try await indexFetches("ef_messages", on: connection) - fetchedBefore
                try await connection.query("COMMIT", logger: TestDatabase.logger)
                #expect(page == 10)
                #expect(held == 1, "the held partition's last event follows its second to last")
                #expect(scans == 0, "sequential scans of ef_messages (\(rowsRead) rows read)")
                #expect(fetched <= 50, "two pages of 10 fetched \(fetched) of the log's 5,003 rows")
            } catch {
                try? await connection.close()
                throw error
            }
            try await connection.close()
        }
    }

    /// Claims up to `slots` jobs for w1, fences and completes them, on `connection`.
    /// - Returns: How many were completed.
    private func claimFenceComplete(on connection: PostgresConnection, slots: Int32, inTransaction: Bool = false) async throws -> Int {
        let logger = TestDatabase.logger
        var ids: [Int64] = []
        var tokens: [Int64] = []
        let claim: PostgresQuery = "SELECT id, fencing_token FROM ef_claim_jobs('w1', '{live}', NULL, \(slots))"
        for try await (id, token) in try await connection.query(claim, logger: logger).decode((Int64, Int64).self) {
            ids.append(id)
            tokens.append(token)
        }
        if !inTransaction { try await connection.query("BEGIN", logger: logger) }
        var fenced = 0
        for try await _ in try await connection.query("SELECT id FROM ef_fence_jobs('w1', \(ids), \(tokens))", logger: logger) { fenced += 1 }
        var completed = 0
        for try await _ in try await connection.query("SELECT id FROM ef_complete_jobs('w1', \(ids), \(tokens))", logger: logger) { completed += 1 }
        if !inTransaction { try await connection.query("COMMIT", logger: logger) }
        #expect(fenced == ids.count)
        return completed
    }

    /// Reads a page of the log from its start, or, with `heldFrom`, from its end with the default
    /// partition held at that position. - Returns: How many events it read.
    private func readPage(on connection: PostgresConnection, limit: Int64, heldFrom: Int64? = nil) async throws -> Int {
        var rows = 0
        let query: PostgresQuery = """
            SELECT global_position FROM ef_read_log(
                CASE WHEN \(heldFrom)::bigint IS NULL THEN 0 ELSE (SELECT max(global_position) FROM ef_messages) END,
                CASE WHEN \(heldFrom)::bigint IS NULL THEN '{}' ELSE ARRAY[hashtext(\(defaultPartition))] END,
                CASE WHEN \(heldFrom)::bigint IS NULL THEN '{}' ELSE ARRAY[\(heldFrom)::bigint] END,
                NULL, NULL, \(limit), true)
             WHERE global_position IS NOT NULL
            """
        for try await _ in try await connection.query(query, logger: TestDatabase.logger) { rows += 1 }
        return rows
    }

    /// The global position of the log's second-to-last event.
    private func secondToLast(on connection: PostgresConnection) async throws -> Int64 {
        let query: PostgresQuery = "SELECT global_position FROM ef_messages ORDER BY global_position DESC OFFSET 1 LIMIT 1"
        for try await position in try await connection.query(query, logger: TestDatabase.logger).decode(Int64.self) { return position }
        return 0
    }

    /// Sequential scans of `table` counted by this backend and not yet flushed (the current
    /// transaction's, and on PostgreSQL 15 possibly earlier ones'), and the rows they read.
    private func tableCounters(_ table: String, on connection: PostgresConnection) async throws -> (scans: Int64, rows: Int64) {
        let query: PostgresQuery = """
            SELECT seq_scan, seq_tup_read FROM pg_stat_xact_user_tables WHERE schemaname = current_schema() AND relname = \(table)
            """
        for try await counters in try await connection.query(query, logger: TestDatabase.logger).decode((Int64, Int64).self) {
            return counters
        }
        return (0, 0)
    }

    /// Rows fetched through indexes (plain and bitmap scans) of `table` in the current transaction.
    private func indexFetches(_ table: String, on connection: PostgresConnection) async throws -> Int64 {
        let query: PostgresQuery = """
            SELECT coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables WHERE schemaname = current_schema() AND relname = \(table)
            """
        for try await fetched in try await connection.query(query, logger: TestDatabase.logger).decode(Int64.self) { return fetched }
        return 0
    }

    /// Every routine of the schema: its name, whether it disables a plan node, whether it disables JIT.
    static func routineSettings(_ schema: TestSchema) async throws -> [(name: String, pinsPlan: Bool, jitOff: Bool)] {
        try await schema.rows("""
            SELECT p.proname::text,
                   EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'enable\\_%=off'),
                   coalesce('jit=off' = ANY (p.proconfig), false)
              FROM pg_proc p
             WHERE p.pronamespace = current_schema()::regnamespace
             ORDER BY 1
            """, as: (String, Bool, Bool).self).map { (name: $0.0, pinsPlan: $0.1, jitOff: $0.2) }
    }

    @Test("the reads polled by dashboards, monitors and autoscalers never JIT-compile: a compile costs several times the read once the job table has churned")
    func polledReadsNeverCompile() async throws {
        try await TestDatabase.withSchema { schema in
            let routines = try await Self.routineSettings(schema)
            for polled in ["ef_fleet_status", "ef_projection_versions", "ef_record_fleet_minute", "ef_pool_demand"] {
                let routine = try #require(routines.first { $0.name == polled }, "\(polled) exists")
                #expect(routine.jitOff, "\(polled) may JIT-compile")
            }
        }
    }

    @Test("every routine that disables a plan node also disables JIT, which that node's cost would trigger at every call")
    func pinnedRoutinesNeverCompile() async throws {
        try await TestDatabase.withSchema { schema in
            let pinned = try await Self.routineSettings(schema).filter(\.pinsPlan)
            let compiling = pinned.filter { !$0.jitOff }.map(\.name)
            #expect(pinned.contains { $0.name == "ef_read_log" } && pinned.contains { $0.name == "ef_claim_jobs" }, "\(pinned.map(\.name))")
            #expect(compiling.isEmpty, "routines that pin plans but may JIT-compile them: \(compiling)")
        }
    }
}
