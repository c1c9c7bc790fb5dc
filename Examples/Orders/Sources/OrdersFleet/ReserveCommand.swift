import ArgumentParser
import EventFleetCLI
import EventFleetCore

/// `reserve`: many reservations of one product's stock at the same moment, a hot stream that the
/// pessimistic handler serializes without a single failed command.
struct ReserveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "reserve", abstract: "Reserve one product's stock from many commands at once.")

    @OptionGroup var database: DatabaseOptions
    @Option(help: "The product.") var sku = "sku-hot"
    @Option(help: "The tenant.") var partition = "tenant-0"
    @Option(help: "Reservations made at the same time.") var reservations = 16

    func validate() throws {
        guard reservations > 0 else { throw ValidationError("--reservations must be positive") }
    }

    func run() async throws {
        let handler = DeciderCommandHandler(decider: Stock.decider, options: .init(streamType: "stock", concurrency: .pessimistic))
        let (stream, partition, reservations) = ("stock-\(sku)", self.partition, self.reservations)
        let stock = try await database.withStore { store in
            try await handler.handle(.receive(quantity: reservations), streamId: stream, in: store, partition: partition)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for number in 0..<reservations {
                    group.addTask {
                        try await handler.handle(.reserve(reservation: "r-\(number)", quantity: 1), streamId: stream, in: store, partition: partition)
                    }
                }
                try await group.waitForAll()
            }
            return try await store.aggregateStream(
                stream, as: StockEvent.self, options: AggregateStreamOptions(partition: partition),
                evolve: Stock.evolve, initialState: Stock.initial
            )
        }
        print("\(stock.state.reservations) reservations of \(stream) succeeded; \(stock.state.available) left; stream at version \(stock.currentStreamVersion)")
    }
}
