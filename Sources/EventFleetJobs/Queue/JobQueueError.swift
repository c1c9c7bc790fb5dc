/// Errors of the job queue, the worker and the scheduler.
public enum JobQueueError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The job is no longer this worker's: it was rescued and claimed again, or finished.
    case claimLost(jobId: Int64, worker: String, fencingToken: Int64)
    /// The server ended a job's transaction, open for `openFor`, because it idled longer than the
    /// worker's idle-transaction timeout between two statements: the projection's work between
    /// them (a fold of a long batch, a slow call) takes too long. The attempt counts.
    case transactionEndedForIdling(openFor: Duration, idleTimeout: Duration)
    /// A worker's or scheduler's setting cannot work; `field` names it. Nothing was started.
    case invalidConfiguration(field: String, reason: String)

    public var description: String {
        switch self {
        case .claimLost(let jobId, let worker, let token):
            "job \(jobId) is no longer claimed by worker \(worker) with token \(token); its work was not committed"
        case .transactionEndedForIdling(let open, let idleTimeout):
            "the server ended the job's transaction after \(open.milliseconds) ms, idle between two statements for longer than the "
                + "idle-transaction timeout of \(idleTimeout.milliseconds) ms: the projection's work between statements takes too "
                + "long; give it a smaller --batch-size or a longer --idle-transaction-timeout-ms"
        case .invalidConfiguration(let field, let reason):
            "invalid \(field): \(reason)"
        }
    }
}
