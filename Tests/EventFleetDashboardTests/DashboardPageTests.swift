import EventFleetDashboard
import EventFleetJobs
import EventFleetPostgres
import EventFleetTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// The dashboard's pages against real PostgreSQL, through Hummingbird's router: each renders with
/// the fleet it reads, escapes what the fleet's data contains, and answers 404 for what it lacks.
@Suite("Dashboard pages")
struct DashboardPageTests {
    static let hostile = "<script>alert(1)</script>"

    /// The dashboard of `schema`'s fleet, tested through its router.
    static func withDashboard(
        _ schema: TestSchema, pageSize: Int = 100, _ body: @Sendable (any TestClientProtocol) async throws -> Void
    ) async throws {
        let router = Router()
        Dashboard(store: schema.store, configuration: Dashboard.Configuration(pageSize: pageSize)).addRoutes(to: router)
        try await Application(router: router).test(.router) { client in try await body(client) }
    }

    static func get(_ client: any TestClientProtocol, _ uri: String) async throws -> (status: HTTPResponse.Status, body: String) {
        try await client.execute(uri: uri, method: .get) { response in (response.status, String(buffer: response.body)) }
    }

    /// Jobs in `tenants`: one ready live job each, and in the first tenant a job that died with
    /// `error` on a stream named `stream`.
    static func seed(_ schema: TestSchema, tenants: [String], stream: String = "cart-1", error: String = "boom") async throws {
        let queue = JobQueue(store: schema.store)
        try await queue.enqueue(tenants.map { JobRequest(projection: "carts", partition: $0, streamId: "cart-ready") })
        try await queue.enqueue([JobRequest(projection: "carts", partition: tenants[0], streamId: stream, maxAttempts: 1)])
        let claimed = try await queue.claim(worker: "w1", lanes: [.live], partitions: [tenants[0]], slots: 10)
        for job in claimed where job.streamId == stream {
            _ = try await queue.fail(job, worker: "w1", error: error, retryDelay: .zero)
        }
        for job in claimed where job.streamId != stream {
            _ = try await queue.release([job], worker: "w1")
        }
    }

    @Test("a lane with more ready jobs than the count limit shows the limit with a plus, on the tenants page, its own page and the overview")
    func countsBeyondTheLimit() async throws {
        try await TestDatabase.withSchema { schema in
            for chunk in stride(from: 0, to: 10_001, by: 5_000) {
                try await JobQueue(store: schema.store).enqueue(
                    (chunk..<min(chunk + 5_000, 10_001)).map { JobRequest(projection: "carts", partition: "deep", streamId: "s\($0)") }
                )
            }
            try await Self.withDashboard(schema) { client in
                let (tenants, tenant, overview) = (try await Self.get(client, "/tenants"), try await Self.get(client, "/tenants/deep"), try await Self.get(client, "/"))
                #expect(tenants.body.contains(#"<td class="n">10,000+</td>"#), "\(tenants.body)")
                #expect(tenant.body.contains(#"<td class="n">10,000+</td>"#), "\(tenant.body)")
                #expect(overview.body.contains(#"<span data-live="ready">10,000+</span>"#), "\(overview.body)")
            }
        }
    }

    @Test("every page renders on an empty database, and says there is nothing yet")
    func emptyDatabase() async throws {
        try await TestDatabase.withSchema { schema in
            try await Self.withDashboard(schema) { client in
                for (path, text) in [
                    ("/", "Overview"), ("/", "No history yet: the leading scheduler records a point each minute."),
                    ("/tenants", "No tenant has jobs or a quota yet."), ("/workers", "No worker is registered."),
                    ("/projections", "No projection is registered"), ("/dead", "No dead jobs match."),
                ] {
                    let page = try await Self.get(client, path)
                    #expect(page.status == .ok, "\(path)")
                    #expect(page.body.contains(text), "\(path): \(page.body.suffix(1_500))")
                    #expect(page.body.contains("<!doctype html>"), "\(path)")
                }
                #expect(try await !Self.get(client, "/").body.contains("<svg"), "no chart without history")
                let css = try await Self.get(client, "/assets/dashboard.css")
                #expect(css.status == .ok && css.body.contains("font"))
            }
        }
    }

