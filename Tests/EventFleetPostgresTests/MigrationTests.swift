import EventFleetCore
import EventFleetPostgres
import EventFleetTestSupport
import Foundation
import PostgresNIO
import Testing

@Suite("Migrations")
struct MigrationTests {
    static let schemaDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Migrations")

    @Test("the library's migrations and routines are exactly the files in Migrations/tables and Migrations/routines")
    func manifestMatchesFiles() throws {
        func files(_ folder: String) throws -> [String] {
            try FileManager.default.contentsOfDirectory(atPath: Self.schemaDirectory.appendingPathComponent(folder).path)
                .filter { $0.hasSuffix(".sql") }.sorted()
        }
        #expect(try files("tables") == Migration.all.map { String(format: "%04d_%@.sql", $0.version, $0.name) }, "list it in Migrations/LibrarySchema.swift")
        #expect(try files("routines") == Routine.all.map { "\($0.name).sql" }.sorted(), "list it in Migrations/LibrarySchema.swift")
        for migration in Migration.all {
            let file = Self.schemaDirectory.appendingPathComponent("tables").appendingPathComponent(String(format: "%04d_%@.sql", migration.version, migration.name))
            #expect(try String(contentsOf: file, encoding: .utf8) == migration.sql)
        }
    }

    @Test("migrating twice applies nothing the second time; every routine exists once, named as its file")
    func idempotent() async throws {
        try await TestDatabase.withSchema(migrate: false) { schema in
            let runner = MigrationRunner(store: schema.store)
            let first = try await runner.migrate()
            #expect(first.applied == Migration.all.map(\.version))
            #expect(first.routinesApplied == Routine.all.map(\.name).sorted())
            let second = try await runner.migrate()
            #expect(second.applied.isEmpty)
            #expect(second.routinesApplied.isEmpty)
            #expect(second.alreadyApplied == Migration.all.map(\.version))
            let routines = try await schema.rows(
                "SELECT proname::text FROM pg_proc WHERE pronamespace = current_schema()::regnamespace ORDER BY 1", as: String.self
            )
            #expect(routines == Routine.all.map(\.name).sorted(), "one routine per file, and the runner's helper is gone")
        }
    }

    @Test("concurrent migrators apply each migration exactly once")
    func concurrent() async throws {
        try await TestDatabase.withSchema(poolSize: 6, migrate: false) { schema in
            let reports = try await withThrowingTaskGroup(of: MigrationRunner.Report.self) { group in
                for _ in 0..<4 {
                    group.addTask { try await MigrationRunner(store: schema.store).migrate() }
                }
                return try await group.reduce(into: [MigrationRunner.Report]()) { $0.append($1) }
            }
            #expect(reports.filter { !$0.applied.isEmpty }.count == 1)
            #expect(try await schema.count("SELECT count(*) FROM ef_migrations WHERE version > 0") == Int64(Migration.all.count))
        }
    }

