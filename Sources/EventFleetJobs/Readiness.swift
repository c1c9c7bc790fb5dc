/// A fleet service that can say whether it is doing its work, for a readiness probe.
///
/// Liveness (`/healthz`) says only that the process runs: it must not depend on the database, or
/// every pod restarts while the database does. Readiness (`/readyz`) says the service reaches the
/// database and makes progress: a worker's heartbeats go through, a scheduler renews or checks its
/// lease.
public protocol ReadinessReporting: Sendable {
    /// Whether the service reached the database recently enough to count as working.
    var isReady: Bool { get }
}
