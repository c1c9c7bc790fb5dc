import ArgumentParser
import EventFleetPostgres
import EventFleetProjections

/// An application's projections and migrations as values, chosen when the binary starts (a table
/// name from configuration, say), for the library's commands to run.
///
/// ```swift
/// @main
/// struct OrdersFleet: AsyncParsableCommand {
///     static let configuration = CommandConfiguration(subcommands: FleetApplication.commands)
///
///     static func main() async {
///         let table = ProcessInfo.processInfo.environment["ORDERS_TABLE"] ?? "orders"
///         let application = FleetApplication(component: "orders", migrations: [ordersTable(named: table)]) {
///             ProjectionRegistry([try ordersProjection(table: table)])
///         }
///         CommandLineRunner.bootstrapLogging()
///         await CommandLineRunner.main(OrdersFleet.self, application: application)
///     }
/// }
/// ```
///
/// Types that conform to `ProjectionsProvider` and `MigrationsProvider` do the same when the
/// projections are known at compile time: ``FleetCommands/all(_:)``.
public struct FleetApplication: Sendable {
    /// The component name the application's migration versions count under, e.g. `"orders"`.
    public var component: String
    /// The application's migrations, applied after the library's.
    public var migrations: [Migration]
    /// The application's routines, each kept in a file of its own.
    public var routines: [Routine]
    /// Builds the application's projections; a command calls it when it needs them, and reports
    /// what it throws with the CLI's exit codes.
    public var projections: @Sendable () throws -> ProjectionRegistry

    /// - Parameters:
    ///   - component: The component name of the application's migrations.
    ///   - migrations: The application's migrations (none by default).
    ///   - routines: The application's routines (none by default).
    ///   - projections: Builds the application's projections.
    public init(
        component: String,
        migrations: [Migration] = [],
        routines: [Routine] = [],
        projections: @escaping @Sendable () throws -> ProjectionRegistry
    ) {
        self.component = component
        self.migrations = migrations
        self.routines = routines
        self.projections = projections
    }

    /// The library's commands, run with the application that
    /// ``CommandLineRunner/main(_:application:arguments:)`` provides.
    public static var commands: [any ParsableCommand.Type] { FleetCommands.all(Provided.self) }

    /// The application of the running command line.
    @TaskLocal static var current: FleetApplication?

    static var required: FleetApplication {
        guard let current else {
            preconditionFailure("FleetApplication.Provided is read outside CommandLineRunner.main(_:application:arguments:), which provides it")
        }
        return current
    }

    /// The provider of the application that ``CommandLineRunner/main(_:application:arguments:)`` runs
    /// with, for the commands' generic parameter.
    public enum Provided: ProjectionsProvider, MigrationsProvider {
        public static func registry() throws -> ProjectionRegistry { try FleetApplication.required.projections() }
        public static var component: String { FleetApplication.required.component }
        public static var migrations: [Migration] { FleetApplication.required.migrations }
        public static var routines: [Routine] { FleetApplication.required.routines }
    }
}

/// The library's commands for a fleet binary, in the order `--help` lists them.
public enum FleetCommands {
    /// Every command of a fleet binary, with `App`'s projections and migrations: `migrate`,
    /// `append`, `read`, `project`, `scheduler`, `worker`, `launch`, `backfill`, `monitor`,
    /// `scale`, `jobs` and `rebase-log`.
    ///
    /// - Parameter app: The application's projections and migrations.
    public static func all<App: ProjectionsProvider & MigrationsProvider>(_ app: App.Type) -> [any ParsableCommand.Type] where App.Options: ParsableArguments {
        [
            MigrateCommand<App>.self, AppendCommand.self, ReadCommand.self, ProjectCommand<App>.self,
            SchedulerCommand.self, WorkerCommand<App>.self, LaunchCommand.self, BackfillCommand<App>.self,
            MonitorCommand.self, ScaleCommand.self, JobsCommand.self, ProjectionsCommand<App>.self, RebaseLogCommand.self,
        ]
    }
}
