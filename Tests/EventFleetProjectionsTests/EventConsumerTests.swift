import CartsExample
import EventFleetCore
import EventFleetPostgres
import EventFleetProjections
import EventFleetTestSupport
import Foundation
import PostgresNIO
import Synchronization
import ServiceLifecycle
import Testing

@Suite("Event consumer", .exclusive)
struct EventConsumerTests {
    @Test("the seed's consumer cases through a running consumer")
    func seedConsumerCases() async throws {
        try await withCartsSchema { schema in
            let store = schema.store
            let consumer = EventConsumer(
                configuration: consumerConfiguration("carts"), store: store, registry: try CartsReadModel.registry()
            )
            try await withRunning([consumer]) {
                let stream = cartStreamId("seed")
                try await store.appendToStream(stream, events: [CartEvent.created(CartCreated(tenantId: "default", cartId: "seed", currency: "EUR"))])
                try await consumer.whenCaughtUp()
                var row = try #require(try await cartRow(schema, stream: stream))
                #expect(row.currency == "EUR")
                #expect(!row.isCheckedOut)
                #expect(!row.isCancelled)
                #expect(row.items.isEmpty)

                try await store.appendToStream(stream, events: [CartEvent.itemAdded(ItemAddedToCart(sku: "A", name: "Apple", unitPrice: 3, quantity: 2))])
                try await consumer.whenCaughtUp()
                row = try #require(try await cartRow(schema, stream: stream))
                #expect(row.items == [CartItem(sku: "A", name: "Apple", unitPrice: 3, quantity: 2)])

                try await store.appendToStream(stream, events: [
                    CartEvent.itemAdded(ItemAddedToCart(sku: "B", name: "Bread", unitPrice: 5, quantity: 1)),
                    CartEvent.checkedOut(CartCheckedOut(orderId: "o-1", total: 11)),
                ])
                try await consumer.whenCaughtUp()
                row = try #require(try await cartRow(schema, stream: stream))
                #expect(row.isCheckedOut)
                #expect(row.items.map(\.sku) == ["A", "B"])
                #expect(row.orderId == "o-1")
                #expect(row.total == 11)
                let version = try await store.streamVersion(stream)
                #expect(row.lastStreamPosition == version)

                // A replay (the runner over the same stream) changes nothing.
                let replay = try await ProjectionRunner(store: store).projectEvents(try CartsReadModel.projection(), streamId: stream)
                #expect(replay.eventsProcessed == 0)
                #expect(try await cartRow(schema, stream: stream) == row)
            }
        }
    }

    @Test("a consumer's transactions end on the server when they idle longer than the lease")
    func transactionsCarryTheLeaseAsIdleTimeout() async throws {
        try await withCartsSchema { schema in
            let seen = Mutex<[String]>([])
            let probe = CustomProjection(name: "probe") { _, context in
                let rows = try await context.query("SELECT current_setting('idle_in_transaction_session_timeout')")
                let setting = try rows.first?.decode(String.self) ?? "none"
                seen.withLock { $0.append(setting) }
            }
            var configuration = consumerConfiguration("probe")
            configuration.leaseDuration = .seconds(7)
            let consumer = EventConsumer(configuration: configuration, store: schema.store, registry: ProjectionRegistry([probe]))
            try await withRunning([consumer]) {
                try await schema.store.appendToStream(cartStreamId("x"), events: [CartEvent.created(CartCreated(tenantId: "a", cartId: "x", currency: "EUR"))])
                try await consumer.whenCaughtUp()
            }
            #expect(seen.withLock { $0 } == ["7s"])
        }
    }

    @Test("an append that commits after later appends is still projected")
    func outOfOrderCommit() async throws {
        try await withCartsSchema { schema in
            let store = schema.store
            let consumer = EventConsumer(configuration: consumerConfiguration("carts"), store: store, registry: try CartsReadModel.registry())
            try await withRunning([consumer]) {
                let slow = try await schema.connect()
                try await slow.query("BEGIN", logger: TestDatabase.logger)
                try await store.appendToStream(
                    cartStreamId("slow"), messages: [try ProposedMessage(CartEvent.created(CartCreated(tenantId: "default", cartId: "slow", currency: "EUR")))],
                    options: AppendOptions(), connection: slow
                )
                try await store.appendToStream(cartStreamId("fast"), events: [CartEvent.created(CartCreated(tenantId: "default", cartId: "fast", currency: "USD"))])
                try await slow.query("COMMIT", logger: TestDatabase.logger)
                try await slow.close()
                try await waitUntil("both carts projected") { try await cartRows(schema).count == 2 }
                let rows = try await cartRows(schema)
                #expect(Set(rows.map(\.cartId)) == ["slow", "fast"])
            }
        }
    }

