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

/// The scheduler and workers in this process, against the real server.
@Suite("Projection fleet", .exclusive, .timeLimit(.minutes(3)))
struct FleetTests {
    @Test("3 workers drain the jobs of 3 tenants; every carts row equals its stream's fold; no job left")
    func workersDrainJobs() async throws {
        try await withCartsSchema(poolSize: 30) { schema in
            let streams = try await writeCarts(schema.store, tenants: ["a", "b", "c"], cartsPerTenant: 12)
            try await withFleet(schema, workers: 3) { scheduler, _ in
                try await waitForIdleQueue(schema, scheduler: scheduler)
                try await waitUntil("workers flushed their counts with their heartbeats") {
                    try await schema.count("SELECT coalesce(sum(completed), 0)::bigint FROM ef_job_stats") > 0
                }
            }
            try await expectRowsMatchStreams(schema, streams: streams)
            #expect(try await schema.count("SELECT count(*) FROM ef_jobs") == 0)
        }
    }

    @Test("a worker and a scheduler report ready while their statements reach the database, and not while they cannot")
    func readiness() async throws {
        try await withCartsSchema { schema in
            try await withFleet(schema, workers: 1) { scheduler, workers in
                let worker = try #require(workers.first)
                let scheduler = try #require(scheduler)
                try await waitUntil(timeout: .seconds(30), "both ready") { worker.isReady && scheduler.isReady }
                // Another session holds the tables of heartbeats and leases: those statements wait.
                let blocker = try await schema.connect()
                do {
                    try await blocker.query("BEGIN", logger: TestDatabase.logger)
                    try await blocker.query(
                        "LOCK TABLE \(schema.schema.ef_workers), \(schema.schema.ef_subscriptions) IN ACCESS EXCLUSIVE MODE",
                        logger: TestDatabase.logger
                    )
                    try await waitUntil(timeout: .seconds(60), "neither is ready") { !worker.isReady && !scheduler.isReady }
                    try await blocker.query("ROLLBACK", logger: TestDatabase.logger)
                } catch {
                    try? await blocker.close()
                    throw error
                }
                try await blocker.close()
                try await waitUntil(timeout: .seconds(30), "both ready again") { worker.isReady && scheduler.isReady }
            }
        }
    }

    @Test("a worker leaves the jobs of a projection it does not run untouched, and the monitor shows them as run by no live worker")
    func projectionNoWorkerRuns() async throws {
        try await withCartsSchema { schema in
            let queue = JobQueue(store: schema.store)
            // Another release's projection, registered by a worker that is gone: its jobs come first in
            // claim order, and its backfill (which the starting worker advances) gives it one per cart.
            try await queue.enqueue((1...3).map { JobRequest(projection: "other", partition: "a", streamId: "o\($0)") })
            let streams = try await writeCarts(schema.store, tenants: ["a"], cartsPerTenant: 4)
            try await queue.registerProjections([ProjectionRegistration(name: "other", eventTypes: ["NoSuchEventType"])])
            try await withFleet(schema, workers: 1) { scheduler, _ in
                try await scheduler?.whenCaughtUp()
                try await waitUntil(timeout: .seconds(60), "the carts jobs are done") {
                    try await schema.count("SELECT count(*) FROM ef_jobs WHERE projection = 'carts'") == 0
                }
                #expect(try await schema.count("SELECT count(*) FROM ef_jobs WHERE projection = 'other' AND state = 'ready' AND attempt = 0") == 7)
                let unrunnable = try await FleetStatus.read(from: schema.store).unrunnable
                #expect(unrunnable.map { "\($0.projection) \($0.lane.rawValue) \($0.ready)" } == ["other backfill 4", "other live 3"])
            }
            try await expectRowsMatchStreams(schema, streams: streams)
        }
    }

    @Test("a poison stream ends dead after its attempts; every other stream is projected; retry runs it again")
    func poisonStream() async throws {
        try await withCartsSchema(poolSize: 20) { schema in
            // Registered already, its backfill done (as in a running system), so the jobs come from
            // the scheduler with its attempts rather than from a backfill.
            let queue = JobQueue(store: schema.store)
            try await queue.registerProjections([ProjectionRegistration(name: "carts", eventTypes: CartEvent.eventTypes)])
            try await queue.advanceBackfills()
            let streams = try await writeCarts(schema.store, tenants: ["a"], cartsPerTenant: 5)
            try await schema.store.appendToStream(cartStreamId("poison"), events: [
                CartEvent.created(CartCreated(tenantId: "a", cartId: "poison", currency: "EUR")),
                CartEvent.itemAdded(ItemAddedToCart(sku: "POISON", name: "p", unitPrice: 1, quantity: 1)),
            ], options: AppendOptions(partition: "a"))
            var schedulerConfiguration = fastScheduler()
            schedulerConfiguration.maxAttempts = 3
            try await withFleet(schema, workers: 2, registry: poisonedRegistry(), scheduler: schedulerConfiguration) { scheduler, _ in
                try await waitUntil(timeout: .seconds(30), "the poison job is dead") {
                    try await schema.count("SELECT count(*) FROM ef_jobs WHERE state = 'dead'") == 1
                }
                try await waitForIdleQueue(schema, scheduler: scheduler)
                let dead = try #require(try await queue.deadJobs().first)
                #expect(dead.streamId == cartStreamId("poison"))
                #expect(dead.attempts == 3)
                #expect(dead.errors.contains("poisoned"))
                #expect(try await queue.retryDead(.ids([dead.id])) == 1)
                try await waitUntil(timeout: .seconds(30), "the retried job is dead again") {
                    try await queue.deadJobs().first?.errors.components(separatedBy: "poisoned").count ?? 0 > 3
                }
            }
            try await expectRowsMatchStreams(schema, streams: streams)
        }
    }

