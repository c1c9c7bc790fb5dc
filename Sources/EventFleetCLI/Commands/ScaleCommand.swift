import ArgumentParser
import EventFleetCore
import EventFleetJobs
import EventFleetPostgres
import EventFleetProjections
import Foundation
import Logging

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
