import ArgumentParser
import EventFleetCore
import EventFleetJobs
import EventFleetPostgres
import EventFleetProjections
import Foundation
import Logging

/// `backfill`: enqueues a backfill job for every stream of a partition (or all), in batches.
public struct BackfillCommand<Provider: ProjectionsProvider>: AsyncParsableCommand {
    public static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: "backfill",
            abstract: "Enqueue backfill jobs for every stream of a partition, or of all (safe to re-run)."
        )
    }

    @OptionGroup public var database: DatabaseOptions
    @Option(help: "The partition (tenant) to backfill.") public var partition: String?
    @Flag(name: .customLong("all-partitions"), help: "Backfill every partition.") public var allPartitions = false
    @Option(help: "Only this projection (default: every stream projection).") public var projection: String?
    @Option(name: .customLong("batch-size"), help: "Streams per statement.") public var batchSize: Int = 1_000

    public init() {}

    public func validate() throws {
        guard (partition != nil) != allPartitions else { throw ValidationError("give either --partition P or --all-partitions") }
        guard batchSize > 0 else { throw ValidationError("--batch-size must be positive") }
    }

    public func run() async throws {
        let registry = try Provider.registry()
        let names = try projection.map { [try registry.projection(named: $0).name] } ?? registry.streamProjections.map(\.name)
        let partition = self.partition
        let batchSize = self.batchSize
        let result = try await database.withStore(logger: Logger(label: "eventfleet.backfill")) { store in
            try await JobQueue(store: store).backfill(
                projections: names, partition: partition, batchSize: batchSize
            ) { seen, total in
                ProgressBar.draw(seen: seen, total: total, label: "streams")
            }
        }
        ProgressBar.finish()
        print("backfill of \(names.joined(separator: ", ")) for \(partition.map { "partition '\($0)'" } ?? "all partitions"): \(result.streams) streams, \(result.enqueued) new jobs")
    }
}

/// A one-line progress bar on standard error.
enum ProgressBar {
    static func draw(seen: Int, total: Int, label: String) {
        let width = 30
        let filled = total == 0 ? width : min(width, seen * width / max(total, 1))
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        FileHandle.standardError.write(Data("\r[\(bar)] \(seen)/\(total) \(label)".utf8))
    }

    static func finish() {
        FileHandle.standardError.write(Data("\n".utf8))
    }
}

/// `scale`: a tenant's cap on running jobs per lane, its weight, and pausing.
public struct ScaleCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "scale",
        abstract: "Set a tenant's cap on running jobs, its weight, or pause and resume it."
    )

    @OptionGroup public var database: DatabaseOptions
    @Option(help: "The partition (tenant).") public var partition: String
    @Option(help: "live or backfill (default: both).") public var lane: String?
    @Option(name: .customLong("max-running"), help: "The most jobs of this tenant running at once, per lane.") public var maxRunning: Int?
    @Option(help: "Its weight when tenants share workers (higher gets more).") public var weight: Int?
    @Flag(help: "Stop claiming its jobs.") public var pause = false
    @Flag(help: "Claim its jobs again.") public var resume = false

    public init() {}

    public func validate() throws {
        guard !(pause && resume) else { throw ValidationError("--pause and --resume exclude each other") }
        guard maxRunning != nil || weight != nil || pause || resume else { throw ValidationError("give --max-running, --weight, --pause or --resume") }
        if let maxRunning, maxRunning < 0 { throw ValidationError("--max-running must not be negative") }
        if let weight, weight <= 0 { throw ValidationError("--weight must be positive") }
        if let lane, JobLane(rawValue: lane) == nil { throw ValidationError("--lane: '\(lane)' is not a lane (live, backfill)") }
    }

    public func run() async throws {
        let lanes = lane.flatMap(JobLane.init(rawValue:)).map { [$0] } ?? JobLane.allCases
        let paused: Bool? = pause ? true : (resume ? false : nil)
        let (partition, maxRunning, weight) = (self.partition, self.maxRunning, self.weight)
        try await database.withStore(logger: Logger(label: "eventfleet.scale")) { store in
            let queue = JobQueue(store: store)
            for lane in lanes {
                try await queue.setQuota(partition: partition, lane: lane, maxRunning: maxRunning, weight: weight, paused: paused)
            }
        }
        print("partition '\(partition)' \(lanes.map(\.rawValue).joined(separator: ", ")): updated")
    }
}

