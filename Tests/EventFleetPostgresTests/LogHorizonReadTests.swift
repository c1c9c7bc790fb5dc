import EventFleetCore
import EventFleetPostgres
import EventFleetTestSupport
import Foundation
import PostgresNIO
import Testing

/// The global log read by its horizon (docs/DESIGN.md, "The log horizon"): only appends in flight
/// hold it back, each only its own partition, and no committed event is ever skipped or read twice.
/// Each test holds a transaction open on purpose at one side of a race.
@Suite("Log horizon: readers")
struct LogHorizonReadTests {
    private func append(_ store: PostgresEventStore, _ type: String, partition: String, stream: String? = nil) async throws {
        try await store.appendToStream(stream ?? "s-\(type)", messages: [message(type)], options: AppendOptions(partition: partition))
    }

    /// Reads the log from `checkpoint` until a read returns nothing; a log that keeps returning
    /// events past any test's size (a checkpoint that does not move) fails the test instead of
    /// looping.
    private func readToEnd(_ store: PostgresEventStore, from checkpoint: GlobalCheckpoint, batchSize: Int = 500) async throws -> (types: [String], checkpoint: GlobalCheckpoint) {
        var checkpoint = checkpoint
        var types: [String] = []
        for _ in 0..<100 {
            let batch = try await store.readAll(after: checkpoint, options: ReadAllOptions(batchSize: batchSize))
            checkpoint = batch.checkpoint
            guard !batch.messages.isEmpty else { return (types, checkpoint) }
            types += batch.messages.map(\.type)
        }
        Issue.record("100 reads and the log still returns events: the checkpoint does not move past \(types.suffix(5))")
        return (types, checkpoint)
    }

    @Test("a transaction that holds an xid and never appends holds nothing back, however long it stays open")
    func nonAppendingTransactionHoldsNothing() async throws {
        try await TestDatabase.withSchema { schema in
            let store = schema.store
            try await append(store, "E0", partition: "a")
            try await schema.withOpenTransaction { connection in
                // An xid older than every event that follows, and an open write elsewhere.
                try await connection.query("SELECT pg_current_xact_id()", logger: TestDatabase.logger)
                try await connection.query("CREATE TABLE unrelated_import (n int)", logger: TestDatabase.logger)
                try await append(store, "E1", partition: "a")
                try await append(store, "E2", partition: "b")
                let batch = try await store.readAll(after: .start, options: ReadAllOptions())
                #expect(batch.messages.map(\.type) == ["E0", "E1", "E2"])
                #expect(!batch.isHeldBack)
                #expect(batch.checkpoint.held.isEmpty)
                #expect(try await store.logHolds().isEmpty)
            }
        }
    }

    @Test("an append whose transaction got its xid early and commits late is read once, after it commits, in every partition")
    func earlyTransactionLateAppend() async throws {
        try await TestDatabase.withSchema { schema in
            let store = schema.store
            let (read, checkpoint) = try await schema.withOpenTransaction { connection in
                try await connection.query("SELECT pg_current_xact_id()", logger: TestDatabase.logger)
                try await append(store, "A1", partition: "a")
                try await append(store, "B1", partition: "b")
                // The reader passes both partitions: nothing marks them yet.
                let before = try await readToEnd(store, from: .start)
                #expect(before.types == ["A1", "B1"])
                // Now the old transaction appends to a, and a later append to a commits first.
                try await store.appendToStream("late", messages: [message("A2")], options: AppendOptions(partition: "a"), connection: connection)
                try await append(store, "A3", partition: "a")
                try await append(store, "B2", partition: "b")
                let during = try await readToEnd(store, from: before.checkpoint)
                #expect(during.types == ["B2"], "a waits for the open append; b does not")
                #expect(during.checkpoint.held.count == 1)
                return (before.types + during.types, during.checkpoint)
            }
            let after = try await readToEnd(store, from: checkpoint)
            #expect(after.types == ["A2", "A3"])
            #expect(after.checkpoint.held.isEmpty)
            #expect((read + after.types).sorted() == ["A1", "A2", "A3", "B1", "B2"], "every event once")
        }
    }

    @Test("a partition's open append holds back that partition only, across pages; its events follow once it commits, none twice")
    func oneTenantHeldOthersFresh() async throws {
        try await TestDatabase.withSchema { schema in
            let store = schema.store
            let (read, checkpoint) = try await schema.withOpenTransaction { connection in
                try await store.appendToStream("open", messages: [message("A0")], options: AppendOptions(partition: "a"), connection: connection)
                for index in 1...5 {
                    for tenant in ["a", "b", "c", "d"] {
                        try await append(store, "\(tenant.uppercased())\(index)", partition: tenant, stream: "\(tenant)-\(index % 2)")
                    }
                }
                // Small pages: the held partition stays held from page to page.
                let during = try await readToEnd(store, from: .start, batchSize: 4)
                #expect(during.types == (1...5).flatMap { index in ["B", "C", "D"].map { "\($0)\(index)" } })
                let holds = try await store.logHolds()
                #expect(holds.map(\.partition) == ["a"])
                return (during.types, during.checkpoint)
            }
            let after = try await readToEnd(store, from: checkpoint, batchSize: 4)
            #expect(after.types == ["A0"] + (1...5).map { "A\($0)" }, "a's events in position order once the append commits")
            #expect(Set(read + after.types).count == read.count + after.types.count, "none twice")
            #expect(after.checkpoint.held.isEmpty)
        }
    }

    @Test("a consumer of one partition is not held back by another partition's open append")
    func scopedReaderIgnoresOtherMarks() async throws {
        try await TestDatabase.withSchema { schema in
            let store = schema.store
            try await schema.withOpenTransaction { connection in
                try await store.appendToStream("open", messages: [message("A0")], options: AppendOptions(partition: "a"), connection: connection)
                try await append(store, "B1", partition: "b")
                let batch = try await store.readAll(after: .start, options: ReadAllOptions(scope: .partition("b")))
                #expect(batch.messages.map(\.type) == ["B1"])
                #expect(!batch.isHeldBack, "b's reader does not wait for a")
                #expect(batch.checkpoint.held.isEmpty)
            }
        }
    }

    @Test("a rolled-back append releases its partition, and the events after it are read")
    func rolledBackAppendReleases() async throws {
        try await TestDatabase.withSchema { schema in
            let store = schema.store
            let connection = try await schema.connect()
            try await connection.query("BEGIN", logger: TestDatabase.logger)
            try await store.appendToStream("gone", messages: [message("Lost")], options: AppendOptions(partition: "a"), connection: connection)
            try await append(store, "A1", partition: "a")
            let held = try await readToEnd(store, from: .start)
            #expect(held.types.isEmpty)
            try await connection.query("ROLLBACK", logger: TestDatabase.logger)
            try await connection.close()
            let after = try await readToEnd(store, from: held.checkpoint)
            #expect(after.types == ["A1"])
        }
    }
}
