import EventFleetCore
import Foundation
import EventFleetPostgres
import EventFleetTestSupport
import PostgresNIO
import Testing

/// The global log never skips an event whose transaction commits out of order.
@Suite("Global log", .exclusive)
struct GlobalLogTests {
    @Test("a reader that leaves out payloads gets the same events and checkpoints, with {} as data and metadata")
    func withoutPayload() async throws {
        try await TestDatabase.withSchema { schema in
            let store = schema.store
            try await store.appendToStream("s1", messages: [message("A", #"{"big": "payload"}"#, metadata: #"{"m": 1}"#), message("B")], options: AppendOptions())
            try await store.appendToStream("s2", messages: [message("C", #"{"x": [1, 2]}"#)], options: AppendOptions(partition: "p2"))
            let full = try await readGlobalLog(store, count: 3)
            let bare = try await readGlobalLog(store, options: ReadAllOptions(includePayload: false), count: 3)
            #expect(bare.messages.map(\.type) == full.messages.map(\.type))
            #expect(bare.messages.map(\.globalPosition) == full.messages.map(\.globalPosition))
            #expect(bare.messages.map(\.streamId) == ["s1", "s1", "s2"])
            #expect(bare.messages.map(\.partition) == [defaultPartition, defaultPartition, "p2"])
            #expect(bare.messages.allSatisfy { $0.data == Data("{}".utf8) && $0.metadata == Data("{}".utf8) })
            #expect(full.messages[0].data != Data("{}".utf8))
            #expect(bare.checkpoint == full.checkpoint)
        }
    }

    @Test("an append that drew its position first but commits last is delivered, once, after it commits; its partition waits, the report names it")
    func lateCommitIsNotSkipped() async throws {
        try await TestDatabase.withSchema { schema in
            let store = schema.store
            try await store.appendToStream("early", messages: [message("E0")], options: AppendOptions())
            let first = try await readGlobalLog(store, count: 1)
            #expect(first.messages.map(\.type) == ["E0"])
            let checkpoint = first.checkpoint

            let slow = try await schema.connect()
            var slowPid: Int32 = 0
            do {
                try await slow.query("BEGIN", logger: TestDatabase.logger)
                let pid = try await backendPid(slow)
                slowPid = pid
                let early = try await store.appendToStream(
                    "slow", messages: [message("E1")], options: AppendOptions(), connection: slow
                )
                let late = try await store.appendToStream("fast", messages: [message("E2")], options: AppendOptions())
                #expect(early.lastGlobalPosition < late.lastGlobalPosition, "the slow transaction took the lower position")

                let held = try await store.readAll(after: checkpoint, options: ReadAllOptions())
                #expect(held.messages.isEmpty, "E2 is committed but its partition waits for the open append")
                #expect(held.isHeldBack)
                let holds = try await store.logHolds()
                #expect(holds.map(\.pid) == [pid])
                #expect(holds.first?.partition == defaultPartition)
                #expect(holds.first?.state == "idle in transaction")

                try await slow.query("COMMIT", logger: TestDatabase.logger)
                try await slow.close()
            } catch {
                try? await slow.close()
                throw error
            }
            let rest = try await readGlobalLog(store, after: checkpoint, count: 2)
            #expect(rest.messages.map(\.type) == ["E1", "E2"])
            #expect(try await store.logHolds().allSatisfy { $0.pid != slowPid })
        }
    }

    @Test("a rolled-back append never appears and does not stall the log")
    func rolledBackAppend() async throws {
        try await TestDatabase.withSchema { schema in
            let store = schema.store
            let connection = try await schema.connect()
            try await connection.query("BEGIN", logger: TestDatabase.logger)
            try await store.appendToStream("gone", messages: [message("Lost")], options: AppendOptions(), connection: connection)
            try await connection.query("ROLLBACK", logger: TestDatabase.logger)
            try await connection.close()
            try await store.appendToStream("kept", messages: [message("Kept")], options: AppendOptions())
            let batch = try await readGlobalLog(store, count: 1)
            #expect(batch.messages.map(\.type) == ["Kept"])
            #expect(try await store.readStream("gone", options: ReadStreamOptions()).streamExists == false)
        }
    }

    private func backendPid(_ connection: PostgresConnection) async throws -> Int32 {
        for try await pid in try await connection.query("SELECT pg_backend_pid()", logger: TestDatabase.logger).decode(Int32.self) {
            return pid
        }
        throw TimedOut(description: "no backend pid")
    }
}
