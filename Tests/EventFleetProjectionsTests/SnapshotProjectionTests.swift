import CartsExample
import EventFleetCore
import EventFleetPostgres
import EventFleetProjections
import EventFleetTestSupport
import PostgresNIO
import Testing

@Suite("Snapshot projections and the runner")
struct SnapshotProjectionTests {
    @Test("the shopping-cart scenario reads back from the carts read model")
    func shoppingCartScenario() async throws {
        try await withCartsSchema { schema in
            let handler = CartCommandHandler.carts()
            let stream = cartStreamId("c-1")
            for command: CartCommand in [
                .create(tenantId: "acme", cartId: "c-1", currency: "USD"),
                .addItem(sku: "SKU-123", name: "Mug", unitPrice: 25, quantity: 2),
                .addItem(sku: "SKU-456", name: "Tea", unitPrice: 15, quantity: 1),
                .removeItem(sku: "SKU-123", quantity: 1),
                .checkOut(orderId: "order-1"),
            ] {
                try await handler.handle(command, streamId: stream, in: schema.store, partition: "acme")
            }
            let result = try await ProjectionRunner(store: schema.store).projectEvents(
                try CartsReadModel.projection(), streamId: stream, partition: "acme"
            )
            #expect(result.eventsProcessed == 5)
            #expect(result.streamVersion == 5)
            let row = try #require(try await cartRow(schema, stream: stream, partition: "acme"))
            #expect(row.total == 40)
            #expect(row.items.map(\.quantity) == [1, 1])
            #expect(row.items.map(\.sku) == ["SKU-123", "SKU-456"])
            #expect(row.orderId == "order-1")
            #expect(row.isCheckedOut)
            #expect(row.tenantId == "acme")
            #expect(row.cartId == "c-1")
            #expect(row.lastStreamPosition == 5)
            let folded = try await schema.store.aggregateStream(
                stream, options: AggregateStreamOptions(partition: "acme"), evolve: CartState.evolve, initialState: CartState.initialState
            )
            #expect(row.snapshot == folded.state, "the snapshot is the write model's state")
        }
    }

    @Test("re-running is harmless and later events continue the row in small batches")
    func rerunAndBatches() async throws {
        try await withCartsSchema { schema in
            let store = schema.store
            let stream = cartStreamId("c-2")
            let runner = ProjectionRunner(store: store)
            let projection = try CartsReadModel.projection()
            try await store.appendToStream(stream, events: [CartEvent.created(CartCreated(tenantId: "default", cartId: "c-2", currency: "EUR"))])
            #expect(try await runner.projectEvents(projection, streamId: stream).eventsProcessed == 1)
            #expect(try await runner.projectEvents(projection, streamId: stream).eventsProcessed == 0)

            let adds = (1...7).map { CartEvent.itemAdded(ItemAddedToCart(sku: "S\($0)", name: "n", unitPrice: 10, quantity: 1)) }
            try await store.appendToStream(stream, events: adds)
            let one = try await runner.projectEvents(projection, streamId: stream, batchSize: 3, untilCaughtUp: false)
            #expect(one.eventsProcessed == 3)
            #expect(try await cartRow(schema, stream: stream)?.lastStreamPosition == 4)
            let rest = try await runner.projectEvents(projection, streamId: stream, batchSize: 3)
            #expect(rest.eventsProcessed == 4)
            #expect(rest.batches == 2)
            let row = try #require(try await cartRow(schema, stream: stream))
            #expect(row.lastStreamPosition == 8)
            #expect(row.items.map(\.sku) == (1...7).map { "S\($0)" })
            #expect(row.total == 70)
        }
    }

    @Test("concurrent runners on the same streams end with correct rows")
    func concurrentRunners() async throws {
        try await withCartsSchema(poolSize: 12) { schema in
            let store = schema.store
            let streams = (1...4).map { cartStreamId("r\($0)") }
            for (index, stream) in streams.enumerated() {
                try await store.appendToStream(stream, events: [CartEvent.created(CartCreated(tenantId: "default", cartId: "r\(index + 1)", currency: "EUR"))])
                try await store.appendToStream(
                    stream, events: (1...40).map { CartEvent.itemAdded(ItemAddedToCart(sku: "S\($0 % 5)", name: "n", unitPrice: $0, quantity: 1)) }
                )
            }
            let projection = try CartsReadModel.projection()
            let totals = try await withThrowingTaskGroup(of: Int.self) { group in
                for runner in 0..<8 {
                    group.addTask {
                        var processed = 0
                        for stream in streams.shuffled() {
                            processed += try await ProjectionRunner(store: store).projectEvents(
                                projection, streamId: stream, batchSize: 1 + runner
                            ).eventsProcessed
                        }
                        return processed
                    }
                }
                return try await group.reduce(0, +)
            }
            #expect(totals == 4 * 41, "every event was applied by exactly one runner")
            for stream in streams {
                let row = try #require(try await cartRow(schema, stream: stream))
                let folded = try await store.aggregateStream(stream, evolve: CartState.evolve, initialState: CartState.initialState)
                #expect(row.snapshot == folded.state)
                #expect(row.lastStreamPosition == 41)
            }
        }
    }

