import CartsExample
import EventFleetCore
import EventFleetPostgres
import Foundation
import PostgresNIO

/// Workloads 1 and 2: appends of one event per command (new streams and one hot stream) and of
/// batches, against plain INSERTs of the same rows into a table of the same shape.
struct AppendBenchmark: Sendable {
    let database: BenchDatabase
    let settings: BenchSettings
    static let partition = "bench"

    /// An event of a realistic size, typed for the library and pre-encoded for the baseline.
    static let event = CartEvent.itemAdded(ItemAddedToCart(sku: "SKU-123", name: "Mug with a long name", unitPrice: 2_500, quantity: 2))
    static let eventType = ItemAddedToCart.eventType
    static let eventData: String = {
        let message = try? ProposedMessage(event)
        return message.map { String(decoding: $0.data, as: UTF8.self) } ?? "{}"
    }()

    func run(into report: inout BenchReport) async throws {
        for hot in [false, true] {
            for writers in settings.appendConcurrencies {
                let (library, baseline) = try await single(writers: writers, hot: hot)
                let ratio = library.itemsPerSecond / baseline.itemsPerSecond
                report.add(BenchRow(
                    workload: "1 append", variant: "\(hot ? "hot stream" : "new streams"), \(writers) writer\(writers == 1 ? "" : "s")",
                    unit: "events/s", value: library.itemsPerSecond, baseline: baseline.itemsPerSecond, ratio: ratio,
                    p50Milliseconds: library.latency.milliseconds(atPercentile: 50), p99Milliseconds: library.latency.milliseconds(atPercentile: 99),
                    baselineP50Milliseconds: baseline.latency.milliseconds(atPercentile: 50),
                    baselineP99Milliseconds: baseline.latency.milliseconds(atPercentile: 99),
                    target: "ratio >= 0.8", targetMet: ratio >= 0.8
                ))
                if let pooled = database.pooled {
                    let (direct, pooledLoad) = try await throughPooler(pooled.store) { store, run, half, duration in
                        try await Self.appendSingle(store: store, run: run, writers: writers, hot: hot, half: half, duration: duration)
                    }
                    report.add(.pooler(
                        workload: "1 append", variant: "\(hot ? "hot stream" : "new streams"), \(writers) writer\(writers == 1 ? "" : "s")",
                        unit: "events/s", pooled: pooledLoad.itemsPerSecond, direct: direct.itemsPerSecond,
                        latency: (pooledLoad.latency, direct.latency), note: Self.poolerNote
                    ))
                }
                if hot {
                    try await gaplessReference(writers: writers, plain: baseline, into: &report)
                }
            }
        }
        for size in settings.batchSizes {
            let (library, baseline) = try await batches(of: size, writers: settings.batchWriters)
            let ratio = library.itemsPerSecond / baseline.itemsPerSecond
            report.add(BenchRow(
                workload: "2 batch", variant: "\(size) events per append, \(settings.batchWriters) writers",
                unit: "events/s", value: library.itemsPerSecond, baseline: baseline.itemsPerSecond, ratio: ratio,
                p50Milliseconds: library.latency.milliseconds(atPercentile: 50), p99Milliseconds: library.latency.milliseconds(atPercentile: 99),
                baselineP50Milliseconds: baseline.latency.milliseconds(atPercentile: 50),
                baselineP99Milliseconds: baseline.latency.milliseconds(atPercentile: 99),
                target: size >= 100 ? ">= 50000 events/s" : nil, targetMet: size >= 100 ? library.itemsPerSecond >= 50_000 : nil
            ))
            if let pooled = database.pooled {
                let (direct, pooledLoad) = try await throughPooler(pooled.store) { [writers = settings.batchWriters] store, run, half, duration in
                    try await Self.appendBatches(store: store, run: run, of: size, writers: writers, half: half, duration: duration)
                }
                report.add(.pooler(
                    workload: "2 batch", variant: "\(size) events per append, \(settings.batchWriters) writers",
                    unit: "events/s", pooled: pooledLoad.itemsPerSecond, direct: direct.itemsPerSecond,
                    latency: (pooledLoad.latency, direct.latency), note: Self.poolerNote
                ))
            }
        }
    }

    static let poolerNote = "baseline: the same appends on direct connections"

    /// One event per append (and per transaction), from `writers` concurrent writers.
    private func single(writers: Int, hot: Bool) async throws -> (LoadResult, LoadResult) {
        let run = UUID().uuidString.prefix(8).lowercased()
        let store = database.store
        let database = self.database
        let hotPosition = Locked<Int64>(0)
        let duration = settings.runDuration / 2
        return try await measurePair { half in
            try await Self.appendSingle(store: store, run: String(run), writers: writers, hot: hot, half: half, duration: duration)
        } baseline: { half in
            try await runLoad(workers: writers, duration: duration) { worker, iteration in
                let stream = hot ? "hot-\(run)" : "new-\(run)-\(half)-\(worker)-\(iteration)"
                let position: Int64 = hot ? hotPosition.withLock { position in
                    position += 1
                    return position
                } : 1
                let query: PostgresQuery = """
                    INSERT INTO \(database.names.bench_raw_messages) (partition, stream_id, stream_position, message_type, message_data, message_id)
                    VALUES (\(Self.partition), \(stream), \(position), \(Self.eventType), \(Self.eventData)::jsonb, \(UUID().uuidString.lowercased()))
                    """
                try await database.execute(query)
                return 1
            }
        }
    }

