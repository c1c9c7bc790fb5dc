import CartsExample
import EventFleetCore
import EventFleetPostgres
import EventFleetProjections
import EventFleetTestSupport
import Foundation
import PostgresNIO
import Testing

/// Hostile input for snapshot projections against the real server: identifiers from configuration,
/// hostile ids and payloads in projected streams, and stored snapshots that no longer decode.
@Suite("Hostile input: projections")
struct HostileInputProjectionTests {
    // MARK: Identifiers from configuration

    @Test("table, key column and column names that are not plain identifiers are refused by name", arguments: BadIdentifier.all)
    func badIdentifiers(bad: BadIdentifier) throws {
        expectInvalidIdentifier(bad.name, kind: "table", reason: bad.reason) {
            try CartsReadModel.projection(table: bad.name)
        }
        expectInvalidIdentifier(bad.name, kind: "key column", reason: bad.reason) {
            try projection(keyColumns: ["tenant_id", bad.name, "partition"])
        }
        expectInvalidIdentifier(bad.name, kind: "column", reason: bad.reason) {
            try projection(columns: ["currency", bad.name])
        }
        #expect(ProjectionError.invalidIdentifier(bad.name, kind: "table", reason: bad.reason).description.contains("'\(bad.name)'"))
    }

    @Test("plain identifiers up to 63 bytes are accepted and always quoted")
    func plainIdentifiers() throws {
        let longest = String(repeating: "a", count: 63)
        #expect(try SQLIdentifier(longest, kind: "table").quoted == "\"\(longest)\"")
        #expect(try SQLIdentifier("public.carts", kind: "table").quoted == #""public"."carts""#)
        #expect(try SQLIdentifier("_Select9", kind: "table").quoted == #""_Select9""#)
        expectInvalidIdentifier("public.cart_id", kind: "column", reason: "must not be qualified") {
            try projection(keyColumns: ["tenant_id", "public.cart_id", "partition"])
        }
    }

    // MARK: Hostile streams through the carts projection

    @Test("hostile partitions, stream ids and payload strings reach the carts row verbatim", arguments: hostileTexts)
    func hostileIdsThroughProjection(name: String) async throws {
        try await withCartsSchema { schema in
            let stream = cartStreamId(name)
            let handler = CartCommandHandler.carts()
            for command: CartCommand in [
                .create(tenantId: name, cartId: name, currency: name),
                .addItem(sku: name, name: name, unitPrice: 25, quantity: 2),
                .checkOut(orderId: name),
            ] {
                try await handler.handle(command, streamId: stream, in: schema.store, partition: name)
            }
            let result = try await ProjectionRunner(store: schema.store).projectEvents(
                try CartsReadModel.projection(), streamId: stream, partition: name
            )
            #expect(result.eventsProcessed == 3)

            var rows: [[[UInt8]]] = []
            for (tenant, cart, partition, streamId, currency, order) in try await schema.rows(
                "SELECT tenant_id, cart_id, partition, stream_id, currency, order_id FROM carts"
            , as: (String, String, String, String, String, String).self) {
                rows.append([tenant, cart, partition, streamId, currency, order].map { Array($0.utf8) })
            }
            let expected = [name, name, name, stream, name, name].map { Array($0.utf8) }
            #expect(rows == [expected])
            #expect(try await cartRowsNotMatchingStreams(schema, streams: [(name, stream)]).isEmpty)
        }
    }