    @Test("a consumer scoped to tenant A never sees or writes tenant B")
    func tenantIsolation() async throws {
        try await withCartsSchema { schema in
            let store = schema.store
            let seen = Mutex<[String]>([])
            var registry = try CartsReadModel.registry()
            registry.subscribeToAll(name: "spy") { message, _ in seen.withLock { $0.append(message.partition) } }
            let consumer = EventConsumer(configuration: consumerConfiguration("tenant-a", scope: .partition("a")), store: store, registry: registry)
            try await withRunning([consumer]) {
                for tenant in ["a", "b", "a", "b"] {
                    let id = UUID().uuidString
                    try await store.appendToStream(
                        cartStreamId(id), events: [CartEvent.created(CartCreated(tenantId: tenant, cartId: id, currency: "EUR"))],
                        options: AppendOptions(partition: tenant)
                    )
                }
                try await consumer.whenCaughtUp()
                #expect(try await cartRows(schema, partition: "a").count == 2)
                #expect(try await cartRows(schema, partition: "b").isEmpty)
                #expect(seen.withLock { $0 } == ["a", "a"])
            }
        }
    }

    @Test("two instances: one is active, the other takes over when it stops")
    func standbyTakesOver() async throws {
        try await withCartsSchema { schema in
            let store = schema.store
            // A lease long enough that a starved test machine does not let it lapse between renewals.
            func configuration() -> EventConsumer.Configuration {
                var configuration = consumerConfiguration("pair")  // each with its own instance id
                configuration.leaseDuration = .seconds(10)
                return configuration
            }
            let first = EventConsumer(configuration: configuration(), store: store, registry: try CartsReadModel.registry())
            let second = EventConsumer(configuration: configuration(), store: store, registry: try CartsReadModel.registry())
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await first.run() }
                try await waitUntil("the first instance is active") { first.isActive }
                group.addTask { try await second.run() }
                try await store.appendToStream(cartStreamId("x"), events: [CartEvent.created(CartCreated(tenantId: "default", cartId: "x", currency: "EUR"))])
                try await first.whenCaughtUp()
                #expect(!second.isActive, "the lease keeps the second instance on standby")
                group.cancelAll()
            }
            // Cancelled (not shut down gracefully), the instances could not release the lease: a new
            // one takes over when it expires and starts from the checkpoint the first one left.
            let third = EventConsumer(configuration: configuration(), store: store, registry: try CartsReadModel.registry())
            try await withRunning([third]) {
                try await store.appendToStream(cartStreamId("y"), events: [CartEvent.created(CartCreated(tenantId: "default", cartId: "y", currency: "EUR"))])
                try await third.whenCaughtUp(timeout: .seconds(60))
                #expect(third.isActive)
                #expect(try await cartRows(schema).map(\.cartId) == ["x", "y"])
            }
        }
    }

    @Test("fencing rejects the stale instance's batch after another instance took over")
    func fencing() async throws {
        try await withCartsSchema { schema in
            let store = schema.store
            try await schema.execute("CREATE TABLE applied (stream_id text, position bigint, instance text)")
            let gate = Gate()
            func registry(_ instance: String, blockOn blocker: Gate?) -> ProjectionRegistry {
                var registry = ProjectionRegistry()
                registry.subscribeToAll(name: "record") { message, context in
                    try await context.execute("INSERT INTO \(try context.table("applied")) VALUES (\(message.streamId), \(message.streamPosition), \(instance))")
                    await blocker?.wait()
                }
                return registry
            }
            var staleConfiguration = consumerConfiguration("fenced")
            staleConfiguration.leaseDuration = .seconds(60)
            let stale = EventConsumer(configuration: staleConfiguration, store: store, registry: registry("stale", blockOn: gate))
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await stale.run() }
                try await waitUntil("the stale instance is active") { stale.isActive }
                try await store.appendToStream("s", messages: [message("E")], options: AppendOptions())
                try await waitUntil("the stale instance is inside its batch") { await gate.waiting > 0 }

                // Its lease runs out (as if it had hung); another instance takes over and processes.
                try await schema.execute("UPDATE ef_subscriptions SET lease_expires_at = now() - interval '1 second'")
                let fresh = EventConsumer(configuration: consumerConfiguration("fenced"), store: store, registry: registry("fresh", blockOn: nil))
                group.addTask { try await fresh.run() }
                try await waitUntil("the fresh instance took over") { fresh.isActive }
                try await fresh.whenCaughtUp()

                await gate.open()
                try await waitUntil("the stale instance stood down") { !stale.isActive }
                let rows = try await schema.rows("SELECT instance FROM applied", as: String.self)
                var instances: [String] = []
                for instance in rows { instances.append(instance) }
                #expect(instances == ["fresh"], "the stale batch was rolled back")
                group.cancelAll()
            }
        }
    }

    @Test("a failing handler is retried, then stops the consumer; nothing after it is skipped", arguments: [EventConsumer.FailurePolicy.Exhausted.stop, .deadLetter])
    func failurePolicy(whenExhausted: EventConsumer.FailurePolicy.Exhausted) async throws {
        try await withCartsSchema { schema in
            let store = schema.store
            let attempts = Mutex(0)
            var registry = try CartsReadModel.registry()
            registry.subscribe(to: ["CartCancelled"], name: "fragile") { message, _ in
                attempts.withLock { $0 += 1 }
                if message.streamId == cartStreamId("bad") { throw FragileError() }
            }
            var configuration = consumerConfiguration("failing")
            configuration.failurePolicy = .init(
                maxAttempts: 3, backoff: RetryPolicy(maxRetries: 10, initialDelay: .milliseconds(1), maxDelay: .milliseconds(5)),
                whenExhausted: whenExhausted
            )
            let consumer = EventConsumer(configuration: configuration, store: store, registry: registry)
            for name in ["before", "bad", "after"] {
                try await store.appendToStream(cartStreamId(name), events: [
                    CartEvent.created(CartCreated(tenantId: "default", cartId: name, currency: "EUR")),
                    CartEvent.cancelled(CartCancelled(reason: "test")),
                ])
            }
            switch whenExhausted {
            case .stop:
                let error = await #expect(throws: ProjectionError.self) { try await consumer.run() }
                guard case .handlerFailed(_, let streamId, _, let position, let tries, _) = error else {
                    Issue.record("expected handlerFailed, got \(String(describing: error))")
                    return
                }
                #expect(streamId == cartStreamId("bad"))
                #expect(position == 2)
                #expect(tries == 3)
                let rows = try await cartRows(schema)
                #expect(rows.map(\.cartId) == ["bad", "before"], "events before the failure committed; the failing one and later did not")
                #expect(rows.map(\.isCancelled) == [false, true])
                // Restarted with a healthy handler, it resumes at the failed event and loses nothing.
                let healed = EventConsumer(configuration: consumerConfiguration("failing"), store: store, registry: try CartsReadModel.registry())
                try await withRunning([healed]) { try await healed.whenCaughtUp() }
                #expect(try await cartRows(schema).map(\.cartId).sorted() == ["after", "bad", "before"])
            case .deadLetter:
                try await withRunning([consumer]) { try await consumer.whenCaughtUp() }
                #expect(try await cartRows(schema).map(\.cartId).sorted() == ["after", "bad", "before"])
                let rows = try await schema.rows(
                    "SELECT stream_id, stream_position, attempts, error FROM ef_dead_letters"
                , as: (String, Int64, Int32, String).self)
                var letters: [(String, Int64, Int32, String)] = []
                for row in rows { letters.append(row) }
                #expect(letters.count == 1)
                #expect(letters.first?.0 == cartStreamId("bad"))
                #expect(letters.first?.1 == 2)
                #expect(letters.first?.2 == 3)
                #expect(letters.first?.3.contains("FragileError") == true)
            }
            #expect(attempts.withLock { $0 } >= 3 + 2)
        }
    }

    @Test("NOTIFY wakes an idle consumer well before its poll interval")
    func notifyWakesConsumer() async throws {
        try await withCartsSchema { schema in
            let store = PostgresEventStore(client: schema.client, configuration: schema.configuration, notifyChannel: "ef_test_\(schema.name)")
            var configuration = consumerConfiguration("notified")
            configuration.pollInterval = .seconds(30)
            configuration.maxPollInterval = .seconds(30)
            configuration.notifyChannel = "ef_test_\(schema.name)"
            let consumer = EventConsumer(configuration: configuration, store: store, registry: try CartsReadModel.registry())
            try await withRunning([consumer]) {
                // Caught up means the consumer has begun a 30-second idle wait: only the
                // notification can end it within the test's time.
                try await consumer.whenCaughtUp()
                try await store.appendToStream(cartStreamId("n"), events: [CartEvent.created(CartCreated(tenantId: "default", cartId: "n", currency: "EUR"))])
                try await waitUntil(timeout: .seconds(10), "projected after the notification") { try await cartRows(schema).count == 1 }
            }
        }
    }
}

