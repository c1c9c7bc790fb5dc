import EventFleetCore
import EventFleetJobs
import EventFleetPostgres
import EventFleetTestSupport
import Foundation
import PostgresNIO
import Testing

/// The fleet's history, a point a minute (`ef_fleet_minutes`, `ef_job_stats`), and each worker's
/// jobs done.
@Suite("Fleet history")
struct FleetHistoryTests {
    /// The database's current minute.
    static func currentMinute(_ schema: TestSchema) async throws -> Date {
        try #require(try await schema.query("SELECT date_trunc('minute', now())").first).decode(Date.self)
    }

    static func append(_ store: PostgresEventStore, _ count: Int, stream: String = "cart-1") async throws {
        try await store.appendToStream(
            stream, messages: (0..<count).map { _ in message("Changed") }, options: AppendOptions(partition: "acme")
        )
    }

    @Test("a minute's point holds the backlog, the head and the lag, and is recorded once: a second recording of the minute changes nothing")
    func recordsAMinuteOnce() async throws {
        try await TestDatabase.withSchema { schema in
            let queue = JobQueue(store: schema.store)
            try await Self.append(schema.store, 3)
            // The log's first event has waited two minutes for the scheduler, which never ran.
            try await schema.execute("UPDATE ef_messages SET created = now() - interval '2 minutes' WHERE stream_position = 1")
            try await queue.enqueue((0..<4).map { JobRequest(projection: "carts", partition: "acme", streamId: "s\($0)") })
            _ = try await queue.claim(worker: "w1", lanes: [.live], partitions: nil, slots: 1)

            let minute = try await Self.currentMinute(schema).addingTimeInterval(-120)
            #expect(try await queue.recordFleetMinute(minute: minute.addingTimeInterval(17)), "any time within the minute stands for it")
            try await queue.enqueue([JobRequest(projection: "carts", partition: "acme", streamId: "later")])
            #expect(try await !queue.recordFleetMinute(minute: minute), "the minute has its point")
            #expect(try await schema.count("SELECT count(*) FROM ef_fleet_minutes") == 1)

            let history = try await FleetHistory.read(from: schema.store)
            let recorded = try #require(history.minutes.first { $0.minute == minute })
            let point = try #require(recorded.point)
            #expect(point.ready == 3 && point.running == 1 && point.dead == 0, "\(point)")
            #expect(point.oldestReadySeconds != nil)
            #expect(point.headPosition != nil && point.scheduledPosition == nil)
            #expect(point.lagEvents == point.headPosition)
            #expect(point.lagSeconds >= 120, "\(point.lagSeconds)")
            #expect(history.minutes.count == 1)
        }
    }

    @Test("the lag is measured from the schedulers' checkpoint: none once it has passed every event")
    func lagFromTheCheckpoint() async throws {
        try await TestDatabase.withSchema { schema in
            try await Self.append(schema.store, 2)
            try await schema.execute("""
                INSERT INTO ef_subscriptions (subscription_id, partition, log_position)
                SELECT 'eventfleet-scheduler', '*', max(global_position) FROM ef_messages
                """)
            try await JobQueue(store: schema.store).recordFleetMinute()
            let point = try #require(try await FleetHistory.read(from: schema.store).minutes.last?.point)
            #expect(point.lagEvents == 0 && point.lagSeconds == 0, "\(point)")
            #expect(point.scheduledPosition == point.headPosition)
            #expect(point.oldestReadySeconds == nil, "no job waits")
        }
    }

