import ArgumentParser
import EventFleetCore
import EventFleetPostgres
import Foundation
import Logging

/// `eventfleet rebase-log`: makes a restored database safe to append to and read.
public struct RebaseLogCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "rebase-log",
        abstract: "After a restore (pg_restore or logical replication), set the log's sequence and checkpoints right; prints JSON.",
        discussion: """
            Run it once on the restored database, after migrate and before starting the fleet or any \
            application on it. It refuses (exit 1, changing nothing) while consumers or schedulers hold \
            leases or workers heartbeat there; leases and heartbeats copied from the source expire on \
            their own. Running it again changes nothing.
            """
    )

    @OptionGroup public var database: DatabaseOptions
    @Option(name: .customLong("live-within"), help: "Seconds: a worker whose heartbeat is this recent counts as live.")
    public var liveWithin: Double = 30

    public init() {}

    public func run() async throws {
        guard liveWithin.isFinite, liveWithin >= 0 else {
            throw EventStoreError.invalidArgument(field: "live-within", reason: "must be a number of seconds, at least 0 (got \(liveWithin))")
        }
        let window = Duration.milliseconds(Int64(liveWithin * 1000))
        let rebase = try await database.withStore(logger: Logger(label: "eventfleet.rebase-log")) { store in
            try await store.rebaseLog(liveWithin: window)
        }
        var line = JSONLine()
        line.add("sequenceBefore", number: rebase.sequenceBefore)
        line.add("sequenceAfter", number: rebase.sequenceAfter)
        line.add("checkpointsConverted", number: Int64(rebase.checkpointsConverted))
        print(line.text)
    }
}
