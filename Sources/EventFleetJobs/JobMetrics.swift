import Metrics

/// The fleet's metrics, labelled in snake_case; exported by whatever `MetricsSystem` the process
/// bootstraps (the `eventfleet` binary serves them in Prometheus text format).
struct JobMetrics: Sendable {
    let claimed = Counter(label: "eventfleet_jobs_claimed_total")
    let completed = Counter(label: "eventfleet_jobs_completed_total")
    let failed = Counter(label: "eventfleet_jobs_failed_total")
    let dead = Counter(label: "eventfleet_jobs_dead_total")
    let rescued = Counter(label: "eventfleet_jobs_rescued_total")
    let enqueued = Counter(label: "eventfleet_jobs_enqueued_total")
    let eventsProjected = Counter(label: "eventfleet_events_projected_total")
    let jobDuration = Timer(label: "eventfleet_job_duration_seconds", preferredDisplayUnit: .seconds)
    let running = Gauge(label: "eventfleet_jobs_running")
    let queueDepth = Gauge(label: "eventfleet_jobs_ready")
}
