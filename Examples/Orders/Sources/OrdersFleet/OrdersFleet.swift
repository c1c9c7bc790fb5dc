import ArgumentParser
import EventFleetCLI
import Foundation

/// The orders application's fleet binary: its own commands, then the library's (migrate,
/// scheduler, worker, monitor and the rest), which run the read model `OrdersReadModel` makes.
@main
struct OrdersFleet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "orders-fleet",
        abstract: "The orders example: its commands and its projection fleet.",
        subcommands: [ShopCommand.self, ReserveCommand.self, VerifyCommand.self] + FleetApplication.commands
    )

    static func main() async {
        CommandLineRunner.bootstrapLogging()
        let application: FleetApplication
        do {
            application = try OrdersReadModel.application(table: OrdersReadModel.tableName())
        } catch {
            FileHandle.standardError.write(Data("error: ORDERS_TABLE: \(error)\n".utf8))
            Foundation.exit(EventFleetExitCode.invalidInput)
        }
        await CommandLineRunner.main(OrdersFleet.self, application: application)
    }
}