    @Test("events of types the projection does not handle only advance the position")
    func unhandledTypes() async throws {
        try await withCartsSchema { schema in
            let stream = cartStreamId("c-3")
            try await schema.store.appendToStream(stream, events: [CartEvent.created(CartCreated(tenantId: "default", cartId: "c-3", currency: "EUR"))])
            try await schema.store.appendToStream(stream, messages: [message("SomethingElse")], options: AppendOptions())
            try await schema.store.appendToStream(stream, events: [CartEvent.cancelled(CartCancelled(reason: "r"))])
            try await ProjectionRunner(store: schema.store).projectEvents(try CartsReadModel.projection(), streamId: stream)
            let row = try #require(try await cartRow(schema, stream: stream))
            #expect(row.lastStreamPosition == 3)
            #expect(row.isCancelled)
        }
    }

    @Test("a malformed event stops the stream's projection with a typed error and writes nothing")
    func poisonEvent() async throws {
        try await withCartsSchema { schema in
            let stream = cartStreamId("poison")
            try await schema.store.appendToStream(stream, events: [CartEvent.created(CartCreated(tenantId: "default", cartId: "poison", currency: "EUR"))])
            try await schema.store.appendToStream(stream, messages: [message("ItemAddedToCart", #"{"sku": 5}"#)], options: AppendOptions())
            await #expect(throws: EventStoreError.self) {
                try await ProjectionRunner(store: schema.store).projectEvents(try CartsReadModel.projection(), streamId: stream)
            }
            #expect(try await cartRow(schema, stream: stream) == nil)
        }
    }
}

struct EvolveRefused: Error, Equatable {}

@Suite("Projection errors")
struct ProjectionErrorTests {
    @Test("an error thrown by evolve reaches the caller unchanged, and nothing is written")
    func evolveErrorKeepsItsType() async throws {
        try await withCartsSchema { schema in
            let stream = cartStreamId("refused")
            try await schema.store.appendToStream(stream, events: [CartEvent.created(CartCreated(tenantId: "default", cartId: "refused", currency: "EUR"))])
            let refusing = try SnapshotProjection<CartState, CartEvent>(
                name: "carts", table: "carts_v1", keyColumns: ["tenant_id", "cart_id", "partition"],
                key: { _, partition in [.text(partition), .text("refused"), .text(partition)] },
                evolve: { _, _ in throw EvolveRefused() },
                initialState: CartState.initialState
            )
            await #expect(throws: EvolveRefused()) {
                try await ProjectionRunner(store: schema.store).projectEvents(refusing, streamId: stream)
            }
            #expect(try await cartRow(schema, stream: stream) == nil)
        }
    }
}

@Suite("Projection configuration")
struct ProjectionConfigurationTests {
    static func projection(table: String, keys: [String] = ["tenant_id", "cart_id", "partition"], columns: [String] = ["currency"]) throws
        -> SnapshotProjection<CartState, CartEvent>
    {
        try SnapshotProjection(
            name: "carts-test", table: table, keyColumns: keys,
            key: { _, partition in keys.map { _ in .text(partition) } },
            evolve: CartState.evolve, initialState: CartState.initialState,
            columns: columns, mapToColumns: { _ in [:] }
        )
    }

    @Test(
        "bad identifiers are rejected before any SQL",
        arguments: ["carts; DROP TABLE x", "carts\"", "1carts", "", "a.b.c", String(repeating: "x", count: 64), "käse"]
    )
    func badTableName(table: String) {
        #expect(throws: ProjectionError.self) { try Self.projection(table: table) }
    }

    @Test("a bad key column name is rejected")
    func badKeyColumn() {
        #expect(throws: ProjectionError.self) { try Self.projection(table: "carts_v1", keys: ["cart_id; --"]) }
        #expect(throws: ProjectionError.self) { try Self.projection(table: "carts_v1", columns: ["order id"]) }
    }

    @Test("a missing table, missing columns, a missing unique key and a missing stream index fail at start, naming them")
    func validation() async throws {
        try await withCartsSchema { schema in
            let runner = ProjectionRunner(store: schema.store)
            try await runner.validate(try CartsReadModel.projection())

            let missingTable = await #expect(throws: ProjectionError.self) { try await runner.validate(try Self.projection(table: "nope")) }
            #expect(missingTable?.description.contains("does not exist") == true)

            let missingColumn = await #expect(throws: ProjectionError.self) {
                try await runner.validate(try Self.projection(table: "carts_v1", columns: ["currency", "discount"]))
            }
            #expect(missingColumn?.description.contains("missing columns: discount") == true)

            try await schema.execute("CREATE TABLE loose (LIKE carts)")
            let noKey = await #expect(throws: ProjectionError.self) { try await runner.validate(try Self.projection(table: "loose")) }
            #expect(noKey?.description.contains("no unique constraint") == true)
            #expect(noKey?.description.contains("(partition, stream_id)") == true)

            let wrongKey = await #expect(throws: ProjectionError.self) {
                try await runner.validate(try Self.projection(table: "carts_v1", keys: ["cart_id"]))
            }
            #expect(wrongKey?.description.contains("no unique constraint on exactly the key columns (cart_id)") == true)
        }
    }

    @Test("the consumer refuses to start with a misconfigured projection")
    func consumerValidates() async throws {
        try await withCartsSchema { schema in
            let consumer = EventConsumer(
                configuration: consumerConfiguration("misconfigured"), store: schema.store,
                registry: ProjectionRegistry([try Self.projection(table: "carts_v1", columns: ["discount"])])
            )
            await #expect(throws: ProjectionError.self) { try await consumer.run() }
        }
    }
}
