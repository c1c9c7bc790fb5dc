@testable import EventFleetPostgres
import EventFleetCore
import EventFleetTestSupport
import Foundation
import Logging
import PostgresNIO
import Testing

/// A held connection that the server closes (restart, terminated session, idle-in-transaction
/// timeout) must fail the next query, not hang it: postgres-nio alone hangs forever there.
@Suite("Connection loss", .timeLimit(.minutes(1)))
struct ConnectionLossTests {
    static let logger = Logger(label: "eventfleet.tests")

    /// Ends the server session behind `connection` and waits until the client has noticed.
    static func terminate(_ connection: PostgresConnection, from schema: TestSchema) async throws {
        var pid: Int32 = 0
        for try await value in try await connection.query("SELECT pg_backend_pid()", logger: logger).decode(Int32.self) { pid = value }
        try await schema.execute("SELECT pg_terminate_backend(\(pid))")
        try await connection.closeFuture.get()
    }

    @Test("a query on a connection the server closed throws connectionFailed (a transient error)")
    func queryAfterClose() async throws {
        try await TestDatabase.withSchema { schema in
            try await schema.client.withConnection { connection in
                try await Self.terminate(connection, from: schema)
                let error = await #expect(throws: ConnectionClosedError.self) {
                    _ = try await connection.checkedQuery("SELECT 1", logger: Self.logger)
                }
                let mapped = PostgresErrorMapping.map(try #require(error), operation: "test", target: "here")
                #expect(PostgresErrorMapping.isTransient(mapped))
            }
        }
    }

    @Test("a transaction whose connection is closed under it is abandoned with connectionFailed and commits nothing")
    func transactionAbandoned() async throws {
        try await TestDatabase.withSchema { schema in
            try await schema.execute("CREATE TABLE probe (id int)")
            let started = ContinuousClock.now
            await #expect(throws: ConnectionClosedError.self) {
                try await schema.client.withGuardedTransaction(logger: Self.logger, grace: .milliseconds(200)) { connection in
                    for try await _ in try await connection.query("INSERT INTO probe VALUES (1)", logger: Self.logger) {}
                    try await Self.terminate(connection, from: schema)
                    // The plain driver call: it would never return on its own.
                    for try await _ in try await connection.query("INSERT INTO probe VALUES (2)", logger: Self.logger) {}
                }
            }
            #expect(ContinuousClock.now - started < .seconds(20))
            #expect(try await schema.count("SELECT count(*) FROM probe") == 0)
            // The pool goes on with a fresh connection.
            #expect(try await schema.count("SELECT 7::bigint") == 7)
        }
    }
}

/// An append is reported successful only once it committed.
@Suite("Append durability", .timeLimit(.minutes(1)))
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
@Suite("Prepared statements", .timeLimit(.minutes(1)))
struct PreparedStatementTests {
    @Test("a statement that failed before the migrations ran works on the same pool once they have")
    func failedPreparationIsNotSticky() async throws {
        try await TestDatabase.withSchema(poolSize: 1, migrate: false) { schema in
            let ranges = [StreamRange(partition: "p", streamId: "s")]
            await #expect(throws: EventStoreError.self) {
                _ = try await schema.store.readStreams(ranges, maxCountPerStream: 10, connection: nil)
            }
            try await MigrationRunner(client: schema.client, logger: TestDatabase.logger).migrate()
            try await schema.store.appendToStream("s", messages: [message("E")], options: AppendOptions(partition: "p"))
            let pages = try await schema.store.readStreams(ranges, maxCountPerStream: 10, connection: nil)
            #expect(pages.map { $0.map(\.type) } == [["E"]])
        }
    }
}
