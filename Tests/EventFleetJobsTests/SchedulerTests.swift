import EventFleetCore
import EventFleetJobs
import EventFleetPostgres
import EventFleetProjections
import EventFleetTestSupport
import Foundation
import PostgresNIO
import ServiceLifecycle
import Testing

/// Which jobs the scheduler makes of the global log, one page per statement on the server.
@Suite("Fleet scheduler", .exclusive, .timeLimit(.minutes(2)))
struct SchedulerTests {
    /// Events in two tenants: some of types a projection handles, one of a type none does.
    private func writeEvents(_ store: PostgresEventStore) async throws {
        func append(_ stream: String, _ partition: String, _ types: [String]) async throws {
            try await store.appendToStream(
                stream, messages: types.map { ProposedMessage(type: $0, data: Data("{}".utf8)) }, options: AppendOptions(partition: partition)
            )
        }
        try await append("s1", "a", ["Opened", "Changed", "Changed"])
        try await append("s2", "b", ["Opened"])
        try await append("s3", "a", ["Unrelated"])
        try await append("s4", "a", ["Audited", "Changed"])
        try await append("s1", "a", ["Changed"])
    }

    /// A schema with `projections` registered and the events of ``writeEvents(_:)`` written.
    private func withEvents(
        projections: [(name: String, version: Int32, eventTypes: [String])], _ body: @Sendable (TestSchema, JobQueue) async throws -> Void
    ) async throws {
        try await withCartsSchema(poolSize: 10) { schema in
            let queue = JobQueue(store: schema.store)
            try await queue.registerProjections(projections.map { ProjectionRegistration(name: $0.name, version: $0.version, eventTypes: $0.eventTypes) })
            try await writeEvents(schema.store)
            try await body(schema, queue)
        }
    }

    /// The live lane's jobs (the leader's maintenance may also have enqueued backfill jobs).
    private func jobs(_ schema: TestSchema) async throws -> [String] {
        var jobs: [String] = []
        let query: PostgresQuery = "SELECT projection, partition, stream_id, lane, state FROM ef_jobs WHERE lane = 'live' ORDER BY 1, 2, 3"
        for (projection, partition, stream, lane, state) in try await schema.rows(query, as: (String, String, String, String, String).self) {
            jobs.append("\(projection)/\(partition)/\(stream) \(lane) \(state)")
        }
        return jobs
    }

