import CartsExample
import EventFleetCore
import EventFleetJobs
import EventFleetPostgres
import EventFleetProjections
import EventFleetTestSupport
import Foundation
import Testing

/// A new projection's backfill survives the death of whoever drives it.
@Suite("Backfills", .exclusive, .timeLimit(.minutes(3)))
struct BackfillTests {
    /// The carts projection as a worker registers it.
    static func registerCarts(_ queue: JobQueue) async throws -> [String] {
        let carts = try #require(try CartsReadModel.registry().streamProjections.first)
        return try await queue.registerProjections([ProjectionRegistration(carts)])
    }

    @Test("a registration records its backfill; when its driver dies after a page, the leading scheduler finishes it, and the monitor shows it until then")
    func schedulerFinishesAnAbandonedBackfill() async throws {
        try await withCartsSchema { schema in
            let streams = try await writeCarts(schema.store, tenants: ["a", "b", "c"], cartsPerTenant: 12)
            let queue = JobQueue(store: schema.store)
            let scheduler = FleetScheduler(configuration: fastScheduler(), store: schema.store)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await scheduler.run() }
                defer { group.cancelAll() }
                // The scheduler is past every event before the projection exists: those events made no
                // jobs for it, and only its backfill can give them some.
                try await scheduler.whenCaughtUp()
                #expect(try await schema.count("SELECT count(*) FROM ef_jobs") == 0)

                #expect(try await Self.registerCarts(queue) == ["carts"])
                // The driver walks one page, then dies.
                let page = try #require(try await queue.advanceBackfill(batchSize: 10))
                #expect(page.streams == 10 && page.total == Int64(streams.count) && !page.isFinished)
                // Registering again (a restarted worker) starts no second backfill.
                #expect(try await Self.registerCarts(queue).isEmpty)

                try await waitUntil(timeout: .seconds(60), "every stream has its backfill job") {
                    try await schema.count("SELECT count(*) FROM ef_jobs WHERE lane = 'backfill'") == Int64(streams.count)
                }
                try await waitUntil("the monitor shows no unfinished backfill") {
                    try await FleetStatus.read(from: schema.store).backfills.isEmpty
                }
                #expect(try await schema.count("SELECT count(*) FROM ef_backfills") == 1)
            }
        }
    }

    @Test("the monitor shows an unfinished backfill with its progress")
    func monitorShowsProgress() async throws {
        try await withCartsSchema { schema in
            let streams = try await writeCarts(schema.store, tenants: ["a"], cartsPerTenant: 7)
            let queue = JobQueue(store: schema.store)
            _ = try await Self.registerCarts(queue)
            _ = try await queue.advanceBackfill(batchSize: 3)
            let backfill = try #require(try await FleetStatus.read(from: schema.store).backfills.first)
            #expect(backfill.projections == ["carts"])
            #expect(backfill.partition == nil)
            #expect(backfill.streams == 3)
            #expect(backfill.total == Int64(streams.count))
        }
    }

    @Test("a worker that starts while a backfill is unfinished finishes it before it claims, and every stream is projected")
    func workerResumesBackfill() async throws {
        try await withCartsSchema { schema in
            let streams = try await writeCarts(schema.store, tenants: ["a", "b"], cartsPerTenant: 10)
            let queue = JobQueue(store: schema.store)
            _ = try await Self.registerCarts(queue)
            _ = try await queue.advanceBackfill(batchSize: 5)
            // No scheduler: only the worker can finish the backfill.
            try await withFleet(schema, workers: 1, schedulers: []) { _, _ in
                #expect(try await FleetStatus.read(from: schema.store).backfills.isEmpty)
                try await waitForIdleQueue(schema, scheduler: nil)
            }
            try await expectRowsMatchStreams(schema, streams: streams)
        }
    }

    @Test("workers that register the same projections at once, listed in other orders, do not deadlock")
    func concurrentRegistrations() async throws {
        try await TestDatabase.withSchema { schema in
            let queue = JobQueue(store: schema.store)
            let names = ["a", "b", "c", "d"]
            try await withThrowingTaskGroup(of: Void.self) { group in
                for round in 0..<16 {
                    let order = round.isMultiple(of: 2) ? names : names.reversed()
                    group.addTask {
                        try await queue.registerProjections(order.map { ProjectionRegistration(name: $0, eventTypes: nil) })
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await schema.count("SELECT count(*) FROM ef_projections") == 4)
            #expect(try await schema.count("SELECT count(*) FROM ef_backfills") == 1, "one backfill, by the first registration")
        }
    }

    @Test("a backfill whose pages another driver takes too (the leading scheduler) returns when it is finished, with every stream counted")
    func backfillSharedWithAnotherDriver() async throws {
        try await withCartsSchema { schema in
            let streams = try await writeCarts(schema.store, tenants: ["a", "b"], cartsPerTenant: 20)
            let queue = JobQueue(store: schema.store)
            let result: (streams: Int, enqueued: Int)? = try await withThrowingTaskGroup(of: (streams: Int, enqueued: Int)?.self) { group in
                // Another driver, as the scheduler's maintenance: it advances whatever is unfinished.
                group.addTask {
                    while !Task.isCancelled {
                        try await queue.advanceBackfills(batchSize: 2)
                        try await Task.sleep(for: .milliseconds(1))
                    }
                    return nil
                }
                group.addTask { try await queue.backfill(projections: ["carts"], partition: nil, batchSize: 2) }
                defer { group.cancelAll() }
                while let next = try await group.next() {
                    if let next { return next }
                }
                return nil
            }
            #expect(result?.streams == streams.count)
            #expect(result?.enqueued == streams.count)
            #expect(try await schema.count("SELECT count(*) FROM ef_backfills WHERE finished IS NULL") == 0)
        }
    }

    @Test("two backfills advanced at once each walk every stream once")
    func concurrentDrivers() async throws {
        try await withCartsSchema { schema in
            let streams = try await writeCarts(schema.store, tenants: ["a", "b"], cartsPerTenant: 15)
            let queue = JobQueue(store: schema.store)
            _ = try await Self.registerCarts(queue)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<3 { group.addTask { try await queue.advanceBackfills(batchSize: 4) } }
                try await group.waitForAll()
            }
            #expect(try await schema.count("SELECT streams FROM ef_backfills WHERE finished IS NOT NULL") == Int64(streams.count))
            #expect(try await schema.count("SELECT count(*) FROM ef_jobs WHERE lane = 'backfill'") == Int64(streams.count))
        }
    }
}
