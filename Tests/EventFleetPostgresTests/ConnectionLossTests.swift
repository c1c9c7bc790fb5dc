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
