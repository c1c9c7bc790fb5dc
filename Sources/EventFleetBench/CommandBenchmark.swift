import CartsExample
import EventFleetCore
import EventFleetPostgres
import Foundation

/// Workload 9: commands through `DeciderCommandHandler` from many writers on one cart stream,
/// pessimistic (each command holds the stream's lock from its read to its append) against
/// optimistic (read, decide, append, and read and decide again on a conflict, up to the default five
/// retries). The figures are the commands that succeeded per second and the commands that failed.
struct CommandBenchmark: Sendable {
    let database: BenchDatabase
    let settings: BenchSettings
    static let partition = "bench"

    func run(into report: inout BenchReport) async throws {
        let writers = settings.hotCommandWriters
        let run = UUID().uuidString.prefix(8).lowercased()
        let store = database.store
        let duration = settings.runDuration / 2
        let pessimisticFailures = Locked(0)
        let optimisticFailures = Locked(0)
        let pessimistic = CartCommandHandler(decider: CartState.decider, options: .init(streamType: "cart", concurrency: .pessimistic))
        let optimistic = CartCommandHandler(decider: CartState.decider, options: .init(streamType: "cart", concurrency: .optimistic))

        /// A new cart per half, so that both sides fold streams of the same lengths.
        @Sendable func load(_ handler: CartCommandHandler, _ mode: String, half: Int, failures: Locked<Int>) async throws -> LoadResult {
            let stream = "hot-commands-\(run)-\(mode)-\(half)"
            try await handler.handle(.create(tenantId: Self.partition, cartId: stream, currency: "EUR"), streamId: stream, in: store, partition: Self.partition)
            return try await runLoad(workers: writers, duration: duration) { worker, _ in
                do {
                    try await handler.handle(
                        .addItem(sku: "SKU-\(worker)", name: "Item \(worker)", unitPrice: 250, quantity: 1),
                        streamId: stream, in: store, partition: Self.partition
                    )
                    return 1
                } catch EventStoreError.retriesExhausted {
                    failures.withLock { $0 += 1 }
                    return 0
                }
            }
        }

        let (library, baseline) = try await measurePair { half in
            try await load(pessimistic, "pessimistic", half: half, failures: pessimisticFailures)
        } baseline: { half in
            try await load(optimistic, "optimistic", half: half, failures: optimisticFailures)
        }
        let ratio = library.itemsPerSecond / baseline.itemsPerSecond
        report.add(BenchRow(
            workload: "9 commands", variant: "hot stream, \(writers) writers, pessimistic against optimistic",
            unit: "commands/s", value: library.itemsPerSecond, baseline: baseline.itemsPerSecond, ratio: ratio,
            p50Milliseconds: library.latency.milliseconds(atPercentile: 50), p99Milliseconds: library.latency.milliseconds(atPercentile: 99),
            baselineP50Milliseconds: baseline.latency.milliseconds(atPercentile: 50),
            baselineP99Milliseconds: baseline.latency.milliseconds(atPercentile: 99),
            note: "failed (retries exhausted): pessimistic \(pessimisticFailures.value) of \(library.operations), "
                + "optimistic \(optimisticFailures.value) of \(baseline.operations) commands; baseline: optimistic, 5 retries"
        ))
    }
}