    @Test("a seeded fleet: tenants with their lanes, caps and weights, a worker with its lanes, tenants and projections, a tenant's page with its dead job and error, the dead-jobs list and its filters")
    func seededFleet() async throws {
        try await TestDatabase.withSchema { schema in
            try await Self.seed(schema, tenants: ["acme", "globex"], error: "decoding failed at position 7")
            try await JobQueue(store: schema.store).setQuota(partition: "globex", lane: .live, maxRunning: 3, weight: 7, paused: true)
            try await JobQueue(store: schema.store).register(WorkerRegistration(
                id: "worker-big", host: "node-4", pid: 4242, lanes: [.backfill], partitions: ["globex"], slots: 8, projections: ["carts@2"]
            ))
            var counts = JobCounts()
            counts.completed = ["globex": [.backfill: 1_230]]
            counts.failed = ["globex": [.backfill: 17]]
            #expect(try await JobQueue(store: schema.store).heartbeat(worker: "worker-big", draining: false, counts: counts))
            counts.completed = ["globex": [.backfill: 4]]
            counts.failed = [:]
            #expect(try await JobQueue(store: schema.store).heartbeat(worker: "worker-big", draining: false, counts: counts))
            try await Self.withDashboard(schema) { client in
                let overview = try await Self.get(client, "/")
                #expect(overview.body.contains("dead jobs"), "\(overview.body)")

                let tenants = try await Self.get(client, "/tenants")
                #expect(tenants.body.contains(#"<a href="/tenants/acme">acme</a>"#), "\(tenants.body)")
                #expect(tenants.body.contains(#"0 / 3</td><td class="n">7</td>"#), "globex's cap and weight: \(tenants.body)")
                #expect(tenants.body.contains("paused"))

                let workers = try await Self.get(client, "/workers")
                for text in [
                    "<code>worker-big</code>", "node-4", "4242", "<td>backfill</td>", "<td>globex</td>", "<td>carts@2</td>", "0 / 8",
                    "<th class=\"n\">jobs done</th>", #"<td class="n">1,234</td><td class="n">17</td>"#,
                ] {
                    #expect(workers.body.contains(text), "\(text): \(workers.body)")
                }

                let acme = try await Self.get(client, "/tenants/acme")
                #expect(acme.status == .ok)
                #expect(acme.body.contains("No job has waited 1 min or more."), "\(acme.body)")
                #expect(acme.body.contains("decoding failed at position 7"), "\(acme.body)")
                #expect(acme.body.contains("cart-1"))

                let filtered = try await Self.get(client, "/dead?error=position%207")
                #expect(filtered.body.contains("decoding failed"), "\(filtered.body)")
                let none = try await Self.get(client, "/dead?projection=orders")
                #expect(none.body.contains("No dead jobs match."))
                #expect(!none.body.contains("decoding failed"))
            }
        }
    }

    @Test("the overview charts the last hour from the recorded minutes: backlog, throughput and lag, with their highest value, the window's ends, a title and description, and gaps where minutes have no point")
    func overviewCharts() async throws {
        try await TestDatabase.withSchema { schema in
            // Points at minutes -20 (alone), -10 to -6 and -3 to -1; ready peaks at 1,234.
            try await schema.execute("""
                INSERT INTO ef_fleet_minutes (minute, ready, running, dead, oldest_ready_seconds, head_position, scheduled_position,
                                              lag_events, lag_seconds)
                SELECT date_trunc('minute', now()) - m * interval '1 minute', CASE WHEN m = 8 THEN 1234 ELSE m * 10 END, 2, 0,
                       m * 3.0, 1000 - m * 50, 1000 - m * 60, m * 10, m * 1.5
                  FROM unnest(ARRAY[20, 10, 9, 8, 7, 6, 3, 2, 1]) AS m
                """)
            try await schema.execute("""
                INSERT INTO ef_job_stats (partition, lane, minute, completed, failed)
                VALUES ('acme', 'live', date_trunc('minute', now()) - interval '9 minutes', 40, 0),
                       ('globex', 'live', date_trunc('minute', now()) - interval '9 minutes', 2, 0)
                """)
            try await Self.withDashboard(schema) { client in
                let page = try await Self.get(client, "/").body
                #expect(page.contains("<h2>The last hour</h2>"), "\(page)")
                #expect(!page.contains("No history yet"))
                for chart in ["backlog", "throughput", "lag"] {
                    #expect(page.contains(#"data-chart="\#(chart)""#), "\(chart): \(page)")
                }
                let backlog = try #require(Self.figure(page, chart: "backlog"), "\(page)")
                #expect(backlog.contains(#"role="img" aria-labelledby="chart-backlog-title chart-backlog-desc""#), "\(backlog)")
                #expect(backlog.contains(#"<title id="chart-backlog-title">Backlog, the last 60 minutes</title>"#), "\(backlog)")
                #expect(backlog.contains("ready: latest 10, highest 1,234"), "\(backlog)")
                #expect(backlog.contains(">1,234</text>") && backlog.contains(">60 min ago</text>") && backlog.contains(">now</text>"), "\(backlog)")
                // Ready's line breaks at the gaps: two runs drawn as lines, the lone minute as a dot.
                #expect(Self.occurrences(of: #"<polyline class="s1""#, in: backlog) == 2, "\(backlog)")
                #expect(Self.occurrences(of: #"<circle class="s1""#, in: backlog) == 1, "\(backlog)")

                let throughput = try #require(Self.figure(page, chart: "throughput"), "\(page)")
                #expect(throughput.contains("jobs done: latest 0/min, highest 42/min"), "jobs done of every tenant: \(throughput)")
                #expect(throughput.contains("events appended: latest 50/min"), "the head's growth to the next point: \(throughput)")
                let lag = try #require(Self.figure(page, chart: "lag"), "\(page)")
                #expect(lag.contains("event not scheduled: latest 2 s, highest 30 s"), "\(lag)")
                #expect(page.contains(#"<span data-live="ready">"#), "the live figures stay")
            }
        }
    }

