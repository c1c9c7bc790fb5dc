import ArgumentParser
import EventFleetCLI
import EventFleetJobs
import Foundation
import Logging

/// `eventfleet-chaos`: the soak harness, a fleet binary of its own. `run` (the default) drives the
/// whole fleet under faults and checks the invariants; `scheduler`, `worker` and `writer` are the
/// processes it starts from this same executable.
@main
struct ChaosCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eventfleet-chaos",
        abstract: "Run the fleet under injected faults, then prove that nothing was lost or applied twice.",
        subcommands: [ChaosRunCommand.self, SchedulerCommand.self, WorkerCommand<ChaosProjections>.self, ChaosWriterCommand.self],
        defaultSubcommand: ChaosRunCommand.self
    )

    /// The soak sets it for its workers: the share of claims whose reply they drop.
    static let lostClaimRepliesVariable = "EVENTFLEET_CHAOS_LOST_CLAIM_REPLIES"

    static func main() async {
        CommandLineRunner.bootstrapLogging()
        if let rate = ProcessInfo.processInfo.environment[lostClaimRepliesVariable].flatMap(Double.init) {
            FaultHooks.lostClaimReplyRate = rate
        }
        await CommandLineRunner.main(ChaosCommand.self)
    }
}
