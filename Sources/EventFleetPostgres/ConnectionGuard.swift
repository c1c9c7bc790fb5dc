import Foundation
import Logging
import PostgresNIO
import Synchronization

/// A query on a connection that the server has already closed.
///
/// postgres-nio 1.33 hangs forever on such a query: it writes the request into a channel whose
/// handlers are gone, and nobody ever completes it. That happens to every holder of a connection
/// when the database restarts, or when the server ends a session (an idle-in-transaction timeout
/// while the process was frozen). EventFleet checks before each query on a held connection and
/// abandons a transaction whose connection closed under it, so callers get this error, mapped to
/// ``EventFleetCore/EventStoreError/connectionFailed(target:reason:)``, and retry.
package struct ConnectionClosedError: Error, CustomStringConvertible {
    package var description: String { "the connection was closed by the server or the network" }
    package init() {}
}

extension PostgresConnection {
    /// `query(_:logger:)`, but throws ``ConnectionClosedError`` instead of hanging when the
    /// connection is already closed.
    package func checkedQuery(
        _ query: PostgresQuery, logger: Logger, file: String = #fileID, line: Int = #line
    ) async throws -> PostgresRowSequence {
        guard !isClosed else { throw ConnectionClosedError() }
        return try await self.query(query, logger: logger, file: file, line: line)
    }

    /// `execute(_:logger:)` of a prepared statement (prepared on this connection the first time),
    /// but throws ``ConnectionClosedError`` instead of hanging when the connection is already closed.
    ///
    /// The hot statements of the fleet are prepared: PostgreSQL then parses and plans them once
    /// per connection instead of at every call, which was a fifth of its work in a busy fleet.
    package func checkedExecute<Statement: PostgresPreparedStatement>(
        _ statement: Statement, logger: Logger, file: String = #fileID, line: Int = #line
    ) async throws -> AsyncThrowingMapSequence<PostgresRowSequence, Statement.Row> {
        guard !isClosed else { throw ConnectionClosedError() }
        do {
            return try await execute(statement, logger: logger, file: file, line: line)
        } catch {
            // postgres-nio keeps a statement that failed to prepare failed on its connection for
            // good, and PostgreSQL refuses a prepared statement whose result type changed. Either
            // way (a table missing until migrations ran, a schema change) this connection would
            // fail the statement forever: close it, so the pool replaces it and the retry prepares
            // afresh.
            if let state = PostgresErrorMapping.sqlState(of: error), state.hasPrefix("42") || state == "0A000" || state == "3F000" {
                try? await close()
            }
            throw error
        }
    }
}

extension PostgresClient {
    /// Runs a prepared statement on a pooled connection and returns all its rows, failing with
    /// ``ConnectionClosedError`` instead of hanging when the connection closes under it.
    package func guardedExecute<Statement: PostgresPreparedStatement>(
        _ statement: Statement, logger: Logger, grace: Duration = .seconds(1)
    ) async throws -> [Statement.Row] where Statement.Row: Sendable {
        try await withGuardedConnection(grace: grace) { connection in
            var rows: [Statement.Row] = []
            for try await row in try await connection.checkedExecute(statement, logger: logger) { rows.append(row) }
            return rows
        }
    }
}

extension PostgresClient {
    /// Runs `body` in a transaction on a pooled connection, like `withTransaction`, but gives up
    /// with ``ConnectionClosedError`` when the connection closes under it and `body` does not
    /// return by itself within `grace`: a query sent in the instant the connection closed never
    /// returns (see ``ConnectionClosedError``). The abandoned work can commit nothing, as its
    /// server session is gone.
    package func withGuardedTransaction<T: Sendable>(
        logger: Logger, grace: Duration = .seconds(1),
        _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        try await withGuardedConnection(grace: grace) { connection in
            try await connection.withTransaction(logger: logger) { connection in
                try await body(connection)
            }
        }
    }
}

