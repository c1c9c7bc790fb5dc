import Logging
import NIOCore
import PostgresNIO

// The connection guard.
//
// postgres-nio 1.33 never completes a request written to a connection whose channel has closed:
// the connection's handler has left the channel pipeline by then, so the request is dropped on its
// way out and whoever awaits it waits forever. That happens to every holder of a connection when the
// database restarts or ends a session (an idle-in-transaction timeout while the process was
// frozen), between the moment the server closes the socket and the next statement.
//
// A request written while the channel is still open is safe: the driver fails it when the
// connection closes. So the guard starts every statement on the connection's event loop, where
// checking that the channel is open and writing the request are one step that a close cannot split:
// a closed connection fails at once with `ConnectionClosedError`, and nothing is left waiting.
//
// `DriverHangTests` shows the upstream behaviour with a bare driver call. When that test fails (the
// driver completes such a request with an error), this guard can go.

/// A statement could not be sent: the server or the network had closed the connection.
///
/// Mapped to `EventFleetCore.EventStoreError.connectionFailed(target:reason:)`, which is transient:
/// callers retry on a fresh connection.
package struct ConnectionClosedError: Error, CustomStringConvertible {
    package var description: String { "the connection was closed by the server or the network" }
    package init() {}
}

extension PostgresConnection {
    /// Runs an unnamed statement and returns all its rows (a server error fails the call itself,
    /// not a later iteration of the rows).
    func send(_ query: PostgresQuery, logger: Logger) async throws -> [PostgresRow] {
        try await eventLoop.flatSubmit { () -> EventLoopFuture<PostgresQueryResult> in
            guard !self.isClosed else { return self.eventLoop.makeFailedFuture(ConnectionClosedError()) }
            return self.query(query, logger: logger)
        }.get().rows
    }

    /// Runs a named statement, prepared on this connection the first time, and returns all its rows.
    func send<Statement: PostgresPreparedStatement>(
        prepared statement: Statement, schema: Schema, logger: Logger
    ) async throws -> [Statement.Row] where Statement.Row: Sendable {
        do {
            return try await onEventLoop {
                guard !self.isClosed else { throw ConnectionClosedError() }
                return try await Schema.$current.withValue(schema) {
                    var rows: [Statement.Row] = []
                    for try await row in try await self.execute(statement, logger: logger) { rows.append(row) }
                    return rows
                }
            }
        } catch {
            // postgres-nio keeps a statement that failed to prepare failed on its connection for
            // good, and PostgreSQL refuses a prepared statement whose result type changed. Either
            // way (a table missing until migrations ran, a schema change) this connection would
            // fail the statement forever: close it, so that the pool replaces it and the retry
            // prepares afresh.
            if let state = PostgresErrorMapping.sqlState(of: error), state.hasPrefix("42") || state == "0A000" || state == "3F000" {
                try? await close()
            }
            throw error
        }
    }

    /// Runs `body` with this connection's event loop as its executor, so that the driver's calls in
    /// it write their requests in the same step as `body`'s check.
    private func onEventLoop<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        try await withTaskExecutorPreference(EventLoopExecutor(eventLoop), operation: body)
    }
}

/// An event loop as a task executor.
private final class EventLoopExecutor: TaskExecutor {
    let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
