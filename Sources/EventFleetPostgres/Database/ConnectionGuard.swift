import Logging
import NIOCore
import PostgresNIO
import Synchronization

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

/// A statement got no answer within its deadline, and its connection was closed.
///
/// Mapped to `EventFleetCore.EventStoreError.connectionFailed(target:reason:)`, which is transient:
/// callers retry on a fresh connection.
package struct StatementDeadlineError: Error, CustomStringConvertible {
    package var deadline: Duration
    package var description: String {
        "no answer within \(deadline.milliseconds) ms, so the connection was closed (a connection the network dropped "
            + "without closing it, or a statement slower than DatabaseConfiguration.statementDeadline)"
    }
}

// Deadlines.
//
// A connection that the network dropped without closing it (a NAT entry lost, a failover behind a
// proxy) answers nothing: a request on it waits for the kernel's retransmission timeout, many
// minutes, and the driver gives up no request when its task is cancelled. The client cannot set
// TCP keepalives or TCP_USER_TIMEOUT on postgres-nio's sockets, so each statement has a deadline
// instead: when it passes, the connection is closed, which fails the request at once, and the pool
// replaces the connection.

extension PostgresConnection {
    /// Runs an unnamed statement and returns all its rows (a server error fails the call itself,
    /// not a later iteration of the rows).
    func send(_ query: PostgresQuery, deadline: Duration?, logger: Logger) async throws -> [PostgresRow] {
        try await bounded(by: deadline) {
            try await eventLoop.flatSubmit { () -> EventLoopFuture<PostgresQueryResult> in
                guard !self.isClosed else { return self.eventLoop.makeFailedFuture(ConnectionClosedError()) }
                return self.query(query, logger: logger)
            }.get().rows
        }
    }

    /// Runs a named statement, prepared on this connection the first time, and returns all its rows.
    func send<Statement: PostgresPreparedStatement>(
        prepared statement: Statement, schema: Schema, deadline: Duration?, logger: Logger
    ) async throws -> [Statement.Row] where Statement.Row: Sendable {
        do {
            return try await bounded(by: deadline) {
                try await onEventLoop {
                    guard !self.isClosed else { throw ConnectionClosedError() }
                    return try await Schema.$current.withValue(schema) {
                        var rows: [Statement.Row] = []
                        for try await row in try await self.execute(statement, logger: logger) { rows.append(row) }
                        return rows
                    }
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

    /// Runs `body`, closing this connection when `deadline` passes first, which fails the call with
    /// ``StatementDeadlineError``.
    private func bounded<T: Sendable>(by deadline: Duration?, _ body: () async throws -> T) async throws -> T {
        let expired = ExpiredFlag()
        let timer = deadline.map { deadline in
            eventLoop.scheduleTask(in: .milliseconds(deadline.milliseconds)) {
                expired.value.withLock { $0 = true }
                self.close().whenComplete { _ in }
            }
        }
        defer { timer?.cancel() }
        do {
            return try await body()
        } catch {
            if let deadline, expired.value.withLock({ $0 }) { throw StatementDeadlineError(deadline: deadline) }
            throw error
        }
    }

    /// Runs `body` with this connection's event loop as its executor, so that the driver's calls in
    /// it write their requests in the same step as `body`'s check.
    private func onEventLoop<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        try await withTaskExecutorPreference(EventLoopExecutor(eventLoop), operation: body)
    }
}

/// Whether a statement's deadline passed, set on the event loop and read by the statement's task.
private final class ExpiredFlag: Sendable {
    let value = Mutex(false)
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
