import EventFleetCore
import Logging
import PostgresNIO

/// Applies a component's schema: its pending numbered migrations in order, then the routines whose
/// files changed, all in one transaction under an advisory lock, recording each with its SHA-256
/// checksum in `ef_migrations`.
///
/// > Important: Concurrent runners are safe: the second waits for the first and then finds nothing
/// > to do. An applied migration whose file has changed stops the run with
/// > ``MigrationError/checksumMismatch(version:name:applied:current:)``, and nothing is applied.
public struct MigrationRunner: Sendable {
    /// What a run did.
    public struct Report: Sendable, Hashable {
        /// Versions applied by this run.
        public var applied: [Int]
        /// Versions found already applied.
        public var alreadyApplied: [Int]
        /// Routines (re)created because they were new or their files changed.
        public var routinesApplied: [String] = []
        /// Routines dropped because their files are gone.
        public var routinesDropped: [String] = []
        /// Numbered migrations the database has and this build does not know: a newer build
        /// migrated it. The routines are then left as that build made them.
        public var newerInDatabase: [Int] = []
    }

    /// Whose migrations these are: versions count per component, so an application can keep its
    /// own numbered migrations (read-model tables, say) beside the library's.
    public var component: String
    public var migrations: [Migration]
    public var routines: [Routine]
    let database: Database

    /// The library's own component name.
    public static let libraryComponent = "eventfleet"

    /// The names the library's migrations had before they were squashed into the current set: a
    /// database that applied them must be created afresh.
    static let namesBeforeSquash: Set<String> = [
        "core_store", "job_queue", "faster_claims", "faster_append", "stable_plans", "server_side_scheduling",
    ]

    /// - Parameters:
    ///   - store: The store whose database (and schema) to migrate; its client must be running.
    ///   - component: Whose migrations these are; the library's by default.
    ///   - migrations: The migrations of that component; the library's by default.
    ///   - routines: The routines of that component; the library's by default, none for another.
    ///   - logger: Where the runner logs what it applies.
    public init(
        store: PostgresEventStore,
        component: String = MigrationRunner.libraryComponent,
        migrations: [Migration]? = nil,
        routines: [Routine]? = nil,
        logger: Logger = Logger(label: "eventfleet.migrations")
    ) {
        let isLibrary = component == Self.libraryComponent
        self.database = store.database.logging(to: logger).withoutDeadline()
        self.component = component
        self.migrations = (migrations ?? (isLibrary ? Migration.all : [])).sorted { $0.version < $1.version }
        self.routines = (routines ?? (isLibrary ? Routine.all : [])).sorted { $0.name < $1.name }
    }

    /// Applies every pending migration and every new or changed routine, and drops the routines
    /// whose files are gone. A database that a newer build migrated (it has numbered migrations
    /// this build does not know) keeps its routines: see ``Report/newerInDatabase``.
    ///
    /// A configured schema (`schema=` in the URL) that the database does not have is created
    /// first, in the same transaction, owned by the migrating role.
    ///
    /// - Throws: ``MigrationError`` when applied migrations differ from the shipped files, a
    ///   routine is overloaded, or the schema is missing and the role may not create it
    ///   (``MigrationError/cannotCreateSchema(schema:reason:)``); ``ConfigurationError`` for a
    ///   schema name PostgreSQL cannot create; and `EventStoreError` for database errors (nothing
    ///   is applied then).
    @discardableResult
    public func migrate() async throws -> Report {
        try await database.transaction("migrate") { connection in
            try await migrate(on: connection)
        }
    }

    private func migrate(on connection: Database.Connection) async throws -> Report {
        let schema = database.schema.name
        // Keyed by schema, so that separate schemas (one per test, one per app) migrate
        // independently; by the configured name, which a schema yet to be created has too.
        try await connection.execute(
            "SELECT pg_advisory_xact_lock(hashtext('eventfleet.migrations:' || coalesce(\(schema)::text, current_schema(), '')))"
        )
        if let schema {
            try await createSchemaIfMissing(schema, on: connection)
            // Everything this transaction creates lands in the configured schema.
            try await connection.execute("SELECT set_config('search_path', \(SQLName.quote(schema)), true)")
        }
        try await connection.execute("""
            CREATE TABLE IF NOT EXISTS ef_migrations (
                component  text        NOT NULL,
                version    integer     NOT NULL,
                name       text        NOT NULL,
                checksum   text        NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (component, version, name)
            )
            """)
        // Runs a file of several statements with its text as a bound parameter (a statement of the
        // extended protocol holds one); gone again when the transaction ends.
        try await connection.execute("""
            CREATE FUNCTION ef_migration_execute(migration_sql text) RETURNS void
            LANGUAGE plpgsql AS $$ BEGIN EXECUTE migration_sql; END $$
            """)
        var report = Report(applied: [], alreadyApplied: [])
        try await applyMigrations(on: connection, into: &report)
        if report.newerInDatabase.isEmpty {
            try await applyRoutines(on: connection, into: &report)
        } else {
            // An older build (a rollback, a stale migrate job) would otherwise put back its own
            // routines and drop the newer build's, under the newer build's processes.
            database.logger.warning(
                "the database was migrated by a newer build; its routines are left as they are",
                metadata: ["eventfleet.component": "\(component)", "eventfleet.migrations": "\(report.newerInDatabase)"]
            )
        }
        try await connection.execute("DROP FUNCTION ef_migration_execute(text)")
        return report
    }