    @Test("a poison job in a shared transaction fails alone: the other jobs of its group complete, each failure recorded once")
    func poisonInSharedTransaction() async throws {
        try await withCartsSchema(poolSize: 20) { schema in
            let streams = try await writeCarts(schema.store, tenants: ["a"], cartsPerTenant: 7)
            try await schema.store.appendToStream(cartStreamId("poison"), events: [
                CartEvent.created(CartCreated(tenantId: "a", cartId: "poison", currency: "EUR")),
                CartEvent.itemAdded(ItemAddedToCart(sku: "POISON", name: "p", unitPrice: 1, quantity: 1)),
            ], options: AppendOptions(partition: "a"))
            let queue = JobQueue(store: schema.store)
            try await queue.registerProjections([ProjectionRegistration(name: "carts", eventTypes: CartEvent.eventTypes)])
            // All eight ready before the worker starts, so that its first claim takes them into one group.
            let requests = (streams + [("a", cartStreamId("poison"))]).map { JobRequest(projection: "carts", partition: $0.0, streamId: $0.1, maxAttempts: 1) }
            #expect(try await queue.enqueue(requests) == 8)
            var configuration = fastWorker()
            configuration.concurrency = 8
            configuration.jobsPerTransaction = 8
            let worker = ProjectionWorker(configuration: configuration, store: schema.store, registry: try poisonedRegistry())
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await worker.run() }
                try await waitUntil(timeout: .seconds(30), "the poison job is dead and the others are done") {
                    let dead = try await schema.count("SELECT count(*) FROM ef_jobs WHERE state = 'dead'")
                    let others = try await schema.count("SELECT count(*) FROM ef_jobs WHERE state <> 'dead'")
                    return dead == 1 && others == 0
                }
                group.cancelAll()
            }
            let dead = try #require(try await queue.deadJobs().first)
            #expect(dead.streamId == cartStreamId("poison"))
            #expect(dead.errors.components(separatedBy: "poisoned").count == 2, "one failure, recorded once: \(dead.errors)")
            try await expectRowsMatchStreams(schema, streams: streams)
        }
    }

    @Test("claimed jobs share transactions by projection, at most the group size in each")
    func transactionGroups() {
        func job(_ id: Int64, _ projection: String) -> Job {
            Job(id: id, projection: projection, partition: "p", streamId: "s\(id)", lane: .live, attempt: 1, maxAttempts: 3, fencingToken: 1)
        }
        let jobs = [job(1, "a"), job(2, "b"), job(3, "a"), job(4, "a"), job(5, "b"), job(6, "a")]
        #expect(ProjectionWorker.transactionGroups(jobs, size: 3).map { $0.map(\.id) } == [[1, 3, 4], [6], [2, 5]])
        #expect(ProjectionWorker.transactionGroups(jobs, size: 1).map { $0.map(\.id) } == [[1], [3], [4], [6], [2], [5]])
        #expect(ProjectionWorker.transactionGroups([], size: 8).isEmpty)
    }

    @Test("when the leading scheduler stops, another takes over and nothing is missed")
    func schedulerFailover() async throws {
        try await withCartsSchema(poolSize: 30) { schema in
            let first = FleetScheduler(configuration: fastScheduler(), store: schema.store)
            let second = FleetScheduler(configuration: fastScheduler(), store: schema.store)
            let before = try await writeCarts(schema.store, tenants: ["a"], cartsPerTenant: 3)
            // The leader runs on its own so it can be stopped alone; its lease then has to expire.
            let leader = Task { try await first.run() }
            try await waitUntil("the first scheduler leads") { first.isLeader }
            let after = try await withFleet(schema, workers: 1, schedulers: [second]) { scheduler, _ in
                try await first.whenCaughtUp()
                #expect(!second.isLeader, "the lease keeps the second scheduler on standby")
                leader.cancel()
                _ = await leader.result
                let after = try await writeCarts(schema.store, tenants: ["b"], cartsPerTenant: 3)
                try await waitUntil(timeout: .seconds(15), "the second scheduler takes over") { second.isLeader }
                try await waitForIdleQueue(schema, scheduler: scheduler)
                return after
            }
            try await expectRowsMatchStreams(schema, streams: before + after)
        }
    }

    @Test("graceful shutdown drains: no job stays running and none is lost")
    func gracefulDrain() async throws {
        try await withCartsSchema(poolSize: 20) { schema in
            let streams = try await writeCarts(schema.store, tenants: ["a", "b"], cartsPerTenant: 10)
            let scheduler = FleetScheduler(configuration: fastScheduler(), store: schema.store)
            var configuration = fastWorker()
            configuration.batchSize = 1
            let worker = ProjectionWorker(configuration: configuration, store: schema.store, registry: try CartsReadModel.registry())
            let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: [scheduler, worker], logger: TestDatabase.logger))
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                try await waitUntil("jobs are running") { !worker.inFlight.isEmpty }
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
            #expect(try await schema.count("SELECT count(*) FROM ef_jobs WHERE state = 'running'") == 0)
            #expect(try await schema.count("SELECT count(*) FROM ef_workers") == 0, "the worker deregistered")
            // Whatever was not finished is ready for the next worker; finishing it makes every row right.
            try await withFleet(schema, workers: 1) { scheduler, _ in
                try await waitForIdleQueue(schema, scheduler: scheduler)
            }
            try await expectRowsMatchStreams(schema, streams: streams)
        }
    }
}

