import ArgumentParser
import CartsExample
import EventFleetBench
import EventFleetCLI
import EventFleetPostgres
import EventFleetProjections
import Foundation
import Logging

/// The operator executable: the library's commands mounted with the CartsExample domain.
struct EventFleetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eventfleet",
        abstract: "EventFleet: an event store on PostgreSQL and the tools to run it.",
        discussion: "The database comes from --database-url or DATABASE_URL. Exit codes: 0 success, 2 invalid input, 3 version conflict, 1 anything else.",
        subcommands: [
            MigrateCommand<CartsMigrations>.self, AppendCommand.self, ReadCommand.self,
            ProjectCommand<CartsProjections>.self, SchedulerCommand.self, WorkerCommand<CartsProjections>.self,
            LaunchCommand.self, BackfillCommand<CartsProjections>.self, MonitorCommand.self, ScaleCommand.self,
            JobsCommand.self, DemoCommand.self, ChaosCommand.self, BenchCommand.self,
        ]
    )
}

/// The example domain's projections, for the commands that run them.
enum CartsProjections: ProjectionsProvider {
    static func registry() throws -> ProjectionRegistry { try CartsReadModel.registry() }
}

/// The example domain's migrations, applied after the library's by `eventfleet migrate`.
enum CartsMigrations: MigrationsProvider {
    static let component = CartsReadModel.migrationComponent
    static var migrations: [Migration] { CartsReadModel.migrations }
}

@main
enum Main {
    static func main() async {
        let level = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        await CommandLineRunner.main(EventFleetCommand.self)
    }
}
