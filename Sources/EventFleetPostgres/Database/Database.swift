import EventFleetCore
import Logging
import PostgresNIO

/// EventFleet's one way to PostgreSQL: every statement of the store, the consumers and the fleet
/// goes through it.
///
/// It owns what every statement needs and no caller should repeat: the guard against the driver's
/// hang on a closed connection (see `ConnectionGuard.swift`), named or unnamed statements, the
/// schema that qualifies EventFleet's names, and the mapping of driver errors to
/// `EventFleetCore.EventStoreError` (whose ``PostgresErrorMapping/isTransient(_:)`` tells a
/// database that is away from a statement that is wrong).
package struct Database: Sendable {
    package let client: PostgresClient
    /// The host and port (or socket) named in connection errors.
    package let target: String
    /// Qualifies EventFleet's tables and routines in every statement.
    package let schema: Schema
    /// Whether statements are prepared once per connection or parsed at every call.
    package let statements: DatabaseConfiguration.Statements
    /// How long a statement may go without an answer before its connection is closed (see
    /// `ConnectionGuard.swift`); `nil` for no limit.
    package let statementDeadline: Duration?
    /// Where `LISTEN` runs (see `Notifications`).
    package let notifications: Notifications
    package let logger: Logger

    /// Where a process listens for notifications.
    package enum Notifications: Sendable {
        /// On a connection of the pool, which keeps its session.
        case pooled
        /// On a connection of its own to this server, past a transaction-mode pooler, which
        /// cannot pass `LISTEN` on.
        case direct(DatabaseConfiguration)
        /// Nowhere: behind a transaction-mode pooler without a direct URL, loops poll.
        case pollOnly
    }

    package init(
        client: PostgresClient, target: String = "the configured database", schema: String? = nil,
        statements: DatabaseConfiguration.Statements = .named,
        statementDeadline: Duration? = DatabaseConfiguration.defaultStatementDeadline,
        notifications: Notifications = .pooled, logger: Logger
    ) {
        self.client = client
        self.target = target
        self.schema = Schema(name: schema)
        self.statements = statements
        self.statementDeadline = statementDeadline
        self.notifications = notifications
        self.logger = logger
    }

    /// The database a configuration describes, reached through `client`.
    package init(client: PostgresClient, configuration: DatabaseConfiguration, logger: Logger) {
        let notifications: Notifications
        switch configuration.pooler {
        case .none, .session:
            notifications = .pooled
        case .transaction:
            if var listen = try? configuration.listenConfiguration() {
                // The process's name, so that `pg_stat_activity` counts its LISTEN connection with it.
                listen.applicationName = configuration.applicationName
                notifications = .direct(listen)
            } else {
                notifications = .pollOnly
            }
        }
        self.init(
            client: client, target: configuration.target, schema: configuration.schema, statements: configuration.statements,
            statementDeadline: configuration.statementDeadline, notifications: notifications, logger: logger
        )
    }

    /// The same database, logging to `logger`.
    package func logging(to logger: Logger) -> Database {
        Database(
            client: client, target: target, schema: schema.name, statements: statements, statementDeadline: statementDeadline,
            notifications: notifications, logger: logger
        )
    }

    /// The same database with another statement deadline (`nil` for none).
    package func withDeadline(_ deadline: Duration?) -> Database {
        Database(
            client: client, target: target, schema: schema.name, statements: statements, statementDeadline: deadline,
            notifications: notifications, logger: logger
        )
    }

    /// The same database without a statement deadline, for statements that legitimately run long
    /// (migrations, `VACUUM`, counting a large table).
    package func withoutDeadline() -> Database {
        withDeadline(nil)
    }

    // MARK: Statements on a pooled connection

    /// Runs a statement on a pooled connection (in a transaction of its own) and returns its rows.
    ///
    /// - Parameter operation: What is being done, for error messages (`claim jobs`).
    /// - Throws: `EventFleetCore.EventStoreError` for driver and server errors.
    @discardableResult
    package func query(_ operation: String, _ query: PostgresQuery) async throws -> [PostgresRow] {
        try await mapErrors(operation) {
            try await lease { [logger, statementDeadline] connection in
                try await connection.send(query, deadline: statementDeadline, logger: logger)
            }
        }
    }

    /// Runs a statement that answers one value (a routine's result, a count) on a pooled connection.
    ///
    /// - Throws: `EventFleetCore.EventStoreError.database(operation:sqlState:message:)` when the
    ///   statement answers no row, rather than a made-up value.
    package func value<T: PostgresDecodable>(_ operation: String, _ query: PostgresQuery, as type: T.Type = T.self) async throws -> T {
        try Self.single(try await self.query(operation, query), operation: operation, as: type)
    }

    private static func single<T: PostgresDecodable>(_ rows: [PostgresRow], operation: String, as type: T.Type) throws -> T {
        guard let row = rows.first else {
            throw EventStoreError.database(operation: operation, sqlState: nil, message: "the statement answered no row")
        }
        return try row.decode(T.self)
    }

    /// Runs a ``Statement`` on a pooled connection and returns its decoded rows.
    package func run<S: Statement>(_ operation: String, _ statement: S) async throws -> [S.Row] {
        try await mapErrors(operation) {
            try await lease { connection in try await run(statement, on: connection) }
        }
    }

    /// Runs `body` with a pooled connection leased for its duration (outside any transaction).
    package func withConnection<T: Sendable>(
        _ operation: String, _ body: (Connection) async throws -> T
    ) async throws -> T {
        try await mapErrors(operation) {
            try await lease { connection in try await body(Connection(connection: connection, database: self)) }
        }
    }

    /// Leases a pooled connection for `body`. The pool can hand out a connection that the server
    /// has just closed, before it noticed: when `body` finds that out before anything of its work
    /// was sent (it throws ``ClosedLease``), another connection is leased instead.
    private func lease<T>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        var closedLeases = 0
        while true {
            do {
                return try await client.withConnection { connection in
                    guard !connection.isClosed else { throw ClosedLease() }
                    return try await body(connection)
                }
            } catch is ClosedLease {
                closedLeases += 1
                guard closedLeases < 5 else { throw ConnectionClosedError() }
                try await Task.sleep(for: .milliseconds(10 * closedLeases))
            }
        }
    }

    /// A leased connection was closed before anything was sent on it.
    private struct ClosedLease: Error {}

    /// Runs `body` in a transaction on one pooled connection: committed when it returns, rolled back
    /// when it throws. Errors of `body` pass through unchanged; driver errors become
    /// `EventFleetCore.EventStoreError`.
    ///
    /// - Parameter idleTimeout: When given, the server ends the transaction if it idles this long
    ///   between statements (`idle_in_transaction_session_timeout`, for this transaction only, so
    ///   it holds through a pooler): a process frozen inside it (SIGSTOP, a hung host) then releases
    ///   its locks and its xid instead of holding them until it wakes.
    package func transaction<T: Sendable>(
        _ operation: String, idleTimeout: Duration? = nil, _ body: (Connection) async throws -> T
    ) async throws -> T {
        try await withConnection(operation) { connection in
            do {
                try await connection.execute("BEGIN")
            } catch where PostgresErrorMapping.isConnectionLoss(error) {
                // Nothing of the transaction has run: take another connection.
                throw ClosedLease()
            }
            if let idleTimeout {
                do {
                    try await connection.execute(
                        "SELECT set_config('idle_in_transaction_session_timeout', \(String(max(1, idleTimeout.milliseconds))), true)"
                    )
                } catch {
                    if !connection.connection.isClosed { try? await connection.execute("ROLLBACK") }
                    throw error
                }
            }
            let value: T
            do {
                value = try await body(connection)
            } catch {
                // A connection that closed took its transaction with it: nothing to roll back.
                if !connection.connection.isClosed { try? await connection.execute("ROLLBACK") }
                throw error
            }
            try await connection.execute("COMMIT")
            return value
        }
    }

    /// Maps what `body` throws to `EventFleetCore.EventStoreError` (driver errors) or passes it on.
    package func mapErrors<T>(_ operation: String, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            throw PostgresErrorMapping.map(error, operation: operation, target: target)
        }
    }

    func run<S: Statement>(_ statement: S, on connection: PostgresConnection) async throws -> [S.Row] {
        switch statements {
        case .named:
            return try await connection.send(
                prepared: NamedStatement(statement: statement), schema: schema, deadline: statementDeadline, logger: logger
            )
        case .unnamed:
            let query = PostgresQuery(unsafeSQL: S.sql(schema), binds: try statement.makeBindings())
            return try await connection.send(query, deadline: statementDeadline, logger: logger).map(statement.decodeRow)
        }
    }
}

