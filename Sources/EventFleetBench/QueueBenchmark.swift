import EventFleetCLI
import EventFleetJobs
import Foundation
import PostgresNIO

/// Workloads 4 and 7: burning down no-op jobs from worker processes, against a raw one-job-per-
/// transaction `SKIP LOCKED` loop; and claim latency on a fresh job table and after many jobs.
struct QueueBenchmark: Sendable {
    let database: BenchDatabase
    let settings: BenchSettings
    static let projection = "bench-noop"

    // MARK: Workload 4

    func runBurnDown(into report: inout BenchReport) async throws {
        for processes in settings.burnProcesses {
            let baseline = try await burn(mode: .baseline, batch: 1, processes: processes).itemsPerSecond
            let label = "\(processes) process\(processes == 1 ? "" : "es") × \(settings.burnLoopsPerProcess) loops"
            for batch in settings.burnBatchSizes {
                let library = try await burn(mode: .library, batch: batch, processes: processes).itemsPerSecond
                let ratio = library / baseline
                let targeted = batch >= 10
                report.add(BenchRow(
                    workload: "4 burn-down", variant: "claim \(batch), \(label)", unit: "jobs/s",
                    value: library, baseline: baseline, ratio: ratio,
                    target: targeted ? ">= 10000 jobs/s and >= 5x" : nil,
                    targetMet: targeted ? library >= 10_000 && ratio >= 5 : nil
                ))
                if let pooled = database.pooled {
                    let (direct, throughPooler) = try await measureDirectAndPooled { _ in
                        try await burn(mode: .library, batch: batch, processes: processes, databaseURL: database.url)
                    } pooled: { _ in
                        try await burn(mode: .library, batch: batch, processes: processes, databaseURL: pooled.url)
                    }
                    report.add(.pooler(
                        workload: "4 burn-down", variant: "claim \(batch), \(label)", unit: "jobs/s",
                        pooled: throughPooler.itemsPerSecond, direct: direct.itemsPerSecond,
                        note: "baseline: the same burn-worker processes on direct connections; each side burns down the queue twice"
                    ))
                }
            }
            if settings.burnCompletingEach, let largest = settings.burnBatchSizes.max() {
                let each = try await burn(mode: .libraryEach, batch: largest, processes: processes).itemsPerSecond
                report.add(BenchRow(
                    workload: "4 burn-down", variant: "claim \(largest), complete each, \(label)", unit: "jobs/s",
                    value: each, baseline: baseline, ratio: each / baseline,
                    note: "one completion statement per job, as the projection worker commits them"
                ))
            }
        }
    }

    /// Fills the queue with the run's jobs, lets `processes` burn-worker processes empty it, and
    /// returns the jobs and the time from the start signal to the last process's report.
    ///
    /// - Parameter databaseURL: Where the processes connect: the schema's URL by default, or its
    ///   URL through the pooler.
    private func burn(mode: BurnWorkerCommand.Mode, batch: Int, processes: Int, databaseURL: String? = nil) async throws -> Throughput {
        try await fill(count: settings.burnJobs, baseline: mode == .baseline)
        let arguments = ["burn-worker", "--mode", mode.rawValue, "--batch", "\(batch)", "--loops", "\(settings.burnLoopsPerProcess)"]
        var children: [ChildProcess] = []
        do {
            return try await burn(children: &children, processes: processes, arguments: arguments, databaseURL: databaseURL ?? database.url)
        } catch {
            for child in children { await BenchInterruption.stop(child) }
            throw error
        }
    }

    private func burn(children: inout [ChildProcess], processes: Int, arguments: [String], databaseURL: String) async throws -> Throughput {
        let command = arguments.joined(separator: " ")
        for _ in 0..<processes {
            children.append(try BenchInterruption.start(arguments, databaseURL: databaseURL, interactive: true))
        }
        for child in children {
            let line = await child.readLine()
            guard line == "ready" else { throw BenchError.childFailed(command: command, reason: "said '\(line ?? "nothing")' instead of ready") }
        }
        let started = ContinuousClock.now
        for child in children { try child.send("go") }
        let running = children
        let done: Int? = try await withThrowingTaskGroup(of: Int?.self) { group in
            group.addTask {
                try await Task.sleep(for: .seconds(300))
                return nil
            }
            group.addTask {
                var done = 0
                for child in running {
                    let line = await child.readLine() ?? ""
                    guard line.hasPrefix("done "), let count = Int(line.dropFirst(5)) else {
                        throw BenchError.childFailed(command: command, reason: "said '\(line)' instead of done")
                    }
                    done += count
                }
                return done
            }
            let first = try await group.next() ?? nil
            group.cancelAll()
            // A hung process (the server restarted under it, say) is stopped, which ends its output.
            if first == nil { for child in running { await BenchInterruption.stop(child) } }
            return first
        }
        guard let done else { throw BenchError.timedOut(workload: "4 burn-down", waitingFor: "\(command) to finish") }
        let elapsed = ContinuousClock.now - started
        for child in children { await BenchInterruption.waitForExit(child) }
        guard done == settings.burnJobs else {
            throw BenchError.verificationFailed(workload: "4 burn-down", reason: "\(done) of \(settings.burnJobs) jobs completed (\(command))")
        }
        return Throughput(items: done, elapsed: elapsed)
    }