    /// `load` on direct connections and through the pooler, each side on streams of its own
    /// (`run` names them) for half the run duration.
    private func throughPooler(
        _ pooled: PostgresEventStore,
        _ load: @escaping @Sendable (_ store: PostgresEventStore, _ run: String, _ half: Int, _ duration: Duration) async throws -> LoadResult
    ) async throws -> (direct: LoadResult, pooled: LoadResult) {
        let run = UUID().uuidString.prefix(8).lowercased()
        let direct = database.store
        let duration = settings.runDuration / 2
        return try await measureDirectAndPooled { half in
            try await load(direct, "\(run)-direct", half, duration)
        } pooled: { half in
            try await load(pooled, "\(run)-pooled", half, duration)
        }
    }

    /// One event per append to a new stream each time, or to the hot stream of `run`.
    private static func appendSingle(
        store: PostgresEventStore, run: String, writers: Int, hot: Bool, half: Int, duration: Duration
    ) async throws -> LoadResult {
        try await runLoad(workers: writers, duration: duration) { worker, iteration in
            let stream = hot ? "hot-\(run)" : "new-\(run)-\(half)-\(worker)-\(iteration)"
            try await store.appendToStream(
                stream, events: [event], options: AppendOptions(partition: partition, streamType: "cart")
            )
            return 1
        }
    }

    /// Workload 1's hot stream against the least raw SQL that gives a stream gapless positions under
    /// concurrent writers: one statement that bumps the stream's counter row and inserts the event
    /// at the new position. The plain-INSERT baseline takes positions from a counter in the bench's
    /// memory, so its writers never wait for each other; any store with per-stream positions makes
    /// a hot stream's writers take turns on the stream until each commit is flushed. The row says how
    /// much of the gap to the plain baseline is that rule's, and how much is the library's.
    private func gaplessReference(writers: Int, plain: LoadResult, into report: inout BenchReport) async throws {
        let run = UUID().uuidString.prefix(8).lowercased()
        let store = database.store
        let database = self.database
        let duration = settings.runDuration / 2
        let (library, gapless) = try await measurePair { _ in
            try await runLoad(workers: writers, duration: duration) { _, _ in
                try await store.appendToStream(
                    "hot-gapless-\(run)", events: [Self.event], options: AppendOptions(partition: Self.partition, streamType: "cart")
                )
                return 1
            }
        } baseline: { _ in
            try await runLoad(workers: writers, duration: duration) { _, _ in
                let stream = "hot-raw-\(run)"
                let query: PostgresQuery = """
                    WITH bumped AS (
                        INSERT INTO \(database.names.bench_raw_stream_versions) AS s (stream_id, version) VALUES (\(stream), 1)
                        ON CONFLICT (stream_id) DO UPDATE SET version = s.version + 1
                        RETURNING version
                    )
                    INSERT INTO \(database.names.bench_raw_messages) (partition, stream_id, stream_position, message_type, message_data, message_id)
                    SELECT \(Self.partition), \(stream), bumped.version, \(Self.eventType), \(Self.eventData)::jsonb, \(UUID().uuidString.lowercased())
                      FROM bumped
                    """
                try await database.execute(query)
                return 1
            }
        }
        let ratio = library.itemsPerSecond / gapless.itemsPerSecond
        report.add(BenchRow(
            workload: "1 append", variant: "hot stream, \(writers) writer\(writers == 1 ? "" : "s"), against raw gapless SQL",
            unit: "events/s", value: library.itemsPerSecond, baseline: gapless.itemsPerSecond, ratio: ratio,
            p50Milliseconds: library.latency.milliseconds(atPercentile: 50), p99Milliseconds: library.latency.milliseconds(atPercentile: 99),
            baselineP50Milliseconds: gapless.latency.milliseconds(atPercentile: 50),
            baselineP99Milliseconds: gapless.latency.milliseconds(atPercentile: 99),
            note: String(
                format: "baseline: one statement that bumps the stream's counter row and inserts at the new position; it reaches %.2f of the plain INSERTs above",
                gapless.itemsPerSecond / plain.itemsPerSecond
            )
        ))
    }

    /// `size` events per append to a new stream, against one `unnest` INSERT of the same rows.
    private func batches(of size: Int, writers: Int) async throws -> (LoadResult, LoadResult) {
        let run = UUID().uuidString.prefix(8).lowercased()
        let store = database.store
        let database = self.database
        let positions = (1...Int64(size)).map { $0 }
        let types = Array(repeating: Self.eventType, count: size)
        let data = Array(repeating: Self.eventData, count: size)
        let duration = settings.runDuration / 2
        return try await measurePair { half in
            try await Self.appendBatches(store: store, run: String(run), of: size, writers: writers, half: half, duration: duration)
        } baseline: { half in
            try await runLoad(workers: writers, duration: duration) { worker, iteration in
                let ids = (0..<size).map { _ in UUID().uuidString.lowercased() }
                let query: PostgresQuery = """
                    INSERT INTO \(database.names.bench_raw_messages) (partition, stream_id, stream_position, message_type, message_data, message_id)
                    SELECT \(Self.partition), \("batch-\(run)-\(half)-\(worker)-\(iteration)"), m.position, m.type, m.data::jsonb, m.id
                      FROM unnest(\(positions)::bigint[], \(types)::text[], \(data)::text[], \(ids)::text[]) AS m(position, type, data, id)
                    """
                try await database.execute(query)
                return size
            }
        }
    }

    /// `size` events per append, each append to a new stream.
    private static func appendBatches(
        store: PostgresEventStore, run: String, of size: Int, writers: Int, half: Int, duration: Duration
    ) async throws -> LoadResult {
        let events = Array(repeating: event, count: size)
        return try await runLoad(workers: writers, duration: duration) { worker, iteration in
            try await store.appendToStream(
                "batch-\(run)-\(half)-\(worker)-\(iteration)", events: events,
                options: AppendOptions(partition: partition, streamType: "cart")
            )
            return size
        }
    }
}
