import ArgumentParser
import EventFleetCLI
import EventFleetCore

/// `shop`: customers of several tenants place, fill, pay for and ship orders, concurrently.
struct ShopCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "shop", abstract: "Write orders for several tenants at once.")

    @OptionGroup var database: DatabaseOptions
    @Option(help: "Orders to write.") var orders = 100
    @Option(help: "Tenants (partitions) they spread over.") var tenants = 3
    @Option(help: "Orders written at the same time.") var concurrency = 8
    @Option(help: "A prefix for the order stream ids, so that runs do not collide.") var prefix = "order"

    func validate() throws {
        guard orders > 0, tenants > 0, concurrency > 0 else { throw ValidationError("--orders, --tenants and --concurrency must be positive") }
    }

    func run() async throws {
        let handler = DeciderCommandHandler(decider: Order.decider, options: .init(streamType: "order"))
        let (orders, tenants, concurrency, prefix) = (self.orders, self.tenants, self.concurrency, self.prefix)
        let events = try await database.withStore { store in
            try await withThrowingTaskGroup(of: Int.self) { group in
                for lane in 0..<concurrency {
                    group.addTask {
                        var events = 0
                        for number in stride(from: lane, to: orders, by: concurrency) {
                            let partition = "tenant-\(number % tenants)"
                            let stream = "\(prefix)-\(number)"
                            var commands: [OrderCommand] = [.place(customer: "customer-\(number % 17)", currency: "EUR")]
                            for line in 0...(number % 3) {
                                commands.append(.addLine(sku: "sku-\(line)", quantity: 1 + number % 4, unitPriceCents: 250 * (line + 1)))
                            }
                            if number % 4 != 0 { commands.append(.pay) }
                            if number % 4 == 3 { commands.append(.ship(carrier: "parcel-co")) }
                            for command in commands {
                                events += try await handler.handle(command, streamId: stream, in: store, partition: partition).newEvents.count
                            }
                        }
                        return events
                    }
                }
                return try await group.reduce(0, +)
            }
        }
        print("wrote \(orders) orders (\(events) events) for \(tenants) tenants")
    }
}
