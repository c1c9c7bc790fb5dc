import CartsExample
import EventFleetCore
import EventFleetJobs
import EventFleetPostgres
import EventFleetProjections
import EventFleetTestSupport
import Foundation
import PostgresNIO
import ServiceLifecycle
import Testing

/// `waitForProjection` and the command handler's option: a caller reads its own write from the
/// projection's row, or learns why it cannot.
@Suite("Read-your-writes", .exclusive, .timeLimit(.minutes(3)))
struct ReadYourWritesTests {
    @Test("after waitForProjection the carts row shows the append, woken by the workers' notifications or by polling", arguments: [true, false])
    func waitShowsTheAppend(listening: Bool) async throws {
        try await withCartsSchema(poolSize: 20) { schema in
            // Workers of a store that notifies say when they commit rows; the listener hears it.
            let store = schema.store.notifying(on: PostgresEventStore.Options.defaultNotifyChannel)
            try await withFleet(schema, workers: 1, store: store) { _, _ in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    if listening { group.addTask { try await ProjectionWaitListener(store: store).run() } }
                    defer { group.cancelAll() }
                    let handler = CartCommandHandler.carts()
                    for tenant in ["a", "b"] {
                        let stream = cartStreamId("\(tenant)-1")
                        var version: Int64 = 0
                        for command in [CartCommand.create(tenantId: tenant, cartId: "\(tenant)-1", currency: "EUR"),
                                        .addItem(sku: "A", name: "a", unitPrice: 3, quantity: 2)] {
                            let result = try await handler.handle(command, streamId: stream, in: store, partition: tenant)
                            let token = try #require(result.token)
                            #expect(token == PositionToken(partition: tenant, streamId: stream, streamPosition: result.nextExpectedVersion,
                                                           globalPosition: try #require(result.lastGlobalPosition)))
                            try await store.waitForProjection("carts", token: token, timeout: .seconds(30))
                            // Shown means the row is there, at the append's position, at once.
                            version = try await schema.count(
                                "SELECT last_stream_position FROM carts WHERE partition = \(tenant) AND stream_id = \(stream)"
                            )
                            #expect(version == token.streamPosition)
                        }
                        #expect(try await schema.count("SELECT total FROM carts WHERE partition = \(tenant) AND stream_id = \(stream)") == 6)
                    }
                }
            }
        }
    }

    @Test("workers of a notifying store say, on eventfleet_projected, each stream whose row they committed")
    func workersNotifyProjectedStreams() async throws {
        try await withCartsSchema(poolSize: 20) { schema in
            // Behind a transaction-mode pooler without listen_url nothing can LISTEN.
            if schema.configuration.pooler == .transaction, schema.configuration.listenURL == nil { return }
            let store = schema.store.notifying(on: PostgresEventStore.Options.defaultNotifyChannel)
            let streams = [("a", cartStreamId("n-1")), ("weird:partition", cartStreamId("n:2"))]
            let expected = Set(streams.map { "\($0.0.utf8.count):\($0.0)\($0.1)" })
            let listener = try await schema.connect()
            let (listening, started) = AsyncStream.makeStream(of: Void.self)
            do {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        try await listener.listen(on: PostgresEventStore.projectedChannel) { notifications in
                            started.yield()
                            var seen = Set<String>()
                            for try await notification in notifications {
                                seen.insert(notification.payload)
                                if seen.isSuperset(of: expected) { return }
                            }
                        }
                    }
                    group.addTask {
                        try await Task.sleep(for: .seconds(60))
                        throw TimedOut(description: "no notification for each projected stream")
                    }
                    for await _ in listening { break }
                    try await withFleet(schema, workers: 1, store: store) { _, _ in
                        for (tenant, stream) in streams {
                            let result = try await store.appendToStream(stream, events: [
                                CartEvent.created(CartCreated(tenantId: tenant, cartId: stream, currency: "EUR")),
                            ], options: AppendOptions(partition: tenant))
                            try await store.waitForProjection("carts", token: result.token, timeout: .seconds(30))
                        }
                    }
                    // The listener saw both streams (or the deadline threw).
                    try await group.next()
                    group.cancelAll()
                }
            } catch {
                try? await listener.close()
                throw error
            }
            try await listener.close()
        }
    }

    @Test("the command handler's option returns once the named projection shows the command's events")
    func commandHandlerWaits() async throws {
        try await withCartsSchema(poolSize: 20) { schema in
            try await withFleet(schema, workers: 1) { _, _ in
                var options = CartCommandHandler.Options(streamType: "cart")
                options.waitForProjections = ["carts"]
                options.projectionTimeout = .seconds(30)
                let handler = CartCommandHandler(decider: CartState.decider, options: options)
                let stream = cartStreamId("w-1")
                try await handler.handle(.create(tenantId: "w", cartId: "w-1", currency: "EUR"), streamId: stream, in: schema.store, partition: "w")
                try await handler.handle(.addItem(sku: "A", name: "a", unitPrice: 7, quantity: 1), streamId: stream, in: schema.store, partition: "w")
                #expect(try await schema.count("SELECT total FROM carts WHERE partition = 'w' AND stream_id = \(stream)") == 7)
            }
        }
    }

    @Test("an append of types the projection does not handle is shown at once, with no job for it")
    func unhandledTypesAreShown() async throws {
        try await withCartsSchema { schema in
            let queue = JobQueue(store: schema.store)
            try await queue.registerProjections([ProjectionRegistration(try CartsReadModel.projection())])
            let result = try await schema.store.appendToStream("cart-x", messages: [message("SomethingElse")], options: AppendOptions(partition: "t"))
            try await schema.store.waitForProjection("carts", token: result.token, timeout: .zero)
        }
    }

    @Test("with no worker the wait times out, naming the projection, how far its row is and the stream's job")
    func timesOutWithoutWorkers() async throws {
        try await withCartsSchema { schema in
            let queue = JobQueue(store: schema.store)
            try await queue.registerProjections([ProjectionRegistration(try CartsReadModel.projection())])
            try await queue.advanceBackfills()
            let handler = CartCommandHandler.carts()
            let created = try await handler.handle(.create(tenantId: "t", cartId: "1", currency: "EUR"), streamId: cartStreamId("1"), in: schema.store, partition: "t")
            let token = try #require(created.token)
            // No scheduler either: no job.
            let error = try await #require(throws: EventStoreError.self) {
                try await schema.store.waitForProjection("carts", token: token, timeout: .milliseconds(50))
            }
            #expect(error == .projectionTimedOut(projection: "carts", token: token, projectedPosition: nil, timeout: .milliseconds(50), job: nil))
            #expect(error.description.contains("is a scheduler running?"), "\(error)")
            // A scheduler makes the job; no worker runs it.
            let scheduler = FleetScheduler(configuration: fastScheduler(), store: schema.store)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await scheduler.run() }
                defer { group.cancelAll() }
                try await scheduler.whenCaughtUp()
                let again = try await #require(throws: EventStoreError.self) {
                    try await schema.store.waitForProjection("carts", token: token, timeout: .milliseconds(50))
                }
                #expect(again == .projectionTimedOut(projection: "carts", token: token, projectedPosition: nil, timeout: .milliseconds(50), job: "ready"))
            }
        }
    }

    @Test("a dead job for the stream fails the wait at once, with its attempts and last error")
    func deadJobFailsTheWait() async throws {
        try await withCartsSchema(poolSize: 20) { schema in
            let queue = JobQueue(store: schema.store)
            try await queue.registerProjections([ProjectionRegistration(try CartsReadModel.projection())])
            try await queue.advanceBackfills()
            let appended = try await schema.store.appendToStream(cartStreamId("poison"), events: [
                CartEvent.created(CartCreated(tenantId: "a", cartId: "poison", currency: "EUR")),
                CartEvent.itemAdded(ItemAddedToCart(sku: "POISON", name: "p", unitPrice: 1, quantity: 1)),
            ], options: AppendOptions(partition: "a"))
            var schedulerConfiguration = fastScheduler()
            schedulerConfiguration.maxAttempts = 2
            try await withFleet(schema, workers: 1, registry: poisonedRegistry(), scheduler: schedulerConfiguration) { _, _ in
                try await waitUntil(timeout: .seconds(30), "the poison job is dead") {
                    try await schema.count("SELECT count(*) FROM ef_jobs WHERE state = 'dead'") == 1
                }
                let error = try await #require(throws: EventStoreError.self) {
                    try await schema.store.waitForProjection("carts", token: appended.token, timeout: .seconds(60))
                }
                guard case .projectionFailed("carts", appended.token, 2, let last) = error else {
                    Issue.record("expected the dead job's failure, got \(error)")
                    return
                }
                #expect(last.contains("poisoned"))
            }
        }
    }

    @Test("unknown projections, projections without rows and bad arguments are typed errors")
    func refusals() async throws {
        try await withCartsSchema { schema in
            let queue = JobQueue(store: schema.store)
            try await queue.registerProjections([ProjectionRegistration(name: "audit", eventTypes: nil)])
            let result = try await schema.store.appendToStream("s", messages: [message("A")], options: AppendOptions(partition: "t"))
            let unknown = try await #require(throws: EventStoreError.self) {
                try await schema.store.waitForProjection("nope", token: result.token, timeout: .seconds(1))
            }
            guard case .projectionNotAwaitable("nope", let reason) = unknown else { Issue.record("\(unknown)"); return }
            #expect(reason.contains("no projection of that name is registered"))
            let rowless = try await #require(throws: EventStoreError.self) {
                try await schema.store.waitForProjection("audit", token: result.token, timeout: .seconds(1))
            }
            guard case .projectionNotAwaitable("audit", let why) = rowless else { Issue.record("\(rowless)"); return }
            #expect(why.contains("keeps no row per stream"))
            await #expect(throws: EventStoreError.invalidArgument(field: "timeout", reason: "must not be negative (got -1.0 seconds)")) {
                try await schema.store.waitForProjection("carts", token: result.token, timeout: .seconds(-1))
            }
            var bad = result.token
            bad.streamId = ""
            await #expect(throws: EventStoreError.self) { try await schema.store.waitForProjection("carts", token: bad, timeout: .seconds(1)) }
            // The in-memory store runs no projections.
            let memory = InMemoryEventStore()
            let local = try await memory.appendToStream("s", messages: [message("A")], options: AppendOptions())
            await #expect(throws: EventStoreError.projectionNotAwaitable(projection: "carts", reason: "InMemoryEventStore runs no projections")) {
                try await memory.waitForProjection("carts", token: local.token, timeout: .seconds(1))
            }
        }
    }
}
