import EventFleetCore
import Logging
import PostgresNIO

/// Applies the schema migrations: in order, in one transaction, under an advisory lock, recording each
/// with its SHA-256 checksum.
///
/// > Important: Concurrent runners are safe: the second waits for the first and then finds nothing to
/// > do. An applied migration whose file has changed stops the run with ``MigrationError/checksumMismatch(version:name:applied:current:)``.
public struct MigrationRunner: Sendable {
    /// What a run did.
    public struct Report: Sendable, Hashable {
        /// Versions applied by this run.
        public var applied: [Int]
        /// Versions found already applied.
        public var alreadyApplied: [Int]
    }

    /// Whose migrations these are: versions count per component, so an application can keep its
    /// own numbered migrations (read-model tables, say) beside the library's.
    public var component: String
    public var migrations: [Migration]
    let database: Database

    /// The library's own component name.
    public static let libraryComponent = "eventfleet"

    /// - Parameters:
    ///   - store: The store whose database (and schema) to migrate; its client must be running.
    ///   - component: Whose migrations these are; the library's by default.
    ///   - migrations: The migrations of that component; the library's by default.
    public init(
        store: PostgresEventStore,
        component: String = MigrationRunner.libraryComponent,
        migrations: [Migration] = Migration.all,
        logger: Logger = Logger(label: "eventfleet.migrations")
    ) {
        self.database = store.database.logging(to: logger)
        self.component = component
        self.migrations = migrations.sorted { $0.version < $1.version }
    }

    /// Applies every pending migration.
    ///
    /// - Throws: ``MigrationError`` when applied migrations differ from the shipped files, and
    ///   ``EventStoreError`` for database errors (nothing is applied then).
    @discardableResult
    public func migrate() async throws -> Report {
        try await database.transaction("migrate") { connection in
            try await migrate(on: connection)
        }
    }

    private func migrate(on connection: Database.Connection) async throws -> Report {
        // Keyed by schema, so that separate schemas (one per test, one per app) migrate independently.
        try await execute(
            "SELECT pg_advisory_xact_lock(hashtext('eventfleet.migrations:' || coalesce(current_schema(), '')))",
            on: connection
        )
        try await execute(
            """
            CREATE TABLE IF NOT EXISTS ef_migrations (
                component  text        NOT NULL,
                version    integer     NOT NULL,
                name       text        NOT NULL,
                checksum   text        NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (component, version)
            )
            """,
            on: connection
        )
        try await execute(
            """
            CREATE OR REPLACE FUNCTION pg_temp.ef_execute_migration(migration_sql text) RETURNS void
            LANGUAGE plpgsql AS $$ BEGIN EXECUTE migration_sql; END $$
            """,
            on: connection
        )
        var applied: [Int: (name: String, checksum: String)] = [:]
        for row in try await connection.query("SELECT version, name, checksum FROM ef_migrations WHERE component = \(component)") {
            let (version, name, checksum) = try row.decode((Int, String, String).self)
            applied[version] = (name, checksum)
        }
        let checksums = try await checksums(of: migrations, on: connection)

        var report = Report(applied: [], alreadyApplied: [])
        for (migration, checksum) in zip(migrations, checksums) {
            if let recorded = applied[migration.version] {
                guard recorded.name == migration.name else {
                    throw MigrationError.nameMismatch(version: migration.version, applied: recorded.name, current: migration.name)
                }
                guard recorded.checksum == checksum else {
                    throw MigrationError.checksumMismatch(
                        version: migration.version, name: migration.name, applied: recorded.checksum, current: checksum
                    )
                }
                report.alreadyApplied.append(migration.version)
                continue
            }
            database.logger.info(
                "applying migration",
                metadata: ["eventfleet.component": "\(component)", "eventfleet.migration": "\(migration.version)_\(migration.name)"]
            )
            // A migration holds several statements; a prepared statement takes one, but PL/pgSQL's
            // EXECUTE takes many, and this keeps the SQL a bound parameter.
            try await execute("SELECT pg_temp.ef_execute_migration(\(migration.sql))", on: connection)
            try await execute(
                """
                INSERT INTO ef_migrations (component, version, name, checksum)
                VALUES (\(component), \(migration.version), \(migration.name), \(checksum))
                """,
                on: connection
            )
            report.applied.append(migration.version)
        }
        let unknown = Set(applied.keys).subtracting(migrations.map(\.version))
        if !unknown.isEmpty {
            database.logger.warning(
                "the database has migrations this build does not know; it is older than the schema",
                metadata: ["eventfleet.component": "\(component)", "eventfleet.migrations": "\(unknown.sorted())"]
            )
        }
        return report
    }

    private func execute(_ query: PostgresQuery, on connection: Database.Connection) async throws {
        try await connection.execute(query)
    }

    /// SHA-256 of each migration's SQL, computed by the server so the library needs no crypto code.
    private func checksums(of migrations: [Migration], on connection: Database.Connection) async throws -> [String] {
        let sql = migrations.map(\.sql)
        return try await connection.query("""
            SELECT encode(sha256(convert_to(s.sql, 'UTF8')), 'hex')
              FROM unnest(\(sql)::text[]) WITH ORDINALITY AS s(sql, n)
             ORDER BY s.n
            """).map { try $0.decode(String.self) }
    }
}