    @Test("a consumer scoped to hostile partitions (one named '*') projects exactly their streams")
    func consumerScopedToHostilePartitions() async throws {
        try await withCartsSchema { schema in
            let store = schema.store
            let scoped = ["'; DROP TABLE carts; --", #"🛒 "quoted" \back\"#, "*"]
            let consumer = EventConsumer(
                configuration: consumerConfiguration("carts", scope: .only(scoped)), store: store, registry: try CartsReadModel.registry()
            )
            try await withRunning([consumer]) {
                let handler = CartCommandHandler.carts()
                for partition in scoped + ["outside", #""*""#, "[\"*\"]"] {
                    try await handler.handle(
                        .create(tenantId: partition, cartId: partition, currency: "EUR"), streamId: cartStreamId(partition), in: store,
                        partition: partition
                    )
                }
                try await consumer.whenCaughtUp()
                var partitions: [[UInt8]] = []
                for partition in try await schema.rows("SELECT partition FROM carts", as: String.self) {
                    partitions.append(Array(partition.utf8))
                }
                #expect(partitions.count == scoped.count)
                #expect(Set(partitions) == Set(scoped.map { Array($0.utf8) }))
                #expect(try await cartRowsNotMatchingStreams(schema, streams: scoped.map { ($0, cartStreamId($0)) }).isEmpty)
            }
        }
    }

    @Test("a handler error with NUL bytes is parked in ef_dead_letters and the consumer goes on")
    func nulInParkedError() async throws {
        try await withCartsSchema { schema in
            let store = schema.store
            var registry = try CartsReadModel.registry()
            registry.subscribe(to: ["CartCancelled"], name: "nul-error") { message, _ in
                if message.streamId == cartStreamId("bad") { throw NulError() }
            }
            var configuration = consumerConfiguration("nul-error")
            configuration.failurePolicy = .init(
                maxAttempts: 2, backoff: RetryPolicy(maxRetries: 10, initialDelay: .milliseconds(1), maxDelay: .milliseconds(5)),
                whenExhausted: .deadLetter
            )
            let consumer = EventConsumer(configuration: configuration, store: store, registry: registry)
            for name in ["bad", "after"] {
                try await store.appendToStream(cartStreamId(name), events: [
                    CartEvent.created(CartCreated(tenantId: "default", cartId: name, currency: "EUR")),
                    CartEvent.cancelled(CartCancelled(reason: "test")),
                ])
            }
            try await withRunning([consumer]) { try await consumer.whenCaughtUp() }
            var errors: [String] = []
            for error in try await schema.rows("SELECT error FROM ef_dead_letters", as: String.self) {
                errors.append(error)
            }
            #expect(errors == ["bad\u{FFFD}byte"])
            #expect(try await cartRows(schema).map(\.cartId).sorted() == ["after", "bad"])
        }
    }

    @Test("ids at the store's 1,000-byte limit overflow the carts key index: a typed error, no row, the runner goes on")
    func maximalIdsOverflowTheCartsKey() async throws {
        try await withCartsSchema { schema in
            // Incompressible text, so PostgreSQL cannot shrink the index entry below its limit.
            var generator = SystemRandomNumberGenerator()
            func random(_ count: Int) -> String {
                String((0..<count).map { _ in "abcdefghijklmnopqrstuvwxyz0123456789'\\;\"".randomElement(using: &generator)! })
            }
            let partition = random(1_000)
            let stream = cartStreamId(random(995))
            let handler = CartCommandHandler.carts()
            let runner = ProjectionRunner(store: schema.store)
            let projection = try CartsReadModel.projection()
            try await handler.handle(.create(tenantId: "t", cartId: "c", currency: "EUR"), streamId: stream, in: schema.store, partition: partition)
            #expect(try await schema.store.streamVersion(stream, partition: partition) == 1, "the store itself takes them")

            let error = await #expect(throws: EventStoreError.self) {
                try await runner.projectEvents(projection, streamId: stream, partition: partition)
            }
            guard case .database(operation: "project carts", sqlState: "54000", let message) = error else {
                Issue.record("expected the index-size database error, got \(String(describing: error))")
                return
            }
            #expect(message.contains("carts_v1_pkey"), "\(message)")
            #expect(try await schema.count("SELECT count(*) FROM carts") == 0)

            try await handler.handle(.create(tenantId: "t", cartId: "short", currency: "EUR"), streamId: cartStreamId("short"), in: schema.store)
            #expect(try await runner.projectEvents(projection, streamId: cartStreamId("short")).eventsProcessed == 1)
        }
    }

    @Test("a 1 MiB item name is projected into the snapshot and the items column")
    func largeEventThroughProjection() async throws {
        try await withCartsSchema { schema in
            let stream = cartStreamId("big")
            let name = String(repeating: "ü🛒\"\\", count: (1 << 20) / 8)
            let handler = CartCommandHandler.carts()
            try await handler.handle(.create(tenantId: "t", cartId: "big", currency: "EUR"), streamId: stream, in: schema.store)
            try await handler.handle(.addItem(sku: "S", name: name, unitPrice: 1, quantity: 1), streamId: stream, in: schema.store)
            try await ProjectionRunner(store: schema.store).projectEvents(try CartsReadModel.projection(), streamId: stream)
            #expect(try await cartRowsNotMatchingStreams(schema, streams: [(defaultPartition, stream)]).isEmpty)
            var names: [String] = []
            for itemName in try await schema.rows(
                "SELECT items_json -> 0 ->> 'name' FROM carts WHERE stream_id = \(stream)"
            , as: String.self) {
                names.append(itemName)
            }
            #expect(names.map(\.utf8.count) == [name.utf8.count])
            #expect(names == [name])
        }
    }

    // MARK: Stored data that does not decode

