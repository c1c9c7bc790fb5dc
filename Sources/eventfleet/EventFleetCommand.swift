import ArgumentParser
import CartsExample
import EventFleetCLI
import EventFleetDashboard

/// The operator executable: the library's commands mounted around the carts example's projections
/// and migrations, as an application mounts them in its own fleet binary.
@main
struct EventFleetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eventfleet",
        abstract: "EventFleet: an event store on PostgreSQL and the tools to run it.",
        discussion: "The database comes from --database-url or DATABASE_URL. Exit codes: 0 success, 2 invalid input, 3 version conflict, 1 anything else.",
        subcommands: FleetCommands.all(CartsReadModel.self) + [DashboardCommand.self]
    )

    static func main() async {
        CommandLineRunner.bootstrapLogging()
        await CommandLineRunner.main(EventFleetCommand.self)
    }
}