    /// Runs a scheduler until it has scheduled every committed event, then stops it gracefully, so
    /// it gives up its lease and the next one leads at once.
    private func schedule(_ schema: TestSchema, scope: PartitionScope) async throws {
        var configuration = fastScheduler()
        configuration.scope = scope
        let scheduler = FleetScheduler(configuration: configuration, store: schema.store)
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: [scheduler], logger: TestDatabase.logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            try await scheduler.whenCaughtUp()
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    @Test("one live job per projection and stream with events of a type it handles, in the scheduler's partitions only")
    func jobsOfThePage() async throws {
        try await withEvents(projections: [("carts", 1, ["Opened", "Changed"]), ("audit", 1, ["Audited"])]) { schema, _ in

            try await schedule(schema, scope: .only(["a"]))
            #expect(try await jobs(schema) == ["audit/a/s4 live ready", "carts/a/s1 live ready", "carts/a/s4 live ready"])

            // A scheduler of all partitions has a checkpoint of its own: it adds tenant b's job, and
            // tenant a's streams, already queued, stay one job each.
            try await schedule(schema, scope: .all)
            #expect(try await jobs(schema) == [
                "audit/a/s4 live ready", "carts/a/s1 live ready", "carts/a/s4 live ready", "carts/b/s2 live ready",
            ])
        }
    }

    @Test("a projection that handles every event type (registered by a worker with no types) gets jobs for events of every type")
    func projectionOfEveryType() async throws {
        try await withCartsSchema { schema in
            // The worker registers its projections as it starts; this one names no event types.
            let worker = ProjectionWorker(configuration: fastWorker(), store: schema.store, registry: ProjectionRegistry([EveryType()]))
            let running = Task { try await worker.run() }
            try await waitUntil("the worker registered its projection") { worker.isStarted }
            running.cancel()
            _ = await running.result
            #expect(try await schema.rows("SELECT event_types IS NULL FROM ef_projections WHERE name = 'every-type'", as: Bool.self) == [true])

            try await writeEvents(schema.store)
            try await schedule(schema, scope: .all)
            #expect(try await jobs(schema) == [
                "every-type/a/s1 live ready", "every-type/a/s3 live ready", "every-type/a/s4 live ready", "every-type/b/s2 live ready",
            ])
        }
    }

    @Test("a running job is marked to run again when new events of its stream are scheduled")
    func runningJobReruns() async throws {
        try await withEvents(projections: [("carts", 1, ["Opened", "Changed"])]) { schema, queue in
            try await schedule(schema, scope: .all)
            try await queue.register(WorkerRegistration(id: "w1", host: "test", pid: 1, lanes: JobLane.allCases, partitions: nil, slots: 8))
            let claimed = try await queue.claim(worker: "w1", lanes: [.live], partitions: nil, slots: 8)
            #expect(claimed.count == 3)

            try await schema.store.appendToStream("s1", messages: [ProposedMessage(type: "Changed", data: Data("{}".utf8))], options: AppendOptions(partition: "a"))
            try await schedule(schema, scope: .all)
            #expect(try await schema.count("SELECT count(*) FROM ef_jobs WHERE stream_id = 's1' AND state = 'running' AND rerun") == 1)
            #expect(try await schema.count("SELECT count(*) FROM ef_jobs WHERE rerun") == 1)
        }
    }

    @Test("a page the server cannot schedule stops the scheduler with the error; its checkpoint stays, so nothing is skipped")
    func pageFailureStops() async throws {
        try await withEvents(projections: [("carts", 1, ["Opened", "Changed"])]) { schema, _ in
            // The page fails for a reason of its own (here: its function is gone).
            try await schema.execute("DROP FUNCTION ef_schedule_log")
            let scheduler = FleetScheduler(configuration: fastScheduler(), store: schema.store)
            let error = await #expect(throws: EventStoreError.self) { try await scheduler.run() }
            guard case .database(_, sqlState: "42883", _)? = error else {
                Issue.record("expected the missing function's error, got \(String(describing: error))")
                return
            }
            #expect(try await jobs(schema).isEmpty)
            #expect(try await schema.count("SELECT log_position FROM ef_subscriptions WHERE subscription_id = 'eventfleet-scheduler'") == 0)
        }
    }

    /// A stream projection of every event type that projects nothing.
    private struct EveryType: StreamProjection {
        let name = "every-type"
        let eventTypes: Set<String>? = nil

        func validate(context: ProjectionContext) async throws {}
        func handle(_ messages: [RecordedMessage], context: ProjectionContext) async throws {}
        func project(streamId: String, partition: String, upTo position: Int64?, batchSize: Int, context: ProjectionContext) async throws -> Int { 0 }
    }

    private struct PageResult: Equatable {
        var events: Int64
        var enqueued: Int64
        var heldBack: Bool
    }

    /// The scheduler's page function, called as the scheduler calls it, on `connection`, and the
    /// checkpoint after the page.
    private func page(after checkpoint: GlobalCheckpoint, on connection: PostgresConnection) async throws -> (PageResult, GlobalCheckpoint) {
        let query: PostgresQuery = """
            SELECT events, last_position, horizon_bound, marked_keys, marked_bounds, enqueued
              FROM ef_schedule_log(\(checkpoint.position), \(checkpoint.held.map(\.key))::integer[], \(checkpoint.held.map(\.position))::bigint[],
                                   NULL, 100, 10, NULL)
            """
        let rows = try await connection.query(query, logger: TestDatabase.logger).decode((Int64, Int64?, Int64, [Int32], [Int64], Int64).self)
        for try await (events, last, bound, keys, bounds, enqueued) in rows {
            let horizon = LogHorizon(bound: bound, marked: Dictionary(uniqueKeysWithValues: zip(keys, bounds)))
            return (
                PageResult(events: events, enqueued: enqueued, heldBack: !keys.isEmpty),
                checkpoint.advanced(overPageOf: Int(events), endingAt: last, limit: 100, horizon: horizon)
            )
        }
        throw TimedOut(description: "ef_schedule_log returned no row")
    }

    @Test("an append in flight holds back its partition only: the page takes the others' events, and the held ones once it commits")
    func heldBackPage() async throws {
        try await withEvents(projections: [("carts", 1, ["Opened", "Changed"])]) { schema, _ in
            let head = GlobalCheckpoint(position: try #require(try await schema.store.globalLogHead()))
            let open = try await schema.connect()
            let reader = try await schema.connect()
            do {
                let (end, atEnd) = try await page(after: head, on: reader)
                #expect(end == PageResult(events: 0, enqueued: 0, heldBack: false), "read to its end")
                #expect(atEnd == head)
                // An append in partition a stays open; later ones in a and b commit.
                try await open.query("BEGIN", logger: TestDatabase.logger)
                try await schema.store.appendToStream(
                    "held", messages: [ProposedMessage(type: "Opened", data: Data("{}".utf8))], options: AppendOptions(partition: "a"), connection: open
                )
                try await schema.store.appendToStream("later", messages: [ProposedMessage(type: "Opened", data: Data("{}".utf8))], options: AppendOptions(partition: "a"))
                try await schema.store.appendToStream("other", messages: [ProposedMessage(type: "Opened", data: Data("{}".utf8))], options: AppendOptions(partition: "b"))
                let (passing, held) = try await page(after: head, on: reader)
                #expect(passing == PageResult(events: 1, enqueued: 1, heldBack: true), "b's event passes; a's wait for the open append")
                #expect(held.held.count == 1 && held.held.first?.position == head.position)
                #expect(try await jobs(schema).contains("carts/b/other live ready"))

                try await open.query("COMMIT", logger: TestDatabase.logger)
                let (released, after) = try await page(after: held, on: reader)
                #expect(released == PageResult(events: 2, enqueued: 2, heldBack: false))
                #expect(after.held.isEmpty)
                let (again, _) = try await page(after: after, on: reader)
                #expect(again.events == 0, "nothing twice")
            } catch {
                try? await open.close()
                try? await reader.close()
                throw error
            }
            try await open.close()
            try await reader.close()
        }
    }

    @Test("the leading scheduler records the fleet's minute by itself, with the log's head and its own checkpoint")
    func leaderRecordsTheMinute() async throws {
        try await withEvents(projections: [("carts", 1, ["Opened", "Changed"])]) { schema, _ in
            let schedulers = [FleetScheduler(configuration: fastScheduler(), store: schema.store),
                              FleetScheduler(configuration: fastScheduler(), store: schema.store)]
            try await withServices(schedulers) {
                try await waitUntil(timeout: .seconds(30), "the leader recorded a minute") {
                    try await schema.count("SELECT count(*) FROM ef_fleet_minutes") > 0
                }
            }
            let head = try await schema.count("SELECT max(global_position) FROM ef_messages")
            let points = try await FleetHistory.read(from: schema.store).minutes.compactMap(\.point)
            #expect(!points.isEmpty)
            for point in points {
                #expect(point.headPosition == head, "\(point)")
                #expect(point.lagEvents == head - (point.scheduledPosition ?? 0), "\(point)")
            }
        }
    }

    @Test("a standby waits for a frozen leader's lock at most a third of the lease, stays ready meanwhile, and leads once the lock goes")
    func takeoverDoesNotHangOnAFrozenLeader() async throws {
        try await withCartsSchema { schema in
            // A leader whose lease expired, frozen inside a transaction that locked its checkpoint row.
            try await schema.execute("""
                INSERT INTO ef_subscriptions (subscription_id, partition, version, owner, lease_expires_at, fencing_token)
                VALUES ('eventfleet-scheduler', '*', 1, 'frozen', now() - interval '1 minute', 1)
                """)
            let frozen = try await schema.connect()
            do {
                try await frozen.query("BEGIN", logger: TestDatabase.logger)
                try await frozen.query(
                    "SELECT 1 FROM \(schema.schema.ef_subscriptions) WHERE owner = 'frozen' FOR UPDATE", logger: TestDatabase.logger
                )
                let standby = FleetScheduler(configuration: fastScheduler(), store: schema.store)
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await standby.run() }
                    defer { group.cancelAll() }
                    try await waitUntil(timeout: .seconds(30), "the standby is ready, polling for the lease") { standby.isReady }
                    #expect(!standby.isLeader)
                    try await frozen.query("ROLLBACK", logger: TestDatabase.logger)
                    try await waitUntil(timeout: .seconds(30), "the standby leads") { standby.isLeader }
                }
            } catch {
                try? await frozen.close()
                throw error
            }
            try await frozen.close()
        }
    }
}
