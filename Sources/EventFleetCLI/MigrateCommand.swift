import ArgumentParser
import EventFleetPostgres
import Logging

/// `eventfleet migrate`: applies the schema migrations.
public struct MigrateCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Apply the database migrations (safe to run concurrently; a changed applied migration is an error)."
    )

    @OptionGroup public var database: DatabaseOptions

    public init() {}

    public func run() async throws {
        let logger = Logger(label: "eventfleet.migrate")
        let report = try await database.withStore(logger: logger) { store in
            try await MigrationRunner(client: store.client, databaseTarget: store.options.databaseTarget, logger: logger).migrate()
        }
        if report.applied.isEmpty {
            print("migrations up to date (\(report.alreadyApplied.count) applied)")
        } else {
            print("applied migrations \(report.applied.map(String.init).joined(separator: ", ")); \(report.alreadyApplied.count) were already applied")
        }
    }
}
