import ArgumentParser
import EventFleetCore
import EventFleetJobs
import EventFleetPostgres
import EventFleetProjections
import Logging

/// `scheduler`: follows the global log and enqueues projection jobs; the leader rescues, vacuums the
/// job table and prunes.
public struct SchedulerCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "scheduler",
        abstract: "Turn new events into projection jobs (run several: one leads, the others take over within seconds)."
    )

    @OptionGroup public var database: DatabaseOptions
    @OptionGroup public var service: ServiceOptions
    @Option(name: .customLong("lease-seconds"), help: "A dead leader is replaced after about this long.") public var leaseSeconds: Int = 5
    @Option(name: .customLong("heartbeat-timeout"), help: "Seconds without a heartbeat before a worker's jobs are rescued.") public var heartbeatTimeout: Int = 15
    @Option(name: .customLong("max-attempts"), help: "Attempts of a live job before it is dead.") public var maxAttempts: Int32 = 10
    @Option(
        name: .customLong("vacuum-dead-jobs"),
        help: "The leader vacuums the job table once finished jobs have left this many dead rows (0: leave it to autovacuum)."
    ) public var vacuumDeadJobs: Int = 20_000
    @Option(
        name: .customLong("held-back-warning-seconds"),
        help: "Warn once an append in flight has held a partition of the log back this long (0: at once; -1: never)."
    ) public var heldBackWarningSeconds: Int = 30

    public init() {}

    public func validate() throws {
        guard leaseSeconds > 0, heartbeatTimeout > 0, maxAttempts > 0 else {
            throw ValidationError("--lease-seconds, --heartbeat-timeout and --max-attempts must be positive")
        }
        guard vacuumDeadJobs >= 0 else {
            throw ValidationError("--vacuum-dead-jobs must be 0 (off) or positive (got \(vacuumDeadJobs))")
        }
        guard heldBackWarningSeconds >= -1 else {
            throw ValidationError("--held-back-warning-seconds must be -1 (never), 0 (at once) or positive (got \(heldBackWarningSeconds))")
        }
    }

    public func run() async throws {
        var configuration = FleetScheduler.Configuration()
        configuration.leaseDuration = .seconds(leaseSeconds)
        configuration.heartbeatTimeout = .seconds(heartbeatTimeout)
        configuration.maxAttempts = maxAttempts
        configuration.vacuumDeadJobs = vacuumDeadJobs > 0 ? vacuumDeadJobs : nil
        configuration.heldBackWarning = heldBackWarningSeconds >= 0 ? .seconds(heldBackWarningSeconds) : nil
        let settings = configuration
        try await FleetProcess.run(database: database, service: service, poolSize: 6, label: "eventfleet.scheduler") { store in
            FleetScheduler(configuration: settings, store: store, logger: Logger(label: "eventfleet.scheduler"))
        }
    }
}
