import CartsExample
import EventFleetCore
import EventFleetPostgres
import EventFleetProjections
import EventFleetTestSupport
import Foundation
import Logging
import PostgresNIO
import Testing

/// `project(streams:)`: many rows brought forward in one transaction with a few statements.
@Suite("Multi-stream projection")
struct MultiStreamProjectionTests {
    @Test("one call brings many streams forward: new and existing rows, targets, streams with nothing to do, full pages")
    func manyStreamsInOneCall() async throws {
        try await withCartsSchema { schema in
            let store = schema.store
            let projection = try CartsReadModel.projection()
            let runner = ProjectionRunner(store: store)
            func created(_ cart: String, tenant: String) -> CartEvent { .created(CartCreated(tenantId: tenant, cartId: cart, currency: "EUR")) }
            func added(_ sku: String) -> CartEvent { .itemAdded(ItemAddedToCart(sku: sku, name: "n", unitPrice: 3, quantity: 1)) }

            // existing: a row at 2, then 2 more events. current: a row already up to date.
            try await store.appendToStream(cartStreamId("existing"), events: [created("existing", tenant: "t1"), added("A")], options: AppendOptions(partition: "t1"))
            try await runner.projectEvents(projection, streamId: cartStreamId("existing"), partition: "t1")
            try await store.appendToStream(cartStreamId("existing"), events: [added("B"), added("C")], options: AppendOptions(partition: "t1"))
            try await store.appendToStream(cartStreamId("current"), events: [created("current", tenant: "t2")], options: AppendOptions(partition: "t2"))
            try await runner.projectEvents(projection, streamId: cartStreamId("current"), partition: "t2")
            // new: no row yet. unhandled: only events the projection does not handle.
            try await store.appendToStream(cartStreamId("new"), events: [created("new", tenant: "t2"), added("A")], options: AppendOptions(partition: "t2"))
            try await store.appendToStream(cartStreamId("unhandled"), messages: [message("SomethingElse"), message("SomethingElse")], options: AppendOptions(partition: "t1"))
            // targeted: projected up to position 2 of 4. long: 7 events, more than a batch of 3.
            try await store.appendToStream(cartStreamId("targeted"), events: [created("targeted", tenant: "t1"), added("A"), added("B"), added("C")], options: AppendOptions(partition: "t1"))
            try await store.appendToStream(cartStreamId("long"), events: [created("long", tenant: "t1")] + (1...6).map { added("S\($0)") }, options: AppendOptions(partition: "t1"))
            // late: unhandled events first, then a handled one past the first page: read on to it.
            try await store.appendToStream(cartStreamId("late"), messages: (1...4).map { _ in message("SomethingElse") }, options: AppendOptions(partition: "t1"))
            try await store.appendToStream(cartStreamId("late"), events: [created("late", tenant: "t1")], options: AppendOptions(partition: "t1"))

            let targets = [
                StreamTarget(partition: "t1", streamId: cartStreamId("existing")),
                StreamTarget(partition: "t2", streamId: cartStreamId("current")),
                StreamTarget(partition: "t2", streamId: cartStreamId("new")),
                StreamTarget(partition: "t1", streamId: cartStreamId("unhandled")),
                StreamTarget(partition: "t1", streamId: cartStreamId("targeted"), upTo: 2),
                StreamTarget(partition: "t1", streamId: cartStreamId("long")),
                StreamTarget(partition: "t1", streamId: cartStreamId("late")),
                StreamTarget(partition: "t1", streamId: cartStreamId("missing")),
            ]
            let outcomes = try await schema.client.withTransaction(logger: Logger(label: "test")) { connection in
                try await projection.project(
                    streams: targets, batchSize: 3, context: ProjectionContext(connection: connection, store: store, logger: Logger(label: "test"))
                )
            }
            #expect(outcomes == [
                StreamOutcome(applied: 2, caughtUp: true),
                StreamOutcome(applied: 0, caughtUp: true),
                StreamOutcome(applied: 2, caughtUp: true),
                StreamOutcome(applied: 0, caughtUp: true),
                StreamOutcome(applied: 2, caughtUp: true),
                StreamOutcome(applied: 3, caughtUp: false),
                StreamOutcome(applied: 5, caughtUp: true),
                StreamOutcome(applied: 0, caughtUp: true),
            ])
            #expect(try await cartRow(schema, stream: cartStreamId("existing"), partition: "t1")?.items.map(\.sku) == ["A", "B", "C"])
            #expect(try await cartRow(schema, stream: cartStreamId("unhandled"), partition: "t1") == nil)
            #expect(try await cartRow(schema, stream: cartStreamId("missing"), partition: "t1") == nil)
            let targeted = try #require(try await cartRow(schema, stream: cartStreamId("targeted"), partition: "t1"))
            #expect(targeted.lastStreamPosition == 2)
            #expect(targeted.items.map(\.sku) == ["A"])
            #expect(try await cartRow(schema, stream: cartStreamId("long"), partition: "t1")?.lastStreamPosition == 3)
            let late = try #require(try await cartRow(schema, stream: cartStreamId("late"), partition: "t1"))
            #expect(late.lastStreamPosition == 5)
            #expect(late.cartId == "late")
            #expect(late.currency == "EUR")

