import EventFleetCore
import EventFleetPostgres
import Foundation
import Logging
import PostgresNIO

// A claimed job's life: claimed, fenced in each transaction of its work, then completed, failed
// (ready again or dead) or handed back. Each step is a routine of Migrations/routines.

extension JobQueue {
    /// Claims up to `slots` ready jobs for a worker in one round trip, respecting every tenant's cap
    /// on running jobs exactly and preferring the least loaded, then least recently served tenant.
    ///
    /// - Parameters:
    ///   - worker: The worker's id (its registration).
    ///   - lanes: The lanes it works.
    ///   - partitions: The tenants it is dedicated to, or `nil` for all.
    ///   - slots: Its free slots.
    public func claim(worker: String, lanes: [JobLane], partitions: [String]?, slots: Int) async throws -> [Job] {
        guard slots > 0 else { return [] }
        let statement = ClaimJobsStatement(worker: worker, lanes: lanes.map(\.rawValue), partitions: partitions, slots: Int32(slots))
        let rows = try await database.run("claim jobs", statement)
        if !rows.isEmpty && FaultHooks.dropsClaimReply() { return [] }
        return rows.map { id, projection, partition, stream, lane, attempt, maxAttempts, token in
            Job(
                id: id, projection: projection, partition: partition, streamId: stream, lane: lane,
                attempt: Int(attempt), maxAttempts: Int(maxAttempts), fencingToken: token
            )
        }
    }

    /// Checks, inside the caller's transaction, that `worker` still holds `job`, and locks the job
    /// row until that transaction ends: a rescue skips it meanwhile, or has already happened and
    /// this throws, so a worker that lost its claim commits nothing.
    ///
    /// The transaction also gets an `idle_in_transaction_session_timeout`: a worker frozen mid-job
    /// (SIGSTOP, a hung host) has its transaction ended by the server, which releases the lock so
    /// the job can be rescued, and leaves it nothing to commit when it wakes up.
    ///
    /// - Throws: ``JobQueueError/claimLost(jobId:worker:fencingToken:)``.
    public func fence(_ job: Job, worker: String, on connection: PostgresConnection, idleTimeout: Duration = .seconds(10)) async throws {
        let held = try await fence([job], worker: worker, on: connection, idleTimeout: idleTimeout)
        if held.isEmpty { throw JobQueueError.claimLost(jobId: job.id, worker: worker, fencingToken: job.fencingToken) }
    }

    /// Fences several jobs in one statement (see ``fence(_:worker:on:idleTimeout:)``), for a worker
    /// that runs them in one transaction.
    ///
    /// - Returns: The jobs `worker` still holds, now locked; the others were lost (rescued or finished
    ///   elsewhere) and must not be worked on.
    public func fence(_ jobs: [Job], worker: String, on connection: PostgresConnection, idleTimeout: Duration = .seconds(10)) async throws -> [Job] {
        guard !jobs.isEmpty else { return [] }
        let statement = FenceJobsStatement(
            idleMilliseconds: String(idleTimeout.milliseconds), ids: jobs.map(\.id), tokens: jobs.map(\.fencingToken), worker: worker
        )
        let held = Set(try await run("fence jobs", statement, on: connection))
        return jobs.filter { held.contains($0.id) }
    }

    /// How a completion ended.
    public enum Completion: Sendable, Hashable {
        /// The job is done and gone.
        case completed
        /// New events arrived while it ran: it is ready again.
        case requeued
    }

    /// Completes a job (fenced): it is deleted, or made ready again when new events arrived meanwhile.
    ///
    /// - Parameters:
    ///   - job: The job, as claimed.
    ///   - worker: The worker that claimed it.
    ///   - connection: The transaction of the job's last batch, so the completion commits with the
    ///     work; `nil` to use the pool.
    /// - Throws: ``JobQueueError/claimLost(jobId:worker:fencingToken:)`` when the claim was lost.
    @discardableResult
    public func complete(_ job: Job, worker: String, on connection: PostgresConnection? = nil) async throws -> Completion {
        let completions = try await complete([job], worker: worker, on: connection)
        if completions.completed.contains(job.id) { return .completed }
        if completions.requeued.contains(job.id) { return .requeued }
        throw JobQueueError.claimLost(jobId: job.id, worker: worker, fencingToken: job.fencingToken)
    }

    /// What a batch completion did with each job.
    public struct Completions: Sendable, Hashable {
        /// Jobs done and gone.
        public var completed: [Int64] = []
        /// Jobs made ready again because new events arrived while they ran.
        public var requeued: [Int64] = []
        /// Jobs no longer claimed by the worker with their token (rescued, or finished elsewhere):
        /// nothing was changed for them.
        public var lost: [Int64] = []

        public init() {}
    }

    /// Completes many jobs (each fenced by its own token) in one statement: the projection worker
    /// completes the jobs of a shared transaction with it, committing them with their last batch.
    ///
    /// - Parameters:
    ///   - jobs: The jobs, as claimed.
    ///   - worker: The worker that claimed them.
    ///   - connection: A transaction to complete in, or `nil` to use the pool.
    /// - Returns: Which jobs completed, which were requeued and which were no longer this worker's.
    public func complete(_ jobs: [Job], worker: String, on connection: PostgresConnection? = nil) async throws -> Completions {
        var completions = Completions()
        guard !jobs.isEmpty else { return completions }
        let statement = CompleteJobsStatement(ids: jobs.map(\.id), tokens: jobs.map(\.fencingToken), worker: worker)
        let outcomes = try await run("complete jobs", statement, on: connection)
        for (id, outcome) in outcomes {
            if outcome == "requeued" { completions.requeued.append(id) } else { completions.completed.append(id) }
        }
        let settled = Set(outcomes.map(\.0))
        completions.lost = jobs.map(\.id).filter { !settled.contains($0) }
        return completions
    }

    /// How a failure ended.
    public enum Failure: Sendable, Hashable {
        /// Ready again at `runAt`.
        case retrying(runAt: Date)
        /// Out of attempts: `dead`, with its error history, until an operator retries it.
        case dead
    }

    /// Fails a job (fenced), recording the error: ready again after `retryDelay`, or `dead` after
    /// its last attempt. NUL characters in `error` are recorded as U+FFFD (PostgreSQL text cannot
    /// hold them), so any error can be recorded.
    ///
    /// - Throws: ``JobQueueError/claimLost(jobId:worker:fencingToken:)`` when the claim was lost.
    public func fail(_ job: Job, worker: String, error: String, retryDelay: Duration) async throws -> Failure {
        let rows = try await database.query("fail job", """
            SELECT state, run_at FROM \(schema.ef_fail_job)(\(worker), \(job.id), \(job.fencingToken),
                                                        \(DiagnosticText.storable(error)), \(retryDelay.milliseconds))
            """)
        guard let (state, runAt) = try rows.first?.decode((String, Date).self) else {
            throw JobQueueError.claimLost(jobId: job.id, worker: worker, fencingToken: job.fencingToken)
        }
        return state == "dead" ? .dead : .retrying(runAt: runAt)
    }

    /// Hands jobs back unfinished (a draining worker that ran out of time): ready at once, and the
    /// attempt does not count.
    ///
    /// - Returns: How many were still this worker's.
    @discardableResult
    public func release(_ jobs: [Job], worker: String) async throws -> Int {
        guard !jobs.isEmpty else { return 0 }
        return Int(try await database.value(
            "release jobs",
            "SELECT \(schema.ef_release_jobs)(\(worker), \(jobs.map(\.id))::bigint[], \(jobs.map(\.fencingToken))::bigint[])",
            as: Int64.self
        ))
    }
}
