import EventFleetCore
import EventFleetJobs
import EventFleetPostgres
import EventFleetProjections
import EventFleetTestSupport
import Foundation
import PostgresNIO
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

    private func jobs(_ schema: TestSchema) async throws -> [String] {
        var jobs: [String] = []
        let query: PostgresQuery = "SELECT projection, partition, stream_id, lane, state FROM ef_jobs ORDER BY 1, 2, 3"
        for (projection, partition, stream, lane, state) in try await schema.rows(query, as: (String, String, String, String, String).self) {
            jobs.append("\(projection)/\(partition)/\(stream) \(lane) \(state)")
        }
        return jobs
    }

    private func schedule(_ schema: TestSchema, scope: PartitionScope) async throws {
        var configuration = fastScheduler()
        configuration.scope = scope
        let scheduler = FleetScheduler(configuration: configuration, store: schema.store)
        let running = Task { try await scheduler.run() }
        defer { running.cancel() }
        try await scheduler.whenCaughtUp()
        running.cancel()
        _ = await running.result
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
            try await schema.execute("DROP FUNCTION ef_schedule_global_log")
            let scheduler = FleetScheduler(configuration: fastScheduler(), store: schema.store)
            let error = await #expect(throws: EventStoreError.self) { try await scheduler.run() }
            guard case .database(_, sqlState: "42883", _)? = error else {
                Issue.record("expected the missing function's error, got \(String(describing: error))")
                return
            }
            #expect(try await jobs(schema).isEmpty)
            #expect(try await schema.count("SELECT last_global_position FROM ef_subscriptions WHERE subscription_id = 'eventfleet-scheduler'") == 0)
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

    /// The scheduler's page function, called as the scheduler calls it, on `connection`.
    private func page(after checkpoint: GlobalCheckpoint, on connection: PostgresConnection) async throws -> PageResult {
        let query: PostgresQuery = """
            SELECT events, enqueued, held_back
              FROM ef_schedule_global_log(\(String(checkpoint.transactionId))::xid8, \(checkpoint.globalPosition), NULL, 100, 10, NULL)
            """
        for try await (events, enqueued, heldBack) in try await connection.query(query, logger: TestDatabase.logger).decode((Int64, Int64, Bool).self) {
            return PageResult(events: events, enqueued: enqueued, heldBack: heldBack)
        }
        throw TimedOut(description: "ef_schedule_global_log returned no row")
    }

    @Test("an empty page says an open transaction holds newer events back; once it commits, the page takes both")
    func heldBackPage() async throws {
        try await withEvents(projections: [("carts", 1, ["Opened", "Changed"])]) { schema, _ in
            let head = try #require(try await schema.store.globalLogHead())
            let open = try await schema.connect()
            let reader = try await schema.connect()
            do {
                #expect(try await page(after: head, on: reader) == PageResult(events: 0, enqueued: 0, heldBack: false), "read to its end")
                // An older transaction appends and stays open; a newer one appends and commits.
                try await open.query("BEGIN", logger: TestDatabase.logger)
                try await schema.store.appendToStream(
                    "held", messages: [ProposedMessage(type: "Opened", data: Data("{}".utf8))], options: AppendOptions(partition: "a"), connection: open
                )
                try await schema.store.appendToStream("later", messages: [ProposedMessage(type: "Opened", data: Data("{}".utf8))], options: AppendOptions(partition: "a"))
                #expect(try await page(after: head, on: reader) == PageResult(events: 0, enqueued: 0, heldBack: true), "the committed event waits behind the open transaction")

                try await open.query("COMMIT", logger: TestDatabase.logger)
                #expect(try await page(after: head, on: reader) == PageResult(events: 2, enqueued: 2, heldBack: false))
            } catch {
                try? await open.close()
                try? await reader.close()
                throw error
            }
            try await open.close()
            try await reader.close()
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
