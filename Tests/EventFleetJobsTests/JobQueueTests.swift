import CartsExample
import EventFleetCore
import EventFleetJobs
import EventFleetPostgres
import EventFleetTestSupport
import Foundation
import PostgresNIO
import Testing

@Suite("Job queue")
struct JobQueueTests {
    @Test("the fleet status counts the database's connections per application name")
    func connectionsPerRole() async throws {
        try await withCartsSchema { schema in
            let status = try await FleetStatus.read(from: schema.store)
            let tests = status.connections.first { $0.applicationName == "eventfleet-tests" }
            #expect((tests?.count ?? 0) >= 1, "the test's own pool is counted: \(status.connections)")
            #expect(status.connections.map(\.count) == status.connections.map(\.count).sorted(by: >), "most first")
        }
    }

    @Test("the fleet status counts a lane's ready and dead jobs up to 10,000 and says when there are more; a lane below the limit is counted exactly; the oldest ready job is found either way")
    func boundedCounts() async throws {
        try await TestDatabase.withSchema { schema in
            let queue = JobQueue(store: schema.store)
            for chunk in stride(from: 0, to: 10_003, by: 5_000) {
                try await queue.enqueue((chunk..<min(chunk + 5_000, 10_003)).map { JobRequest(projection: "carts", partition: "deep", streamId: "s\($0)") })
            }
            try await queue.enqueue((0..<3).map { JobRequest(projection: "carts", partition: "shallow", streamId: "s\($0)") })
            // Dead jobs beyond the limit, made directly: failing 10,001 jobs one by one adds nothing here.
            try await schema.execute("""
                INSERT INTO ef_jobs (projection, partition, stream_id, lane, state, errors)
                SELECT 'carts', 'shallow', 'dead-' || g, 'live', 'dead', '[]' FROM generate_series(1, 10001) g
                """)
            let lanes = try await FleetStatus.read(from: schema.store).lanes
            let deep = try #require(lanes.first { $0.partition == "deep" && $0.lane == .live })
            #expect(deep.ready == 10_000 && deep.readyBeyondLimit == true)
            #expect(deep.oldestReadySeconds != nil)
            let shallow = try #require(lanes.first { $0.partition == "shallow" && $0.lane == .live })
            #expect(shallow.ready == 3 && shallow.readyBeyondLimit == false)
            #expect(shallow.dead == 10_000 && shallow.deadBeyondLimit == true)
            #expect(deep.dead == 0 && deep.deadBeyondLimit == false)
        }
    }

    @Test("one live job per stream: duplicates are no-ops, a running job is marked to run again")
    func dedupe() async throws {
        try await TestDatabase.withSchema { schema in
            let queue = JobQueue(store: schema.store)
            let request = JobRequest(projection: "carts", partition: "a", streamId: "s1")
            #expect(try await queue.enqueue([request, request]) == 1)
            #expect(try await queue.enqueue([request]) == 0)
            try await schema.register("w1")
            let claimed = try await queue.claim(worker: "w1", lanes: [.live], partitions: nil, slots: 5)
            #expect(claimed.count == 1)
            #expect(try await queue.enqueue([request]) == 0, "still one live job while it runs")
            #expect(try await queue.complete(claimed[0], worker: "w1") == .requeued, "events arrived while it ran")
            let again = try await queue.claim(worker: "w1", lanes: [.live], partitions: nil, slots: 5)
            #expect(again.map(\.streamId) == ["s1"])
            #expect(try await queue.complete(again[0], worker: "w1") == .completed)
            #expect(try await schema.count("SELECT count(*) FROM ef_jobs") == 0, "finished jobs leave the hot table")
        }
    }