            // The rest through the runner; every row then equals its stream's fold.
            for (partition, stream) in [("t1", "targeted"), ("t1", "long")] {
                try await runner.projectEvents(projection, streamId: cartStreamId(stream), partition: partition)
            }
            let mismatches = try await cartRowsNotMatchingStreams(schema, streams: [
                ("t1", cartStreamId("existing")), ("t2", cartStreamId("current")), ("t2", cartStreamId("new")),
                ("t1", cartStreamId("targeted")), ("t1", cartStreamId("long")),
            ])
            #expect(mismatches.isEmpty, "\(mismatches)")
        }
    }

    @Test("values of every kind reach their columns with their types; NULL where nothing is mapped")
    func typedColumnValues() async throws {
        try await withCartsSchema { schema in
            try await schema.execute(Self.typedTable)
            try await schema.execute(Self.typedIndex)
            let moment = Date(timeIntervalSince1970: 1_764_300_000.123456)
            let projection = try Self.typedProjection { _ in
                [
                    "d": .double(0.1), "inf": .double(-.infinity), "n": .int(Int64.min), "flag": .bool(true), "t": .text("quote \" backslash \\ tab \t é 🚀"),
                    "j": .json(#"{"a": [1, 2.5, null]}"#), "ts": .timestamp(moment),
                ]
            }
            let stream = cartStreamId("typed")
            try await schema.store.appendToStream(stream, events: [CartEvent.created(CartCreated(tenantId: "default", cartId: "typed", currency: "EUR"))])
            try await ProjectionRunner(store: schema.store).projectEvents(projection, streamId: stream)
            let rows = try await schema.rows(
                """
                SELECT d, inf, n, flag, t, j::text, extract(epoch FROM ts)::text, nothing IS NULL, last_stream_position FROM typed_rows
                """,
                as: (Double, Double, Int64, Bool, String, String, String, Bool, Int64).self
            )
            var found = false
            for (d, inf, n, flag, t, j, epoch, nothingIsNull, position) in rows {
                found = true
                #expect(d == 0.1)
                #expect(inf == -.infinity)
                #expect(n == Int64.min)
                #expect(flag)
                #expect(t == "quote \" backslash \\ tab \t é 🚀")
                #expect(j == #"{"a": [1, 2.5, null]}"#)
                #expect(epoch == "1764300000.123456")
                #expect(nothingIsNull)
                #expect(position == 1)
            }
            #expect(found)
        }
    }

    @Test("a mapped value PostgreSQL cannot hold is a typed error naming the column and the stream; nothing is written",
          arguments: [
              ("t", SQLValue.text("nul \u{0} inside")),
              ("j", SQLValue.json(#"1, "stream_id": "someone else's""#)),
              ("j", SQLValue.json("{")),
              ("j", SQLValue.json(#"{"note": "nul \u0000 escaped"}"#)),
              ("j", SQLValue.json(#"["lone high \uD83D"]"#)),
              ("j", SQLValue.json(#""lone low \uDE80""#)),
              ("ts", SQLValue.timestamp(Date(timeIntervalSince1970: 1e12))),
          ])
    func unstorableColumnValues(column: String, value: SQLValue) async throws {
        try await withCartsSchema { schema in
            try await schema.execute(Self.typedTable)
            try await schema.execute(Self.typedIndex)
            let projection = try Self.typedProjection { _ in [column: value] }
            let stream = cartStreamId("unstorable")
            try await schema.store.appendToStream(stream, events: [CartEvent.created(CartCreated(tenantId: "default", cartId: "unstorable", currency: "EUR"))])
            let error = await #expect(throws: ProjectionError.self) {
                try await ProjectionRunner(store: schema.store).projectEvents(projection, streamId: stream)
            }
            guard case .invalidColumnValue(_, let table, let named, let streamId, _, _) = error else {
                Issue.record("expected invalidColumnValue, got \(String(describing: error))")
                return
            }
            #expect(table == "typed_rows")
            #expect(named == column)
            #expect(streamId == stream)
            #expect(try await schema.count("SELECT count(*) FROM typed_rows") == 0)
        }
    }

    @Test("a state holding a NUL character is a typed error naming the snapshot column and the stream; nothing is written")
    func unstorableSnapshot() async throws {
        try await withCartsSchema { schema in
            try await schema.execute(Self.typedTable)
            try await schema.execute(Self.typedIndex)
            // The state's own evolve puts the character there: events cannot carry it (the store refuses it).
            let projection = try SnapshotProjection<CartState, CartEvent>(
                name: "typed", table: "typed_rows", keyColumns: ["partition", "cart_id"],
                key: { recorded, partition in [.text(partition), .text(CartsReadModel.cartId(fromStreamId: recorded.message.streamId))] },
                evolve: { state, event in
                    guard case .created(let created) = event else { return CartState.evolve(state, event) }
                    return CartState.evolve(state, .created(CartCreated(tenantId: created.tenantId, cartId: created.cartId, currency: "E\u{0}R")))
                },
                initialState: CartState.initialState
            )
            let stream = cartStreamId("nul-state")
            try await schema.store.appendToStream(stream, events: [CartEvent.created(CartCreated(tenantId: "default", cartId: "nul-state", currency: "EUR"))])
            let error = await #expect(throws: ProjectionError.self) {
                try await ProjectionRunner(store: schema.store).projectEvents(projection, streamId: stream)
            }
            guard case .invalidColumnValue(_, _, let column, let streamId, _, let reason) = error else {
                Issue.record("expected invalidColumnValue, got \(String(describing: error))")
                return
            }
            #expect(column == "snapshot")
            #expect(streamId == stream)
            #expect(reason.contains(#"\u0000"#))
            #expect(try await schema.count("SELECT count(*) FROM typed_rows") == 0)
        }
    }

    static let typedTable: PostgresQuery = """
        CREATE TABLE typed_rows (
            stream_id text NOT NULL, partition text NOT NULL, last_stream_position bigint NOT NULL,
            last_global_position bigint NOT NULL, snapshot jsonb NOT NULL, cart_id text NOT NULL,
            d double precision, inf double precision, n bigint, flag boolean, t text, j jsonb, ts timestamptz, nothing text,
            PRIMARY KEY (partition, cart_id)
        )
        """
    static let typedIndex: PostgresQuery = "CREATE UNIQUE INDEX typed_rows_stream ON typed_rows (partition, stream_id)"

    static func typedProjection(_ columns: @escaping @Sendable (CartState) -> [String: SQLValue]) throws -> SnapshotProjection<CartState, CartEvent> {
        try SnapshotProjection(
            name: "typed", table: "typed_rows", keyColumns: ["partition", "cart_id"],
            key: { recorded, partition in [.text(partition), .text(CartsReadModel.cartId(fromStreamId: recorded.message.streamId))] },
            evolve: CartState.evolve, initialState: CartState.initialState,
            columns: ["d", "inf", "n", "flag", "t", "j", "ts", "nothing"], mapToColumns: columns
        )
    }
}

/// The scan that keeps a mapped JSON value from spilling into other columns of a row document.
@Suite("JSON syntax scan")
struct JSONSyntaxScannerTests {
    static let valid = [
        "0", "-0", "12.5e-3", "1E+2", "true", "false", "null", #""""#, #""a\"b\\c\/\u00e9\n""#, "[]", "{}", " [1, [2, [3]], {}] ",
        #"{"a": {"b": [true, null, "x"]}, "c": -1.5}"#, "\"é 🚀\"", #""\uD83D\uDE80""#, #""\\u0000 is a backslash and text""#,
        String(repeating: "[", count: 2_000) + String(repeating: "]", count: 2_000),
    ]
    static let invalid = [
        "", " ", "01", "1.", ".5", "-", "1e", "+1", "tru", "nul", "True", #""unterminated"#, #""bad \x escape""#, "\"tab\tinside\"",
        "[1,]", "[1 2]", "{\"a\" 1}", "{\"a\": 1,}", "{a: 1}", "{\"a\": 1} {}", "1, 2", #"1, "stream_id": "x""#, "[", "]", "{", "}",
        "[1}", "{\"a\": [}", #""\u12""#, "NaN", "Infinity",
    ]

    /// Valid JSON that PostgreSQL's `jsonb` (the type of snapshots and JSON columns) refuses.
    static let unstorable = [
        (#""\u0000""#, "\\u0000"), (#"{"a": ["x\u0000y"]}"#, "\\u0000"), (#""\uD83D""#, "high surrogate"),
        (#""\uD83D\u0041""#, "high surrogate"), (#""\uDE80\uD83D""#, "low surrogate"), (#""\uDE80""#, "low surrogate"),
    ]

    @Test("refuses what jsonb cannot store (\\u0000, unpaired surrogates) with a reason, as PostgreSQL does")
    func refusesWhatJSONBCannotStore() async throws {
        let connection = try await TestDatabase.connect(try DatabaseConfiguration(url: try TestDatabase.baseURL()))
        do {
            for (text, named) in Self.unstorable {
                let reason = JSONSyntaxScanner.problem(in: text)
                #expect(reason?.contains(named) == true, "\(text): \(reason ?? "accepted")")
                #expect(JSONSyntaxScanner.unstorableEscape(in: text) == (named == "\\u0000" ? reason : nil), "\(text)")
                #expect(try await !Self.postgresAccepts(text, on: connection, as: "jsonb"), "the oracle agrees: \(text)")
            }
            for text in Self.valid {
                #expect(try await Self.postgresAccepts(text, on: connection, as: "jsonb"), "the oracle agrees: \(text.prefix(40))")
            }
        } catch {
            try? await connection.close()
            throw error
        }
        try await connection.close()
    }

    @Test("accepts exactly one JSON value and refuses anything else, as PostgreSQL's json input does")
    func agreesWithPostgreSQL() async throws {
        // A bare connection: no schema and no migrations (their transactions would hold back the
        // global log of tests running beside this one).
        let connection = try await TestDatabase.connect(try DatabaseConfiguration(url: try TestDatabase.baseURL()))
        do {
            for text in Self.valid {
                #expect(JSONSyntaxScanner.problem(in: text) == nil, "\(text.prefix(40))")
                #expect(try await Self.postgresAccepts(text, on: connection), "the oracle agrees: \(text.prefix(40))")
            }
            for text in Self.invalid {
                #expect(JSONSyntaxScanner.problem(in: text) != nil, "\(text)")
                #expect(try await !Self.postgresAccepts(text, on: connection), "the oracle agrees: \(text)")
            }
        } catch {
            try? await connection.close()
            throw error
        }
        try await connection.close()
    }

    static func postgresAccepts(_ text: String, on connection: PostgresConnection, as type: String = "json") async throws -> Bool {
        do {
            let query: PostgresQuery = type == "jsonb" ? "SELECT \(text)::jsonb" : "SELECT \(text)::json"
            for try await _ in try await connection.query(query, logger: TestDatabase.logger) {}
            return true
        } catch let error as PSQLError where error.code == .server {
            return false
        }
    }
}
