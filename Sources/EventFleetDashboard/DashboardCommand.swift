import ArgumentParser
import EventFleetCLI
import Hummingbird
import Logging
import ServiceLifecycle

/// `eventfleet dashboard`: serves the fleet's web dashboard (``Dashboard``) on its own. It listens
/// on 127.0.0.1 unless `--host` says otherwise, and says where at start.
///
/// A fleet binary mounts it beside the library's commands:
/// `subcommands: FleetCommands.all(MyProjections.self) + [DashboardCommand.self]`.
public struct DashboardCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "dashboard",
        abstract: "Serve the fleet's web dashboard: tenants, workers, projections and dead jobs (read-only).",
        discussion: "Listens on 127.0.0.1 unless --host says otherwise: put it behind a reverse proxy to share it."
    )

    @OptionGroup public var database: DatabaseOptions
    @Option(help: "The address to listen on (0.0.0.0 for every interface).") public var host = "127.0.0.1"
    @Option(help: "The port to listen on (0 for any free one).") public var port = 8080
    @Option(name: .customLong("base-path"), help: "The path the dashboard is served under, behind a reverse proxy that keeps it (for example /fleet).")
    public var basePath = ""

    public init() {}

    public func validate() throws {
        guard (0...65_535).contains(port) else { throw ValidationError("--port must be 0 to 65535, not \(port)") }
        guard basePath.isEmpty || basePath.hasPrefix("/") else { throw ValidationError("--base-path must begin with /, not \(basePath)") }
    }

    public func run() async throws {
        let logger = Logger(label: "eventfleet.dashboard")
        let (host, port, basePath) = (self.host, self.port, self.basePath)
        try await database.withStore(logger: logger) { store in
            let router = Router()
            let dashboard = Dashboard(store: store, configuration: Dashboard.Configuration(basePath: basePath), logger: logger)
            dashboard.addRoutes(to: router)
            let application = Application(
                router: router, configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: "EventFleet"),
                onServerRunning: { channel in
                    let address = "http://\(host):\(channel.localAddress?.port ?? port)\(basePath)/"
                    print("dashboard: listening on \(address) (read-only)\(host == "127.0.0.1" ? "; this machine only (--host to change)" : "")")
                },
                logger: logger
            )
            // Shut down in reverse: the dashboard's reads stop before the server stops serving.
            let services = ServiceGroup(configuration: ServiceGroupConfiguration(
                services: [.init(service: application), .init(service: dashboard)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger
            ))
            try await services.run()
        }
    }
}
