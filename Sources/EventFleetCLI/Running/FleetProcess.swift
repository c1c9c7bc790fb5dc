import ArgumentParser
import EventFleetCore
import EventFleetJobs
import EventFleetPostgres
import Logging
import Metrics
import PostgresNIO
import Prometheus
import ServiceLifecycle

/// Options every long-running fleet process shares.
public struct ServiceOptions: ParsableArguments, Sendable {
    @Option(name: .customLong("metrics-port"), help: "Serve /metrics (Prometheus) and /healthz on this port.")
    public var metricsPort: Int?
    @Option(
        name: .customLong("metrics-host"),
        help: "The address /metrics, /healthz and /readyz listen on: loopback by default; 0.0.0.0 in a container scraped from outside."
    )
    public var metricsHost: String = "127.0.0.1"

    public init() {}

    public func validate() throws {
        if let metricsPort, !(1...65_535).contains(metricsPort) {
            throw ValidationError("--metrics-port must be between 1 and 65535")
        }
    }
}

/// Runs a fleet service with its client (and a metrics endpoint) until SIGTERM or SIGINT, which
/// shut it down gracefully within `shutdownTimeout`.
enum FleetProcess {
    /// Metrics go to one Prometheus registry per process; bootstrapping twice is a programming error,
    /// so it happens once here.
    static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return registry
    }()

    static func run(
        database: DatabaseOptions,
        service options: ServiceOptions,
        poolSize: Int?,
        label: String,
        shutdownTimeout: Duration = .seconds(30),
        makeService: @Sendable (PostgresEventStore) -> any Service & Sendable
    ) async throws {
        let registry = Self.registry
        let logger = Logger(label: label)
        let store = try await database.connectedStore(
            applicationName: label, poolSize: poolSize, notifyChannel: PostgresEventStore.Options.defaultNotifyChannel, logger: logger
        )
        var services: [any Service] = [store.client]
        let service = makeService(store)
        services.append(service)
        if let port = options.metricsPort {
            // Liveness never asks the database (a database restart must not restart every process);
            // readiness does, through the service's own contact with it.
            let reporting = service as? any ReadinessReporting
            let ready: @Sendable () -> Bool = { reporting?.isReady ?? true }
            let server = MetricsServer(port: port, host: options.metricsHost, registry: registry, logger: logger, ready: ready)
            // Bound before the group starts: a process whose port is taken stops before its service
            // registers or claims anything.
            try await server.listen()
            services.append(server)
        }
        var configurations = services.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) }
        if let watch = ParentWatch.fromEnvironment(logger: logger) {
            // The parent's death ends the watch, which drains the process as SIGTERM does.
            configurations.append(.init(service: watch, successTerminationBehavior: .gracefullyShutdownGroup))
        }
        var groupConfiguration = ServiceGroupConfiguration(
            services: configurations, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger
        )
        // A process always ends after SIGTERM: a graceful shutdown that overruns is escalated to
        // cancellation, and a cancellation that overruns ends the process.
        groupConfiguration.maximumGracefulShutdownDuration = shutdownTimeout
        groupConfiguration.maximumCancellationDuration = .seconds(10)
        try await ServiceGroup(configuration: groupConfiguration).run()
    }
}