    @Test(
        "migrating a configured schema the database lacks creates it, once, under concurrent runners; until then the connection check names it",
        .sharingServer
    )
    func createsMissingSchema() async throws {
        let baseURL = try TestDatabase.baseURL()
        let name = "t_new_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
        var configuration = try DatabaseConfiguration(url: SchemaSandbox.url(baseURL, schema: name))
        configuration.poolSize = 6
        var quiet = TestDatabase.logger
        quiet.logLevel = .error
        let client = PostgresClient(configuration: try configuration.clientConfiguration(), backgroundLogger: quiet)
        let store = PostgresEventStore(client: client, configuration: configuration, logger: TestDatabase.logger)
        func schemaExists() async throws -> Bool {
            try await store.database.value("find the schema", "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = \(name))", as: Bool.self)
        }
        let result: Result<Void, any Error> = await withTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            do {
                try await configuration.checkConnection()
                let missing = await #expect(throws: MigrationError.self) { try await configuration.checkConnection(requiringSchema: true) }
                #expect(missing == .schemaNotFound(schema: name))
                #expect(try await schemaExists() == false)

                let reports = try await withThrowingTaskGroup(of: MigrationRunner.Report.self) { runners in
                    for _ in 0..<4 {
                        runners.addTask { try await MigrationRunner(store: store).migrate() }
                    }
                    return try await runners.reduce(into: [MigrationRunner.Report]()) { $0.append($1) }
                }
                #expect(reports.filter { !$0.applied.isEmpty }.count == 1)
                #expect(try await schemaExists())
                #expect(try await store.database.value(
                    "count migrations", "SELECT count(*) FROM \(store.database.schema.ef_migrations) WHERE version > 0", as: Int64.self
                ) == Int64(Migration.all.count))
                try await configuration.checkConnection(requiringSchema: true)
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try await SchemaSandbox.drop(name, baseURL: baseURL, logger: TestDatabase.logger)
        try result.get()
    }

    @Test("an applied migration whose file changed is an error, and nothing newer is applied")
    func checksumMismatch() async throws {
        try await TestDatabase.withSchema { schema in
            var changed = Migration.all
            changed[0].sql += "\n-- edited after it was applied\n"
            changed.append(Migration(version: 9_999, name: "later", sql: "CREATE TABLE later_table (id int);"))
            let error = await #expect(throws: MigrationError.self) {
                try await MigrationRunner(store: schema.store, migrations: changed).migrate()
            }
            guard case .checksumMismatch(version: 1, name: _, applied: _, current: _) = error else {
                Issue.record("expected a checksum mismatch, got \(String(describing: error))")
                return
            }
            let newerMissing = try await schema.rows("SELECT to_regclass('later_table') IS NULL", as: Bool.self)
            #expect(newerMissing == [true], "the run rolled back")
        }
    }

    @Test("a database migrated before the squash is told to be recreated, and nothing is applied")
    func schemaBeforeSquash() async throws {
        try await TestDatabase.withSchema(migrate: false) { schema in
            try await schema.execute("""
                CREATE TABLE ef_migrations (component text NOT NULL, version integer NOT NULL, name text NOT NULL,
                                            checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(),
                                            PRIMARY KEY (component, version))
                """)
            try await schema.execute("INSERT INTO ef_migrations (component, version, name, checksum) VALUES ('eventfleet', 1, 'core_store', 'x')")
            let error = await #expect(throws: MigrationError.self) { try await MigrationRunner(store: schema.store).migrate() }
            #expect(error == .schemaBeforeSquash(component: "eventfleet", appliedMigration: "1_core_store"))
            #expect("\(try #require(error))".contains("recreate"))
            #expect(try await schema.rows("SELECT to_regclass('ef_streams') IS NULL", as: Bool.self) == [true])
        }
    }

    @Test("a routine whose file changed is applied again; one whose file is gone is dropped")
    func routinesFollowTheirFiles() async throws {
        try await TestDatabase.withSchema(migrate: false) { schema in
            let answer = Routine(name: "test_answer", sql: "CREATE OR REPLACE FUNCTION test_answer() RETURNS int LANGUAGE sql AS 'SELECT 41'")
            let other = Routine(name: "test_other", sql: "CREATE OR REPLACE FUNCTION test_other() RETURNS int LANGUAGE sql AS 'SELECT 1'")
            let first = try await MigrationRunner(store: schema.store, component: "test", routines: [answer, other]).migrate()
            #expect(first.routinesApplied == ["test_answer", "test_other"])
            #expect(try await schema.count("SELECT test_answer()::bigint") == 41)

            var changed = answer
            changed.sql = "CREATE OR REPLACE FUNCTION test_answer() RETURNS int LANGUAGE sql AS 'SELECT 42'"
            let second = try await MigrationRunner(store: schema.store, component: "test", routines: [changed]).migrate()
            #expect(second.routinesApplied == ["test_answer"])
            #expect(second.routinesDropped == ["test_other"])
            #expect(try await schema.count("SELECT test_answer()::bigint") == 42)
            #expect(try await schema.rows("SELECT to_regproc('test_other') IS NULL", as: Bool.self) == [true])
            #expect(try await schema.count("SELECT count(*) FROM ef_migrations WHERE component = 'test'") == 1)
        }
    }

    @Test("an older build's migrate leaves the routines of a database that a newer build migrated as they are")
    func olderBuildKeepsNewerRoutines() async throws {
        try await TestDatabase.withSchema(migrate: false) { schema in
            let table = Migration(version: 1, name: "answers", sql: "CREATE TABLE answers (id int);")
            let newer = Migration(version: 2, name: "more_answers", sql: "ALTER TABLE answers ADD COLUMN text text;")
            let answer = Routine(name: "test_answer", sql: "CREATE OR REPLACE FUNCTION test_answer() RETURNS int LANGUAGE sql AS 'SELECT 42'")
            let added = Routine(name: "test_added", sql: "CREATE OR REPLACE FUNCTION test_added() RETURNS int LANGUAGE sql AS 'SELECT 1'")
            try await MigrationRunner(store: schema.store, component: "test", migrations: [table, newer], routines: [answer, added]).migrate()

            var older = answer
            older.sql = "CREATE OR REPLACE FUNCTION test_answer() RETURNS int LANGUAGE sql AS 'SELECT 41'"
            let report = try await MigrationRunner(store: schema.store, component: "test", migrations: [table], routines: [older]).migrate()
            #expect(report.newerInDatabase == [2])
            #expect(report.routinesApplied.isEmpty)
            #expect(report.routinesDropped.isEmpty)
            #expect(try await schema.count("SELECT test_answer()::bigint") == 42, "the newer build's routine stays")
            #expect(try await schema.count("SELECT test_added()::bigint") == 1, "and so does the one the older build does not know")
        }
    }

    @Test("a routine file that changes the parameters with CREATE OR REPLACE is refused, and nothing is applied")
    func overloadRefused() async throws {
        try await TestDatabase.withSchema(migrate: false) { schema in
            let answer = Routine(name: "test_answer", sql: "CREATE OR REPLACE FUNCTION test_answer() RETURNS int LANGUAGE sql AS 'SELECT 41'")
            try await MigrationRunner(store: schema.store, component: "test", routines: [answer]).migrate()
            var widened = answer
            widened.sql = "CREATE OR REPLACE FUNCTION test_answer(p int) RETURNS int LANGUAGE sql AS 'SELECT p'"
            let error = await #expect(throws: MigrationError.self) {
                try await MigrationRunner(store: schema.store, component: "test", routines: [widened]).migrate()
            }
            #expect(error == .overloadedRoutine(name: "test_answer", definitions: 2))
            #expect(try await schema.count("SELECT count(*) FROM pg_proc WHERE proname = 'test_answer' AND pronamespace = current_schema()::regnamespace") == 1)

            // With the old one dropped in the file, the change applies.
            widened.sql = "DROP FUNCTION IF EXISTS test_answer(); " + widened.sql
            let report = try await MigrationRunner(store: schema.store, component: "test", routines: [widened]).migrate()
            #expect(report.routinesApplied == ["test_answer"])
            #expect(try await schema.count("SELECT test_answer(7)::bigint") == 7)
        }
    }
}

