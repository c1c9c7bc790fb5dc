import EventFleetCore
import Foundation
import Logging
import PostgresNIO

/// Where and how to connect to PostgreSQL, for the library and the CLI alike.
///
/// Read it from a URL in the usual form:
///
/// ```
/// postgres://user:password@host:5432/database?sslmode=require&pool_size=20&application_name=worker
/// ```
///
/// Query parameters: `sslmode` (`disable`, `allow`, `prefer`, `require`, `verify-ca`, `verify-full`),
/// `sslrootcert` (a PEM file of trusted roots for the verify modes), `pool_size`, `application_name`,
/// `schema` (the schema of the EventFleet tables and of read-model tables named without one; every
/// statement EventFleet sends qualifies its names with it) and `connect_timeout` (seconds). Unknown
/// parameters are rejected so that a typo is not silently ignored.
public struct DatabaseConfiguration: Sendable, Hashable, CustomStringConvertible {
    /// TLS as libpq's `sslmode` spells it.
    public enum TLSMode: String, Sendable, Hashable, CaseIterable {
        case disable, allow, prefer, require
        case verifyCA = "verify-ca"
        case verifyFull = "verify-full"
    }

    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String?
    public var tls: TLSMode
    /// PEM file with the trusted root certificates for ``TLSMode/verifyCA`` and ``TLSMode/verifyFull``.
    public var tlsRootCertificatePath: String?
    /// The most connections the pool opens.
    public var poolSize: Int
    /// Reported to the server (`pg_stat_activity.application_name`).
    public var applicationName: String
    /// The schema holding the EventFleet tables, and the read-model tables of projections that name
    /// none; `nil` leaves names unqualified, for the server's `search_path` to find.
    ///
    /// EventFleet qualifies the names in its statements; it does not set the connections'
    /// `search_path` (a connection pooler refuses or drops that startup parameter). Qualify the names
    /// in your own SQL, for example in a custom projection's handler.
    public var schema: String?
    public var connectTimeout: Duration
    /// How long one of EventFleet's statements may go without an answer before its connection is
    /// closed and the statement fails as a transient `connectionFailed` (retried on another
    /// connection); `nil` for no limit. It is what notices a connection the network dropped without
    /// closing it, and a drained worker's statement that cannot be cancelled otherwise. Migrations,
    /// the job table's `VACUUM` and counts of large tables have none. Raise it if your own statements
    /// through EventFleet (a very large append, a slow projection statement) legitimately take longer.
    public var statementDeadline: Duration? = DatabaseConfiguration.defaultStatementDeadline
    /// Ten seconds.
    public static let defaultStatementDeadline: Duration? = .seconds(10)
    /// What stands between EventFleet and the server (`pooler=` in the URL): nothing, or a pooler in
    /// session mode (the default), or a pooler in transaction mode.
    public var pooler: Pooler = .none
    /// Behind a transaction-mode pooler, a URL that reaches the server directly (`listen_url=`, the
    /// URL percent-encoded), for the one connection per process that `LISTEN`s; without it, the
    /// fleet polls.
    public var listenURL: String?

    /// Whether EventFleet's frequent statements are prepared once per connection (`named`) or parsed
    /// at every call (`unnamed`, behind a transaction-mode pooler, which hands a client's statements
    /// to other server connections).
    public var statements: Statements { pooler == .transaction ? .unnamed : .named }

    /// What stands between EventFleet and the server, as far as what a connection keeps goes.
    public enum Pooler: String, Sendable, Hashable, CaseIterable {
        /// A direct connection.
        case none
        /// A pooler in session mode: a client keeps its server connection for as long as it is
        /// connected, so EventFleet works as on a direct connection.
        case session
        /// A pooler in transaction mode (PgBouncer's `pool_mode = transaction`, most managed
        /// poolers): each transaction may run on another server connection. EventFleet then
        /// prepares no named statements, keeps no state beyond a transaction, and listens for
        /// notifications only on ``DatabaseConfiguration/listenURL`` (else it polls).
        case transaction
    }