    @Test("a batch completion fences each job by its token: completed, requeued and lost")
    func batchCompletion() async throws {
        try await TestDatabase.withSchema { schema in
            let queue = JobQueue(store: schema.store)
            try await queue.enqueue((1...3).map { JobRequest(projection: "carts", partition: "a", streamId: "s\($0)") })
            try await schema.register("w1")
            let claimed = try await queue.claim(worker: "w1", lanes: [.live], partitions: nil, slots: 5).sorted { $0.streamId < $1.streamId }
            #expect(claimed.map(\.streamId) == ["s1", "s2", "s3"])
            try await queue.enqueue([JobRequest(projection: "carts", partition: "a", streamId: "s2")])
            var stale = claimed[2]
            stale.fencingToken += 1
            let completions = try await queue.complete([claimed[0], claimed[1], stale], worker: "w1")
            #expect(completions.completed == [claimed[0].id])
            #expect(completions.requeued == [claimed[1].id])
            #expect(completions.lost == [claimed[2].id])
            #expect(try await schema.count("SELECT count(*) FROM ef_jobs WHERE state = 'ready'") == 1)
            #expect(try await schema.count("SELECT count(*) FROM ef_jobs WHERE state = 'running'") == 1, "the lost job is left as it was")
        }
    }

    @Test("a live request promotes a ready backfill job to the live lane")
    func promotion() async throws {
        try await TestDatabase.withSchema { schema in
            let queue = JobQueue(store: schema.store)
            try await queue.enqueue([JobRequest(projection: "carts", partition: "a", streamId: "s1", lane: .backfill)])
            try await queue.enqueue([JobRequest(projection: "carts", partition: "a", streamId: "s1", lane: .live)])
            try await schema.register("w1")
            #expect(try await queue.claim(worker: "w1", lanes: [.backfill], partitions: nil, slots: 5).isEmpty)
            #expect(try await queue.claim(worker: "w1", lanes: [.live], partitions: nil, slots: 5).count == 1)
        }
    }

    @Test("tenant caps hold exactly under 8 concurrent claimers")
    func capsAreExact() async throws {
        try await TestDatabase.withSchema(poolSize: 12) { schema in
            let queue = JobQueue(store: schema.store)
            try await queue.enqueue((1...60).map { JobRequest(projection: "p", partition: "a", streamId: "s\($0)") })
            try await queue.enqueue((1...60).map { JobRequest(projection: "p", partition: "b", streamId: "s\($0)") })
            try await queue.setQuota(partition: "a", lane: .live, maxRunning: 3, weight: nil, paused: nil)
            try await queue.setQuota(partition: "b", lane: .live, maxRunning: 7, weight: nil, paused: nil)
            let claims = try await withThrowingTaskGroup(of: [Job].self) { group in
                for worker in 0..<8 {
                    group.addTask {
                        try await schema.register("w\(worker)")
                        var all: [Job] = []
                        for _ in 0..<5 { all += try await queue.claim(worker: "w\(worker)", lanes: [.live], partitions: nil, slots: 5) }
                        return all
                    }
                }
                return try await group.reduce(into: [Job]()) { $0 += $1 }
            }
            #expect(claims.filter { $0.partition == "a" }.count == 3)
            #expect(claims.filter { $0.partition == "b" }.count == 7)
            #expect(Set(claims.map(\.id)).count == claims.count, "no job claimed twice")
        }
    }

    @Test("a tenant's large backfill does not hold back another tenant's live jobs")
    func fairness() async throws {
        try await TestDatabase.withSchema { schema in
            let queue = JobQueue(store: schema.store)
            try await queue.backfillJobs(count: 500, partition: "big")
            try await queue.enqueue((1...3).map { JobRequest(projection: "p", partition: "small", streamId: "live\($0)", lane: .live) })
            try await schema.register("w1")
            let claimed = try await queue.claim(worker: "w1", lanes: [.live, .backfill], partitions: nil, slots: 8)
            #expect(claimed.filter { $0.partition == "small" }.count == 3, "the live jobs are claimed in the first claim")
            #expect(claimed.count == 8)
        }
    }

