import CartsExample
import EventFleetCore
import EventFleetJobs
import EventFleetPostgres
import EventFleetTestSupport
import Foundation
import PostgresNIO
import Testing

/// backfill, scale, jobs and monitor through the `eventfleet` binary.
@Suite("Operator commands", .exclusive)
struct OperatorCommandTests {
    @Test("backfill enqueues one job per stream, and re-running it adds none")
    func backfill() async throws {
        try await withCartsSchema { schema in
            _ = try await writeCarts(schema.store, tenants: ["a", "b"], cartsPerTenant: 3)
            let first = try await eventfleet(["backfill", "--partition", "a"], url: schema.url)
            #expect(first.status == 0, "\(first.stderr)")
            #expect(first.stdout.contains("3 streams, 3 new jobs"), "\(first.stdout)")
            let again = try await eventfleet(["backfill", "--all-partitions"], url: schema.url)
            #expect(again.stdout.contains("6 streams, 3 new jobs"), "\(again.stdout)")
            #expect(try await schema.count("SELECT count(*) FROM ef_jobs WHERE lane = 'backfill'") == 6)
            let both = try await eventfleet(["backfill", "--partition", "a", "--all-partitions"], url: schema.url)
            #expect(both.status == 2)
        }
    }

    @Test("monitor names the database's oldest open transaction once it is 10 s old: it keeps the job table's dead rows")
    func monitorNamesTheOldestTransaction() async throws {
        try await withCartsSchema { schema in
            try await schema.execute("CREATE TABLE unrelated (id integer)")
            try await schema.withOpenTransaction { open in
                try await open.query("INSERT INTO \(unescaped: schema.name).unrelated VALUES (1)", logger: TestDatabase.logger)
                var pid: Int32 = 0
                for try await value in try await open.query("SELECT pg_backend_pid()", logger: TestDatabase.logger).decode(Int32.self) { pid = value }
                try await waitUntil(timeout: .seconds(60), "the transaction is 10 s old") {
                    let oldest = try await FleetStatus.read(from: schema.store).jobTable.oldestTransaction
                    return oldest?.pid == pid && oldest?.ageSeconds ?? 0 >= 10
                }
                let text = try await eventfleet(["monitor"], url: schema.url)
                #expect(text.status == 0, "\(text.stderr)")
                #expect(text.stdout.contains("pid \(pid) (idle in transaction), open for"), "\(text.stdout)")
                #expect(text.stdout.contains("keeps the dead rows: claims slow down until it ends"), "\(text.stdout)")
            }
        }
    }

    @Test("scale sets caps and pauses; jobs list, retry and purge act on dead jobs; monitor reports them")
    func scaleJobsMonitor() async throws {
        try await withCartsSchema { schema in
            let scale = try await eventfleet(["scale", "--partition", "a", "--lane", "live", "--max-running", "3", "--weight", "2"], url: schema.url)
            #expect(scale.status == 0, "\(scale.stderr)")
            let pause = try await eventfleet(["scale", "--partition", "a", "--pause"], url: schema.url)
            #expect(pause.status == 0)
            #expect(try await schema.count("SELECT count(*) FROM ef_tenant_quotas WHERE partition = 'a' AND paused") == 2)
            #expect(try await schema.count("SELECT max_running::bigint FROM ef_tenant_quotas WHERE partition = 'a' AND lane = 'live'") == 3)
            #expect(try await eventfleet(["scale", "--partition", "a"], url: schema.url).status == 2, "nothing to change")

            let queue = JobQueue(store: schema.store)
            try await queue.enqueue([JobRequest(projection: "carts", partition: "b", streamId: "s", maxAttempts: 1)])
            try await queue.register(WorkerRegistration(id: "w", host: "h", pid: 1, lanes: [.live], partitions: nil, slots: 1))
            let job = try #require(try await queue.claim(worker: "w", lanes: [.live], partitions: nil, slots: 1).first)
            #expect(try await queue.fail(job, worker: "w", error: "boom", retryDelay: .zero) == .dead)

            let list = try await eventfleet(["jobs", "list"], url: schema.url)
            #expect(list.stdout.contains("boom"), "\(list.stdout)")
            #expect(list.stdout.contains("1 dead jobs"))
            let json = try await eventfleet(["monitor", "--json"], url: schema.url)
            #expect(json.status == 0, "\(json.stderr)")
            let status = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
            let lanes = try #require(status["lanes"] as? [[String: Any]])
            #expect(lanes.contains { $0["partition"] as? String == "b" && $0["dead"] as? Int == 1 })
            #expect(lanes.contains { $0["partition"] as? String == "a" && $0["paused"] as? Bool == true })
            let text = try await eventfleet(["monitor"], url: schema.url)
            #expect(text.stdout.contains("WORKERS (1)"), "\(text.stdout)")

            let retry = try await eventfleet(["jobs", "retry", "--partition", "b"], url: schema.url)
            #expect(retry.stdout.contains("retried 1 dead jobs"), "\(retry.stdout)")
            #expect(try await schema.count("SELECT count(*) FROM ef_jobs WHERE state = 'ready'") == 1)
            try await schema.execute("UPDATE ef_jobs SET state = 'dead'")
            let purge = try await eventfleet(["jobs", "purge", "--all"], url: schema.url)
            #expect(purge.stdout.contains("purged 1 dead jobs"), "\(purge.stdout)")
            #expect(try await eventfleet(["jobs", "retry"], url: schema.url).status == 2, "a selection is required")
        }
    }
}
