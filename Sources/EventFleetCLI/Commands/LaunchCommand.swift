import ArgumentParser
import EventFleetCore
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// `launch`: starts and supervises N local worker processes of this same binary.
public struct LaunchCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "launch",
        abstract: "Start N local worker processes, restart any that crash, forward SIGTERM, print their status."
    )

    @OptionGroup public var database: DatabaseOptions
    @OptionGroup public var worker: WorkerOptions
    @Option(help: "How many worker processes.") public var workers: Int = 2
    @Option(name: .customLong("metrics-port-base"), help: "Worker i serves metrics on this port + i.") public var metricsPortBase: Int?
    @Option(name: .customLong("status-interval"), help: "Seconds between status lines.") public var statusInterval: Int = 10

    public init() {}

    public func validate() throws {
        guard workers > 0 else { throw ValidationError("--workers must be positive") }
        guard statusInterval > 0 else { throw ValidationError("--status-interval must be positive") }
    }

    public func run() async throws {
        let configuration = try database.configuration()
        var environment = ProcessInfo.processInfo.environment
        environment["DATABASE_URL"] = database.databaseURL ?? environment["DATABASE_URL"]
        let executable = ChildProcess.currentExecutable
        let arguments = (0..<workers).map { index in
            ["worker"] + worker.arguments + (metricsPortBase.map { ["--metrics-port", "\($0 + index)"] } ?? [])
        }
        let supervisor = WorkerSupervisor(
            executable: executable, arguments: arguments, environment: environment,
            stopTimeout: .seconds(worker.drainTimeout + 10), statusInterval: .seconds(statusInterval),
            logger: Logger(label: "eventfleet.launch")
        )
        print("launching \(workers) workers against \(configuration.target)")
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [.init(service: supervisor)], gracefulShutdownSignals: [.sigterm, .sigint], logger: Logger(label: "eventfleet.launch")
            )
        )
        try await group.run()
    }
}