    /// Creates the configured schema when the database does not have it (under the lock, so that
    /// concurrent runners create it once).
    ///
    /// A schema that exists is left alone without a `CREATE SCHEMA`: PostgreSQL checks the
    /// privilege to create schemas before it looks whether the schema exists, and a least-privilege
    /// migrator (deploy/roles.sql) has none.
    private func createSchemaIfMissing(_ schema: String, on connection: Database.Connection) async throws {
        let exists = try await connection.value(
            "find the schema", "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = \(schema))", as: Bool.self
        )
        guard !exists else { return }
        if let problem = DatabaseConfiguration.schemaNameProblem(schema) {
            throw ConfigurationError.invalidURL(part: "schema", reason: problem)
        }
        guard !schema.hasPrefix("pg_") else {
            throw ConfigurationError.invalidURL(part: "schema", reason: "names a schema PostgreSQL reserves for itself (the pg_ prefix)")
        }
        do {
            try await connection.execute(PostgresQuery(unsafeSQL: "CREATE SCHEMA IF NOT EXISTS \(SQLName.quote(schema))"))
        } catch where PostgresErrorMapping.sqlState(of: error) == "42501" {
            let message = (PostgresErrorMapping.unwrap(error) as? PSQLError)?.serverInfo?[.message] ?? "permission denied"
            throw MigrationError.cannotCreateSchema(schema: schema, reason: message)
        }
        database.logger.info("created the schema", metadata: ["eventfleet.schema": "\(schema)"])
    }

    private func applyMigrations(on connection: Database.Connection, into report: inout Report) async throws {
        var applied: [Int: (name: String, checksum: String)] = [:]
        for row in try await connection.query(
            "SELECT version, name, checksum FROM ef_migrations WHERE component = \(component) AND version > 0"
        ) {
            let (version, name, checksum) = try row.decode((Int, String, String).self)
            if component == Self.libraryComponent, Self.namesBeforeSquash.contains(name) {
                throw MigrationError.schemaBeforeSquash(component: component, appliedMigration: "\(version)_\(name)")
            }
            applied[version] = (name, checksum)
        }
        let checksums = try await checksums(of: migrations.map(\.sql), on: connection)
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
            try await connection.execute("SELECT ef_migration_execute(\(migration.sql))")
            try await connection.execute("""
                INSERT INTO ef_migrations (component, version, name, checksum)
                VALUES (\(component), \(migration.version), \(migration.name), \(checksum))
                """)
            report.applied.append(migration.version)
        }
        report.newerInDatabase = Set(applied.keys).subtracting(migrations.map(\.version)).sorted()
    }

    /// Routines are recorded with version 0 and their name.
    private func applyRoutines(on connection: Database.Connection, into report: inout Report) async throws {
        var recorded: [String: String] = [:]
        for row in try await connection.query("SELECT name, checksum FROM ef_migrations WHERE component = \(component) AND version = 0") {
            let (name, checksum) = try row.decode((String, String).self)
            recorded[name] = checksum
        }
        let checksums = try await checksums(of: routines.map(\.sql), on: connection)
        for (routine, checksum) in zip(routines, checksums) where recorded[routine.name] != checksum {
            database.logger.info("applying routine", metadata: ["eventfleet.component": "\(component)", "eventfleet.routine": "\(routine.name)"])
            try await connection.execute("SELECT ef_migration_execute(\(routine.sql))")
            try await connection.execute("""
                INSERT INTO ef_migrations (component, version, name, checksum) VALUES (\(component), 0, \(routine.name), \(checksum))
                ON CONFLICT (component, version, name) DO UPDATE SET checksum = EXCLUDED.checksum, applied_at = now()
                """)
            report.routinesApplied.append(routine.name)
        }
        for name in Set(recorded.keys).subtracting(routines.map(\.name)).sorted() {
            database.logger.info("dropping routine", metadata: ["eventfleet.component": "\(component)", "eventfleet.routine": "\(name)"])
            try await connection.execute("SELECT ef_migration_execute(format('DROP ROUTINE IF EXISTS %I', \(name)::text))")
            try await connection.execute("DELETE FROM ef_migrations WHERE component = \(component) AND version = 0 AND name = \(name)")
            report.routinesDropped.append(name)
        }
        let overloaded = try await connection.query("""
            SELECT p.proname::text, count(*) FROM pg_proc p
             WHERE p.pronamespace = (SELECT n.oid FROM pg_namespace n WHERE n.nspname = current_schema())
               AND p.proname = ANY (\(routines.map(\.name))::text[])
             GROUP BY p.proname HAVING count(*) > 1 ORDER BY p.proname
            """)
        if let row = overloaded.first {
            let (name, definitions) = try row.decode((String, Int64).self)
            throw MigrationError.overloadedRoutine(name: name, definitions: Int(definitions))
        }
    }

    /// SHA-256 of each text, computed by the server so the library needs no crypto code.
    private func checksums(of texts: [String], on connection: Database.Connection) async throws -> [String] {
        try await connection.query("""
            SELECT encode(sha256(convert_to(s.sql, 'UTF8')), 'hex')
              FROM unnest(\(texts)::text[]) WITH ORDINALITY AS s(sql, n)
             ORDER BY s.n
            """).map { try $0.decode(String.self) }
    }
}