    @Test("one claim shares its slots: least loaded tenant first, equal shares, the rest filled within caps")
    func claimShares() async throws {
        try await TestDatabase.withSchema { schema in
            let queue = JobQueue(store: schema.store)
            func enqueue(_ partition: String, _ count: Int) async throws {
                try await queue.enqueue((1...count).map { JobRequest(projection: "p", partition: partition, streamId: "s\($0)") })
            }
            try await schema.register("w1")
            try await enqueue("a", 1)
            try await enqueue("b", 10)
            try await enqueue("c", 10)
            // Shares of 3: a has only 1; the second pass fills the 2 left from b, the first with room.
            let first = try await queue.claim(worker: "w1", lanes: [.live], partitions: nil, slots: 9)
            #expect(first.filter { $0.partition == "a" }.count == 1)
            #expect(first.filter { $0.partition == "b" }.count == 5)
            #expect(first.filter { $0.partition == "c" }.count == 3)
            // c runs 3 and b runs 5: the least loaded tenant with work (c) is served first.
            let second = try await queue.claim(worker: "w1", lanes: [.live], partitions: nil, slots: 1)
            #expect(second.map(\.partition) == ["c"])
            // A cap bounds both passes: b may run 6, so it gets 1 more however many slots are free.
            try await queue.setQuota(partition: "b", lane: .live, maxRunning: 6, weight: nil, paused: nil)
            let third = try await queue.claim(worker: "w1", lanes: [.live], partitions: nil, slots: 20)
            #expect(third.filter { $0.partition == "b" }.count == 1)
            #expect(third.filter { $0.partition == "c" }.count == 6, "all of c's ready jobs")
            #expect(try await schema.count("SELECT count(*) FROM ef_jobs WHERE state = 'running' AND partition = 'b'") == 6)
        }
    }

    @Test("finished jobs' dead rows are vacuumed once they pass the threshold, not before")
    func vacuumWhenWorn() async throws {
        try await TestDatabase.withSchema { schema in
            let queue = JobQueue(store: schema.store)
            // Autovacuum visiting meanwhile would leave nothing to vacuum.
            try await schema.execute("ALTER TABLE ef_jobs SET (autovacuum_enabled = false)")
            try await schema.register("w1")
            try await queue.enqueue((1...2_000).map { JobRequest(projection: "p", partition: "a", streamId: "s\($0)") })
            try await queue.setQuota(partition: "a", lane: .live, maxRunning: 10_000, weight: nil, paused: nil)
            var finished = 0
            while true {
                let jobs = try await queue.claim(worker: "w1", lanes: [.live], partitions: nil, slots: 500)
                if jobs.isEmpty { break }
                finished += try await queue.complete(jobs, worker: "w1").completed.count
            }
            #expect(finished == 2_000)
            // Backends report their counts to the statistics within about a second, each on its own
            // (behind a pooler the inserts and the deletes come from different backends): wait for
            // the deletes and the inserts alike, as the worn-table check reads both.
            try await waitUntil(timeout: .seconds(30), "the statistics count the finished jobs' dead rows") {
                try await schema.count(
                    "SELECT count(*) FROM pg_stat_user_tables WHERE relid = 'ef_jobs'::regclass AND n_dead_tup >= 2000 AND n_live_tup < n_dead_tup AND n_tup_ins >= 2000"
                ) == 1
            }
            #expect(try await queue.vacuumIfWorn(minimumDeadRows: 1_000_000) == .notNeeded, "below the threshold")
            #expect(try await schema.count("SELECT vacuum_count FROM pg_stat_user_tables WHERE relid = 'ef_jobs'::regclass") == 0)
            guard case .vacuumed(let dead) = try await queue.vacuumIfWorn(minimumDeadRows: 1_000) else {
                Issue.record("the worn table was not vacuumed")
                return
            }
            #expect(dead >= 2_000)
            #expect(try await schema.count("SELECT vacuum_count FROM pg_stat_user_tables WHERE relid = 'ef_jobs'::regclass") == 1)
            // (How many dead rows it could remove depends on the oldest open transaction on the whole
            // server, other tests' included, so that is not asserted.)
            // Never truncated: truncating takes a lock that would stop every claim meanwhile.
            #expect(try await schema.count("SELECT count(*) FROM pg_class WHERE oid = 'ef_jobs'::regclass AND 'vacuum_truncate=false' = ANY (reloptions)") == 1)
            // The queue works on after it.
            try await queue.enqueue([JobRequest(projection: "p", partition: "a", streamId: "after")])
            #expect(try await queue.claim(worker: "w1", lanes: [.live], partitions: nil, slots: 5).map(\.streamId) == ["after"])
        }
    }

