import ArgumentParser
import EventFleetCLI
import EventFleetJobs
import Foundation
import Logging
import PostgresNIO

/// `eventfleet bench burn-worker`: one process of the queue burn-down (workload 4), started by the
/// bench. It connects, prints `ready`, waits for `go` on its standard input, claims and completes
/// no-op jobs until none is left, and prints `done JOBS`.
struct BurnWorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "burn-worker",
        abstract: "One process of the queue burn-down (started by `eventfleet bench`).",
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
        var logger = Logger(label: "eventfleet.bench.burn")
        logger.logLevel = .warning
        var configuration = try database.configuration(applicationName: "eventfleet-bench-burn")
        configuration.poolSize = loops + 1
        // The pool's own warnings (a first query racing `run()`) are noise here; failures reach us as errors.
        var backgroundLogger = logger
        backgroundLogger.logLevel = .error
        let client = PostgresClient(configuration: try configuration.clientConfiguration(), backgroundLogger: backgroundLogger)
        let (mode, batch, loops) = (self.mode, self.batch, self.loops)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            for try await _ in try await client.query("SELECT 1", logger: logger) {}
            try FileHandle.standardOutput.write(contentsOf: Data("ready\n".utf8))
            guard await BlockingIO.readStandardInputLine() == "go" else { return }
            let burner = JobBurner(client: client, worker: "bench-burn-\(ProcessInfo.processInfo.processIdentifier)", logger: logger)
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

/// Claims and completes jobs until the queue is empty.
struct JobBurner: Sendable {
    let client: PostgresClient
    let worker: String
    let logger: Logger

    /// - Returns: How many jobs this loop completed.
    func burn(mode: BurnWorkerCommand.Mode, batch: Int) async throws -> Int {
        let queue = JobQueue(client: client, logger: logger)
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
                    DELETE FROM bench_raw_jobs WHERE id = (
                        SELECT id FROM bench_raw_jobs WHERE state = 'ready' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED
                    ) RETURNING id
                    """
                var rows = 0
                for try await _ in try await client.query(query, logger: logger) { rows += 1 }
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
        // In index order with LIMIT 1, not as an EXISTS (which drops both): with stale statistics an
        // EXISTS may become a sequential scan through every claimed job.
        let query: PostgresQuery = baseline
            ? "SELECT 1 FROM bench_raw_jobs WHERE state = 'ready' ORDER BY id LIMIT 1"
            : "SELECT 1 FROM ef_jobs WHERE state = 'ready' ORDER BY partition, lane, priority DESC, run_at, id LIMIT 1"
        for try await _ in try await client.query(query, logger: logger) { return true }
        return false
    }
}
