import ArgumentParser
import EventFleetCLI
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle

/// `eventfleet dashboard`: serves the fleet's web dashboard (``Dashboard``) on its own. It listens
/// on 127.0.0.1 unless `--host` says otherwise, and says where at start. It is read-only unless
/// given admin tokens (``AdminTokens``): `--admin-token-file`, or the tokens themselves in
/// `EVENTFLEET_DASHBOARD_ADMIN_TOKENS`.
///
/// A fleet binary mounts it beside the library's commands:
/// `subcommands: FleetCommands.all(MyProjections.self) + [DashboardCommand.self]`.
public struct DashboardCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "dashboard",
        abstract: "Serve the fleet's web dashboard: tenants, workers, projections and dead jobs.",
        discussion: """
            Listens on 127.0.0.1 unless --host says otherwise: put it behind a reverse proxy that serves HTTPS to share it.
            Read-only unless given admin tokens, one per line with its name ("alice 6f1c..."), in --admin-token-file or
            in the environment variable \(DashboardCommand.tokensVariable). Signed in with one (or sending
            "Authorization: Bearer <token>"), an operator retries and purges dead jobs, pauses, resumes, scales and
            backfills tenants; every action is recorded in the audit under the token's name.
            """
    )

    @OptionGroup public var database: DatabaseOptions
    @Option(help: "The address to listen on (0.0.0.0 for every interface).") public var host = "127.0.0.1"
    @Option(help: "The port to listen on (0 for any free one).") public var port = 8080
    @Option(name: .customLong("base-path"), help: "The path the dashboard is served under, behind a reverse proxy that keeps it (for example /fleet).")
    public var basePath = ""
    @Option(name: .customLong("admin-token-file"), help: "A file of admin tokens, one per line with its name (name token): actions need one.")
    public var adminTokenFile: String?
    @Option(name: .customLong("audit-retention-days"), help: "How many days the audit keeps an action.")
    public var auditRetentionDays = 90

    /// The environment variable that holds admin tokens in the token file's format.
    public static let tokensVariable = "EVENTFLEET_DASHBOARD_ADMIN_TOKENS"

    public init() {}

    public func validate() throws {
        guard (0...65_535).contains(port) else { throw ValidationError("--port must be 0 to 65535, not \(port)") }
        guard basePath.isEmpty || basePath.hasPrefix("/") else { throw ValidationError("--base-path must begin with /, not \(basePath)") }
        guard auditRetentionDays >= 1 else { throw ValidationError("--audit-retention-days must be at least 1, not \(auditRetentionDays)") }
        do {
            _ = try adminTokens()
        } catch {
            throw ValidationError("\(error)")
        }
    }

    /// The admin tokens of the file or, without one, of the environment variable; `nil` for none.
    func adminTokens(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> AdminTokens? {
        if let adminTokenFile { return try AdminTokens(contentsOfFile: adminTokenFile) }
        if let text = environment[Self.tokensVariable], !text.isEmpty { return try AdminTokens(parsing: text, source: Self.tokensVariable) }
        return nil
    }

    public func run() async throws {
        let logger = Logger(label: "eventfleet.dashboard")
        let (host, port, basePath) = (self.host, self.port, self.basePath)
        let tokens = try adminTokens()
        let configuration = Dashboard.Configuration(basePath: basePath, adminTokens: tokens, auditRetention: .seconds(auditRetentionDays * 86_400))
        let mode = tokens.map { "actions for \($0.names.joined(separator: ", "))" } ?? "read-only"
        try await database.withStore(logger: logger) { store in
            let router = Router()
            let dashboard = Dashboard(store: store, configuration: configuration, logger: logger)
            dashboard.addRoutes(to: router)
            let application = Application(
                router: router, configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: "EventFleet"),
                onServerRunning: { channel in
                    let address = "http://\(host):\(channel.localAddress?.port ?? port)\(basePath)/"
                    print("dashboard: listening on \(address) (\(mode))\(host == "127.0.0.1" ? "; this machine only (--host to change)" : "")")
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