    @Test("a minute without a point is a gap, not zeros; jobs done come from the statistics of every tenant; events appended are the head's growth to the next point")
    func gapsAndThroughput() async throws {
        try await TestDatabase.withSchema { schema in
            let queue = JobQueue(store: schema.store)
            let now = try await Self.currentMinute(schema)
            func minute(_ offset: Int) -> Date { now.addingTimeInterval(Double(offset) * 60) }
            try await queue.recordFleetMinute(minute: minute(-5))
            try await Self.append(schema.store, 2)
            try await queue.recordFleetMinute(minute: minute(-4))
            try await Self.append(schema.store, 5)
            try await queue.recordFleetMinute(minute: minute(-2))
            // Minute -3: workers completed jobs in two tenants, but no scheduler recorded a point.
            try await schema.execute("""
                INSERT INTO ef_job_stats (partition, lane, minute, completed, failed)
                VALUES ('acme', 'live', \(minute(-3)), 7, 1), ('globex', 'backfill', \(minute(-3)), 5, 0),
                       ('acme', 'live', \(minute(-4)), 2, 0), ('acme', 'live', \(minute(-90)), 100, 0)
                """)

            let history = try await FleetHistory.read(from: schema.store, minutes: 60)
            #expect(history.length == 60)
            #expect(history.minutes.map(\.minute) == [minute(-5), minute(-4), minute(-3), minute(-2)], "minute -90 is outside the window")
            let (five, four, three, two) = (history.minutes[0], history.minutes[1], history.minutes[2], history.minutes[3])
            #expect(five.point != nil && five.completed == 0 && five.appended == 2)
            #expect(four.point != nil && four.completed == 2 && four.appended == nil, "minute -3 has no point to measure the head by")
            #expect(three.point == nil && three.completed == 12 && three.failed == 1)
            #expect(two.point != nil && two.appended == nil)
            #expect(history.end >= now && history.start == history.end.addingTimeInterval(-59 * 60), "the window ends with the current minute")
        }
    }

    @Test("pruning removes the points and statistics older than the retention, and keeps the newer")
    func pruneRemovesOldPoints() async throws {
        try await TestDatabase.withSchema { schema in
            let queue = JobQueue(store: schema.store)
            let now = try await Self.currentMinute(schema)
            try await queue.recordFleetMinute(minute: now.addingTimeInterval(-3 * 3_600))
            try await queue.recordFleetMinute(minute: now.addingTimeInterval(-10 * 60))
            try await schema.execute("""
                INSERT INTO ef_job_stats (partition, lane, minute, completed)
                VALUES ('acme', 'live', \(now.addingTimeInterval(-3 * 3_600)), 1), ('acme', 'live', \(now.addingTimeInterval(-10 * 60)), 1)
                """)
            try await queue.prune(statisticsOlderThan: .seconds(3_600))
            let kept = try await schema.rows("SELECT minute FROM ef_fleet_minutes", as: (Date).self)
            #expect(kept == [now.addingTimeInterval(-10 * 60)])
            #expect(try await schema.count("SELECT count(*) FROM ef_job_stats") == 1)
        }
    }

    @Test("a worker's jobs done and failed grow with the counts its heartbeats flush, and the fleet status shows them")
    func workerCountsGrowWithHeartbeats() async throws {
        try await TestDatabase.withSchema { schema in
            let queue = JobQueue(store: schema.store)
            for id in ["busy", "idle"] {
                try await queue.register(WorkerRegistration(id: id, host: "node", pid: 1, lanes: [.live, .backfill], partitions: nil, slots: 4))
            }
            var counts = JobCounts()
            counts.completed = ["acme": [.live: 3, .backfill: 2], "globex": [.live: 4]]
            counts.failed = ["acme": [.live: 1]]
            #expect(try await queue.heartbeat(worker: "busy", draining: false, counts: counts))
            var more = JobCounts()
            more.completed = ["acme": [.live: 5]]
            #expect(try await queue.heartbeat(worker: "busy", draining: false, counts: more))
            #expect(try await queue.heartbeat(worker: "idle", draining: false, counts: JobCounts()))

            let workers = Dictionary(uniqueKeysWithValues: try await FleetStatus.read(from: schema.store).workers.map { ($0.id, $0) })
            #expect(workers["busy"]?.completed == 14 && workers["busy"]?.failed == 1)
            #expect(workers["idle"]?.completed == 0 && workers["idle"]?.failed == 0)
            #expect(try await schema.count("SELECT sum(completed)::bigint FROM ef_job_stats") == 14)
        }
    }

    @Test("a status routine that does not report workers' jobs done (an earlier release's) still decodes: they are unknown")
    func workerWithoutCountsDecodes() throws {
        let document = #"{"id": "w", "host": "h", "pid": 1, "slots": 2, "running": 0, "draining": false, "heartbeatAgeSeconds": 1.5}"#
        let worker = try JSONDecoder().decode(FleetStatus.Worker.self, from: Data(document.utf8))
        #expect(worker.completed == nil && worker.failed == nil)
    }
}