    /// How EventFleet sends its frequent statements.
    public enum Statements: String, Sendable, Hashable, CaseIterable {
        /// Prepared once per connection: PostgreSQL parses and plans them once.
        case named
        /// Parsed at every call, so that no statement outlives its transaction on a server connection.
        case unnamed
    }

    public init(
        host: String = "127.0.0.1", port: Int = 5432, username: String, password: String? = nil,
        database: String? = nil, tls: TLSMode = .prefer, poolSize: Int = 10,
        applicationName: String = "eventfleet", schema: String? = nil, connectTimeout: Duration = .seconds(10)
    ) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.tls = tls
        self.poolSize = poolSize
        self.applicationName = applicationName
        self.schema = schema
        self.connectTimeout = connectTimeout
    }

    /// Parses a `postgres://` URL.
    ///
    /// - Throws: ``ConfigurationError/invalidURL(part:reason:)`` naming the part of the URL that is
    ///   wrong (`scheme`, `port`, `sslmode`, ...).
    ///   The password never appears in the error.
    public init(url: String) throws {
        func invalid(_ part: String, _ reason: String) -> ConfigurationError {
            .invalidURL(part: part, reason: reason)
        }
        let trimmed = url.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { throw invalid("", "is empty; expected postgres://user:password@host:port/database") }
        guard let components = URLComponents(string: trimmed) else {
            if trimmed.range(of: #"^[a-zA-Z]+://[^/?]*:[^/?@]*[^0-9/?@][^/?@]*(/|\?|$)"#, options: .regularExpression) != nil {
                throw invalid("port", "is not a number")
            }
            throw invalid("", "is not a URL; expected postgres://user:password@host:port/database")
        }
        guard let scheme = components.scheme?.lowercased(), scheme == "postgres" || scheme == "postgresql" else {
            throw invalid("scheme", "must be postgres:// or postgresql:// (got '\(components.scheme ?? "")')")
        }
        guard var host = components.host, !host.isEmpty else { throw invalid("host", "is missing") }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard let username = components.user, !username.isEmpty else { throw invalid("user", "is missing") }
        if let port = components.port, !(1...65535).contains(port) {
            throw invalid("port", "must be between 1 and 65535 (got \(port))")
        }
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        if path.contains("/") { throw invalid("database", "must be a single path segment (got '\(path)')") }

        self.init(
            host: host, port: components.port ?? 5432, username: username, password: components.password,
            database: path.isEmpty ? nil : path
        )
        for item in components.queryItems ?? [] {
            let value = item.value ?? ""
            switch item.name {
            case "sslmode":
                guard let mode = TLSMode(rawValue: value) else {
                    throw invalid("sslmode", "must be one of \(TLSMode.allCases.map(\.rawValue).joined(separator: ", ")) (got '\(value)')")
                }
                tls = mode
            case "sslrootcert":
                tlsRootCertificatePath = value
            case "pool_size":
                guard let size = Int(value), (1...1_000).contains(size) else {
                    throw invalid("pool_size", "must be a whole number from 1 to 1000 (got '\(value)')")
                }
                poolSize = size
            case "application_name":
                applicationName = value
            case "schema":
                if let problem = Self.schemaNameProblem(value) { throw invalid("schema", problem) }
                schema = value
            case "connect_timeout":
                guard let seconds = Int(value), seconds > 0 else {
                    throw invalid("connect_timeout", "must be a positive number of seconds (got '\(value)')")
                }
                connectTimeout = .seconds(seconds)
            case "pooler":
                guard let mode = Pooler(rawValue: value) else {
                    throw invalid("pooler", "must be one of \(Pooler.allCases.map(\.rawValue).joined(separator: ", ")) (got '\(value)')")
                }
                pooler = mode
            case "listen_url":
                listenURL = value
            default:
                throw invalid(
                    "parameter '\(item.name)'",
                    "is not supported; use sslmode, sslrootcert, pool_size, application_name, schema, connect_timeout, pooler or listen_url"
                )
            }
        }
        try checkListenURL()
    }

    /// Checks that ``listenURL`` is a URL of its own that reaches the server past the pooler.
    private func checkListenURL() throws(ConfigurationError) {
        guard let listenURL else { return }
        guard pooler == .transaction else {
            throw .invalidURL(
                part: "listen_url",
                reason: "is for pooler=transaction: without a transaction-mode pooler, notifications come on a pooled connection"
            )
        }
        let listen: DatabaseConfiguration
        do {
            listen = try DatabaseConfiguration(url: listenURL)
        } catch let error as ConfigurationError {
            guard case .invalidURL(let part, let reason) = error else { throw error }
            throw .invalidURL(part: part.isEmpty ? "listen_url" : "listen_url \(part)", reason: reason + " (listen_url is a URL of its own, percent-encoded)")
        } catch {
            throw .invalidURL(part: "listen_url", reason: "\(error)")
        }
        guard listen.pooler != .transaction else {
            throw .invalidURL(part: "listen_url", reason: "must reach the server directly, not through a transaction-mode pooler (it says pooler=transaction)")
        }
        guard listen.target != target else {
            throw .invalidURL(
                part: "listen_url",
                reason: "reaches \(target), as the URL does (the pooler); it must reach the server directly, which a transaction-mode pooler cannot pass LISTEN to"
            )
        }
    }

    /// The configuration of ``listenURL``, the direct connection that listens for notifications
    /// behind a transaction-mode pooler; `nil` without one.
    public func listenConfiguration() throws -> DatabaseConfiguration? {
        try listenURL.map { try DatabaseConfiguration(url: $0) }
    }

    /// Why `name` cannot be the `schema`, or `nil` when it can. The name is quoted wherever it goes
    /// into SQL text; this keeps out what quoting cannot carry or the server would change.
    package static func schemaNameProblem(_ name: String) -> String? {
        guard !name.isEmpty, !name.utf8.contains(0) else { return "must not be empty or hold NUL bytes" }
        // One schema, not a search path: EventFleet qualifies names with it and sets no search_path.
        guard !name.contains(",") else {
            return "names one schema, not a list ('\(name)' holds a comma); EventFleet qualifies its names with it"
        }
        // PostgreSQL would cut a longer name to 63 bytes, and then qualify with another schema.
        guard name.utf8.count <= 63 else { return "must be at most 63 bytes long (got \(name.utf8.count))" }
        return nil
    }

    /// Reads `DATABASE_URL` (or the given variable) from the environment.
    ///
    /// - Throws: ``ConfigurationError/missingURL(variable:)`` when it is not set, and
    ///   ``ConfigurationError/invalidURL(part:reason:)`` when it is wrong.
    public static func fromEnvironment(_ variable: String = "DATABASE_URL") throws -> DatabaseConfiguration {
        guard let url = ProcessInfo.processInfo.environment[variable], !url.isEmpty else {
            throw ConfigurationError.missingURL(variable: variable)
        }
        return try DatabaseConfiguration(url: url)
    }

    /// `host:port`, for messages about where a connection was tried.
    public var target: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// The URL without the password.
    public var description: String {
        var text = "postgres://\(username)\(password == nil ? "" : ":***")@\(target)/\(database ?? "")?sslmode=\(tls.rawValue)"
        text += "&pool_size=\(poolSize)"
        if let schema { text += "&schema=\(schema)" }
        if pooler != .none { text += "&pooler=\(pooler.rawValue)" }
        if let listen = try? listenConfiguration() { text += "&listen_url=\(listen.target)" }
        return text
    }

    /// The postgres-nio client configuration.
    ///
    /// - Throws: ``ConfigurationError/unreadableRootCertificates(path:underlying:)`` when the root
    ///   certificate file cannot be loaded.
    public func clientConfiguration() throws -> PostgresClient.Configuration {
        var configuration = PostgresClient.Configuration(
            host: host, port: port, username: username, password: password, database: database, tls: try clientTLS()
        )
        configuration.options.maximumConnections = poolSize
        configuration.options.connectTimeout = connectTimeout
        configuration.options.additionalStartupParameters = startupParameters
        return configuration
    }

    /// The single-connection configuration, used to check that the server answers and to listen.
    package func connectionConfiguration() throws -> PostgresConnection.Configuration {
        var configuration = PostgresConnection.Configuration(
            host: host, port: port, username: username, password: password, database: database,
            tls: try connectionTLS()
        )
        configuration.options.connectTimeout = .init(connectTimeout)
        configuration.options.additionalStartupParameters = startupParameters
        return configuration
    }

    private var startupParameters: [(String, String)] {
        [("application_name", applicationName)]
    }

    private func tlsConfiguration() throws -> TLSConfiguration {
        var tlsConfiguration = TLSConfiguration.makeClientConfiguration()
        switch tls {
        case .disable, .allow, .prefer, .require:
            // libpq does not verify the certificate in these modes; neither do we.
            tlsConfiguration.certificateVerification = .none
        case .verifyCA:
            tlsConfiguration.certificateVerification = .noHostnameVerification
        case .verifyFull:
            tlsConfiguration.certificateVerification = .fullVerification
        }
        if let tlsRootCertificatePath {
            do {
                tlsConfiguration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(tlsRootCertificatePath))
            } catch {
                throw ConfigurationError.unreadableRootCertificates(path: tlsRootCertificatePath, underlying: error)
            }
        }
        return tlsConfiguration
    }

    private func clientTLS() throws -> PostgresClient.Configuration.TLS {
        switch tls {
        case .disable: .disable
        case .allow, .prefer: .prefer(try tlsConfiguration())
        case .require, .verifyCA, .verifyFull: .require(try tlsConfiguration())
        }
    }

    private func connectionTLS() throws -> PostgresConnection.Configuration.TLS {
        switch tls {
        case .disable: .disable
        case .allow, .prefer: .prefer(try NIOSSLContext(configuration: tlsConfiguration()))
        case .require, .verifyCA, .verifyFull: .require(try NIOSSLContext(configuration: tlsConfiguration()))
        }
    }
}