/// Runs `operation` and returns its result, unless `connection` is closed for `grace` first: then
/// it throws ``ConnectionClosedError`` and cancels (and leaves behind) the operation. When the
/// caller is cancelled, so is the operation, and it is left behind if it does not end within 2 s.
package func abandoningIfClosed<T: Sendable>(
    _ connection: PostgresConnection, grace: Duration, checkEvery: Duration = .milliseconds(250),
    _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    let race = Race<T>()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
            race.start(continuation)
            let work = Task {
                do {
                    race.finish(.success(try await operation()))
                } catch {
                    race.finish(.failure(error))
                }
            }
            let watcher = Task {
                var closedSince: ContinuousClock.Instant?
                while !Task.isCancelled {
                    try? await Task.sleep(for: checkEvery)
                    guard connection.isClosed else { continue }
                    let since = closedSince ?? .now
                    closedSince = since
                    if ContinuousClock.now - since >= grace {
                        race.finish(.failure(ConnectionClosedError()))
                        return
                    }
                }
            }
            race.track(work: work, watcher: watcher)
        }
    } onCancel: {
        race.cancelWork()
    }
}

/// The first outcome wins; the other side is cancelled.
private final class Race<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var finished = false
        var cancelled = false
        var work: Task<Void, Never>?
        var watcher: Task<Void, Never>?
    }

    private let state = Mutex(State())

    func start(_ continuation: CheckedContinuation<T, any Error>) {
        state.withLock { $0.continuation = continuation }
    }

    func track(work: Task<Void, Never>, watcher: Task<Void, Never>) {
        let (finished, cancelled) = state.withLock { state in
            state.work = work
            state.watcher = watcher
            return (state.finished, state.cancelled)
        }
        if finished { watcher.cancel() }
        if cancelled { work.cancel() }
    }

    func finish(_ result: Result<T, any Error>) {
        let (continuation, work, watcher) = state.withLock { state -> (CheckedContinuation<T, any Error>?, Task<Void, Never>?, Task<Void, Never>?) in
            guard !state.finished else { return (nil, nil, nil) }
            state.finished = true
            defer { state.continuation = nil }
            return (state.continuation, state.work, state.watcher)
        }
        guard let continuation else { return }
        watcher?.cancel()
        if case .failure(let error) = result, error is ConnectionClosedError { work?.cancel() }
        continuation.resume(with: result)
    }

    /// Cancels the operation; one that does not end within 2 s (a driver call that never returns)
    /// is left behind and the caller gets `CancellationError`.
    func cancelWork() {
        let work = state.withLock { state in
            state.cancelled = true
            return state.work
        }
        work?.cancel()
        Task {
            try? await Task.sleep(for: .seconds(2))
            self.finish(.failure(CancellationError()))
        }
    }
}

extension PostgresClient {
    /// Runs `query` on a pooled connection and hands its rows to `consume` before the connection
    /// goes back, like `query(_:logger:)`; but a connection that closes under it (or had closed the
    /// instant it was leased) fails with ``ConnectionClosedError`` instead of hanging.
    package func guardedQuery<T: Sendable>(
        _ query: PostgresQuery, logger: Logger, grace: Duration = .seconds(1),
        _ consume: @escaping @Sendable (PostgresRowSequence) async throws -> T
    ) async throws -> T {
        try await withGuardedConnection(grace: grace) { connection in
            try await consume(try await connection.checkedQuery(query, logger: logger))
        }
    }

    /// Runs `body` with a pooled connection, giving up with ``ConnectionClosedError`` when the
    /// connection closes under it and `body` does not return by itself within `grace`.
    package func withGuardedConnection<T: Sendable>(
        grace: Duration = .seconds(1), _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        try await withConnection { connection in
            guard !connection.isClosed else { throw ConnectionClosedError() }
            return try await abandoningIfClosed(connection, grace: grace) { try await body(connection) }
        }
    }
}
