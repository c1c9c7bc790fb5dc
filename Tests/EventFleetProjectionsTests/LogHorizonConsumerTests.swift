import EventFleetCore
import EventFleetPostgres
import EventFleetProjections
import EventFleetTestSupport
import Foundation
import PostgresNIO
import ServiceLifecycle
import Synchronization
import Testing

/// Consumers follow the log by its horizon (docs/DESIGN.md, "The log horizon"): an open append
/// holds back its own partition only, the held partitions are part of the stored checkpoint, and a
/// checkpoint of the previous release's (transaction id, global position) order is taken over
/// without skipping.
@Suite("Log horizon: consumers", .exclusive, .timeLimit(.minutes(2)))
struct LogHorizonConsumerTests {
    /// A consumer that counts each event it applies in `applied`, in its own transaction: an event
    /// applied twice shows as a count of 2.
    private func countingConsumer(_ schema: TestSchema, name: String, scope: PartitionScope = .all) async throws -> EventConsumer {
        try await schema.execute("CREATE TABLE IF NOT EXISTS applied (type text PRIMARY KEY, count int NOT NULL)")
        var registry = ProjectionRegistry()
        registry.subscribeToAll(name: "count") { message, context in
            try await context.execute("""
                INSERT INTO \(try context.table("applied")) AS a (type, count) VALUES (\(message.type), 1)
                ON CONFLICT (type) DO UPDATE SET count = a.count + 1
                """)
        }
        return EventConsumer(configuration: consumerConfiguration(name, scope: scope), store: schema.store, registry: registry)
    }

    private func applied(_ schema: TestSchema) async throws -> [String: Int32] {
        Dictionary(uniqueKeysWithValues: try await schema.rows("SELECT type, count FROM applied", as: (String, Int32).self).map { ($0.0, $0.1) })
    }

    /// Runs `consumer` for `body`, then stops it gracefully (it gives its lease up).
    private func whileRunning(_ consumer: EventConsumer, _ body: @Sendable () async throws -> Void) async throws {
        try await withServices([consumer], body)
    }

    private func append(_ store: PostgresEventStore, _ type: String, partition: String, connection: PostgresConnection? = nil) async throws {
        if let connection {
            try await store.appendToStream("s-\(type)", messages: [message(type)], options: AppendOptions(partition: partition), connection: connection)
        } else {
            try await store.appendToStream("s-\(type)", messages: [message(type)], options: AppendOptions(partition: partition))
        }
    }

    @Test("an open append in partition a holds back a only; stopped and restarted meanwhile, the consumer applies a's events once after the commit", arguments: [PartitionScope.all, .only(["a", "b"])])
    func heldPartitionAcrossRestart(scope: PartitionScope) async throws {
        try await TestDatabase.withSchema { schema in
            let store = schema.store
            let open = try await schema.connect()
            do {
                try await open.query("BEGIN", logger: TestDatabase.logger)
                try await append(store, "A1", partition: "a", connection: open)
                try await append(store, "A2", partition: "a")
                try await append(store, "B1", partition: "b")

                let first = try await countingConsumer(schema, name: "horizon", scope: scope)
                try await whileRunning(first) {
                    try await waitUntil("b's event is applied while a's append is open") { try await applied(schema)["B1"] == 1 }
                    try await append(store, "B2", partition: "b")
                    try await waitUntil("b stays fresh") { try await applied(schema)["B2"] == 1 }
                }
                #expect(try await applied(schema)["A2"] == nil, "a's committed event waits behind the open append")
                let held = try await schema.rows("SELECT log_held_keys FROM ef_subscriptions WHERE subscription_id = 'horizon'", as: [Int32].self)
                let keyA = try #require(try await schema.rows("SELECT hashtext('a')", as: Int32.self).first)
                #expect(held == [[keyA]], "the stored checkpoint holds a back")

                try await open.query("COMMIT", logger: TestDatabase.logger)
                try await open.close()
            } catch {
                try? await open.close()
                throw error
            }
            let second = try await countingConsumer(schema, name: "horizon", scope: scope)
            try await whileRunning(second) {
                try await second.whenCaughtUp()
            }
            #expect(try await applied(schema) == ["A1": 1, "A2": 1, "B1": 1, "B2": 1])
        }
    }

    @Test("a checkpoint the previous release stored as a (transaction id, global position) pair is taken over: nothing after it is skipped, nothing before it replayed")
    func previousReleaseCheckpoint() async throws {
        try await TestDatabase.withSchema { schema in
            let store = schema.store
            for type in ["E1", "E2", "E3", "E4", "E5"] {
                try await append(store, type, partition: "a")
            }
            // As the previous release leaves it: its pair after E3, none of this release's columns.
            try await schema.execute("""
                INSERT INTO ef_subscriptions (subscription_id, partition, version, last_transaction_id, last_global_position)
                SELECT 'upgraded', '*', 1, m.transaction_id, m.global_position FROM ef_messages m WHERE m.message_type = 'E3'
                """)
            let consumer = try await countingConsumer(schema, name: "upgraded")
            try await whileRunning(consumer) {
                try await consumer.whenCaughtUp()
            }
            #expect(try await applied(schema) == ["E4": 1, "E5": 1])
            // The pair stays for the previous release, remembered as the base of the new checkpoint.
            #expect(try await schema.count("""
                SELECT count(*) FROM ef_subscriptions
                 WHERE subscription_id = 'upgraded' AND log_position IS NOT NULL
                   AND (log_base_transaction_id, log_base_global_position) = (last_transaction_id, last_global_position)
                """) == 1)
        }
    }

    @Test("while an append holds a partition back, the consumer's empty reads back off as idle ones do, not at the shortest poll interval")
    func heldBackReadsBackOff() async throws {
        try await TestDatabase.withSchema { schema in
            let reads = Mutex(0)
            var configuration = consumerConfiguration("held-back-polls")
            configuration.pollInterval = .milliseconds(20)
            configuration.maxPollInterval = .milliseconds(500)
            configuration.notifyChannel = nil
            // Every page: nothing readable, a partition held back (a tenant's import that stays open).
            configuration.serverSidePages = EventConsumer.ServerSidePages { after, _, _ in
                reads.withLock { $0 += 1 }
                return EventConsumer.ServerSidePages.Page(events: 0, checkpoint: after, isHeldBack: true)
            }
            let consumer = EventConsumer(configuration: configuration, store: schema.store, registry: ProjectionRegistry())
            try await whileRunning(consumer) {
                try await waitUntil("the consumer leads") { consumer.isActive }
                let before = reads.withLock { $0 }
                // The window observed, not a wait for a condition: backing off from 20 ms to 500 ms
                // reads about 9 times in 2 s; polling at 20 ms throughout would read about 100 times.
                // A slower machine reads fewer times, never more.
                try await Task.sleep(for: .seconds(2))
                let during = reads.withLock { $0 } - before
                #expect(during <= 15, "\(during) reads in 2 s")
            }
        }
    }
}
