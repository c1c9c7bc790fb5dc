@testable import EventFleetPostgres
import EventFleetCore
import EventFleetTestSupport
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import PostgresNIO
import Testing

/// A held connection that the server closes (restart, terminated session, idle-in-transaction
/// timeout) must fail the next statement, not hang it: postgres-nio alone hangs forever there.
@Suite("Connection loss", .sharingServer, .timeLimit(.minutes(1)))
struct ConnectionLossTests {
    static let logger = Logger(label: "eventfleet.tests")

    /// Ends the server session behind `connection` and waits until the client has noticed.
    static func terminate(_ connection: PostgresConnection, from schema: TestSchema) async throws {
        let pid = try #require(try await connection.send("SELECT pg_backend_pid()", deadline: nil, logger: logger).first?.decode(Int32.self))
        try await schema.execute("SELECT pg_terminate_backend(\(pid))")
        try await connection.closeFuture.get()
    }

    @Test("the server ending an idle transaction (25P03, what a leader resumed after a freeze reads first) is transient, so loops retry rather than stop")
    func idleTransactionTimeoutIsTransient() {
        let ended = EventStoreError.database(
            operation: "consume", sqlState: "25P03", message: "terminating connection due to idle-in-transaction timeout"
        )
        #expect(PostgresErrorMapping.isTransient(ended))
        #expect(!PostgresErrorMapping.isTransient(EventStoreError.database(operation: "consume", sqlState: "25P02", message: "in failed transaction")))
    }

    @Test("a statement on a connection the server closed fails at once with connectionFailed (a transient error)")
    func statementAfterClose() async throws {
        try await TestDatabase.withSchema { schema in
            let error = await #expect(throws: EventStoreError.self) {
                try await schema.database.withConnection("test") { connection in
                    try await Self.terminate(connection.connection, from: schema)
                    try await connection.query("SELECT 1")
                }
            }
            let failure = try #require(error)
            guard case .connectionFailed = failure else {
                Issue.record("expected connectionFailed, got \(failure)")
                return
            }
            #expect(PostgresErrorMapping.isTransient(failure))
        }
    }

    @Test("a prepared statement on a connection the server closed fails at once too")
    func preparedStatementAfterClose() async throws {
        try await TestDatabase.withSchema { schema in
            let ranges = [StreamRange(partition: "p", streamId: "s")]
            await #expect(throws: EventStoreError.self) {
                try await schema.database.withConnection("test") { connection in
                    // Prepared on this connection first, so the second run only executes it.
                    _ = try await schema.store.readStreams(ranges, maxCountPerStream: 1, connection: connection.connection)
                    try await Self.terminate(connection.connection, from: schema)
                    _ = try await schema.store.readStreams(ranges, maxCountPerStream: 1, connection: connection.connection)
                }
            }
        }
    }

    @Test("a transaction whose connection is closed under it ends with connectionFailed and commits nothing")
    func transactionAbandoned() async throws {
        try await TestDatabase.withSchema { schema in
            try await schema.execute("CREATE TABLE probe (id int)")
            let probe = schema.schema.probe
            await #expect(throws: EventStoreError.self) {
                try await schema.database.transaction("test") { connection in
                    try await connection.execute("INSERT INTO \(probe) VALUES (1)")
                    try await Self.terminate(connection.connection, from: schema)
                    try await connection.execute("INSERT INTO \(probe) VALUES (2)")
                }
            }
            #expect(try await schema.count("SELECT count(*) FROM probe") == 0)
            // The pool goes on with a fresh connection.
            #expect(try await schema.count("SELECT 7::bigint") == 7)
        }
    }
}

/// The upstream behaviour the connection guard works around (see `ConnectionGuard.swift`). When this
/// test fails, postgres-nio completes a request written to a closed connection, and the guard can go.
@Suite("postgres-nio on a closed connection", .sharingServer, .timeLimit(.minutes(1)))
struct DriverHangTests {
    @Test("postgres-nio 1.33 never completes a statement sent on a connection the server closed")
    func driverLeavesTheRequestWaiting() async throws {
        try await TestDatabase.withSchema(migrate: false) { schema in
            try await schema.client.withConnection { connection in
                try await ConnectionLossTests.terminate(connection, from: schema)
                // The bare driver call, through its future API: it waits forever, but holds no task.
                let request: EventLoopFuture<PostgresQueryResult> = connection.query("SELECT 1", logger: ConnectionLossTests.logger)
                let completed = NIOLockedValueBox(false)
                request.whenComplete { _ in completed.withLockedValue { $0 = true } }
                try await Task.sleep(for: .seconds(2))
                #expect(!completed.withLockedValue { $0 }, "the driver now fails such a request: the connection guard can go")
            }
        }
    }
}

/// An append is reported successful only once it committed.
@Suite("Append durability", .sharingServer, .timeLimit(.minutes(1)))
struct AppendDurabilityTests {
    @Test("an append whose commit fails is an error, never a success (the row arrives before the commit)")
    func commitFailureIsAnError() async throws {
        try await TestDatabase.withSchema { schema in
            // A deferred constraint trigger fails the implicit transaction at commit time, after the
            // append's result row was sent: the moment a server crash would also hit.
            try await schema.execute("""
                CREATE FUNCTION refuse_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN RAISE EXCEPTION 'refused at commit'; END $$
                """)
            try await schema.execute("""
                CREATE CONSTRAINT TRIGGER refuse_at_commit AFTER INSERT ON ef_messages
                DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_at_commit()
                """)
            await #expect(throws: (any Error).self) {
                try await schema.store.appendToStream("s-1", messages: [message("A")], options: AppendOptions())
            }
            #expect(try await schema.count("SELECT count(*) FROM ef_messages") == 0)
            // The store goes on working once the trigger is gone.
            try await schema.execute("DROP TRIGGER refuse_at_commit ON ef_messages")
            let result = try await schema.store.appendToStream("s-1", messages: [message("A")], options: AppendOptions())
            #expect(result.nextExpectedVersion == 1)
        }
    }
}

/// Prepared statements: postgres-nio keeps one that failed to prepare failed on its connection.
@Suite("Prepared statements", .sharingServer, .timeLimit(.minutes(1)))
struct PreparedStatementTests {
    @Test("a statement that failed before the migrations ran works on the same pool once they have")
    func failedPreparationIsNotSticky() async throws {
        try await TestDatabase.withSchema(poolSize: 1, migrate: false) { schema in
            let ranges = [StreamRange(partition: "p", streamId: "s")]
            await #expect(throws: EventStoreError.self) {
                _ = try await schema.store.readStreams(ranges, maxCountPerStream: 10, connection: nil)
            }
            try await MigrationRunner(store: schema.store, logger: TestDatabase.logger).migrate()
            try await schema.store.appendToStream("s", messages: [message("E")], options: AppendOptions(partition: "p"))
            let pages = try await schema.store.readStreams(ranges, maxCountPerStream: 10, connection: nil)
            #expect(pages.map { $0.map(\.type) } == [["E"]])
        }
    }
}
