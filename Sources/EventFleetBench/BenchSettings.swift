import EventFleetJobs

/// The sizes and durations of one benchmark run: `--quick` for a smoke check, full for the figures.
struct BenchSettings: Sendable {
    /// How long each timed append, batch and read run lasts.
    var runDuration: Duration
    /// Concurrent writers of workload 1.
    var appendConcurrencies: [Int] = [1, 4, 16]
    /// Concurrent writers of workload 2.
    var batchWriters = 4
    var batchSizes = [10, 100]
    /// Events in the stream workload 3 reads.
    var readStreamLength = 1_000
    /// No-op jobs burnt down per configuration of workload 4.
    var burnJobs: Int
    /// Whether to also burn down with one completion statement per job.
    var burnCompletingEach: Bool
    var burnProcesses = [1, 2]
    var burnBatchSizes = [1, 10, 100]
    /// Concurrent claim loops in each burn-down process (each holds one connection).
    var burnLoopsPerProcess = 4
    /// Tenants the burn-down jobs are spread over.
    var burnTenants = 8
    /// Workload 5: events, streams and tenants preloaded before each catch-up.
    var catchUpEvents: Int
    var catchUpStreams: Int
    var catchUpTenants = 4
    var catchUpWorkers = [1, 2]
    /// Job slots of each worker (workloads 5 and 6).
    var workerConcurrency = ProjectionWorker.Configuration().concurrency
    /// Jobs of a worker that share a transaction (workloads 5 and 6).
    var jobsPerTransaction = ProjectionWorker.Configuration().jobsPerTransaction
    /// Workload 6: the steady write load and how long it is measured, after a warm-up.
    var freshnessRate = 500
    var freshnessStreams = 1_000
    var freshnessDuration: Duration
    var freshnessWarmup: Duration = .seconds(2)
    /// Workload 10: the live write load while version 2 of `carts` is built from workload 5's
    /// history.
    var versionBuildRate = 200
    /// Workload 7: jobs pushed through the queue between the fresh and the worn measurement, and
    /// the most time that may take (a loaded machine stops short of the count, and says so).
    var historyJobs: Int
    var historyTimeLimit: Duration
    /// Claims timed in each claim-latency measurement.
    var claimSamples: Int
    /// Requests timed per page of workload 11 (each waits for a read of the fleet to be due).
    var dashboardSamples: Int
    /// Concurrent writers of workload 9's commands on one stream.
    var hotCommandWriters = 16

    static let quick = BenchSettings(
        runDuration: .seconds(2), burnJobs: 1_000, burnCompletingEach: false, catchUpEvents: 10_000, catchUpStreams: 1_000,
        freshnessDuration: .seconds(8), historyJobs: 100_000, historyTimeLimit: .seconds(30), claimSamples: 500,
        dashboardSamples: 10
    )

    static let full = BenchSettings(
        runDuration: .seconds(8), burnJobs: 5_000, burnCompletingEach: true, catchUpEvents: 50_000, catchUpStreams: 5_000,
        freshnessDuration: .seconds(30), historyJobs: 1_000_000, historyTimeLimit: .seconds(300), claimSamples: 2_000,
        dashboardSamples: 40
    )
}
