import ArgumentParser
import EventFleetCLI
import EventFleetJobs
import EventFleetPostgres
import Foundation
import Logging
import PostgresNIO

/// `eventfleet-bench burn-worker`: one process of the queue burn-down (workload 4), started by the
/// bench. It connects, prints `ready`, waits for `go` on its standard input, claims and completes
/// no-op jobs until none is left, and prints `done JOBS`.
struct BurnWorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "burn-worker",
        abstract: "One process of the queue burn-down (started by the bench).",
        shouldDisplay: false
    )

    enum Mode: String, ExpressibleByArgument, CaseIterable {
        /// `JobQueue.claim` of a batch, then one batch completion.
        case library
        /// `JobQueue.claim` of a batch, then `JobQueue.complete` of each job.
        case libraryEach = "library-each"
        /// One raw `DELETE … FOR UPDATE SKIP LOCKED` of one job per transaction.
        case baseline
    }

    @OptionGroup var database: DatabaseOptions
    @Option(help: "library, library-each or baseline.") var mode: Mode = .library
    @Option(help: "Jobs per claim.") var batch: Int = 10
    @Option(help: "Concurrent claim loops, each on its own connection.") var loops: Int = 4

    func validate() throws {
        guard batch > 0, loops > 0 else { throw ValidationError("--batch and --loops must be positive") }
    }

    func run() async throws {
        var quiet = Logger(label: "eventfleet.bench.burn")
        quiet.logLevel = .warning
        let (mode, batch, loops, logger) = (self.mode, self.batch, self.loops, quiet)
        try await database.withStore(poolSize: loops + 1, logger: logger) { store in
            try FileHandle.standardOutput.write(contentsOf: Data("ready\n".utf8))
            guard await StandardInput.readLine() == "go" else { return }
            let burner = JobBurner(store: store, worker: "bench-burn-\(ProcessInfo.processInfo.processIdentifier)", logger: logger)
            let done = try await withThrowingTaskGroup(of: Int.self) { loopsGroup in
                for _ in 0..<loops {
                    loopsGroup.addTask { try await burner.burn(mode: mode, batch: batch) }
                }
                return try await loopsGroup.reduce(0, +)
            }
            try FileHandle.standardOutput.write(contentsOf: Data("done \(done)\n".utf8))
        }
    }
}

/// This process's standard input, read on a thread of its own, so that a waiting read holds none
/// of the few threads of Swift's cooperative pool or Dispatch.
enum StandardInput {
    static func readLine() async -> String? {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(returning: Swift.readLine())
            }
        }
    }
}

/// Claims and completes jobs until the queue is empty.
struct JobBurner: Sendable {
    let store: PostgresEventStore
    let worker: String
    let logger: Logger

    /// - Returns: How many jobs this loop completed.
    func burn(mode: BurnWorkerCommand.Mode, batch: Int) async throws -> Int {
        let queue = JobQueue(store: store, logger: logger)
        let names = store.database.schema
        var done = 0
        while true {
            let burnt: Int
            switch mode {
            case .library:
                let jobs = try await queue.claim(worker: worker, lanes: [.live], partitions: nil, slots: batch)
                if jobs.isEmpty {
                    burnt = 0
                } else {
                    burnt = try await queue.complete(jobs, worker: worker).completed.count
                }
            case .libraryEach:
                let jobs = try await queue.claim(worker: worker, lanes: [.live], partitions: nil, slots: batch)
                for job in jobs { try await queue.complete(job, worker: worker) }
                burnt = jobs.count
            case .baseline:
                let query: PostgresQuery = """
                    DELETE FROM \(names.bench_raw_jobs) WHERE id = (
                        SELECT id FROM \(names.bench_raw_jobs) WHERE state = 'ready' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED
                    ) RETURNING id
                    """
                var rows = 0
                for try await _ in try await store.client.query(query, logger: logger) { rows += 1 }
                burnt = rows
            }
            done += burnt
            // An empty claim can also mean that other claimers hold every tenant with work: like a
            // worker, wait a moment rather than spin on the database.
            if burnt == 0 {
                guard try await workLeft(baseline: mode == .baseline) else { return done }
                try await Task.sleep(for: .milliseconds(1))
            }
        }
    }

    private func workLeft(baseline: Bool) async throws -> Bool {
        let names = store.database.schema
        // In index order with LIMIT 1, not as an EXISTS (which drops both): with stale statistics an
        // EXISTS may become a sequential scan through every claimed job.
        let query: PostgresQuery = baseline
            ? "SELECT 1 FROM \(names.bench_raw_jobs) WHERE state = 'ready' ORDER BY id LIMIT 1"
            : "SELECT 1 FROM \(names.ef_jobs) WHERE state = 'ready' ORDER BY partition, lane, priority DESC, run_at, id LIMIT 1"
        return try await !store.database.query("look for work", query).isEmpty
    }
}