    /// The `<figure>` of one chart of `page`.
    static func figure(_ page: String, chart: String) -> String? {
        guard let marker = page.range(of: "data-chart=\"\(chart)\""),
              let start = page.range(of: "<figure", options: .backwards, range: page.startIndex..<marker.lowerBound),
              let end = page.range(of: "</figure>", range: marker.upperBound..<page.endIndex)
        else { return nil }
        return String(page[start.lowerBound..<end.upperBound])
    }

    static func occurrences(of text: String, in string: String) -> Int {
        string.components(separatedBy: text).count - 1
    }

    @Test("a tenant's page lists the streams whose jobs have waited the long-wait time or more, longest first")
    func longWaitingStreams() async throws {
        try await TestDatabase.withSchema { schema in
            try await JobQueue(store: schema.store).enqueue(["fresh", "stuck", "older"].map { JobRequest(projection: "carts", partition: "acme", streamId: $0) })
            try await schema.execute("UPDATE ef_jobs SET run_at = now() - interval '5 minutes' WHERE stream_id = 'stuck'")
            try await schema.execute("UPDATE ef_jobs SET run_at = now() - interval '2 hours' WHERE stream_id = 'older'")
            try await Self.withDashboard(schema) { client in
                let page = try await Self.get(client, "/tenants/acme")
                #expect(page.body.contains("Streams waiting 1 min or more"), "\(page.body)")
                let older = try #require(page.body.range(of: "<code>older</code>"))
                let stuck = try #require(page.body.range(of: "<code>stuck</code>"))
                #expect(older.lowerBound < stuck.lowerBound, "longest waiting first")
                #expect(!page.body.contains("<code>fresh</code>"))
                #expect(page.body.contains("2.0 h") && page.body.contains("5 min"), "\(page.body)")
            }
        }
    }

    @Test("tenant names, stream ids and error texts that hold markup are shown as text")
    func escapesTheFleetsData() async throws {
        try await TestDatabase.withSchema { schema in
            try await Self.seed(schema, tenants: [Self.hostile, "plain"], stream: Self.hostile, error: "\(Self.hostile) & \"quotes\"")
            try await Self.withDashboard(schema) { client in
                let tenantPath = "/tenants/" + Self.hostile.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(["/"]))!
                for path in ["/tenants", "/dead", tenantPath, "/tenants?q=%3Cscript%3E"] {
                    let page = try await Self.get(client, path)
                    #expect(page.status == .ok, "\(path)")
                    #expect(!page.body.contains("<script>"), "\(path) renders markup from data: \(page.body)")
                    #expect(page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "\(path): \(page.body)")
                }
            }
        }
    }

    @Test("an unknown route or tenant is 404; a bad page number or sort is the first page, sorted by name")
    func notFoundAndBadInput() async throws {
        try await TestDatabase.withSchema { schema in
            try await Self.seed(schema, tenants: ["acme"])
            try await Self.withDashboard(schema) { client in
                #expect(try await Self.get(client, "/nope").status == .notFound)
                let unknown = try await Self.get(client, "/tenants/nobody")
                #expect(unknown.status == .notFound)
                #expect(unknown.body.contains("No tenant “nobody”"))
                let bad = try await Self.get(client, "/tenants?page=-3&sort=%3Cx%3E")
                #expect(bad.status == .ok)
                #expect(bad.body.contains("page 1 of 1"), "\(bad.body)")
            }
        }
    }

    @Test("1,000 tenants: a page of 100 at a time, search narrows them, sorting by ready puts the busiest first")
    func thousandTenants() async throws {
        try await TestDatabase.withSchema { schema in
            let tenants = (0..<1_000).map { String(format: "tenant-%04d", $0) }
            let queue = JobQueue(store: schema.store)
            try await queue.enqueue(tenants.map { JobRequest(projection: "carts", partition: $0, streamId: "s") })
            try await queue.enqueue((0..<5).map { JobRequest(projection: "carts", partition: "tenant-0777", streamId: "busy-\($0)") })
            try await Self.withDashboard(schema) { client in
                let first = try await Self.get(client, "/tenants")
                #expect(first.body.contains("page 1 of 10 · 1,000 tenants"), "\(first.body.suffix(600))")
                #expect(first.body.contains(">tenant-0099<") && !first.body.contains(">tenant-0100<"))
                let last = try await Self.get(client, "/tenants?page=10")
                #expect(last.body.contains(">tenant-0999<") && !last.body.contains(">tenant-0899<"))
                let search = try await Self.get(client, "/tenants?q=0777")
                #expect(search.body.contains("page 1 of 1 · 1 tenant<"), "\(search.body.suffix(600))")
                let busiest = try await Self.get(client, "/tenants?sort=ready")
                let firstRow = busiest.body.range(of: "<tbody>").map { busiest.body[$0.upperBound...].prefix(200) } ?? ""
                #expect(firstRow.contains("tenant-0777"), "\(firstRow)")
            }
        }
    }
}
