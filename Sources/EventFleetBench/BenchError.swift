/// Why a bench run stopped: the numbers would not mean what they say.
enum BenchError: Error, CustomStringConvertible {
    /// A process the bench started did not answer as expected.
    case childFailed(command: String, reason: String)
    /// The work did not all get done, or its result is wrong.
    case verificationFailed(workload: String, reason: String)
    /// A condition was not reached in time.
    case timedOut(workload: String, waitingFor: String)

    var description: String {
        switch self {
        case .childFailed(let command, let reason): "bench child '\(command)' failed: \(reason)"
        case .verificationFailed(let workload, let reason): "\(workload): verification failed: \(reason)"
        case .timedOut(let workload, let waitingFor): "\(workload): timed out waiting for \(waitingFor)"
        }
    }
}
