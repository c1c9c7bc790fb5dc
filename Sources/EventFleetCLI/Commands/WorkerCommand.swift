import ArgumentParser
import EventFleetCore
import EventFleetJobs
import EventFleetPostgres
import EventFleetProjections
import Logging

/// Options of `worker` (and of `launch`, which passes them on).
public struct WorkerOptions: ParsableArguments, Sendable {
    @Option(help: "Jobs to run at the same time.") public var concurrency: Int = ProjectionWorker.Configuration().concurrency
    @Option(
        name: .customLong("jobs-per-transaction"),
        help: "Jobs of one projection that share a transaction (1: one job per transaction); concurrency / this many transactions run at a time."
    )
    public var jobsPerTransaction: Int = ProjectionWorker.Configuration().jobsPerTransaction
    @Option(help: "Lanes to work, comma-separated: live,backfill.") public var lanes: String = "live,backfill"
    @Option(help: "Tenants to work for, comma-separated (default: all).") public var partitions: String?
    @Option(help: "Projections to run, comma-separated (default: every stream projection of the binary); the worker claims only their jobs.")
    public var projections: String?
    @Option(name: .customLong("drain-timeout"), help: "Seconds in-flight jobs may run on after SIGTERM.") public var drainTimeout: Int = 30
    @Option(name: .customLong("batch-size"), help: "Events per projection transaction.") public var batchSize: Int = 500
    @Option(name: .customLong("heartbeat-interval-ms"), help: "Milliseconds between heartbeats.") public var heartbeatIntervalMilliseconds: Int = 2_000
    @Option(name: .customLong("poll-interval-ms"), help: "Milliseconds between polls when no notification comes.") public var pollIntervalMilliseconds: Int = 1_000
    @Option(name: .customLong("idle-transaction-timeout-ms"), help: "The server ends a job transaction idle this long (a frozen worker).")
    public var idleTransactionTimeoutMilliseconds: Int = 10_000
    @Option(name: .customLong("retry-delay-ms"), help: "Milliseconds before a failed job's first retry (then growing, jittered, up to 60 s).")
    public var retryDelayMilliseconds: Int = 1_000

    public init() {}

    public func validate() throws {
        guard concurrency > 0 else { throw ValidationError("--concurrency must be positive") }
        guard jobsPerTransaction > 0 else { throw ValidationError("--jobs-per-transaction must be positive") }
        guard drainTimeout >= 0 else { throw ValidationError("--drain-timeout must not be negative") }
        guard batchSize > 0 else { throw ValidationError("--batch-size must be positive") }
        guard heartbeatIntervalMilliseconds > 0, pollIntervalMilliseconds > 0, idleTransactionTimeoutMilliseconds > 0, retryDelayMilliseconds > 0 else {
            throw ValidationError("intervals and timeouts must be positive")
        }
        _ = try laneList()
        if let partitions, partitionList(partitions).isEmpty { throw ValidationError("--partitions names no partition") }
        if let projections, partitionList(projections).isEmpty { throw ValidationError("--projections names no projection") }
    }

    /// The projections of `registry` this worker runs: those `--projections` names, or all.
    ///
    /// - Throws: `ProjectionError.unknownProjection` for a name the registry does not have.
    func projections(of registry: ProjectionRegistry) throws -> ProjectionRegistry {
        guard let projections else { return registry }
        return ProjectionRegistry(try partitionList(projections).map { try registry.projection(named: $0) })
    }

    func laneList() throws -> [JobLane] {
        let lanes = try self.lanes.split(separator: ",").map { name in
            guard let lane = JobLane(rawValue: name.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("--lanes: '\(name)' is not a lane (live, backfill)")
            }
            return lane
        }
        guard !lanes.isEmpty else { throw ValidationError("--lanes names no lane") }
        return lanes
    }

    func partitionList(_ text: String) -> [String] {
        text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func configuration() throws -> ProjectionWorker.Configuration {
        var configuration = ProjectionWorker.Configuration()
        configuration.concurrency = concurrency
        configuration.jobsPerTransaction = jobsPerTransaction
        configuration.lanes = try laneList()
        configuration.partitions = partitions.map(partitionList)
        configuration.drainTimeout = .seconds(drainTimeout)
        configuration.batchSize = batchSize
        configuration.heartbeatInterval = .milliseconds(heartbeatIntervalMilliseconds)
        configuration.pollInterval = .milliseconds(pollIntervalMilliseconds)
        configuration.idleTransactionTimeout = .milliseconds(idleTransactionTimeoutMilliseconds)
        configuration.retryBackoff.initialDelay = .milliseconds(retryDelayMilliseconds)
        configuration.retryBackoff.maxDelay = max(.seconds(60), .milliseconds(retryDelayMilliseconds))
        return configuration
    }

    /// The options as command-line arguments, for `launch` to start workers with.
    var arguments: [String] {
        var arguments = [
            "--concurrency", "\(concurrency)", "--jobs-per-transaction", "\(jobsPerTransaction)", "--lanes", lanes, "--drain-timeout", "\(drainTimeout)", "--batch-size", "\(batchSize)",
            "--heartbeat-interval-ms", "\(heartbeatIntervalMilliseconds)", "--poll-interval-ms", "\(pollIntervalMilliseconds)",
            "--idle-transaction-timeout-ms", "\(idleTransactionTimeoutMilliseconds)", "--retry-delay-ms", "\(retryDelayMilliseconds)",
        ]
        if let partitions { arguments += ["--partitions", partitions] }
        if let projections { arguments += ["--projections", projections] }
        return arguments
    }
}

/// `worker`: claims projection jobs and runs them with the application's projections.
public struct WorkerCommand<Provider: ProjectionsProvider>: AsyncParsableCommand where Provider.Options: ParsableArguments {
    public static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: "worker",
            abstract: "Claim projection jobs and run them (SIGTERM drains: stop claiming, finish or hand back, deregister)."
        )
    }

    @OptionGroup public var database: DatabaseOptions
    @OptionGroup public var projectionOptions: Provider.Options
    @OptionGroup public var worker: WorkerOptions
    @OptionGroup public var service: ServiceOptions

    public init() {}

    public func run() async throws {
        let configuration = try worker.configuration()
        let registry = try worker.projections(of: Provider.registry(options: projectionOptions))
        // One connection per job transaction, plus heartbeat, claims, LISTEN and recording failures.
        try await FleetProcess.run(
            database: database, service: service, poolSize: configuration.maxTransactions + 4, label: "eventfleet.worker",
            shutdownTimeout: configuration.drainTimeout + .seconds(15)
        ) { store in
            ProjectionWorker(configuration: configuration, store: store, registry: registry, logger: Logger(label: "eventfleet.worker"))
        }
    }
}
