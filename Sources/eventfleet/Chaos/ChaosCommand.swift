import ArgumentParser
import EventFleetCLI

/// `eventfleet chaos`: the soak harness. `chaos run` (the default) drives the whole fleet under
/// faults and checks the invariants; `chaos worker` and `chaos writer` are the processes it starts.
struct ChaosCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chaos",
        abstract: "Run the fleet under injected faults, then prove that nothing was lost or applied twice.",
        subcommands: [ChaosRunCommand.self, WorkerCommand<ChaosProjections>.self, ChaosWriterCommand.self],
        defaultSubcommand: ChaosRunCommand.self
    )
}
