import CartsExample
import EventFleetCore
import EventFleetPostgres
import Foundation
import PostgresNIO

/// A schema with the library's and the carts example's migrations applied.
public func withCartsSchema<T: Sendable>(poolSize: Int = 10, _ body: @Sendable (TestSchema) async throws -> T) async throws -> T {
    try await TestDatabase.withSchema(poolSize: poolSize) { schema in
        try await MigrationRunner(
            client: schema.client, component: CartsReadModel.migrationComponent, migrations: CartsReadModel.migrations
        ).migrate()
        return try await body(schema)
    }
}

/// Writes carts through the command handler, concurrently; returns (partition, stream) of each.
///
/// - Parameter extraItems: Items added beyond the usual ones, for longer streams.
public func writeCarts(
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
public func cartRowsNotMatchingStreams(_ schema: TestSchema, streams: [(String, String)]) async throws -> [String] {
    try await CartsReadModel.rowsNotMatchingStreams(streams, store: schema.store)
}

extension TestSchema {
    /// Runs a statement to completion.
    public func execute(_ query: PostgresQuery) async throws {
        for try await _ in try await client.query(query) {}
    }

    /// The first column of the first row, as a count.
    public func count(_ query: PostgresQuery) async throws -> Int64 {
        for try await value in try await client.query(query).decode(Int64.self) { return value }
        return 0
    }
}