struct FragileError: Error {}

/// A gate handlers can wait at until the test opens it.
actor Gate {
    private var isOpen = false
    private var waiters: [CheckedContinuation<Void, Never>] = []
    var waiting: Int { waiters.count }

    func wait() async {
        if isOpen { return }
        await withCheckedContinuation { waiters.append($0) }
    }

    func open() {
        isOpen = true
        for waiter in waiters { waiter.resume() }
        waiters.removeAll()
    }
}

@Suite("Event consumer lifecycle", .exclusive)
struct EventConsumerLifecycleTests {
    @Test("graceful shutdown through a ServiceGroup ends run() and releases the lease for a standby")
    func gracefulShutdown() async throws {
        try await withCartsSchema { schema in
            let consumer = EventConsumer(configuration: consumerConfiguration("graceful"), store: schema.store, registry: try CartsReadModel.registry())
            let group = ServiceGroup(
                configuration: ServiceGroupConfiguration(services: [consumer], logger: TestDatabase.logger)
            )
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                try await waitUntil("active") { consumer.isActive }
                try await schema.store.appendToStream(cartStreamId("g"), events: [CartEvent.created(CartCreated(tenantId: "default", cartId: "g", currency: "EUR"))])
                try await consumer.whenCaughtUp()
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
            #expect(!consumer.isActive)
            let owners = try await schema.rows("SELECT owner FROM ef_subscriptions WHERE subscription_id = 'graceful'", as: String?.self)
            for owner in owners { #expect(owner == nil, "the lease was released, so a standby takes over at once") }
            #expect(try await cartRows(schema).count == 1)
        }
    }
}
