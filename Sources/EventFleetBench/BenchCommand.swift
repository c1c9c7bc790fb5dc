import ArgumentParser
import CartsExample
import EventFleetCLI
import EventFleetPostgres
import Foundation
import Logging

/// `eventfleet-bench`: measures each hot path of EventFleet and, in the same run on the same
/// database, a raw SQL baseline doing the same database work, and prints the ratios. A fleet binary
/// of its own: `run` (the default) measures; `scheduler`, `worker` and `burn-worker` are the
/// processes it starts from this same executable.
///
/// Every run works in a schema of its own (dropped at the end), so it can share a server with
/// other work; figures from a shared or noisy machine are best compared as ratios within one run.
@main
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eventfleet-bench",
        abstract: "Benchmark EventFleet's hot paths against raw SQL baselines (use a release build).",
        subcommands: [BenchRunCommand.self, SchedulerCommand.self, WorkerCommand<CartsReadModel>.self, BurnWorkerCommand.self],
        defaultSubcommand: BenchRunCommand.self
    )

    static func main() async {
        CommandLineRunner.bootstrapLogging()
        await CommandLineRunner.main(BenchCommand.self)
    }
}

/// The workloads a run can be limited to with `--only`.
enum Workload: String, ExpressibleByArgument, CaseIterable, Sendable {
    case append, read, burn, catchup, freshness, history, commands, versions, dashboard
}

