import EventFleetCore
import Metrics

/// The fleet's metrics, labelled in snake_case; exported by whatever `MetricsSystem` the process
/// bootstraps (the `eventfleet` binary serves them in Prometheus text format).
struct JobMetrics: Sendable {
    let claimed = Counter(label: "eventfleet_jobs_claimed_total")
    let completed = Counter(label: "eventfleet_jobs_completed_total")
    let failed = Counter(label: "eventfleet_jobs_failed_total")
    let dead = Counter(label: "eventfleet_jobs_dead_total")
    let rescued = Counter(label: "eventfleet_jobs_rescued_total")
    /// The leader found the job table worn but its role may not vacuum it.
    let vacuumsSkipped = Counter(label: "eventfleet_job_table_vacuums_skipped_total")
    let enqueued = Counter(label: "eventfleet_jobs_enqueued_total")
    let eventsProjected = Counter(label: "eventfleet_events_projected_total")
    let jobDuration = Timer(label: "eventfleet_job_duration_seconds", preferredDisplayUnit: .seconds)
    let running = Gauge(label: "eventfleet_jobs_running")

    /// Queue depth: ready jobs per tenant and lane (`eventfleet_jobs_ready{partition,lane}`).
    /// Tenants seen before and now empty are set to 0, so a drained queue shows as drained.
    func recordReady(_ depths: [ReadyDepth], previously seen: Set<[String]>) -> Set<[String]> {
        var now = Set<[String]>()
        for depth in depths {
            let key = [depth.partition, depth.lane.rawValue]
            now.insert(key)
            Gauge(label: "eventfleet_jobs_ready", dimensions: [("partition", key[0]), ("lane", key[1])]).record(depth.ready)
        }
        for key in seen.subtracting(now) {
            Gauge(label: "eventfleet_jobs_ready", dimensions: [("partition", key[0]), ("lane", key[1])]).record(0)
        }
        return seen.union(now)
    }

    /// How long an append in flight has held each partition of the log back
    /// (`eventfleet_log_held_back_seconds{partition}`, the oldest append's age when several hold
    /// one). Partitions held before and released now are set to 0, as drained queues are.
    func recordHeldBack(_ holds: [LogHold], previously seen: Set<String>) -> Set<String> {
        var ages: [String: Double] = [:]
        for hold in holds {
            ages[hold.partitionLabel, default: 0] = max(ages[hold.partitionLabel, default: 0], hold.age.seconds)
        }
        for (partition, age) in ages {
            Gauge(label: "eventfleet_log_held_back_seconds", dimensions: [("partition", partition)]).record(age)
        }
        for partition in seen.subtracting(ages.keys) {
            Gauge(label: "eventfleet_log_held_back_seconds", dimensions: [("partition", partition)]).record(0)
        }
        return seen.union(ages.keys)
    }
}