    @Test("a stored snapshot that does not decode is a typed error naming the row; nothing changes", arguments: [
        #""garbage""#,
        #"{"active": {"wrong": "shape"}}"#,
        #"{"deep": "# + String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000) + "}",
    ])
    func malformedSnapshot(snapshot: String) async throws {
        try await withCartsSchema { schema in
            let stream = cartStreamId("c'1")
            let handler = CartCommandHandler.carts()
            let runner = ProjectionRunner(store: schema.store)
            let projection = try CartsReadModel.projection()
            try await handler.handle(.create(tenantId: "t", cartId: "c'1", currency: "EUR"), streamId: stream, in: schema.store, partition: "p;1")
            try await runner.projectEvents(projection, streamId: stream, partition: "p;1")
            try await schema.execute("UPDATE carts SET snapshot = \(snapshot)::jsonb")
            try await handler.handle(.addItem(sku: "S", name: "n", unitPrice: 1, quantity: 1), streamId: stream, in: schema.store, partition: "p;1")

            let error = await #expect(throws: ProjectionError.self) {
                try await runner.projectEvents(projection, streamId: stream, partition: "p;1")
            }
            guard case .malformedSnapshot(projection: "carts", table: "carts_v1", streamId: stream, partition: "p;1", let reason) = error else {
                Issue.record("expected malformedSnapshot, got \(String(describing: error))")
                return
            }
            #expect(!reason.isEmpty)
            #expect("\(try #require(error))".contains("'\(stream)'"))
            #expect(try await schema.count("SELECT last_stream_position FROM carts") == 1, "the failed batch rolled back")

            let loaded = await capture {
                try await schema.database.withConnection("load") { connection in
                    try await projection.load(
                        streamId: stream, partition: "p;1", context: ProjectionContext(connection, store: schema.store, logger: TestDatabase.logger)
                    )
                }
            }
            guard case .failure(ProjectionError.malformedSnapshot(projection: "carts", table: "carts_v1", streamId: stream, partition: "p;1", _)) = loaded else {
                Issue.record("load: expected malformedSnapshot, got \(loaded)")
                return
            }

            // The documented way out: drop the row and project the stream again.
            try await schema.execute("DELETE FROM carts")
            #expect(try await runner.projectEvents(projection, streamId: stream, partition: "p;1").eventsProcessed == 2)
            #expect(try await cartRowsNotMatchingStreams(schema, streams: [("p;1", stream)]).isEmpty)
        }
    }

    @Test("an event nested 10,000 levels deep stops the batch with malformedEvent; other streams go on")
    func deeplyNestedEventThroughProjection() async throws {
        try await withCartsSchema { schema in
            let stream = cartStreamId("deep")
            let handler = CartCommandHandler.carts()
            let runner = ProjectionRunner(store: schema.store)
            let projection = try CartsReadModel.projection()
            try await handler.handle(.create(tenantId: "t", cartId: "deep", currency: "EUR"), streamId: stream, in: schema.store)
            try await runner.projectEvents(projection, streamId: stream)
            let deep = #"{"sku":"# + String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000) + "}"
            try await schema.store.appendToStream(
                stream, messages: [ProposedMessage(type: ItemAddedToCart.eventType, data: Data(deep.utf8))], options: AppendOptions()
            )
            let error = await #expect(throws: EventStoreError.self) {
                try await runner.projectEvents(projection, streamId: stream)
            }
            guard case .malformedEvent(type: ItemAddedToCart.eventType, streamId: stream, partition: defaultPartition, streamPosition: 2, _) = error else {
                Issue.record("expected malformedEvent, got \(String(describing: error))")
                return
            }
            #expect(try await schema.count("SELECT last_stream_position FROM carts WHERE stream_id = \(stream)") == 1)

            let other = cartStreamId("other")
            try await handler.handle(.create(tenantId: "t", cartId: "other", currency: "EUR"), streamId: other, in: schema.store)
            #expect(try await runner.projectEvents(projection, streamId: other).eventsProcessed == 1)
        }
    }

    @Test("runner limits: batch sizes of zero or less and oversized stream ids are validation errors")
    func runnerLimits() async throws {
        try await withCartsSchema { schema in
            let runner = ProjectionRunner(store: schema.store)
            let projection = try CartsReadModel.projection()
            for batchSize in [0, -1, Int.min] {
                let error = await #expect(throws: ProjectionError.self) {
                    try await runner.projectEvents(projection, streamId: "cart-1", batchSize: batchSize)
                }
                guard case .invalidArgument(field: "batchSize", reason: "must be positive (got \(batchSize))")? = error else {
                    Issue.record("expected invalidArgument for batchSize, got \(String(describing: error))")
                    continue
                }
            }
            await #expect(throws: EventStoreError.invalidArgument(field: "streamId", reason: "is 10005 bytes long; the limit is 1000 bytes of UTF-8")) {
                try await runner.projectEvents(projection, streamId: cartStreamId(String(repeating: "x", count: 10_000)))
            }
            let stream = cartStreamId("ok")
            try await CartCommandHandler.carts().handle(.create(tenantId: "t", cartId: "ok", currency: "EUR"), streamId: stream, in: schema.store)
            #expect(try await runner.projectEvents(projection, streamId: stream, batchSize: .max).eventsProcessed == 1)
        }
    }
}

