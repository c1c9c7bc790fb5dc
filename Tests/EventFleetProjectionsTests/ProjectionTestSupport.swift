import CartsExample
import EventFleetCore
import EventFleetPostgres
import EventFleetProjections
import EventFleetTestSupport
import Foundation
import Logging
import PostgresNIO

/// Runs `consumer` for the duration of `body`, then stops it.
func withRunning<T: Sendable>(_ consumers: [EventConsumer], _ body: @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        for consumer in consumers {
            group.addTask {
                try await consumer.run()
                return nil
            }
        }
        defer { group.cancelAll() }
        return try await body()
    }
}

func consumerConfiguration(_ name: String, scope: PartitionScope = .all) -> EventConsumer.Configuration {
    var configuration = EventConsumer.Configuration(name: name, scope: scope)
    configuration.pollInterval = .milliseconds(10)
    configuration.maxPollInterval = .milliseconds(100)
    configuration.leaseDuration = .seconds(5)
    return configuration
}

/// A row of the carts read model.
struct CartRow: Sendable, Equatable {
    var tenantId: String
    var cartId: String
    var streamId: String
    var lastStreamPosition: Int64
    var lastGlobalPosition: Int64
    var currency: String?
    var total: Int64?
    var orderId: String?
    var items: [CartItem]
    var isCheckedOut: Bool
    var isCancelled: Bool
    var snapshot: CartState
}

func cartRows(_ schema: TestSchema, partition: String? = nil) async throws -> [CartRow] {
    let rows = try await schema.rows(
        """
        SELECT tenant_id, cart_id, stream_id, last_stream_position, last_global_position, currency, total, order_id,
               items_json::text, is_checked_out, is_cancelled, snapshot::text
          FROM carts WHERE \(partition)::text IS NULL OR partition = \(partition)
         ORDER BY partition, stream_id
        """,
        as: (String, String, String, Int64, Int64, String?, Int64?, String?, String, Bool, Bool, String).self
    )
    var result: [CartRow] = []
    for (tenant, cart, stream, position, global, currency, total, order, items, checkedOut, cancelled, snapshot) in rows {
        result.append(
            CartRow(
                tenantId: tenant, cartId: cart, streamId: stream, lastStreamPosition: position, lastGlobalPosition: global,
                currency: currency, total: total, orderId: order,
                items: try JSONDecoder().decode([CartItem].self, from: Data(items.utf8)),
                isCheckedOut: checkedOut, isCancelled: cancelled,
                snapshot: try JSONDecoder().decode(CartState.self, from: Data(snapshot.utf8))
            )
        )
    }
    return result
}

func cartRow(_ schema: TestSchema, stream: String, partition: String = defaultPartition) async throws -> CartRow? {
    try await cartRows(schema, partition: partition).first { $0.streamId == stream }
}
