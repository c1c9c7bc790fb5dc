import EventFleetCore
import EventFleetPostgres
import EventFleetTestSupport
import Foundation
import PostgresNIO
import Testing

/// The marks appends take (`ef_mark_append`) and the horizon readers take from them
/// (`ef_log_horizon`): docs/DESIGN.md, "The log horizon". Each test plays one side of a race with a
/// transaction held open on purpose.
@Suite("Log horizon: append marks")
struct LogHorizonTests {
    /// One row of `ef_log_horizon`: the sequence's last value, and an append in flight (key, bound, pid).
    typealias HorizonRow = (bound: Int64, key: Int32?, appenderBound: Int64?, pid: Int32?)

    private func horizon(_ schema: TestSchema, partitions: [String]? = nil) async throws -> [HorizonRow] {
        try await schema.rows(
            """
            SELECT h.bound, h.partition_key, h.appender_bound, h.pid
              FROM ef_log_horizon((SELECT array_agg(hashtext(p)) FROM unnest(\(partitions)::text[]) p)) h
            """,
            as: (Int64, Int32?, Int64?, Int32?).self
        ).map { HorizonRow($0.0, $0.1, $0.2, $0.3) }
    }

    private func key(_ schema: TestSchema, _ partition: String) async throws -> Int32 {
        try #require(try await schema.rows("SELECT hashtext(\(partition))", as: Int32.self).first)
    }

    private func backendPid(_ connection: PostgresConnection) async throws -> Int32 {
        for try await pid in try await connection.query("SELECT pg_backend_pid()", logger: TestDatabase.logger).decode(Int32.self) {
            return pid
        }
        throw TimedOut(description: "no backend pid")
    }

    @Test("an append in flight is marked before it commits, with a bound below every position it drew, and unmarked after")
    func appendInFlightIsMarked() async throws {
        try await TestDatabase.withSchema { schema in
            let store = schema.store
            try await store.appendToStream("before", messages: [message("E0")], options: AppendOptions(partition: "a"))
            let keyA = try await key(schema, "a")
            try await schema.withOpenTransaction { connection in
                let pid = try await backendPid(connection)
                let open = try await store.appendToStream(
                    "open", messages: [message("E1"), message("E2")], options: AppendOptions(partition: "a"), connection: connection
                )
                let rows = try await horizon(schema)
                let mark = try #require(rows.first { $0.pid == pid }, "the open append is marked: \(rows)")
                #expect(mark.key == keyA)
                let appenderBound = try #require(mark.appenderBound)
                // Both events of the open append lie above its bound.
                #expect(appenderBound < open.lastGlobalPosition - 1)
                #expect(mark.bound >= open.lastGlobalPosition, "the sequence's last value counts uncommitted draws")
            }
            #expect(try await horizon(schema).allSatisfy { $0.key == nil }, "the mark goes with the commit")
        }
    }

    @Test("a transaction that holds an xid but has not appended holds nothing back, however long it is open")
    func nonAppendingTransactionIsNotAMark() async throws {
        try await TestDatabase.withSchema { schema in
            try await schema.execute("CREATE TABLE side_work (id int)")
            try await schema.withOpenTransaction { connection in
                try await connection.query("INSERT INTO side_work VALUES (1)", logger: TestDatabase.logger)
                let pid = try await backendPid(connection)
                try await schema.store.appendToStream("s", messages: [message("E")], options: AppendOptions(partition: "a"))
                let rows = try await horizon(schema)
                #expect(!rows.contains { $0.pid == pid })
                #expect(rows.allSatisfy { $0.key == nil }, "no append is in flight: \(rows)")
            }
        }
    }

    @Test("a transaction that got its xid early and appends late draws positions above every event committed meanwhile")
    func earlyXidAppendsAboveTheBound() async throws {
        try await TestDatabase.withSchema { schema in
            let store = schema.store
            try await schema.execute("CREATE TABLE side_work (id int)")
            try await schema.withOpenTransaction { connection in
                try await connection.query("INSERT INTO side_work VALUES (1)", logger: TestDatabase.logger)
                var committed: Int64 = 0
                for index in 0..<3 {
                    committed = try await store.appendToStream(
                        "meanwhile-\(index)", messages: [message("M")], options: AppendOptions(partition: "b")
                    ).lastGlobalPosition
                }
                let pid = try await backendPid(connection)
                let late = try await store.appendToStream(
                    "late", messages: [message("L")], options: AppendOptions(partition: "a"), connection: connection
                )
                #expect(late.lastGlobalPosition > committed)
                let mark = try #require(try await horizon(schema).first { $0.pid == pid })
                #expect(try #require(mark.appenderBound) >= committed, "the bound is taken when the append happens, not when the xid was")
            }
        }
    }

    @Test("a reader of other partitions does not see the mark; appends in another schema do not mark this one")
    func marksArePerPartitionAndSchema() async throws {
        try await TestDatabase.withSchema { schema in
            try await TestDatabase.withSchema { other in
                try await other.withOpenTransaction { connection in
                    let pid = try await backendPid(connection)
                    try await other.store.appendToStream("o", messages: [message("O")], options: AppendOptions(partition: "a"), connection: connection)
                    #expect(try await horizon(other, partitions: ["a"]).contains { $0.pid == pid })
                    #expect(try await horizon(other, partitions: ["b"]).allSatisfy { $0.key == nil })
                    #expect(!(try await horizon(schema)).contains { $0.pid == pid }, "a store in another schema is not held back")
                }
            }
        }
    }

    @Test("a version conflict marks nothing")
    func conflictMarksNothing() async throws {
        try await TestDatabase.withSchema { schema in
            let store = schema.store
            try await store.appendToStream("s", messages: [message("E")], options: AppendOptions(partition: "a"))
            try await schema.withOpenTransaction { connection in
                let pid = try await backendPid(connection)
                await #expect(throws: EventStoreError.self) {
                    try await store.appendToStream(
                        "s", messages: [message("E")], options: AppendOptions(partition: "a", expectedVersion: .noStream), connection: connection
                    )
                }
                #expect(!(try await horizon(schema)).contains { $0.pid == pid })
            }
        }
    }

    @Test("the horizon refuses a REPEATABLE READ transaction, whose snapshot may predate its look at the marks")
    func repeatableReadIsRefused() async throws {
        try await TestDatabase.withSchema { schema in
            let error = await #expect(throws: (any Error).self) {
                try await schema.withOpenTransaction { connection in
                    try await connection.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", logger: TestDatabase.logger)
                    // A row sequence reports the server's error when it is read.
                    for try await _ in try await connection.query("SELECT * FROM ef_log_horizon(NULL)", logger: TestDatabase.logger) {}
                }
            }
            #expect(String(reflecting: error).contains("0A000"))
        }
    }
}