    @Test("a paused tenant and a dedicated worker's partitions are respected")
    func pausedAndDedicated() async throws {
        try await TestDatabase.withSchema { schema in
            let queue = JobQueue(store: schema.store)
            try await queue.enqueue([JobRequest(projection: "p", partition: "a", streamId: "1"), JobRequest(projection: "p", partition: "b", streamId: "1")])
            try await queue.setQuota(partition: "a", lane: .live, maxRunning: nil, weight: nil, paused: true)
            try await schema.register("w1")
            #expect(try await queue.claim(worker: "w1", lanes: [.live], partitions: ["a"], slots: 5).isEmpty)
            #expect(try await queue.claim(worker: "w1", lanes: [.live], partitions: nil, slots: 5).map(\.partition) == ["b"])
            try await queue.setQuota(partition: "a", lane: .live, maxRunning: nil, weight: nil, paused: false)
            #expect(try await queue.claim(worker: "w1", lanes: [.live], partitions: ["a"], slots: 5).map(\.partition) == ["a"])
        }
    }

    @Test("a rescued job cannot be completed or failed by its old owner, and its fence fails")
    func fencing() async throws {
        try await TestDatabase.withSchema { schema in
            let queue = JobQueue(store: schema.store)
            try await queue.enqueue([JobRequest(projection: "p", partition: "a", streamId: "s")])
            try await schema.register("slow")
            let stale = try #require(try await queue.claim(worker: "slow", lanes: [.live], partitions: nil, slots: 1).first)
            try await schema.execute("UPDATE ef_workers SET heartbeat = now() - interval '1 minute' WHERE id = 'slow'")
            let rescue = try await queue.rescue(heartbeatTimeout: .seconds(15))
            #expect(rescue.workers == ["slow"])
            #expect(rescue.jobs == 1)
            try await schema.register("fresh")
            let fresh = try #require(try await queue.claim(worker: "fresh", lanes: [.live], partitions: nil, slots: 1).first)
            #expect(fresh.fencingToken > stale.fencingToken)
            await #expect(throws: JobQueueError.claimLost(jobId: stale.id, worker: "slow", fencingToken: stale.fencingToken)) {
                try await queue.complete(stale, worker: "slow")
            }
            await #expect(throws: JobQueueError.self) { _ = try await queue.fail(stale, worker: "slow", error: "x", retryDelay: .zero) }
            let connection = try await schema.connect()
            try await connection.query("BEGIN", logger: TestDatabase.logger)
            await #expect(throws: JobQueueError.claimLost(jobId: stale.id, worker: "slow", fencingToken: stale.fencingToken)) {
                try await queue.fence(stale, worker: "slow", on: connection)
            }
            try await connection.query("ROLLBACK", logger: TestDatabase.logger)
            try await connection.close()
            #expect(try await queue.complete(fresh, worker: "fresh") == .completed)
        }
    }

    @Test("a running job its heartbeating worker no longer holds is rescued a heartbeat timeout after its claim, with its attempt counted")
    func unheldJobRescued() async throws {
        try await TestDatabase.withSchema { schema in
            let queue = JobQueue(store: schema.store)
            try await queue.enqueue((1...3).map { JobRequest(projection: "p", partition: "a", streamId: "s\($0)") })
            try await schema.register("w")
            try await schema.register("old")
            let claimed = try await queue.claim(worker: "w", lanes: [.live], partitions: nil, slots: 2).sorted { $0.id < $1.id }
            let (lost, held) = (claimed[0], claimed[1])
            // A worker of an earlier release reports nothing in flight: its jobs are left to its heartbeat.
            let old = try #require(try await queue.claim(worker: "old", lanes: [.live], partitions: nil, slots: 1).first)
            // The reply of the first claim was lost: the worker holds only the second.
            #expect(try await queue.heartbeat(worker: "w", draining: false, counts: JobCounts(), inFlight: [held.id]))
            #expect(try await queue.rescue(heartbeatTimeout: .seconds(15)).jobs == 0, "a claim's reply gets a heartbeat timeout")
            try await schema.execute("UPDATE ef_jobs SET claimed_at = now() - interval '1 minute'")
            #expect(try await queue.heartbeat(worker: "w", draining: false, counts: JobCounts(), inFlight: [held.id]))
            #expect(try await queue.heartbeat(worker: "old", draining: false, counts: JobCounts()))
            let rescue = try await queue.rescue(heartbeatTimeout: .seconds(15))
            #expect(rescue.jobs == 1 && rescue.workers.isEmpty)
            let states = try await schema.rows("SELECT id, state, errors->0->>'error' FROM ef_jobs ORDER BY id", as: (Int64, String, String?).self)
            #expect(states.map(\.0) == [lost.id, held.id, old.id])
            #expect(states.map(\.1) == ["ready", "running", "running"])
            #expect(states[0].2.map { $0.contains("no work held the job") } == true)
            let again = try #require(try await queue.claim(worker: "w", lanes: [.live], partitions: nil, slots: 1).first)
            #expect(again.id == lost.id && again.attempt == 2, "the lost attempt counted")
        }
    }

    @Test("a job without a committed batch within its projection's job timeout is rescued; each committed batch restarts its clock")
    func overdueJobRescued() async throws {
        try await TestDatabase.withSchema { schema in
            let queue = JobQueue(store: schema.store)
            try await queue.registerProjections([
                ProjectionRegistration(name: "p", eventTypes: nil, jobTimeout: .seconds(60)),
                ProjectionRegistration(name: "untimed", eventTypes: nil),
            ])
            try await queue.enqueue([
                JobRequest(projection: "p", partition: "a", streamId: "stuck"), JobRequest(projection: "p", partition: "a", streamId: "busy"),
                JobRequest(projection: "untimed", partition: "a", streamId: "s"),
            ])
            try await schema.register("w")
            let jobs = try await queue.claim(worker: "w", lanes: [.live], partitions: nil, slots: 3)
            let busy = try #require(jobs.first { $0.streamId == "busy" })
            // A batch right after the claim writes no mark: the claim is the job's last mark.
            let fresh = try await schema.connect()
            try await fresh.query("BEGIN", logger: TestDatabase.logger)
            try await queue.fence(busy, worker: "w", on: fresh)
            try await fresh.query("COMMIT", logger: TestDatabase.logger)
            try await fresh.close()
            #expect(try await schema.count("SELECT count(*) FROM ef_jobs WHERE progressed IS NOT NULL") == 0)
            try await schema.execute("UPDATE ef_jobs SET claimed_at = now() - interval '2 minutes'")
            // The busy job commits a batch now.
            let connection = try await schema.connect()
            try await connection.query("BEGIN", logger: TestDatabase.logger)
            try await queue.fence(busy, worker: "w", on: connection)
            try await connection.query("COMMIT", logger: TestDatabase.logger)
            try await connection.close()
            #expect(try await queue.heartbeat(worker: "w", draining: false, counts: JobCounts(), inFlight: jobs.map(\.id)))
            #expect(try await queue.rescue(heartbeatTimeout: .seconds(15)).jobs == 1)
            let states = try await schema.rows("SELECT stream_id, state, errors->0->>'error' FROM ef_jobs ORDER BY stream_id", as: (String, String, String?).self)
            #expect(states.map(\.0) == ["busy", "s", "stuck"])
            #expect(states.map(\.1) == ["running", "running", "ready"])
            #expect(states[2].2.map { $0.contains("job timeout") } == true)
            // Its last batch ages past the timeout too.
            try await schema.execute("UPDATE ef_jobs SET progressed = now() - interval '2 minutes' WHERE stream_id = 'busy'")
            #expect(try await queue.rescue(heartbeatTimeout: .seconds(15)).jobs == 1)
        }
    }

    @Test("a projection's job timeout must be positive")
    func jobTimeoutValidated() async throws {
        try await TestDatabase.withSchema { schema in
            await #expect(throws: JobQueueError.invalidConfiguration(field: "jobTimeout", reason: "must be positive (projection 'p')")) {
                try await JobQueue(store: schema.store).registerProjections([ProjectionRegistration(name: "p", eventTypes: nil, jobTimeout: .zero)])
            }
            let registered = try await schema.count("SELECT count(*) FROM ef_projections")
            #expect(registered == 0)
        }
    }

    @Test("a slow but alive worker keeps its jobs")
    func slowWorkerKeepsJobs() async throws {
        try await TestDatabase.withSchema { schema in
            let queue = JobQueue(store: schema.store)
            try await queue.enqueue([JobRequest(projection: "p", partition: "a", streamId: "s")])
            try await schema.register("slow")
            let job = try #require(try await queue.claim(worker: "slow", lanes: [.live], partitions: nil, slots: 1).first)
            #expect(try await queue.heartbeat(worker: "slow", draining: false, counts: JobCounts()))
            #expect(try await queue.rescue(heartbeatTimeout: .seconds(15)).jobs == 0)
            #expect(try await queue.complete(job, worker: "slow") == .completed)
        }
    }

    @Test("failures retry with backoff and end dead with their error history; operators retry and purge")
    func failuresAndDeadJobs() async throws {
        try await TestDatabase.withSchema { schema in
            let queue = JobQueue(store: schema.store)
            try await queue.enqueue([JobRequest(projection: "p", partition: "a", streamId: "poison", maxAttempts: 3)])
            try await schema.register("w")
            for attempt in 1...3 {
                let job = try #require(try await queue.claim(worker: "w", lanes: [.live], partitions: nil, slots: 1).first)
                #expect(job.attempt == attempt)
                let outcome = try await queue.fail(job, worker: "w", error: "boom \(attempt)", retryDelay: .zero)
                #expect(outcome == .dead ? attempt == 3 : attempt < 3)
            }
            let dead = try await queue.deadJobs()
            #expect(dead.count == 1)
            #expect(dead.first?.attempts == 3)
            #expect(dead.first?.errors.contains("boom 3") == true)
            #expect(try await queue.claim(worker: "w", lanes: [.live], partitions: nil, slots: 1).isEmpty)
            #expect(try await queue.retryDead(.partition("a")) == 1)
            let retried = try #require(try await queue.claim(worker: "w", lanes: [.live], partitions: nil, slots: 1).first)
            #expect(retried.attempt == 1)
            _ = try await queue.fail(retried, worker: "w", error: "again", retryDelay: .seconds(3600))
            #expect(try await queue.claim(worker: "w", lanes: [.live], partitions: nil, slots: 1).isEmpty, "not before its backoff")
            try await schema.execute("UPDATE ef_jobs SET state = 'dead'")
            #expect(try await queue.purgeDead(.all) == 1)
            #expect(try await schema.count("SELECT count(*) FROM ef_jobs") == 0)
        }
    }

    @Test("a worker claims only jobs of the projections its registration names; a tenant with none of them is not served")
    func claimsOnlyItsProjections() async throws {
        try await TestDatabase.withSchema { schema in
            let queue = JobQueue(store: schema.store)
            // Older jobs of a projection the worker does not run come first in claim order.
            try await queue.enqueue((1...4).map { JobRequest(projection: "other", partition: "a", streamId: "o\($0)") })
            try await queue.enqueue([JobRequest(projection: "other", partition: "b", streamId: "o1")])
            try await queue.enqueue((1...3).map { JobRequest(projection: "mine", partition: "a", streamId: "m\($0)") })
            try await schema.register("w", projections: ["mine"])
            let claimed = try await queue.claim(worker: "w", lanes: [.live], partitions: nil, slots: 10)
            #expect(claimed.map(\.projection) == ["mine", "mine", "mine"])
            #expect(try await schema.count("SELECT count(*) FROM ef_jobs WHERE projection = 'other' AND state = 'ready' AND attempt = 0") == 5)
            #expect(try await schema.count("SELECT count(*) FROM ef_tenant_quotas WHERE partition = 'b' AND last_served IS NOT NULL") == 0)
            // A worker that names no projections (an earlier release's) claims them all.
            try await schema.register("any")
            #expect(try await queue.claim(worker: "any", lanes: [.live], partitions: nil, slots: 10).count == 5)
        }
    }

    @Test("a pool's demand counts only jobs it can run, within each tenant's cap, and none of a paused tenant")
    func poolDemand() async throws {
        try await TestDatabase.withSchema { schema in
            let queue = JobQueue(store: schema.store)
            try await queue.enqueue((1...5).map { JobRequest(projection: "p", partition: "a", streamId: "s\($0)") })
            try await queue.enqueue((1...3).map { JobRequest(projection: "q", partition: "a", streamId: "s\($0)") })
            try await queue.enqueue((1...2).map { JobRequest(projection: "p", partition: "b", streamId: "s\($0)", lane: .backfill) })
            try await queue.enqueue([JobRequest(projection: "p", partition: "c", streamId: "s1")])
            try await queue.setQuota(partition: "a", lane: .live, maxRunning: 4, weight: nil, paused: nil)
            try await queue.setQuota(partition: "c", lane: .live, maxRunning: nil, weight: nil, paused: true)
            func demand(_ projections: [String]?, _ lanes: [String], _ partitions: [String]?) async throws -> Int64 {
                try await schema.count("SELECT ef_pool_demand(\(projections)::text[], \(lanes)::text[], \(partitions)::text[])")
            }
            #expect(try await demand(["p"], ["live"], nil) == 4, "a's 5 jobs of p, capped at 4; c is paused")
            #expect(try await demand(["p"], ["live", "backfill"], nil) == 6)
            #expect(try await demand(["q"], ["live"], nil) == 3)
            #expect(try await demand(nil, ["live"], ["a"]) == 4, "8 of every projection, capped at 4")
            #expect(try await demand(["p"], ["backfill"], ["a"]) == 0)
            #expect(try await demand(["r"], ["live", "backfill"], nil) == 0, "no job of a projection the pool runs")
        }
    }

    @Test("draining hands unfinished jobs back without counting the attempt")
    func release() async throws {
        try await TestDatabase.withSchema { schema in
            let queue = JobQueue(store: schema.store)
            try await queue.enqueue([JobRequest(projection: "p", partition: "a", streamId: "s")])
            try await schema.register("w")
            let job = try #require(try await queue.claim(worker: "w", lanes: [.live], partitions: nil, slots: 1).first)
            #expect(try await queue.release([job], worker: "w") == 1)
            let again = try #require(try await queue.claim(worker: "w", lanes: [.live], partitions: nil, slots: 1).first)
            #expect(again.attempt == 1)
        }
    }
}

extension TestSchema {
    func register(_ worker: String, projections: [String]? = nil) async throws {
        try await JobQueue(store: store).register(
            WorkerRegistration(id: worker, host: "test", pid: 1, lanes: JobLane.allCases, partitions: nil, slots: 8, projections: projections)
        )
    }

}

extension JobQueue {
    func backfillJobs(count: Int, partition: String) async throws {
        try await enqueue((1...count).map { JobRequest(projection: "p", partition: partition, streamId: "b\($0)", lane: .backfill) })
    }
}