@Suite("Connection configuration", .sharingServer)
struct DatabaseConfigurationTests {
    @Test("a full URL parses into every field")
    func parsesURL() throws {
        let configuration = try DatabaseConfiguration(
            url: "postgresql://app:s%40cret@db.example.com:6543/events?sslmode=verify-full&pool_size=32&application_name=worker-1&schema=tenant_a&connect_timeout=3"
        )
        #expect(configuration.host == "db.example.com")
        #expect(configuration.port == 6543)
        #expect(configuration.username == "app")
        #expect(configuration.password == "s@cret")
        #expect(configuration.database == "events")
        #expect(configuration.tls == .verifyFull)
        #expect(configuration.poolSize == 32)
        #expect(configuration.applicationName == "worker-1")
        #expect(configuration.schema == "tenant_a")
        #expect(configuration.connectTimeout == .seconds(3))
        #expect(!configuration.description.contains("s@cret"), "the password never shows in descriptions")
        let defaults = try DatabaseConfiguration(url: "postgres://app@localhost/events")
        #expect(defaults.port == 5432)
        #expect(defaults.tls == .prefer)
        #expect(defaults.password == nil)
    }

    @Test(
        "a wrong URL names the wrong part",
        arguments: [
            ("", ""),
            ("mysql://u@h/db", "scheme"),
            ("postgres://h/db", "user"),
            ("postgres://u@h:99999/db", "port"),
            ("postgres://u@h:abc/db", "port"),
            ("postgres://u@h/db?sslmode=sometimes", "sslmode"),
            ("postgres://u@h/db?pool_size=0", "pool_size"),
            ("postgres://u@h/db?sslmod=require", "parameter 'sslmod'"),
            ("postgres://u@h/a/b", "database"),
            ("postgres://u@h/db?schema=a,b", "schema"),
            ("postgres://u@h/db?schema=", "schema"),
            ("postgres://u@h/db?pooler=always", "pooler"),
            ("postgres://u@h/db?listen_url=postgres%3A%2F%2Fu%40direct%2Fdb", "listen_url"),
            ("postgres://u@h/db?pooler=session&listen_url=postgres%3A%2F%2Fu%40direct%2Fdb", "listen_url"),
            ("postgres://u@h:6432/db?pooler=transaction&listen_url=postgres%3A%2F%2Fu%40h%3A6432%2Fdb", "listen_url"),
            ("postgres://u@h:6432/db?pooler=transaction&listen_url=mysql%3A%2F%2Fu%40direct%2Fdb", "listen_url scheme"),
            ("postgres://u@h:6432/db?pooler=transaction&listen_url=postgres%3A%2F%2Fu%40direct%2Fdb%3Fpooler%3Dtransaction", "listen_url"),
        ]
    )
    func rejectsWrongURL(url: String, part: String) {
        let error = #expect(throws: ConfigurationError.self) { try DatabaseConfiguration(url: url) }
        guard case .invalidURL(let reported, _)? = error else {
            Issue.record("expected invalidURL, got \(String(describing: error))")
            return
        }
        #expect(reported == part)
    }

