import PostgresNIO

// The job queue's hot statements, prepared once per connection (see `checkedExecute`).

/// Claims up to `slots` jobs (`JobQueue.claim`).
struct ClaimJobsStatement: PostgresPreparedStatement {
    static let sql = """
        SELECT id, projection, partition, stream_id, lane, attempt, max_attempts, fencing_token
          FROM ef_claim_jobs($1, $2::text[], $3::text[], $4)
        """
    static let bindingDataTypes: [PostgresDataType] = [.text, .textArray, .textArray, .int4]
    typealias Row = (Int64, String, String, String, String, Int32, Int32, Int64)

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
        try row.decode(Row.self)
    }
}

/// Checks and locks the claims of several jobs in the caller's transaction (the multi-job `JobQueue.fence`).
struct FenceJobsStatement: PostgresPreparedStatement {
    static let sql = """
        SELECT j.id, set_config('idle_in_transaction_session_timeout', $1, true) FROM ef_jobs j
          JOIN unnest($2::bigint[], $3::bigint[]) AS r(id, token)
            ON j.id = r.id AND j.fencing_token = r.token
         WHERE j.owner = $4 AND j.state = 'running'
         ORDER BY j.id
           FOR NO KEY UPDATE OF j
        """
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
        try row.decode((Int64, String).self).0
    }
}

/// Completes several jobs, each fenced by its token (the batch `JobQueue.complete`).
struct CompleteJobsStatement: PostgresPreparedStatement {
    static let sql = """
        WITH job AS (
            SELECT j.id, j.rerun FROM ef_jobs j
              JOIN unnest($1::bigint[], $2::bigint[]) AS r(id, token)
                ON j.id = r.id AND j.fencing_token = r.token
             WHERE j.owner = $3 AND j.state = 'running'
             ORDER BY j.id
               FOR UPDATE OF j
        ), requeued AS (
            UPDATE ef_jobs j
               SET state = 'ready', owner = NULL, claimed_at = NULL, rerun = false, attempt = 0, run_at = now(), updated = now()
              FROM job WHERE j.id = job.id AND job.rerun
            RETURNING j.id, 'requeued'::text
        ), deleted AS (
            DELETE FROM ef_jobs j USING job WHERE j.id = job.id AND NOT job.rerun
            RETURNING j.id, 'completed'::text
        )
        SELECT * FROM requeued UNION ALL SELECT * FROM deleted
        """
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
        try row.decode(Row.self)
    }
}
