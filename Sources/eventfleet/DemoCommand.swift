import ArgumentParser
import CartsExample
import EventFleetCLI
import EventFleetCore
import EventFleetPostgres
import EventFleetProjections
import Foundation
import Logging

/// `eventfleet demo`: runs the cart domain through the command handler for a few tenants and prints
/// the streams and the states folded from them.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run the example cart domain for a few tenants and print the streams and states."
    )

    @OptionGroup var database: DatabaseOptions
    @Option(help: "Comma-separated tenants (partitions).") var tenants: String = "acme,globex,initech"
    @Option(help: "Carts per tenant.") var carts: Int = 3

    func validate() throws {
        guard carts > 0 else { throw ValidationError("--carts must be positive") }
        guard !tenantList.isEmpty else { throw ValidationError("--tenants names no tenant") }
    }

    var tenantList: [String] { tenants.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }

    func run() async throws {
        let tenants = tenantList
        let carts = self.carts
        let runId = String(UUID().uuidString.prefix(8)).lowercased()
        try await database.withStore(logger: Logger(label: "eventfleet.demo")) { store in
            try await CartsReadModel.migrate(client: store.client)
            let handler = CartCommandHandler.carts()
            let projection = try CartsReadModel.projection()
            let runner = ProjectionRunner(store: store)
            for tenant in tenants {
                print("== tenant \(tenant)")
                for index in 1...carts {
                    let cartId = "\(runId)-\(index)"
                    let streamId = cartStreamId(cartId)
                    print("-- stream \(streamId)")
                    for command in Self.script(tenant: tenant, cartId: cartId, index: index) {
                        do {
                            _ = try await handler.handle(command, streamId: streamId, in: store, partition: tenant)
                        } catch let error as CartError {
                            print("   rejected \(command): \(error)")
                        }
                    }
                    try await printStream(streamId, tenant: tenant, store: store)
                    let projected = try await runner.projectEvents(projection, streamId: streamId, partition: tenant)
                    print("   carts row: \(try await Self.describeRow(streamId, tenant: tenant, store: store)) (\(projected.eventsProcessed) events projected)")
                }
            }
        }
    }

    /// A cart's life: shop, change your mind, and either check out or (every third cart) abandon it,
    /// with one command the domain rejects.
    static func script(tenant: String, cartId: String, index: Int) -> [CartCommand] {
        var commands: [CartCommand] = [
            .create(tenantId: tenant, cartId: cartId, currency: index.isMultiple(of: 2) ? "USD" : "EUR"),
            .addItem(sku: "SKU-123", name: "Mug", unitPrice: 25, quantity: 2),
            .addItem(sku: "SKU-456", name: "Tea", unitPrice: 15, quantity: index),
            .removeItem(sku: "SKU-123", quantity: 1),
            .removeItem(sku: "SKU-999", quantity: 1),
        ]
        commands.append(index.isMultiple(of: 3) ? .cancel(reason: "changed my mind") : .checkOut(orderId: "order-\(cartId)"))
        commands.append(.addItem(sku: "SKU-789", name: "Spoon", unitPrice: 5, quantity: 1))
        return commands
    }

    private func printStream(_ streamId: String, tenant: String, store: PostgresEventStore) async throws {
        let events = try await store.readStream(streamId, as: CartEvent.self, options: ReadStreamOptions(partition: tenant))
        print("   events (version \(events.currentStreamVersion)):")
        for recorded in events.events {
            let data = String(decoding: recorded.message.data, as: UTF8.self)
            print("   \(recorded.message.streamPosition). \(recorded.event.eventType) \(data)")
        }
        let state = try await store.aggregateStream(
            streamId, as: CartEvent.self, options: AggregateStreamOptions(partition: tenant),
            evolve: CartState.evolve, initialState: CartState.initialState
        ).state
        print("   state: \(Self.describe(state))")
    }

    /// The `carts` read-model row the projection wrote.
    static func describeRow(_ streamId: String, tenant: String, store: PostgresEventStore) async throws -> String {
        let rows = try await store.client.query(
            """
            SELECT currency, total, order_id, is_checked_out, is_cancelled, last_stream_position
              FROM carts WHERE partition = \(tenant) AND stream_id = \(streamId)
            """
        )
        for try await (currency, total, orderId, checkedOut, cancelled, position) in rows.decode((String?, Int64?, String?, Bool, Bool, Int64).self) {
            return "currency \(currency ?? "-"), total \(total ?? 0), order \(orderId ?? "-"), checked out \(checkedOut), cancelled \(cancelled), at position \(position)"
        }
        return "none"
    }

    static func describe(_ state: CartState) -> String {
        func items(_ cart: CartDetails) -> String {
            cart.items.map { "\($0.sku)×\($0.quantity)@\($0.unitPrice)" }.joined(separator: ", ")
        }
        switch state {
        case .initial: return "empty"
        case .active(let cart): return "active [\(items(cart))] total \(cart.total) \(cart.currency)"
        case .checkedOut(let cart, let orderId, let total): return "checked out as \(orderId) [\(items(cart))] total \(total) \(cart.currency)"
        case .cancelled(let cart, let reason): return "cancelled (\(reason)) [\(items(cart))]"
        }
    }
}