/// `jobs list|retry|purge`: operate on dead jobs.
public struct JobsCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "jobs",
        abstract: "List, retry or purge dead jobs.",
        subcommands: [List.self, Retry.self, Purge.self]
    )

    public init() {}

    /// Which dead jobs a command addresses.
    public struct Selection: ParsableArguments, Sendable {
        @Option(name: .customLong("id"), help: "A job id (repeatable).") public var ids: [Int64] = []
        @Option(help: "Every dead job of this partition.") public var partition: String?
        @Flag(help: "Every dead job.") public var all = false

        public init() {}

        public func validate() throws {
            let given = [!ids.isEmpty, partition != nil, all].filter { $0 }.count
            guard given == 1 else { throw ValidationError("give exactly one of --id, --partition or --all") }
        }

        var selection: DeadJobSelection {
            if !ids.isEmpty { return .ids(ids) }
            if let partition { return .partition(partition) }
            return .all
        }
    }

    /// Runs a dead-job operation and prints "<verb> N dead jobs".
    static func operate(
        _ database: DatabaseOptions, _ selection: Selection, verb: String,
        _ operation: @escaping @Sendable (JobQueue, DeadJobSelection) async throws -> Int
    ) async throws {
        let selection = selection.selection
        let count = try await database.withStore(logger: Logger(label: "eventfleet.jobs")) { store in
            try await operation(JobQueue(store: store), selection)
        }
        print("\(verb) \(count) dead jobs")
    }

    public struct List: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(abstract: "List dead jobs with their last error.")
        @OptionGroup public var database: DatabaseOptions
        @Option(help: "Only this partition.") public var partition: String?
        @Option(help: "At most this many.") public var limit: Int = 50
        @Flag(help: "One JSON object per job, with the whole error history.") public var json = false

        public init() {}

        public func run() async throws {
            let (partition, limit) = (self.partition, self.limit)
            let jobs = try await database.withStore(logger: Logger(label: "eventfleet.jobs")) { store in
                try await JobQueue(store: store).deadJobs(partition: partition, limit: limit)
            }
            for job in jobs {
                if json {
                    var line = JSONLine()
                    line.add("id", number: job.id)
                    line.add("projection", string: job.projection)
                    line.add("partition", string: job.partition)
                    line.add("streamId", string: job.streamId)
                    line.add("lane", string: job.lane.rawValue)
                    line.add("attempts", number: Int64(job.attempts))
                    line.add("errors", rawJSON: Data(job.errors.utf8))
                    print(line.text)
                } else {
                    let lastError = (try? JSONDecoder().decode([[String: JSONValue]].self, from: Data(job.errors.utf8)))?.last?["error"]
                    let message = if case .string(let text)? = lastError { text } else { "-" }
                    print("\(job.id)\t\(job.partition)\t\(job.projection)\t\(job.streamId)\tattempts \(job.attempts)\t\(message)")
                }
            }
            if !json { print("\(jobs.count) dead jobs") }
        }
    }

    public struct Retry: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(abstract: "Make dead jobs ready again with fresh attempts.")
        @OptionGroup public var database: DatabaseOptions
        @OptionGroup public var selection: Selection

        public init() {}

        public func run() async throws {
            try await JobsCommand.operate(database, selection, verb: "retried") { try await $0.retryDead($1) }
        }
    }

    public struct Purge: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(abstract: "Delete dead jobs.")
        @OptionGroup public var database: DatabaseOptions
        @OptionGroup public var selection: Selection

        public init() {}

        public func run() async throws {
            try await JobsCommand.operate(database, selection, verb: "purged") { try await $0.purgeDead($1) }
        }
    }
}
