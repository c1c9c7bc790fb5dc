import ArgumentParser
import EventFleetCore
import EventFleetJobs
import EventFleetPostgres
import EventFleetProjections
import Foundation
import Logging

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
