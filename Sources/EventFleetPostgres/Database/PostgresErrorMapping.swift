import EventFleetCore
import PostgresNIO
import _ConnectionPoolModule

/// Turns driver errors into `EventStoreError` so no raw driver error leaves the public API.
package enum PostgresErrorMapping {
    /// PostgreSQL's SQLSTATE of a server error, if `error` is one.
    package static func sqlState(of error: any Error) -> String? {
        (unwrap(error) as? PSQLError)?.serverInfo?[.sqlState]
    }

    /// Whether a (mapped) error says the database is unreachable or restarting, the server ended
    /// the session (an operator, or its idle-in-transaction timeout: 25P03, which a process resumed
    /// after a freeze reads first), or the transaction lost a serialization race: worth retrying
    /// later, not a bug in the caller's code.
    package static func isTransient(_ error: any Error) -> Bool {
        switch error as? EventStoreError {
        case .connectionFailed: return true
        case .database(_, let sqlState?, _):
            return sqlState == "25P03" || ["08", "57P", "53", "40"].contains { sqlState.hasPrefix($0) }
        default: return false
        }
    }

    /// Whether a driver error says the connection closed (before or while the statement ran).
    package static func isConnectionLoss(_ error: any Error) -> Bool {
        if error is ConnectionClosedError || error is StatementDeadlineError { return true }
        guard let psql = unwrap(error) as? PSQLError else { return false }
        return [.serverClosedConnection, .clientClosedConnection, .connectionError, .uncleanShutdown].contains(psql.code)
    }

    /// Unwraps `PostgresTransactionError` to the error that caused it.
    package static func unwrap(_ error: any Error) -> any Error {
        if let transactionError = error as? PostgresTransactionError {
            return transactionError.closureError ?? transactionError.beginError ?? transactionError.commitError
                ?? transactionError.rollbackError ?? error
        }
        return error
    }

    /// Maps a driver error (postgres-nio, the pool, the socket) to `EventStoreError`. Any other
    /// error (the caller's own: a handler's, an `evolve`'s, a `EventStoreError`) passes through
    /// unchanged, so its type and context survive; `PostgresTransactionError` is unwrapped first.
    ///
    /// - Parameters:
    ///   - operation: What was being done, for the message (e.g. `append`).
    ///   - target: Where the database is, for connection failures.
    package static func map(_ error: any Error, operation: String, target: String) -> any Error {
        let error = unwrap(error)
        if let psql = error as? PSQLError {
            switch psql.code {
            case .server:
                let info = psql.serverInfo
                var message = info?[.message] ?? "unknown server error"
                if let detail = info?[.detail] { message += " (\(detail))" }
                let state = info?[.sqlState] ?? ""
                // Authentication failures, a missing database and a server that is starting up or
                // shutting down ("cannot connect now") are connection problems to the user.
                if state.hasPrefix("28") || state == "3D000" || state == "57P03" {
                    return EventStoreError.connectionFailed(target: target, reason: message)
                }
                // EventFleet prepares named statements only on connections it owns; finding one
                // there already, or missing, means another client used the server connection: a
                // transaction-mode pooler the URL does not declare.
                if state == "42P05" || state == "26000" {
                    message += "; the server connection is shared with other clients, as behind a transaction-mode pooler: "
                        + "set pooler=transaction in the database URL"
                }
                return EventStoreError.database(operation: operation, sqlState: info?[.sqlState], message: message)
            case .connectionError, .serverClosedConnection, .clientClosedConnection, .uncleanShutdown, .sslUnsupported,
                 .failedToAddSSLHandler, .poolClosed, .authMechanismRequiresPassword, .unsupportedAuthMechanism, .saslError:
                return EventStoreError.connectionFailed(target: target, reason: reason(psql))
            case .queryCancelled:
                return CancellationError()
            default:
                return EventStoreError.database(operation: operation, sqlState: nil, message: String(reflecting: psql))
            }
        }
        if let decoding = error as? PostgresDecodingError {
            // The row is not what the statement's decoding expects: a schema that does not fit this build.
            return EventStoreError.database(
                operation: operation, sqlState: nil,
                message: "column '\(decoding.columnName)' (\(decoding.postgresType)) cannot be read as \(decoding.targetType): \(decoding.code)"
            )
        }
        if error is ConnectionClosedError || error is StatementDeadlineError {
            return EventStoreError.connectionFailed(target: target, reason: String(describing: error))
        }
        if error is ConnectionPoolError {
            return EventStoreError.connectionFailed(target: target, reason: String(describing: error))
        }
        if let channelError = error as? ChannelError {
            return EventStoreError.connectionFailed(target: target, reason: String(describing: channelError))
        }
        if let ioError = error as? IOError {
            return EventStoreError.connectionFailed(target: target, reason: ioError.description)
        }
        return error
    }

    /// A readable reason: the underlying socket error when there is one, else the full reflection
    /// (a `PSQLError`'s plain description is redacted).
    private static func reason(_ error: PSQLError) -> String {
        if let underlying = error.underlying {
            if let nested = underlying as? PSQLError { return reason(nested) }
            return String(describing: underlying)
        }
        if let info = error.serverInfo, let message = info[.message] { return message }
        return String(reflecting: error)
    }
}
