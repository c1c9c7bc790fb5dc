import CartsExample
import EventFleetCore
import EventFleetTestSupport
import Synchronization
import Testing

@Suite("Decider command handler")
struct CommandHandlerTests {
    @Test("the shopping-cart scenario ends checked out with total 40", arguments: StoreKind.allCases)
    func shoppingCartScenario(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let handler = CartCommandHandler.carts()
            let stream = cartStreamId("c-1")
            let created = try await handler.handle(.create(tenantId: "acme", cartId: "c-1", currency: "USD"), streamId: stream, in: store, partition: "acme")
            #expect(created.createdNewStream)
            try await handler.handle(.addItem(sku: "SKU-123", name: "Mug", unitPrice: 25, quantity: 2), streamId: stream, in: store, partition: "acme")
            try await handler.handle(.addItem(sku: "SKU-456", name: "Tea", unitPrice: 15, quantity: 1), streamId: stream, in: store, partition: "acme")
            try await handler.handle(.removeItem(sku: "SKU-123", quantity: 1), streamId: stream, in: store, partition: "acme")
            let checkedOut = try await handler.handle(.checkOut(orderId: "order-1"), streamId: stream, in: store, partition: "acme")
            #expect(checkedOut.newEvents == [.checkedOut(CartCheckedOut(orderId: "order-1", total: 40))])
            #expect(checkedOut.nextExpectedVersion == 5)
            guard case .checkedOut(let cart, let orderId, let total) = checkedOut.newState else {
                Issue.record("expected a checked-out cart, got \(checkedOut.newState)")
                return
            }
            #expect(total == 40)
            #expect(orderId == "order-1")
            #expect(cart.items.map(\.quantity) == [1, 1])
            #expect(cart.items.map(\.sku) == ["SKU-123", "SKU-456"])

            let folded = try await store.aggregateStream(
                stream, options: AggregateStreamOptions(partition: "acme"), evolve: CartState.evolve, initialState: CartState.initialState
            )
            #expect(folded.state == checkedOut.newState)
        }
    }

    @Test("rejected commands append nothing", arguments: StoreKind.allCases)
    func rejectedCommands(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let handler = CartCommandHandler.carts()
            let stream = cartStreamId("c-2")
            await #expect(throws: CartError.notCreated) {
                try await handler.handle(.addItem(sku: "A", name: "A", unitPrice: 1, quantity: 1), streamId: stream, in: store)
            }
            #expect(try await store.readStream(stream, options: ReadStreamOptions()).streamExists == false)
            try await handler.handle(.create(tenantId: "t", cartId: "c-2", currency: "EUR"), streamId: stream, in: store)
            try await handler.handle(.addItem(sku: "A", name: "A", unitPrice: 10, quantity: 1), streamId: stream, in: store)
            await #expect(throws: CartError.notEnoughItems(sku: "A", inCart: 1, requested: 2)) {
                try await handler.handle(.removeItem(sku: "A", quantity: 2), streamId: stream, in: store)
            }
            try await handler.handle(.checkOut(orderId: "o"), streamId: stream, in: store)
            await #expect(throws: CartError.notActive(status: "checked out")) {
                try await handler.handle(.addItem(sku: "B", name: "B", unitPrice: 1, quantity: 1), streamId: stream, in: store)
            }
            #expect(try await store.readStream(stream, options: ReadStreamOptions()).currentStreamVersion == 3)
        }
    }

    @Test("a conflicting command is retried and succeeds on the re-read state", arguments: StoreKind.allCases)
    func retryOnConflict(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let stream = cartStreamId("c-3")
            let base = CartCommandHandler.carts()
            try await base.handle(.create(tenantId: "t", cartId: "c-3", currency: "EUR"), streamId: stream, in: store)

            // Another writer slips an item in between the handler's read and its append, once.
            let racing = RacingStore(base: store, stream: stream)
            let handler = CartCommandHandler.carts()
            let result = try await handler.handle(.addItem(sku: "A", name: "A", unitPrice: 7, quantity: 1), streamId: stream, in: racing)
            #expect(result.attempts == 2)
            #expect(result.nextExpectedVersion == 3)
            #expect(result.newState.details?.items.map(\.sku) == ["B", "A"], "the retry decided on the state that includes B")

            racing.rearm()
            let noRetry = CartCommandHandler(decider: CartState.decider, options: .init(retry: .none))
            await #expect(
                throws: EventStoreError.retriesExhausted(streamId: stream, partition: defaultPartition, attempts: 1, expected: .exact(3), actual: 4)
            ) {
                try await noRetry.handle(.addItem(sku: "C", name: "C", unitPrice: 1, quantity: 1), streamId: stream, in: racing)
            }
        }
    }

    @Test("an explicit expected version is never retried", arguments: StoreKind.allCases)
    func explicitVersionNotRetried(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let handler = CartCommandHandler.carts()
            let stream = cartStreamId("c-4")
            try await handler.handle(.create(tenantId: "t", cartId: "c-4", currency: "EUR"), streamId: stream, in: store)
            await #expect(throws: EventStoreError.versionConflict(streamId: stream, partition: defaultPartition, expected: .exact(0), actual: 1)) {
                try await handler.handle(
                    .addItem(sku: "A", name: "A", unitPrice: 1, quantity: 1), streamId: stream, in: store, expectedVersion: .exact(0)
                )
            }
            #expect(try await store.readStream(stream, options: ReadStreamOptions()).currentStreamVersion == 1)
        }
    }
}

/// A store that, once armed, lets another writer append an item "B" just before the next append.
final class RacingStore: EventStore {
    private let base: any EventStore
    private let stream: String
    private let armed = Mutex(true)

    init(base: any EventStore, stream: String) {
        self.base = base
        self.stream = stream
    }

    func rearm() { armed.withLock { $0 = true } }

    func appendToStream(_ streamId: String, messages: [ProposedMessage], options: AppendOptions) async throws -> AppendResult {
        let fire = armed.withLock { armed in
            defer { armed = false }
            return armed
        }
        if fire {
            try await CartCommandHandler.carts().handle(
                .addItem(sku: "B", name: "B", unitPrice: 1, quantity: 1), streamId: stream, in: base, partition: options.partition
            )
        }
        return try await base.appendToStream(streamId, messages: messages, options: options)
    }

    func readStream(_ streamId: String, options: ReadStreamOptions) async throws -> ReadStreamResult<RecordedMessage> {
        try await base.readStream(streamId, options: options)
    }

    func readAll(after checkpoint: GlobalCheckpoint, options: ReadAllOptions) async throws -> GlobalLogBatch {
        try await base.readAll(after: checkpoint, options: options)
    }

    func logHolds(scope: PartitionScope) async throws -> [LogHold] { try await base.logHolds(scope: scope) }
}