/// The benchmark run itself (the default of `eventfleet-bench`).
struct BenchRunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the workloads and print one table (`--json FILE` writes the same figures as JSON)."
    )

    @OptionGroup var database: DatabaseOptions
    @Flag(help: "A smoke check (under 3 minutes) with smaller sizes and shorter runs.") var quick = false
    @Option(help: "Also write the figures as JSON to this file.") var json: String?
    @Option(help: "Run only these workloads (comma-separated: \(Workload.allCases.map(\.rawValue).joined(separator: ","))).")
    var only: String?
    @Option(name: .customLong("worker-concurrency"), help: "Job slots of each worker in workloads 5 and 6 (the worker's default otherwise).")
    var workerConcurrency: Int?
    @Option(name: .customLong("jobs-per-transaction"), help: "Jobs sharing a transaction in the workers of workloads 5 and 6 (the worker's default otherwise).")
    var jobsPerTransaction: Int?
    @Option(name: .customLong("catch-up-workers"), help: "Worker processes of workload 5, comma-separated runs (default 1,2).")
    var catchUpWorkers: String?
    @Option(name: .customLong("freshness-rate"), help: "Events per second of workload 6's steady write load (default 500).")
    var freshnessRate: Int?
    @Option(
        name: .customLong("pooler-url"),
        help: ArgumentHelp(
            "Also run the append, burn, catchup and freshness workloads through this pooler, and report pooled / direct.",
            discussion: "A postgres:// URL of a pooler in front of the same database, such as scripts/postgres start --pooler's "
                + "with pooler=transaction&listen_url=(the direct URL, percent-encoded). Each configuration then also runs "
                + "direct, pooled, pooled, direct, and its row of the pooler comparison follows its direct row.",
            valueName: "url"
        )
    )
    var poolerURL: String?

    func validate() throws {
        _ = try workloads()
        if let workerConcurrency, workerConcurrency < 1 { throw ValidationError("--worker-concurrency must be positive") }
        if let jobsPerTransaction, jobsPerTransaction < 1 { throw ValidationError("--jobs-per-transaction must be positive") }
        if let freshnessRate, freshnessRate < 1 { throw ValidationError("--freshness-rate must be positive") }
        _ = try catchUpWorkerCounts()
        if let poolerURL {
            do {
                _ = try DatabaseConfiguration(url: poolerURL)
            } catch {
                throw ValidationError("--pooler-url: \(error)")
            }
        }
    }

    private func catchUpWorkerCounts() throws -> [Int]? {
        guard let catchUpWorkers else { return nil }
        return try catchUpWorkers.split(separator: ",").map { text in
            guard let count = Int(text.trimmingCharacters(in: .whitespaces)), count > 0 else {
                throw ValidationError("--catch-up-workers: '\(text)' is not a positive number of workers")
            }
            return count
        }
    }

    private func workloads() throws -> [Workload] {
        guard let only else { return Workload.allCases }
        return try only.split(separator: ",").map { name in
            guard let workload = Workload(rawValue: name.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("--only: '\(name)' is not a workload (\(Workload.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            return workload
        }
    }

    func run() async throws {
        var logger = Logger(label: "eventfleet.bench")
        logger.logLevel = .warning
        BenchInterruption.install(logger: logger)
        do {
            try await measure(logger: logger)
        } catch {
            // Interrupted: the processes it stopped made the run fail; the cleanup exits.
            await BenchInterruption.holdIfInterrupted()
            throw error
        }
    }

    private func measure(logger: Logger) async throws {
        var chosen = quick ? BenchSettings.quick : BenchSettings.full
        if let workerConcurrency { chosen.workerConcurrency = workerConcurrency }
        if let jobsPerTransaction { chosen.jobsPerTransaction = jobsPerTransaction }
        if let freshnessRate { chosen.freshnessRate = freshnessRate }
        if let counts = try catchUpWorkerCounts() { chosen.catchUpWorkers = counts }
        let settings = chosen
        let mode = quick ? "quick" : "full"
        let workloads = try self.workloads()
        guard let baseURL = database.databaseURL ?? ProcessInfo.processInfo.environment["DATABASE_URL"], !baseURL.isEmpty else {
            throw ValidationError("no database: pass --database-url or set DATABASE_URL")
        }
        #if DEBUG
        print("warning: this is a debug build; benchmark figures come from release builds (swift build -c release)")
        #endif
        // Only the workloads of the pooler comparison get the pooler.
        let poolerURL = Set(workloads).isDisjoint(with: [.append, .burn, .catchup, .freshness]) ? nil : self.poolerURL
        let pooler = try poolerURL.map { try DatabaseConfiguration(url: $0).description }
        let started = ContinuousClock.now
        var report = try await BenchDatabase.with(baseURL: baseURL, poolerURL: poolerURL, poolSize: 24, logger: logger) { database in
            var report = BenchReport(
                mode: mode, started: Date(), host: ProcessInfo.processInfo.hostName,
                processors: ProcessInfo.processInfo.activeProcessorCount,
                memoryGiB: Double(ProcessInfo.processInfo.physicalMemory) / 1_073_741_824,
                serverVersion: try await database.serverVersion(), loadAverageStart: BenchReport.loadAverage(), pooler: pooler
            )
            print("EventFleet bench (\(report.mode)) on \(report.processors) cores, \(report.serverVersion); schema \(database.schema)")
            if let pooler {
                print("through the pooler as well: \(pooler)")
            }
            print(BenchReport.header)
            if workloads.contains(.append) { try await AppendBenchmark(database: database, settings: settings).run(into: &report) }
            if workloads.contains(.read) { try await ReadBenchmark(database: database, settings: settings).run(into: &report) }
            if workloads.contains(.burn) { try await QueueBenchmark(database: database, settings: settings).runBurnDown(into: &report) }
            if workloads.contains(.commands) { try await CommandBenchmark(database: database, settings: settings).run(into: &report) }
            return report
        }
        if workloads.contains(.catchup) {
            try await CatchUpBenchmark(baseURL: baseURL, poolerURL: poolerURL, settings: settings, logger: logger).run(into: &report)
        }
        if workloads.contains(.freshness) {
            try await FreshnessBenchmark(baseURL: baseURL, poolerURL: poolerURL, settings: settings, logger: logger).run(into: &report)
        }
        if workloads.contains(.versions) {
            try await VersionBuildBenchmark(baseURL: baseURL, settings: settings, logger: logger).run(into: &report)
        }
        if workloads.contains(.history) {
            report = try await BenchDatabase.with(baseURL: baseURL, poolSize: 8, logger: logger) { [report] database in
                var report = report
                try await QueueBenchmark(database: database, settings: settings).runHistory(into: &report)
                return report
            }
        }
        if workloads.contains(.dashboard) {
            report = try await BenchDatabase.with(baseURL: baseURL, poolSize: 8, logger: logger) { [report] database in
                var report = report
                try await DashboardBenchmark(database: database, settings: settings).run(into: &report)
                return report
            }
        }
        report.finished = Date()
        report.loadAverageEnd = BenchReport.loadAverage()
        report.summarizePooler()
        print("")
        print(report.table())
        print(String(format: "\nfinished in %.0f s", (ContinuousClock.now - started).seconds))
        if let json {
            try report.write(to: json)
            print("wrote \(json)")
        }
    }
}
