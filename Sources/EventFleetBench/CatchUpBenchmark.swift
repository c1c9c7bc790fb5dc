import EventFleetCLI
import Foundation
import Logging

/// Workloads 5 and 8: preloaded cart streams, then a scheduler process and W worker processes bring
/// every `carts` row up to date; the workers' peak resident memory meanwhile.
struct CatchUpBenchmark: Sendable {
    let baseURL: String
    /// With a pooler (`--pooler-url`), each worker count also catches up four more times, direct,
    /// pooled, pooled, direct, for the pooler's rows.
    let poolerURL: String?
    let settings: BenchSettings
    let logger: Logger

    func run(into report: inout BenchReport) async throws {
        var footprints: [(workers: Int, bytes: Int)] = []
        for workers in settings.catchUpWorkers {
            let result = try await catchUp(workers: workers, poolerURL: nil)
            let perStream = settings.catchUpEvents / settings.catchUpStreams
            report.add(BenchRow(
                workload: "5 catch-up",
                variant: "\(settings.catchUpEvents) ev, \(settings.catchUpStreams) streams, \(settings.catchUpTenants) tenants, \(workers) worker\(workers == 1 ? "" : "s")",
                unit: "events/s", value: result.eventsPerSecond,
                target: workers >= 2 ? ">= 25000 events/s" : nil, targetMet: workers >= 2 ? result.eventsPerSecond >= 25_000 : nil,
                note: String(
                    format: "%.0f jobs/s; %d streams of %d events; workers of %d slots, %d jobs per transaction; all %d rows verified; preload %.0f events/s",
                    result.jobsPerSecond, settings.catchUpStreams, perStream, settings.workerConcurrency, settings.jobsPerTransaction,
                    settings.catchUpStreams, result.preloadEventsPerSecond
                )
            ))
            footprints.append((workers, result.peakWorkerBytes))
            if let poolerURL {
                let (direct, pooled) = try await measureDirectAndPooled { _ in
                    try await catchUp(workers: workers, poolerURL: nil).throughput
                } pooled: { _ in
                    try await catchUp(workers: workers, poolerURL: poolerURL).throughput
                }
                report.add(.pooler(
                    workload: "5 catch-up",
                    variant: "\(settings.catchUpEvents) ev, \(settings.catchUpStreams) streams, \(workers) worker\(workers == 1 ? "" : "s")",
                    unit: "events/s", pooled: pooled.itemsPerSecond, direct: direct.itemsPerSecond,
                    note: "baseline: the same scheduler and workers on direct connections; each side catches up twice, "
                        + "from a schema of its own each time, preloaded directly"
                ))
            }
        }
        for (workers, bytes) in footprints {
            let mebibytes = Double(bytes) / 1_048_576
            report.add(BenchRow(
                workload: "8 footprint", variant: "worker peak RSS (VmHWM), \(workers) worker\(workers == 1 ? "" : "s")",
                unit: "MiB", value: mebibytes, target: "<= 64 MiB", targetMet: mebibytes <= 64,
                note: "the largest of the worker processes during workload 5"
            ))
        }
    }

    struct Result: Sendable {
        var eventsPerSecond: Double
        var jobsPerSecond: Double
        var preloadEventsPerSecond: Double
        var peakWorkerBytes: Int
        /// The events and the time the fleet took to bring every row up to date.
        var throughput: Throughput
    }

    /// One catch-up in a schema of its own; with `poolerURL` the scheduler and the workers connect
    /// through the pooler, while the preload and the checks stay on direct connections.
    private func catchUp(workers: Int, poolerURL: String?) async throws -> Result {
        try await BenchDatabase.with(baseURL: baseURL, poolerURL: poolerURL, poolSize: 12, logger: logger) { database in
            try await catchUp(database: database, workers: workers, fleetURL: database.pooled?.url ?? database.url)
        }
    }

    private func catchUp(database: BenchDatabase, workers: Int, fleetURL: String) async throws -> Result {
        let preload = CartsPreload(database: database)
        try await preload.registerCartsProjection()
        let tenants = (1...settings.catchUpTenants).map { "tenant-\($0)" }
        let loaded = try await preload.load(
            streams: settings.catchUpStreams, eventsPerStream: settings.catchUpEvents / settings.catchUpStreams, tenants: tenants
        )
        let events = settings.catchUpStreams * (settings.catchUpEvents / settings.catchUpStreams)
        var children: [ChildProcess] = []
        do {
            let started = ContinuousClock.now
            children.append(try BenchInterruption.start(["scheduler"], databaseURL: fleetURL))
            for _ in 0..<workers {
                children.append(try BenchInterruption.start(
                    ["worker", "--concurrency", "\(settings.workerConcurrency)", "--jobs-per-transaction", "\(settings.jobsPerTransaction)"],
                    databaseURL: fleetURL
                ))
            }
            let deadline = started + .seconds(600)
            while try await preload.upToDateRows() < loaded.streams.count {
                guard ContinuousClock.now < deadline else { throw BenchError.timedOut(workload: "5 catch-up", waitingFor: "every carts row") }
                guard children.allSatisfy(\.isRunning) else {
                    throw BenchError.childFailed(command: "scheduler/worker", reason: "a fleet process exited during the catch-up")
                }
                try await Task.sleep(for: .milliseconds(100))
            }
            let elapsed = ContinuousClock.now - started
            // Workers flush their job counts with each heartbeat (every 2 s).
            try await Task.sleep(for: .milliseconds(2_500))
            let peak = children.dropFirst().compactMap(BenchInterruption.peakResidentBytes).max() ?? 0
            let jobs = try await database.count("SELECT coalesce(sum(completed), 0)::bigint FROM \(database.names.ef_job_stats)")
            for child in children { await BenchInterruption.stop(child) }
            children = []
            let wrong = try await preload.mismatches(loaded.streams)
            guard wrong.isEmpty else {
                throw BenchError.verificationFailed(workload: "5 catch-up", reason: "\(wrong.count) carts rows differ from their streams: \(wrong.prefix(5))")
            }
            return Result(
                eventsPerSecond: Double(events) / elapsed.seconds, jobsPerSecond: Double(jobs) / elapsed.seconds,
                preloadEventsPerSecond: loaded.eventsPerSecond, peakWorkerBytes: peak,
                throughput: Throughput(items: events, elapsed: elapsed)
            )
        } catch {
            for child in children { await BenchInterruption.stop(child) }
            throw error
        }
    }
}