    /// Enqueues `count` no-op jobs over the burn-down tenants (library) or inserts them into the
    /// baseline table, then vacuums and analyzes both alike: each configuration starts without the
    /// dead rows of the ones before it, as a fleet's leading scheduler keeps the job table.
    private func fill(count: Int, baseline: Bool) async throws {
        let tenants = settings.burnTenants
        if baseline {
            try await database.execute("""
                INSERT INTO \(database.names.bench_raw_jobs) (projection, partition, stream_id, lane)
                SELECT \(Self.projection), 'burn-' || (g % \(tenants)), 's-' || g, 'live' FROM generate_series(1, \(count)) g
                """)
            try await database.execute("VACUUM ANALYZE \(database.names.bench_raw_jobs)")
        } else {
            try await enqueue(count: count, tenants: (0..<tenants).map { "burn-\($0)" })
            try await database.execute("VACUUM ANALYZE \(database.names.ef_jobs)")
        }
    }

    /// Enqueues `count` jobs through the library, in chunks, and lifts the tenants' caps on
    /// running jobs so that the caps do not limit the claims being measured.
    private func enqueue(count: Int, tenants: [String]) async throws {
        let queue = JobQueue(store: database.store, logger: database.logger)
        let run = UUID().uuidString.prefix(8).lowercased()
        for chunk in stride(from: 0, to: count, by: 5_000) {
            let requests = (chunk..<min(chunk + 5_000, count)).map { index in
                JobRequest(projection: Self.projection, partition: tenants[index % tenants.count], streamId: "s-\(run)-\(index)")
            }
            try await queue.enqueue(requests, notify: false)
        }
        for tenant in tenants {
            try await queue.setQuota(partition: tenant, lane: .live, maxRunning: 100_000, weight: nil, paused: nil)
        }
    }

    // MARK: Workload 7

    /// Claim latency on this (fresh) database's job table, then again after `historyJobs` jobs have
    /// been enqueued, claimed and completed through it.
    func runHistory(into report: inout BenchReport) async throws {
        report.add(try await withClaimersAndScheduler(database, claimers: ["bench-history", "bench-claimer"]) { try await history() })
    }

    private func history() async throws -> BenchRow {
        let fresh = try await claimLatency()
        let clock = ContinuousClock()
        let started = clock.now
        let burner = JobBurner(store: database.store, worker: "bench-history", logger: database.logger)
        let chunk = 10_000
        var pushed = 0
        while pushed < settings.historyJobs, clock.now - started < settings.historyTimeLimit {
            let count = min(chunk, settings.historyJobs - pushed)
            try await enqueue(count: count, tenants: (0..<settings.burnTenants).map { "history-\($0)" })
            _ = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<4 { group.addTask { try await burner.burn(mode: .library, batch: 100) } }
                return try await group.reduce(0, +)
            }
            pushed += count
        }
        let historyRate = Double(pushed) / (clock.now - started).seconds
        let worn = try await claimLatency()
        guard let freshP99 = fresh.milliseconds(atPercentile: 99), let wornP99 = worn.milliseconds(atPercentile: 99) else {
            throw BenchError.verificationFailed(workload: "7 history", reason: "no claims were timed")
        }
        return BenchRow(
            workload: "7 history", variant: "claim p99 after \(pushed) jobs", unit: "ms",
            value: wornP99, baseline: freshP99, ratio: wornP99 / freshP99,
            p50Milliseconds: worn.milliseconds(atPercentile: 50), p99Milliseconds: wornP99,
            baselineP50Milliseconds: fresh.milliseconds(atPercentile: 50), baselineP99Milliseconds: freshP99,
            target: "p99 <= 2x fresh", targetMet: wornP99 <= 2 * freshP99,
            note: String(format: "baseline = the same claims on the fresh table; history pushed through at %.0f jobs/s", historyRate)
                + (pushed < settings.historyJobs ? "; stopped short of \(settings.historyJobs) at the time limit" : "")
                + "; a scheduler runs meanwhile, as in a fleet (its leader vacuums the job table)"
        )
    }

    /// Times `claimSamples` claims of one job each, by one claimer, completing each job in turn.
    private func claimLatency() async throws -> LatencyHistogram {
        try await enqueue(count: settings.claimSamples, tenants: (0..<4).map { "claim-\($0)" })
        let queue = JobQueue(store: database.store, logger: database.logger)
        let clock = ContinuousClock()
        var latency = LatencyHistogram()
        while true {
            let before = clock.now
            let jobs = try await queue.claim(worker: "bench-claimer", lanes: [.live], partitions: nil, slots: 1)
            guard let job = jobs.first else { break }
            latency.record(clock.now - before)
            try await queue.complete(job, worker: "bench-claimer")
        }
        return latency
    }
}