extension Database {
    /// A connection leased from the pool, inside or outside a transaction.
    package struct Connection: Sendable {
        /// The driver's connection, for code that talks to it directly (a projection's own SQL).
        package let connection: PostgresConnection
        package let database: Database

        package init(connection: PostgresConnection, database: Database) {
            self.connection = connection
            self.database = database
        }

        package var schema: Schema { database.schema }

        /// Runs a statement on this connection and returns its rows.
        @discardableResult
        package func query(_ query: PostgresQuery) async throws -> [PostgresRow] {
            try await connection.send(query, deadline: database.statementDeadline, logger: database.logger)
        }

        /// Runs a statement on this connection to its end.
        package func execute(_ query: PostgresQuery) async throws {
            _ = try await connection.send(query, deadline: database.statementDeadline, logger: database.logger)
        }

        /// Runs a ``Statement`` on this connection and returns its decoded rows.
        package func run<S: Statement>(_ statement: S) async throws -> [S.Row] {
            try await database.run(statement, on: connection)
        }

        /// Runs a statement that answers one value on this connection; no row is an error.
        package func value<T: PostgresDecodable>(_ operation: String, _ query: PostgresQuery, as type: T.Type = T.self) async throws -> T {
            try Database.single(try await self.query(query), operation: operation, as: type)
        }
    }
}
