import ArgumentParser
import EventFleetPostgres
import Logging

/// Supplies an application's own migrations (read-model tables, say), applied after the library's.
public protocol MigrationsProvider {
    /// The component name their versions count under, e.g. `"orders"`.
    static var component: String { get }
    static var migrations: [Migration] { get }
}

/// No application migrations: only the library's.
public enum NoMigrations: MigrationsProvider {
    public static let component = "none"
    public static var migrations: [Migration] { [] }
}

/// `migrate`: applies the library's migrations, then the application's.
public struct MigrateCommand<App: MigrationsProvider>: AsyncParsableCommand {
    public static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: "migrate",
            abstract: "Apply the database migrations (safe to run concurrently; a changed applied migration is an error)."
        )
    }

    @OptionGroup public var database: DatabaseOptions

    public init() {}

    public func run() async throws {
        let logger = Logger(label: "eventfleet.migrate")
        let component = App.component
        let migrations = App.migrations
        let reports = try await database.withStore(logger: logger) { store in
            var reports = [
                (MigrationRunner.libraryComponent, try await MigrationRunner(client: store.client, databaseTarget: store.options.databaseTarget, logger: logger).migrate())
            ]
            if !migrations.isEmpty {
                let runner = MigrationRunner(
                    client: store.client, component: component, migrations: migrations,
                    databaseTarget: store.options.databaseTarget, logger: logger
                )
                reports.append((component, try await runner.migrate()))
            }
            return reports
        }
        for (component, report) in reports {
            if report.applied.isEmpty {
                print("\(component): migrations up to date (\(report.alreadyApplied.count) applied)")
            } else {
                print("\(component): applied migrations \(report.applied.map(String.init).joined(separator: ", ")); \(report.alreadyApplied.count) were already applied")
            }
        }
    }
}
