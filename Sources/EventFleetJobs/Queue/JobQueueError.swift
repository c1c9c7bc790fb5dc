/// Errors of the job queue, the worker and the scheduler.
public enum JobQueueError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The job is no longer this worker's: it was rescued and claimed again, or finished.
    case claimLost(jobId: Int64, worker: String, fencingToken: Int64)
    /// A worker's or scheduler's setting cannot work; `field` names it. Nothing was started.
    case invalidConfiguration(field: String, reason: String)

    public var description: String {
        switch self {
        case .claimLost(let jobId, let worker, let token):
            "job \(jobId) is no longer claimed by worker \(worker) with token \(token); its work was not committed"
        case .invalidConfiguration(let field, let reason):
            "invalid \(field): \(reason)"
        }
    }
}
