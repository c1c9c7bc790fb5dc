import EventFleetCLI
import Foundation
import Logging

/// Workloads 5 and 8: preloaded cart streams, then a scheduler process and W worker processes bring
/// every `carts` row up to date; the workers' peak resident memory meanwhile.
struct CatchUpBenchmark: Sendable {
    let baseURL: String
    let settings: BenchSettings
    let logger: Logger

    func run(into report: inout BenchReport) async throws {
        var footprints: [(workers: Int, bytes: Int)] = []
        for workers in settings.catchUpWorkers {
            let result = try await BenchDatabase.with(baseURL: baseURL, poolSize: 12, logger: logger) { database in
                try await catchUp(database: database, workers: workers)
            }
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
    }

    private func catchUp(database: BenchDatabase, workers: Int) async throws -> Result {
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
            children.append(try BenchInterruption.start(["scheduler"], databaseURL: database.url))
            for _ in 0..<workers {
                children.append(try BenchInterruption.start(
                    ["worker", "--concurrency", "\(settings.workerConcurrency)", "--jobs-per-transaction", "\(settings.jobsPerTransaction)"],
                    databaseURL: database.url
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
                preloadEventsPerSecond: loaded.eventsPerSecond, peakWorkerBytes: peak
            )
        } catch {
            for child in children { await BenchInterruption.stop(child) }
            throw error
        }
    }
}
