import ArgumentParser
import EventFleetPostgres
import Logging

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
        let (migrations, routines) = (App.migrations, App.routines)
        let reports = try await database.withStore(requiringSchema: false, logger: logger) { store in
            var reports = [(MigrationRunner.libraryComponent, try await MigrationRunner(store: store, logger: logger).migrate())]
            if !migrations.isEmpty || !routines.isEmpty {
                let runner = MigrationRunner(store: store, component: component, migrations: migrations, routines: routines, logger: logger)
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
            if !report.routinesApplied.isEmpty {
                print("\(component): applied routines \(report.routinesApplied.joined(separator: ", "))")
            }
            if !report.routinesDropped.isEmpty {
                print("\(component): dropped routines \(report.routinesDropped.joined(separator: ", "))")
            }
        }
    }
}