// MARK: - Cases

/// A name that is not a plain identifier, and the reason it must be refused with.
struct BadIdentifier: Sendable, CustomTestStringConvertible {
    var name: String
    var reason: String

    var testDescription: String { name.debugDescription }

    static let onlyPlain = "may hold only letters, digits and underscores"
    static let start = "must start with a letter or underscore"
    static let tooLong = "is longer than PostgreSQL's 63-byte limit"

    static let all: [BadIdentifier] = [
        BadIdentifier(name: "carts; DROP TABLE x", reason: onlyPlain),
        BadIdentifier(name: "public.carts; --", reason: onlyPlain),
        BadIdentifier(name: #""quoted""#, reason: start),
        BadIdentifier(name: #"carts""#, reason: onlyPlain),
        BadIdentifier(name: #"carts\"#, reason: onlyPlain),
        BadIdentifier(name: "carts'", reason: onlyPlain),
        BadIdentifier(name: "carts table", reason: onlyPlain),
        BadIdentifier(name: "carts\n", reason: onlyPlain),
        BadIdentifier(name: "carts\u{0}", reason: onlyPlain),
        BadIdentifier(name: "cärts", reason: onlyPlain),
        BadIdentifier(name: "\u{FF43}arts", reason: start),
        BadIdentifier(name: "🛒", reason: start),
        BadIdentifier(name: "1carts", reason: start),
        BadIdentifier(name: "", reason: "has an empty part"),
        BadIdentifier(name: ".carts", reason: "has an empty part"),
        BadIdentifier(name: "carts.", reason: "has an empty part"),
        BadIdentifier(name: "a.b.c", reason: "use name or schema.name"),
        BadIdentifier(name: String(repeating: "a", count: 64), reason: tooLong),
        BadIdentifier(name: String(repeating: "🛒", count: 16), reason: tooLong),
    ]
}

/// Strings with quotes, semicolons, backslashes, emoji and control characters.
private let hostileTexts: [String] = [
    "x'); DROP TABLE carts; --",
    #""quoted" \"escaped\" back\slash\\"#,
    "semi;colon; $1 $$ E'\\x00' 100%_",
    "🛒👩‍👩‍👧 مرحبا \u{202E}",
    "line\nbreak\ttab",
    String(repeating: #"'\;🛒"#, count: 40),
]

/// An error whose description holds a NUL byte.
private struct NulError: Error, CustomStringConvertible {
    var description: String { "bad\u{0}byte" }
}

/// A carts-table projection with the given key columns and columns.
private func projection(
    keyColumns: [String] = ["tenant_id", "cart_id", "partition"], columns: [String] = ["currency"]
) throws -> SnapshotProjection<CartState, CartEvent> {
    try SnapshotProjection(
        name: "hostile", table: "carts_v1", keyColumns: keyColumns,
        key: { _, partition in keyColumns.map { _ in .text(partition) } },
        evolve: CartState.evolve, initialState: CartState.initialState,
        columns: columns, mapToColumns: { _ in [:] }
    )
}

/// The outcome of `body`, thrown or returned.
private func capture<T>(_ body: () async throws -> T) async -> Result<T, any Error> {
    do {
        return .success(try await body())
    } catch {
        return .failure(error)
    }
}

/// Expects `body` to refuse `name` as an identifier of `kind` for `reason`.
private func expectInvalidIdentifier(
    _ name: String, kind: String, reason: String, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> some Any
) {
    let error = #expect(throws: ProjectionError.self, sourceLocation: sourceLocation) { _ = try body() }
    guard case .invalidIdentifier(let refused, let refusedKind, let refusedReason)? = error else {
        Issue.record("expected invalidIdentifier, got \(String(describing: error))", sourceLocation: sourceLocation)
        return
    }
    #expect(refused == name && refusedKind == kind && refusedReason == reason, sourceLocation: sourceLocation)
}
