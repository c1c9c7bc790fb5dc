import ArgumentParser
import EventFleetCore
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// `launch`: starts and supervises N local worker processes of this same binary, and with
/// `--with-scheduler` a scheduler process too.
public struct LaunchCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "launch",
        abstract: "Start N local worker processes (and a scheduler with --with-scheduler), restart any that crash, forward SIGTERM, print their status."
    )

    @OptionGroup public var database: DatabaseOptions
    @OptionGroup public var worker: WorkerOptions
    @Option(help: "How many worker processes.") public var workers: Int = 2
    @Flag(
        name: .customLong("with-scheduler"),
        help: "Also start and supervise one scheduler process: a whole local fleet in one command (run a scheduler elsewhere otherwise)."
    )
    public var withScheduler = false
    @Option(
        name: .customLong("metrics-port-base"),
        help: "Worker i (from 0) serves metrics on this port + i; the scheduler of --with-scheduler on this port + the number of workers."
    )
    public var metricsPortBase: Int?
    @Option(name: .customLong("status-interval"), help: "Seconds between status lines.") public var statusInterval: Int = 10

    public init() {}

    public func validate() throws {
        guard workers > 0 else { throw ValidationError("--workers must be positive") }
        guard statusInterval > 0 else { throw ValidationError("--status-interval must be positive") }
        if let metricsPortBase {
            let last = metricsPortBase + workers - (withScheduler ? 0 : 1)
            guard metricsPortBase >= 1, last <= 65_535 else {
                throw ValidationError("--metrics-port-base: the ports \(metricsPortBase)...\(last) must lie between 1 and 65535")
            }
        }
    }

    public func run() async throws {
        let configuration = try database.configuration()
        var environment = ProcessInfo.processInfo.environment
        environment["DATABASE_URL"] = database.databaseURL ?? environment["DATABASE_URL"]
        let metricsPort = { (offset: Int) in metricsPortBase.map { ["--metrics-port", "\($0 + offset)"] } ?? [] }
        var members = FleetSupervisor.Member.workers(
            (0..<workers).map { ["worker"] + worker.arguments + metricsPort($0) }, stopTimeout: .seconds(worker.drainTimeout + 10)
        )
        if withScheduler {
            // A scheduler's own shutdown ends within 40 s (see `FleetProcess`); the rest is margin.
            members.append(.init(name: "scheduler", arguments: ["scheduler"] + metricsPort(workers), stopTimeout: .seconds(45)))
        }
        let supervisor = FleetSupervisor(
            executable: ChildProcess.currentExecutable, members: members, environment: environment,
            statusInterval: .seconds(statusInterval), logger: Logger(label: "eventfleet.launch")
        )
        print("launching \(workers) workers\(withScheduler ? " and a scheduler" : "") against \(configuration.target)")
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [.init(service: supervisor)], gracefulShutdownSignals: [.sigterm, .sigint], logger: Logger(label: "eventfleet.launch")
            )
        )
        try await group.run()
    }
}
