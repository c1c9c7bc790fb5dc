import CartsExample
import EventFleetCLI
import EventFleetCore
import EventFleetJobs
import EventFleetPostgres
import EventFleetTestSupport
import Foundation
import PostgresNIO
import Testing

/// The `eventfleet` executable, run as a child process against the real server.
@Suite("eventfleet CLI", .exclusive)
struct CLITests {
    @Test("append prints the result as JSON; read prints one JSON object per event")
    func appendAndRead() async throws {
        try await TestDatabase.withSchema { schema in
            let first = try await eventfleet(
                ["append", "--stream", "cart-1", "--partition", "acme", "--type", "CartCreated", "--data", #"{"cartId":"1","big":12345678901234567}"#,
                 "--metadata", #"{"by":"cli"}"#, "--expected-version", "no-stream"],
                url: schema.url
            )
            #expect(first.status == 0, "\(first.stderr)")
            let result = try JSONDecoder().decode(AppendResult.self, from: Data(first.stdout.utf8))
            #expect(result.nextExpectedVersion == 1)
            #expect(result.createdNewStream)
            let second = try await eventfleet(
                ["append", "--stream", "cart-1", "--partition", "acme", "--type", "ItemAdded", "--data", "{}", "--expected-version", "1"],
                url: schema.url
            )
            #expect(second.status == 0, "\(second.stderr)")

            let read = try await eventfleet(["read", "--stream", "cart-1", "--partition", "acme"], url: schema.url)
            #expect(read.status == 0, "\(read.stderr)")
            let lines = read.stdout.split(separator: "\n")
            #expect(lines.count == 2)
            let event = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
            #expect(event["type"] as? String == "CartCreated")
            #expect(event["streamPosition"] as? Int == 1)
            #expect((event["globalPosition"] as? Int ?? 0) > 0)
            #expect((event["metadata"] as? [String: Any])?["by"] as? String == "cli")
            #expect(lines[0].contains("12345678901234567"), "numbers keep their digits")

            let ranged = try await eventfleet(["read", "--stream", "cart-1", "--partition", "acme", "--from", "2", "--max-count", "5"], url: schema.url)
            #expect(ranged.stdout.split(separator: "\n").count == 1)
        }
    }

    @Test("a version conflict exits 3 and names expected and actual versions")
    func conflictExitCode() async throws {
        try await TestDatabase.withSchema { schema in
            _ = try await eventfleet(["append", "--stream", "s", "--type", "A", "--data", "{}"], url: schema.url)
            let conflict = try await eventfleet(
                ["append", "--stream", "s", "--type", "A", "--data", "{}", "--expected-version", "no-stream"], url: schema.url
            )
            #expect(conflict.status == 3)
            #expect(conflict.stderr.contains("expected no-stream, actual 1"))
        }
    }

    @Test(
        "invalid input exits 2, names the field and writes nothing",
        arguments: [
            (["--type", "A", "--data", "{not json"], "data"),
            (["--type", "A", "--data", "[1,2]"], "data"),
            (["--type", "A", "--data", "{}", "--metadata", "nope"], "metadata"),
            (["--type", "A", "--data", "{}", "--expected-version", "sometimes"], "expected-version"),
            (["--type", "A", "--data", "{}", "--expected-version", "-4"], "expected-version"),
            (["--type", "", "--data", "{}"], "type"),
            (["--data", "{}"], "--type"),
        ]
    )
    func invalidInput(arguments: [String], field: String) async throws {
        try await TestDatabase.withSchema { schema in
            let run = try await eventfleet(["append", "--stream", "s"] + arguments, url: schema.url)
            #expect(run.status == 2, "\(run.stderr)")
            #expect(run.stderr.contains(field), "\(run.stderr)")
            #expect(try await schema.store.readStream("s", options: ReadStreamOptions()).streamExists == false)
        }
    }

    @Test("a negative vacuum threshold for the scheduler exits 2 and names the option")
    func schedulerVacuumThreshold() async throws {
        try await TestDatabase.withSchema { schema in
            let run = try await eventfleet(["scheduler", "--vacuum-dead-jobs=-1"], url: schema.url)
            #expect(run.status == 2, "\(run.stderr)")
            #expect(run.stderr.contains("--vacuum-dead-jobs must be 0 (off) or positive (got -1)"), "\(run.stderr)")
        }
    }

    @Test("an empty stream id exits 2")
    func emptyStreamId() async throws {
        try await TestDatabase.withSchema { schema in
            let append = try await eventfleet(["append", "--stream", "", "--type", "A", "--data", "{}"], url: schema.url)
            #expect(append.status == 2)
            #expect(append.stderr.contains("streamId"))
            let read = try await eventfleet(["read", "--stream", ""], url: schema.url)
            #expect(read.status == 2)
        }
    }

    @Test("quotes and semicolons in stream ids and partitions are stored verbatim")
    func hostileIds() async throws {
        try await TestDatabase.withSchema { schema in
            let stream = #"s'; DROP TABLE ef_messages; --"#
            let partition = #"p"; DELETE FROM ef_streams; --"#
            let append = try await eventfleet(
                ["append", "--stream", stream, "--partition", partition, "--type", "A", "--data", #"{"q":"';--"}"#], url: schema.url
            )
            #expect(append.status == 0, "\(append.stderr)")
            let read = try await schema.store.readStream(stream, options: ReadStreamOptions(partition: partition))
            #expect(read.events.count == 1)
            #expect(read.events.first?.streamId == stream)
        }
    }

    @Test("an unreachable database exits 1 and names the host it tried")
    func unreachableDatabase() async throws {
        let run = try await eventfleet(
            ["append", "--stream", "s", "--type", "A", "--data", "{}"],
            url: "postgres://nobody:pw@127.0.0.1:1/none?sslmode=disable"
        )
        #expect(run.status == 1)
        #expect(run.stderr.contains("127.0.0.1:1"), "\(run.stderr)")
    }

    @Test("a malformed DATABASE_URL exits 2 and names the part")
    func malformedURL() async throws {
        let run = try await eventfleet(["read", "--stream", "s"], url: "postgres://u@h:notaport/db")
        #expect(run.status == 2)
        #expect(run.stderr.contains("port"), "\(run.stderr)")
    }

    @Test("migrate applies the example's migrations after the library's, once")
    func migrate() async throws {
        try await TestDatabase.withSchema { schema in
            let first = try await eventfleet(["migrate"], url: schema.url)
            #expect(first.status == 0, "\(first.stderr)")
            #expect(first.stdout.contains("eventfleet: migrations up to date"))
            #expect(first.stdout.contains("carts-example: applied migrations 1"))
            let second = try await eventfleet(["migrate"], url: schema.url)
            #expect(second.stdout.contains("carts-example: migrations up to date"))
        }
    }

    @Test("a schema= the database lacks: read, monitor, worker and scheduler exit 1 naming it and saying to run migrate; migrate creates it")
    func missingSchema() async throws {
        let baseURL = try TestDatabase.baseURL()
        let name = "t_new_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
        let url = SchemaSandbox.url(baseURL, schema: name)
        let admin = try await TestDatabase.connect(try DatabaseConfiguration(url: baseURL))
        func schemaExists() async throws -> Bool {
            try await admin.query("SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = \(name))", logger: TestDatabase.logger)
                .collect().first?.decode(Bool.self) ?? false
        }
        do {
            for arguments in [["read", "--stream", "s"], ["monitor"], ["worker"], ["scheduler"]] {
                let run = try await eventfleet(arguments, url: url)
                #expect(run.status == 1, "\(arguments): \(run.stderr)")
                #expect(run.stderr.contains("the schema '\(name)'") && run.stderr.contains("run `migrate`"), "\(arguments): \(run.stderr)")
            }
            #expect(try await schemaExists() == false)

            let migrate = try await eventfleet(["migrate"], url: url)
            #expect(migrate.status == 0, "\(migrate.stderr)")
            #expect(migrate.stdout.contains("carts-example: applied migrations 1"), "\(migrate.stdout)")
            #expect(try await schemaExists())
            let read = try await eventfleet(["read", "--stream", "s"], url: url)
            #expect(read.status == 0, "\(read.stderr)")
        } catch {
            try? await SchemaSandbox.drop(name, baseURL: baseURL, logger: TestDatabase.logger)
            try? await admin.close()
            throw error
        }
        try await SchemaSandbox.drop(name, baseURL: baseURL, logger: TestDatabase.logger)
        try await admin.close()
    }

    @Test("append --wait-for returns once the carts row shows the event; a typed timeout (exit 4) when no worker runs; an unknown projection writes nothing (exit 2)")
    func appendWaitFor() async throws {
        try await withCartsSchema { schema in
            let created = #"{"tenantId":"acme","cartId":"1","currency":"EUR"}"#
            let unknown = try await eventfleet(
                ["append", "--stream", "cart-1", "--partition", "acme", "--type", "CartCreated", "--data", created, "--wait-for", "nope"],
                url: schema.url
            )
            #expect(unknown.status == 2, "\(unknown.stderr)")
            #expect(unknown.stderr.contains("cannot wait for projection 'nope'"), "\(unknown.stderr)")
            #expect(try await schema.count("SELECT count(*) FROM ef_messages") == 0, "nothing was appended")

            // Registered by a worker that ran before; none runs now.
            try await JobQueue(store: schema.store).registerProjections([ProjectionRegistration(try CartsReadModel.projection())])
            let unseen = try await eventfleet(
                ["append", "--stream", "cart-1", "--partition", "acme", "--type", "CartCreated", "--data", created,
                 "--wait-for", "carts", "--wait-timeout", "0.5"],
                url: schema.url
            )
            #expect(unseen.status == 4, "\(unseen.stderr)")
            #expect(unseen.stderr.contains("projection 'carts' did not show cart-1@1 in partition acme"), "\(unseen.stderr)")
            #expect(try await schema.count("SELECT count(*) FROM ef_messages") == 1, "the append itself committed")

            let scheduler = FleetScheduler(store: schema.store)
            let worker = ProjectionWorker(configuration: ProjectionWorker.Configuration(), store: schema.store, registry: try CartsReadModel.registry())
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await scheduler.run() }
                group.addTask { try await worker.run() }
                defer { group.cancelAll() }
                let shown = try await eventfleet(
                    ["append", "--stream", "cart-1", "--partition", "acme", "--type", "ItemAddedToCart",
                     "--data", #"{"sku":"A","name":"a","unitPrice":4,"quantity":3}"#, "--wait-for", "carts"],
                    url: schema.url
                )
                #expect(shown.status == 0, "\(shown.stderr)")
                let result = try JSONDecoder().decode(AppendResult.self, from: Data(shown.stdout.utf8))
                #expect(result.token == PositionToken(partition: "acme", streamId: "cart-1", streamPosition: 2, globalPosition: result.lastGlobalPosition))
                #expect(shown.stdout.contains(#""shownBy":["carts"]"#), "\(shown.stdout)")
                // The row shows it the moment the command returns.
                #expect(try await schema.count("SELECT last_stream_position FROM carts WHERE partition = 'acme' AND stream_id = 'cart-1'") == 2)
                #expect(try await schema.count("SELECT total FROM carts WHERE partition = 'acme' AND stream_id = 'cart-1'") == 12)
            }
        }
    }

    @Test("project runs the carts projection for one stream and reports what it did")
    func project() async throws {
        try await TestDatabase.withSchema { schema in
            _ = try await eventfleet(["migrate"], url: schema.url)
            let append = try await eventfleet(
                ["append", "--stream", "cart-1", "--partition", "acme", "--type", "CartCreated",
                 "--data", #"{"tenantId":"acme","cartId":"1","currency":"EUR"}"#],
                url: schema.url
            )
            #expect(append.status == 0, "\(append.stderr)")
            let run = try await eventfleet(["project", "--stream", "cart-1", "--partition", "acme"], url: schema.url)
            #expect(run.status == 0, "\(run.stderr)")
            #expect(run.stdout.contains("carts: applied 1 events in 1 batches"), "\(run.stdout)")
            #expect(run.stdout.contains("at version 1"))
            let again = try await eventfleet(["project", "--stream", "cart-1", "--partition", "acme", "--projection", "carts"], url: schema.url)
            #expect(again.stdout.contains("carts: applied 0 events"), "\(again.stdout)")
            let unknown = try await eventfleet(["project", "--stream", "cart-1", "--projection", "nope"], url: schema.url)
            #expect(unknown.status == 2)
            #expect(unknown.stderr.contains("no projection named 'nope'"))
        }
    }
}

func eventfleet(_ arguments: [String], url: String) async throws -> ChildProcess.Result {
    try await ChildProcess.run(try builtProduct("eventfleet"), arguments: arguments, environment: childEnvironment(url: url))
}
