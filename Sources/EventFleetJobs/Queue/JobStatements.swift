import EventFleetPostgres
import PostgresNIO

// The job queue's frequent statements (see `Statement`). They call routines whose plans hold however
// stale the statistics of ef_jobs are.

/// Claims up to `slots` jobs (`JobQueue.claim`).
struct ClaimJobsStatement: Statement {
    static func sql(_ schema: Schema) -> String {
        """
        SELECT id, projection, partition, stream_id, lane, attempt, max_attempts, fencing_token
          FROM \(schema.ef_claim_jobs)($1, $2::text[], $3::text[], $4)
        """
    }
    static let bindingDataTypes: [PostgresDataType] = [.text, .textArray, .textArray, .int4]
    typealias Row = (Int64, String, String, String, JobLane, Int32, Int32, Int64)

    var worker: String
    var lanes: [String]
    var partitions: [String]?
    var slots: Int32

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 4)
        bindings.append(worker)
        bindings.append(lanes)
        if let partitions { bindings.append(partitions) } else { bindings.appendNull() }
        bindings.append(slots)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row {
        var cells = RowCells(row, statement: "ClaimJobsStatement")
        return (
            try cells.next(), try cells.next(), try cells.next(), try cells.next(), try cells.next(), try cells.next(),
            try cells.next(), try cells.next()
        )
    }
}

/// Checks and locks the claims of several jobs in the caller's transaction (the multi-job `JobQueue.fence`).
struct FenceJobsStatement: Statement {
    static func sql(_ schema: Schema) -> String {
        """
        SELECT f.id, set_config('idle_in_transaction_session_timeout', $1, true) FROM \(schema.ef_fence_jobs)($4, $2, $3) AS f(id)
        """
    }
    static let bindingDataTypes: [PostgresDataType] = [.text, .int8Array, .int8Array, .text]
    typealias Row = Int64

    var idleMilliseconds: String
    var ids: [Int64]
    var tokens: [Int64]
    var worker: String

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 4)
        bindings.append(idleMilliseconds)
        bindings.append(ids)
        bindings.append(tokens)
        bindings.append(worker)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Int64 {
        var cells = RowCells(row, statement: "FenceJobsStatement")
        return try cells.next()
    }
}

/// Completes several jobs, each fenced by its token (the batch `JobQueue.complete`).
struct CompleteJobsStatement: Statement {
    static func sql(_ schema: Schema) -> String {
        """
        SELECT c.id, c.outcome FROM \(schema.ef_complete_jobs)($3, $1, $2) AS c(id, outcome)
        """
    }
    static let bindingDataTypes: [PostgresDataType] = [.int8Array, .int8Array, .text]
    typealias Row = (Int64, String)

    var ids: [Int64]
    var tokens: [Int64]
    var worker: String

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 3)
        bindings.append(ids)
        bindings.append(tokens)
        bindings.append(worker)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row {
        var cells = RowCells(row, statement: "CompleteJobsStatement")
        return (try cells.next(), try cells.next())
    }
}
