import EventFleetCore
import EventFleetPostgres
import EventFleetTestSupport
import Foundation
import PostgresNIO
import Testing

@Suite("Migrations")
struct MigrationTests {
    @Test("the embedded migrations are exactly the files in Migrations/")
    func embeddedMatchFiles() throws {
        let directory = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Migrations")
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(".sql") }
            .sorted()
        #expect(files.count == Migration.all.count, "run scripts/embed-migrations after adding a migration")
        for (file, migration) in zip(files, Migration.all) {
            let sql = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
            #expect(file == String(format: "%04d_%@.sql", migration.version, migration.name))
            #expect(sql == migration.sql, "\(file) differs from its embedded copy: run scripts/embed-migrations")
        }
    }

    @Test("migrating twice applies nothing the second time")
    func idempotent() async throws {
        try await TestDatabase.withSchema(migrate: false) { schema in
            let runner = MigrationRunner(store: schema.store)
            let first = try await runner.migrate()
            #expect(first.applied == Migration.all.map(\.version))
            let second = try await runner.migrate()
            #expect(second.applied.isEmpty)
            #expect(second.alreadyApplied == Migration.all.map(\.version))
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
            let rows = try await schema.rows("SELECT count(*) FROM ef_migrations", as: Int64.self)
            for count in rows { #expect(count == Int64(Migration.all.count)) }
        }
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
            let rows = try await schema.rows("SELECT to_regclass('later_table') IS NULL", as: Bool.self)
            for missing in rows { #expect(missing, "the run rolled back: the newer migration was not applied") }
        }
    }
}

@Suite("Connection configuration")
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
            ("", "DATABASE_URL "),
            ("mysql://u@h/db", "DATABASE_URL scheme"),
            ("postgres://h/db", "DATABASE_URL user"),
            ("postgres://u@h:99999/db", "DATABASE_URL port"),
            ("postgres://u@h:abc/db", "DATABASE_URL port"),
            ("postgres://u@h/db?sslmode=sometimes", "DATABASE_URL sslmode"),
            ("postgres://u@h/db?pool_size=0", "DATABASE_URL pool_size"),
            ("postgres://u@h/db?sslmod=require", "DATABASE_URL parameter 'sslmod'"),
            ("postgres://u@h/a/b", "DATABASE_URL database"),
        ]
    )
    func rejectsWrongURL(url: String, field: String) {
        #expect {
            try DatabaseConfiguration(url: url)
        } throws: { error in
            guard case .invalidArgument(let reported, _) = error as? EventStoreError else { return false }
            return reported == field
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
