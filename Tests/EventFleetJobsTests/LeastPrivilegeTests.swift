import CartsExample
import EventFleetCore
import EventFleetJobs
import EventFleetPostgres
import EventFleetProjections
import EventFleetTestSupport
import Foundation
import Logging
import PostgresNIO
import Testing

/// The roles of deploy/roles.sql: the migrator migrates, the fleet runs as the runtime role, the
/// read-only role reads status, and none can do more than that.
@Suite("Least privilege", .exclusive, .timeLimit(.minutes(3)))
struct LeastPrivilegeTests {
    static let rolesFile = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("deploy/roles.sql")

    /// deploy/roles.sql with psql's `:"name"` variables replaced, one statement each.
    static func roleStatements(_ names: [String: String]) throws -> [String] {
        var text = try String(contentsOf: rolesFile, encoding: .utf8)
            .split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.trimmingCharacters(in: .whitespaces).hasPrefix("--") }
            .joined(separator: "\n")
        for (variable, name) in names { text = text.replacingOccurrences(of: ":\"\(variable)\"", with: SQLName.quote(name)) }
        return text.components(separatedBy: ";\n").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }
    }

    /// Runs `body` with a store that connects as `role`.
    static func withStore<T: Sendable>(
        _ base: DatabaseConfiguration, role: String, schema: String, _ body: @Sendable (PostgresEventStore) async throws -> T
    ) async throws -> T {
        var configuration = base
        configuration.username = role
        configuration.password = "pw"
        configuration.schema = schema
        var quiet = TestDatabase.logger
        quiet.logLevel = .error
        let client = PostgresClient(configuration: try configuration.clientConfiguration(), backgroundLogger: quiet)
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                await client.run()
                return nil
            }
            defer { group.cancelAll() }
            return try await body(PostgresEventStore(client: client, configuration: configuration, logger: TestDatabase.logger))
        }
    }

    @Test("migrator, runtime and read-only roles: the fleet projects as the runtime role, which may not vacuum (reported) nor create; the read-only role reads status and demand only")
    func roles() async throws {
        let base = try DatabaseConfiguration(url: try TestDatabase.baseURL())
        let suffix = UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(10).lowercased()
        let names = ["schema": "lp_\(suffix)", "migrator": "lp_migrator_\(suffix)", "runtime": "lp_runtime_\(suffix)", "readonly": "lp_readonly_\(suffix)"]
        let admin = try await TestDatabase.connect(base)
        func administer(_ sql: String) async throws { _ = try await admin.query(PostgresQuery(unsafeSQL: sql), logger: TestDatabase.logger) }
        do {
            for statement in try Self.roleStatements(names) { try await administer(statement) }
            for role in ["migrator", "runtime", "readonly"] { try await administer("ALTER ROLE \(SQLName.quote(names[role]!)) PASSWORD 'pw'") }
            let schema = names["schema"]!

            try await Self.withStore(base, role: names["migrator"]!, schema: schema) { store in
                try await MigrationRunner(store: store).migrate()
                try await MigrationRunner(store: store, component: CartsReadModel.component, migrations: CartsReadModel.migrations).migrate()
            }

            try await Self.withStore(base, role: names["runtime"]!, schema: schema) { store in
                var schedulerConfiguration = fastScheduler()
                schedulerConfiguration.vacuumDeadJobs = 1
                let scheduler = FleetScheduler(configuration: schedulerConfiguration, store: store)
                let worker = ProjectionWorker(configuration: fastWorker(), store: store, registry: try CartsReadModel.registry())
                let streams = try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await scheduler.run() }
                    group.addTask { try await worker.run() }
                    defer { group.cancelAll() }
                    try await waitUntil(timeout: .seconds(30), "the worker has started") { worker.isStarted }
                    let streams = try await writeCarts(store, tenants: ["a", "b"], cartsPerTenant: 4)
                    try await waitUntil(timeout: .seconds(60), "every cart is projected") {
                        try await CartsReadModel.rowsNotMatchingStreams(streams, store: store).isEmpty
                    }
                    return streams
                }
                #expect(streams.count == 8)
                // Only the table's owner may vacuum it: the runtime role is told so, not left to a warning.
                // (The jobs the stopped fleet left go first, so that dead rows outnumber live ones.)
                try await store.database.query("clear the jobs", "DELETE FROM \(store.database.schema.ef_jobs)")
                let queue = JobQueue(store: store)
                try await waitUntil(timeout: .seconds(30), "the job table is worn, and the runtime role may not vacuum it") {
                    if case .notPermitted(let role, _) = try await queue.vacuumIfWorn(minimumDeadRows: 1) { return role == names["runtime"] }
                    return false
                }
                await #expect(throws: EventStoreError.self) {
                    try await store.database.query("create a table", "CREATE TABLE \(store.database.schema.ef_jobs.description)_copy (id int)")
                }
            }

            try await Self.withStore(base, role: names["readonly"]!, schema: schema) { store in
                let status = try await FleetStatus.read(from: store)
                #expect(status.jobTable.deadRows >= 0)
                // As KEDA calls it: unqualified, found through the role's search_path. (The fleet is
                // stopped, so the jobs it left do not change between the two calls.)
                let demand = try await store.database.value(
                    "pool demand", "SELECT ef_pool_demand('{carts}', '{live,backfill}', NULL)", as: Int64.self
                )
                #expect(try await store.database.value(
                    "pool demand", "SELECT \(store.database.schema.ef_pool_demand)('{carts}', '{live,backfill}', NULL)", as: Int64.self
                ) == demand)
                await #expect(throws: EventStoreError.self) {
                    try await JobQueue(store: store).enqueue([JobRequest(projection: "carts", partition: "a", streamId: "x")])
                }
            }
        } catch {
            try? await Self.dropRoles(names, administer)
            try? await admin.close()
            throw error
        }
        try await Self.dropRoles(names, administer)
        try await admin.close()
    }

    @Test("the migrator of deploy/roles.sql may not create a schema: a migrate into a missing one names it and what is needed, and creates it once granted CREATE on the database")
    func migratorCannotCreateSchema() async throws {
        let base = try DatabaseConfiguration(url: try TestDatabase.baseURL())
        let suffix = UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(10).lowercased()
        let names = ["schema": "lp_\(suffix)", "migrator": "lp_migrator_\(suffix)", "runtime": "lp_runtime_\(suffix)", "readonly": "lp_readonly_\(suffix)"]
        let missing = "lp_missing_\(suffix)"
        let admin = try await TestDatabase.connect(base)
        func administer(_ sql: String) async throws { _ = try await admin.query(PostgresQuery(unsafeSQL: sql), logger: TestDatabase.logger) }
        func schemaExists() async throws -> Bool {
            try await admin.query("SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = \(missing))", logger: TestDatabase.logger)
                .collect().first?.decode(Bool.self) ?? false
        }
        do {
            for statement in try Self.roleStatements(names) { try await administer(statement) }
            for role in ["migrator", "runtime", "readonly"] { try await administer("ALTER ROLE \(SQLName.quote(names[role]!)) PASSWORD 'pw'") }

            try await Self.withStore(base, role: names["migrator"]!, schema: missing) { store in
                let error = await #expect(throws: MigrationError.self) { try await MigrationRunner(store: store).migrate() }
                guard case .cannotCreateSchema(let schema, let reason)? = error else {
                    Issue.record("expected cannotCreateSchema, got \(String(describing: error))")
                    return
                }
                #expect(schema == missing)
                #expect(reason.contains("permission denied"), "\(reason)")
                #expect("\(error!)".contains("CREATE on the database"), "\(error!)")
            }
            #expect(try await schemaExists() == false)

            // What a migrator needs to create its schema itself.
            let database = try #require(base.database)
            try await administer("GRANT CREATE ON DATABASE \(SQLName.quote(database)) TO \(SQLName.quote(names["migrator"]!))")
            try await Self.withStore(base, role: names["migrator"]!, schema: missing) { store in
                let report = try await MigrationRunner(store: store).migrate()
                #expect(report.applied == Migration.all.map(\.version))
            }
            #expect(try await schemaExists())
            try await administer("DROP SCHEMA \(SQLName.quote(missing)) CASCADE")
        } catch {
            try? await administer("DROP SCHEMA IF EXISTS \(SQLName.quote(missing)) CASCADE")
            try? await Self.dropRoles(names, administer)
            try? await admin.close()
            throw error
        }
        try await Self.dropRoles(names, administer)
        try await admin.close()
    }

    static func dropRoles(_ names: [String: String], _ administer: (String) async throws -> Void) async throws {
        try await administer("DROP SCHEMA IF EXISTS \(SQLName.quote(names["schema"]!)) CASCADE")
        for role in ["readonly", "runtime", "migrator"] {
            try await administer("DROP OWNED BY \(SQLName.quote(names[role]!))")
            try await administer("DROP ROLE \(SQLName.quote(names[role]!))")
        }
    }
}
