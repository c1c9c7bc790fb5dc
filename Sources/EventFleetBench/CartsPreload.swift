import CartsExample
import EventFleetCore
import EventFleetJobs
import EventFleetPostgres
import Foundation
import PostgresNIO

/// Cart streams of a known shape for the fleet workloads, and the check that their `carts` rows
/// equal `aggregateStream` of each stream.
struct CartsPreload: Sendable {
    let database: BenchDatabase

    /// The events of one cart: created, items added, checked out; `length` of them (at least 2).
    static func events(tenant: String, cartId: String, length: Int) -> [CartEvent] {
        var events: [CartEvent] = [.created(CartCreated(tenantId: tenant, cartId: cartId, currency: "EUR"))]
        var total = 0
        for item in 0..<max(0, length - 2) {
            let price = 100 + (item % 7) * 25
            total += price
            events.append(.itemAdded(ItemAddedToCart(sku: "SKU-\(item % 7)", name: "Item \(item % 7)", unitPrice: price, quantity: 1)))
        }
        events.append(.checkedOut(CartCheckedOut(orderId: "order-\(cartId)", total: total)))
        return events
    }

    /// Registers the `carts` projection as a worker would, so that the scheduler makes jobs for the
    /// events appended from now on, and walks its backfill over the still empty store, so that the
    /// workers find nothing to backfill.
    func registerCartsProjection() async throws {
        let projection = try CartsReadModel.projection()
        let queue = JobQueue(store: database.store, logger: database.logger)
        try await queue.registerProjections([ProjectionRegistration(projection)])
        try await queue.advanceBackfills()
    }

    /// Appends `streams` carts of `eventsPerStream` events each, spread over `tenants`, one append
    /// per stream from 8 concurrent writers.
    ///
    /// - Returns: The (tenant, stream) pairs and the events appended per second.
    func load(streams: Int, eventsPerStream: Int, tenants: [String]) async throws -> (streams: [(String, String)], eventsPerSecond: Double) {
        let run = UUID().uuidString.prefix(6).lowercased()
        let work = (0..<streams).map { index in (tenants[index % tenants.count], "\(run)-\(index)") }
        let store = database.store
        let started = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<8 {
                group.addTask {
                    for index in stride(from: writer, to: work.count, by: 8) {
                        let (tenant, cartId) = work[index]
                        try await store.appendToStream(
                            "cart-\(cartId)", events: Self.events(tenant: tenant, cartId: cartId, length: eventsPerStream),
                            options: AppendOptions(partition: tenant, expectedVersion: .noStream, streamType: "cart")
                        )
                    }
                }
            }
            try await group.waitForAll()
        }
        let elapsed = ContinuousClock.now - started
        return (work.map { ($0.0, "cart-\($0.1)") }, Double(streams * eventsPerStream) / elapsed.seconds)
    }

    /// How many of the schema's streams have a `carts` row at their current version.
    func upToDateRows() async throws -> Int {
        try await database.count("""
            SELECT count(*) FROM \(database.names.ef_streams) s
              JOIN \(database.names.carts) c ON c.partition = s.partition AND c.stream_id = s.stream_id AND c.last_stream_position = s.stream_position
            """)
    }

    /// The streams whose row differs from the fold of their events, checked 8 at a time.
    func mismatches(_ streams: [(String, String)]) async throws -> [String] {
        try await CartsReadModel.rowsNotMatchingStreams(streams, store: database.store, concurrency: 8)
    }
}
