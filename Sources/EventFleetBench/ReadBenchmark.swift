import CartsExample
import EventFleetCore
import EventFleetPostgres
import Foundation
import PostgresNIO

/// Workload 3: read a 1,000-event cart stream and fold it into state with the domain's `evolve`,
/// against the bare SELECT of the same rows.
struct ReadBenchmark: Sendable {
    let database: BenchDatabase
    let settings: BenchSettings

    func run(into report: inout BenchReport) async throws {
        let stream = "read-\(UUID().uuidString.prefix(8).lowercased())"
        let partition = AppendBenchmark.partition
        let length = settings.readStreamLength
        var events: [CartEvent] = [.created(CartCreated(tenantId: partition, cartId: stream, currency: "EUR"))]
        for index in 1..<length {
            events.append(.itemAdded(ItemAddedToCart(sku: "SKU-\(index % 20)", name: "Item \(index % 20)", unitPrice: 100 + index % 20, quantity: 1)))
        }
        for chunk in stride(from: 0, to: events.count, by: 100) {
            try await database.store.appendToStream(
                stream, events: Array(events[chunk..<min(chunk + 100, events.count)]), options: AppendOptions(partition: partition, streamType: "cart")
            )
        }
        let store = database.store
        let client = database.client
        let logger = database.logger
        let messages = database.names.ef_messages
        let duration = settings.runDuration / 2
        let (library, baseline) = try await measurePair { _ in
            try await runLoad(workers: 1, duration: duration) { _, _ in
                let result = try await store.aggregateStream(
                    stream, as: CartEvent.self, options: AggregateStreamOptions(partition: partition),
                    evolve: CartState.evolve, initialState: CartState.initialState
                )
                return Int(result.currentStreamVersion)
            }
        } baseline: { _ in
            try await runLoad(workers: 1, duration: duration) { _, _ in
                let query: PostgresQuery = """
                    SELECT stream_position, global_position, message_type, message_data::text FROM \(messages)
                     WHERE partition = \(partition) AND stream_id = \(stream) ORDER BY stream_position
                    """
                var rows = 0
                for try await _ in try await client.query(query, logger: logger).decode((Int64, Int64, String, String).self) { rows += 1 }
                return rows
            }
        }
        let ratio = library.itemsPerSecond / baseline.itemsPerSecond
        report.add(BenchRow(
            workload: "3 read", variant: "aggregate a \(length)-event stream", unit: "events/s",
            value: library.itemsPerSecond, baseline: baseline.itemsPerSecond, ratio: ratio,
            p50Milliseconds: library.latency.milliseconds(atPercentile: 50), p99Milliseconds: library.latency.milliseconds(atPercentile: 99),
            baselineP50Milliseconds: baseline.latency.milliseconds(atPercentile: 50),
            baselineP99Milliseconds: baseline.latency.milliseconds(atPercentile: 99),
            note: "EventFleet decodes every event's JSON and evolves the cart; the baseline only fetches the rows"
        ))
    }
}
