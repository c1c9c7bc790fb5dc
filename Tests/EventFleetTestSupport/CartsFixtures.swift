import CartsExample
import EventFleetCore
import EventFleetPostgres
import Foundation
import PostgresNIO

/// A schema with the library's and the carts example's migrations applied.
package func withCartsSchema<T: Sendable>(poolSize: Int = 10, _ body: @Sendable (TestSchema) async throws -> T) async throws -> T {
    try await TestDatabase.withSchema(poolSize: poolSize) { schema in
        try await MigrationRunner(store: schema.store, component: CartsReadModel.component, migrations: CartsReadModel.migrations).migrate()
        return try await body(schema)
    }
}

/// Writes carts through the command handler, concurrently; returns (partition, stream) of each.
///
/// - Parameter extraItems: Items added beyond the usual ones, for longer streams.
package func writeCarts(
    _ store: PostgresEventStore, tenants: [String], cartsPerTenant: Int, extraItems: Int = 0
) async throws -> [(String, String)] {
    let handler = CartCommandHandler.carts()
    return try await withThrowingTaskGroup(of: (String, String).self) { group in
        for tenant in tenants {
            for index in 0..<cartsPerTenant {
                group.addTask {
                    let cartId = "\(tenant)-\(index)-\(UUID().uuidString.prefix(6))"
                    let stream = cartStreamId(cartId)
                    var commands: [CartCommand] = [
                        .create(tenantId: tenant, cartId: cartId, currency: "EUR"),
                        .addItem(sku: "A", name: "a", unitPrice: 10 + index, quantity: 2),
                        .addItem(sku: "B", name: "b", unitPrice: 5, quantity: 1),
                        .removeItem(sku: "A", quantity: 1),
                    ]
                    commands += (0..<extraItems).map { .addItem(sku: "X\($0 % 7)", name: "x", unitPrice: 1, quantity: 1) }
                    commands.append(index.isMultiple(of: 2) ? .checkOut(orderId: "o-\(cartId)") : .cancel(reason: "r"))
                    for command in commands {
                        try await handler.handle(command, streamId: stream, in: store, partition: tenant)
                    }
                    return (tenant, stream)
                }
            }
        }
        return try await group.reduce(into: []) { $0.append($1) }
    }
}

/// The streams whose carts row is missing or differs from `aggregateStream` (state or position).
package func cartRowsNotMatchingStreams(_ schema: TestSchema, streams: [(String, String)]) async throws -> [String] {
    try await CartsReadModel.rowsNotMatchingStreams(streams, store: schema.store)
}
