@testable import EventFleetPostgres
import EventFleetCore
import EventFleetTestSupport
import Foundation
import PostgresNIO
import Testing

/// The database seam's two switches: names qualified with the schema (no `search_path`), and
/// named or unnamed statements.
@Suite("Database seam")
struct DatabaseSeamTests {
    @Test("the tests' clients find nothing without a schema, so every library statement that passes qualifies its names")
    func unqualifiedNamesFail() async throws {
        try await TestDatabase.withSchema { schema in
            let error = await #expect(throws: EventStoreError.self) {
                try await schema.database.query("unqualified", "SELECT count(*) FROM ef_streams")
            }
            guard case .database(_, sqlState: "42P01", _)? = error else {
                Issue.record("expected an undefined table, got \(String(describing: error))")
                return
            }
            let rows = try await schema.database.query("qualified", "SELECT count(*) FROM \(schema.schema.ef_streams)")
            #expect(try rows.first?.decode(Int64.self) == 0)
        }
    }

    @Test("a single value is never guessed: a statement that answers no row is an error naming the operation")
    func valueWithoutARowIsAnError() async throws {
        try await TestDatabase.withSchema(migrate: false) { schema in
            let database = schema.database
            #expect(try await database.value("one", "SELECT 41 + 1", as: Int64.self) == 42)
            let pooled = await #expect(throws: EventStoreError.self) {
                try await database.value("count the nothing", "SELECT 1::int8 WHERE false", as: Int64.self)
            }
            guard case .database(operation: "count the nothing", sqlState: nil, message: "the statement answered no row")? = pooled else {
                Issue.record("expected a no-row error, got \(String(describing: pooled))")
                return
            }
            try await database.transaction("no row in a transaction") { connection in
                let error = await #expect(throws: EventStoreError.self) {
                    try await connection.value("read nothing", "SELECT true WHERE false", as: Bool.self)
                }
                guard case .database(operation: "read nothing", sqlState: nil, _)? = error else {
                    Issue.record("expected a no-row error, got \(String(describing: error))")
                    return
                }
            }
        }
    }

    @Test("a multi-stream read larger than a page is read in bounded pages that join up: each stream's events in order, each capped")
    func readStreamsInPages() async throws {
        try await TestDatabase.withSchema { schema in
            let store = schema.store
            let sizes = ["a": 900, "b": 1_300, "c": 5, "d": 0]
            for (stream, size) in sizes where size > 0 {
                for start in stride(from: 0, to: size, by: 500) {
                    try await store.appendToStream(
                        stream, messages: (start..<min(size, start + 500)).map { message("E\($0)") }, options: AppendOptions()
                    )
                }
            }
            let ranges = ["a", "b", "c", "d"].map { StreamRange(partition: defaultPartition, streamId: $0) } + [
                StreamRange(partition: defaultPartition, streamId: "b", from: 1_250, to: 1_260)
            ]
            let pages = try await store.readStreams(ranges, maxCountPerStream: 1_200, connection: nil)
            #expect(pages.map(\.count) == [900, 1_200, 5, 0, 11])
            #expect(pages[1].map(\.streamPosition) == Array(1...1_200))
            #expect(pages[1].map(\.type) == (0..<1_200).map { "E\($0)" })
            #expect(pages[4].map(\.streamPosition) == Array(1_250...1_260))
            #expect(PostgresEventStore.readPageRows < 900 + 1_200, "the read took several pages")
        }
    }

    @Test("a schema name that needs quoting works end to end", arguments: ["Mixed Case", "quote\"in"])
    func quotedSchemaNames(name: String) async throws {
        let base = try TestDatabase.baseURL()
        try await TestDatabase.withSchema(migrate: false) { admin in
            let quoted = SQLName.quote(name)
            try await admin.execute("CREATE SCHEMA \(unescaped: quoted)")
            var configuration = try DatabaseConfiguration(url: SchemaSandbox.url(base, schema: name))
            configuration.poolSize = 2
            let client = PostgresClient(configuration: try configuration.clientConfiguration(), backgroundLogger: TestDatabase.logger)
            let store = PostgresEventStore(client: client, configuration: configuration, logger: TestDatabase.logger)
            let result: Result<Void, any Error> = await withTaskGroup(of: Void.self) { group in
                group.addTask { await client.run() }
                defer { group.cancelAll() }
                do {
                    try await MigrationRunner(store: store).migrate()
                    try await store.appendToStream("s", messages: [message("A")], options: AppendOptions())
                    let read = try await store.readStream("s", options: ReadStreamOptions())
                    #expect(read.events.map(\.type) == ["A"])
                    return .success(())
                } catch {
                    return .failure(error)
                }
            }
            try await admin.execute("DROP SCHEMA \(unescaped: quoted) CASCADE")
            try result.get()
        }
    }

    @Test("named statements are prepared once per connection; unnamed ones leave nothing on the server connection",
          arguments: [DatabaseConfiguration.Statements.named, .unnamed])
    func statementSwitch(statements: DatabaseConfiguration.Statements) async throws {
        try await TestDatabase.withSchema(poolSize: 1) { schema in
            let database = Database(
                client: schema.client, target: schema.configuration.target, schema: schema.name, statements: statements,
                logger: TestDatabase.logger
            )
            let store = PostgresEventStore(database: database, notifyChannel: nil)
            for index in 1...3 {
                try await store.appendToStream("s", messages: [message("E\(index)")], options: AppendOptions())
            }
            let pages = try await store.readStreams([StreamRange(partition: defaultPartition, streamId: "s")], maxCountPerStream: 10, connection: nil)
            #expect(pages.first?.count == 3)
            let prepared = try await database.query("list prepared statements", "SELECT name FROM pg_prepared_statements ORDER BY name")
                .map { try $0.decode(String.self) }
            switch statements {
            case .named:
                #expect(prepared.contains { $0.hasPrefix("eventfleet.CommittedAppendStatement@") }, "\(prepared)")
                #expect(prepared.contains { $0.hasPrefix("eventfleet.ReadStreamsStatement@") }, "\(prepared)")
            case .unnamed:
                #expect(prepared.isEmpty, "\(prepared)")
            }
        }
    }
}