// MARK: - Helpers

func fastScheduler() -> FleetScheduler.Configuration {
    var configuration = FleetScheduler.Configuration()
    configuration.leaseDuration = .seconds(5)
    configuration.maintenanceInterval = .milliseconds(200)
    configuration.heartbeatTimeout = .seconds(3)
    return configuration
}

func fastWorker() -> ProjectionWorker.Configuration {
    var configuration = ProjectionWorker.Configuration()
    configuration.concurrency = 4
    configuration.pollInterval = .milliseconds(50)
    configuration.heartbeatInterval = .milliseconds(300)
    configuration.retryBackoff = RetryPolicy(maxRetries: .max, initialDelay: .milliseconds(10), maxDelay: .milliseconds(50))
    configuration.drainTimeout = .seconds(5)
    return configuration
}

/// Runs schedulers and `workers` workers (on `store`, by default the schema's) for the duration of `body`.
func withFleet<T: Sendable>(
    _ schema: TestSchema,
    workers: Int,
    registry: ProjectionRegistry? = nil,
    scheduler: FleetScheduler.Configuration = fastScheduler(),
    schedulers explicit: [FleetScheduler]? = nil,
    store: PostgresEventStore? = nil,
    _ body: @Sendable (FleetScheduler?, [ProjectionWorker]) async throws -> T
) async throws -> T {
    let registry = try registry ?? CartsReadModel.registry()
    let store = store ?? schema.store
    let schedulers = explicit ?? [FleetScheduler(configuration: scheduler, store: store)]
    let workerList = (0..<workers).map { _ in ProjectionWorker(configuration: fastWorker(), store: store, registry: registry) }
    return try await withThrowingTaskGroup(of: T?.self) { group in
        for service in schedulers { group.addTask { try await service.run(); return nil } }
        for worker in workerList { group.addTask { try await worker.run(); return nil } }
        defer { group.cancelAll() }
        // A worker enqueues the backfill of a projection new to the fleet when it starts: until then
        // the queue can look idle with events not yet turned into jobs.
        try await waitUntil("the workers have started") { workerList.allSatisfy(\.isStarted) }
        return try await body(schedulers.first, workerList)
    }
}

/// Waits until the scheduler has turned every event into jobs and no job is ready or running.
func waitForIdleQueue(_ schema: TestSchema, scheduler: FleetScheduler?) async throws {
    try await scheduler?.whenCaughtUp()
    try await waitUntil(timeout: .seconds(60), "the queue is drained") {
        try await schema.count("SELECT count(*) FROM ef_jobs WHERE state IN ('ready', 'running')") == 0
    }
}

/// Every stream has a carts row equal to its fold.
func expectRowsMatchStreams(_ schema: TestSchema, streams: [(String, String)]) async throws {
    let mismatches = try await cartRowsNotMatchingStreams(schema, streams: streams)
    #expect(mismatches.isEmpty, "rows differing from their streams: \(mismatches)")
}

struct Poisoned: Error, CustomStringConvertible {
    var description: String { "poisoned item" }
}

/// The carts projection, except that its evolve throws on the item "POISON".
func poisonedRegistry() throws -> ProjectionRegistry {
    ProjectionRegistry([
        try SnapshotProjection<CartState, CartEvent>(
            name: "carts", table: "carts_v1", keyColumns: ["tenant_id", "cart_id", "partition"],
            key: { recorded, partition in [.text(partition), .text(CartsReadModel.cartId(fromStreamId: recorded.message.streamId)), .text(partition)] },
            evolve: { state, event in
                if case .itemAdded(let added) = event, added.sku == "POISON" { throw Poisoned() }
                return CartState.evolve(state, event)
            },
            initialState: CartState.initialState
        )
    ])
}