    @Test("pooler=transaction sends no named statements and listens only on the direct listen_url")
    func transactionPooler() throws {
        let pooled = try DatabaseConfiguration(
            url: "postgres://app:pw@pgbouncer:6432/events?pooler=transaction&listen_url=postgres%3A%2F%2Fapp%3Apw%40db%3A5432%2Fevents%3Fsslmode%3Ddisable"
        )
        #expect(pooled.pooler == .transaction)
        #expect(pooled.statements == .unnamed)
        let listen = try #require(try pooled.listenConfiguration())
        #expect(listen.target == "db:5432")
        #expect(listen.tls == .disable)
        #expect(!pooled.description.contains("pw"), "the passwords never show in descriptions")
        #expect(pooled.description.contains("pooler=transaction"))
        let pollOnly = try DatabaseConfiguration(url: "postgres://app@pgbouncer:6432/events?pooler=transaction")
        #expect(try pollOnly.listenConfiguration() == nil)
        for url in ["postgres://app@db/events", "postgres://app@pgbouncer/events?pooler=session"] {
            let configuration = try DatabaseConfiguration(url: url)
            #expect(configuration.statements == .named)
        }
    }

    @Test("a refused port fails fast with a connection error naming the target")
    func refusedPort() async throws {
        var configuration = try DatabaseConfiguration(url: TestDatabase.baseURL())
        configuration.port = 1
        let clock = ContinuousClock()
        let start = clock.now
        let error = await #expect(throws: EventStoreError.self) {
            try await configuration.checkConnection()
        }
        #expect(clock.now - start < .seconds(10))
        guard case .connectionFailed(let target, _) = error else {
            Issue.record("expected connectionFailed, got \(String(describing: error))")
            return
        }
        #expect(target == "\(configuration.host):1")
    }

    @Test("a wrong password is a connection error, not a crash")
    func wrongPassword() async throws {
        var configuration = try DatabaseConfiguration(url: TestDatabase.baseURL())
        configuration.password = "definitely-wrong"
        let error = await #expect(throws: EventStoreError.self) {
            try await configuration.checkConnection()
        }
        guard case .connectionFailed(_, let reason) = error else {
            Issue.record("expected connectionFailed, got \(String(describing: error))")
            return
        }
        #expect(reason.contains("password"))
    }
}