extension DatabaseConfiguration {
    /// Opens one connection and runs one statement, failing fast when the server cannot be reached
    /// (or, if asked, when the configured ``schema`` does not exist).
    ///
    /// The connection pool retries failed connections for up to a minute before it fails waiting
    /// queries; tools and services call this first to report a wrong URL or a dead server at once.
    ///
    /// - Parameters:
    ///   - requiringSchema: Whether the configured ``schema`` must exist already: `true` for
    ///     everything but migrations, which create it. Without a configured schema it changes
    ///     nothing.
    ///   - logger: Where the connection logs.
    /// - Throws: `EventStoreError.connectionFailed(target:reason:)` naming the host and port tried,
    ///   and ``MigrationError/schemaNotFound(schema:)`` when `requiringSchema` is set and the
    ///   schema does not exist.
    public func checkConnection(requiringSchema: Bool = false, logger: Logger = Logger(label: "eventfleet.postgres")) async throws {
        let configuration = try connectionConfiguration()
        let schema = requiringSchema ? self.schema : nil
        let schemaExists: Bool
        do {
            let connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
            do {
                let rows = try await connection.send(
                    "SELECT \(schema)::text IS NULL OR EXISTS (SELECT FROM pg_namespace WHERE nspname = \(schema))",
                    deadline: connectTimeout, logger: logger
                )
                schemaExists = try rows.first?.decode(Bool.self) ?? true
            } catch {
                try? await connection.close()
                throw error
            }
            try await connection.close()
        } catch {
            throw PostgresErrorMapping.map(error, operation: "connect", target: target)
        }
        if let schema, !schemaExists { throw MigrationError.schemaNotFound(schema: schema) }
    }
}
