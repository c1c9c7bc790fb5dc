import EventFleetDashboard
import EventFleetJobs
import EventFleetPostgres
import EventFleetTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// The dashboard's live figures and its stale state: one read of the fleet per refresh interval
/// feeds the pages and `api/overview`; a failed read keeps the last one and says so.
@Suite("Dashboard live figures")
struct DashboardLiveTests {
    static let interval = Duration.milliseconds(100)

    static func withDashboard(_ schema: TestSchema, _ body: @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        let router = Router()
        Dashboard(store: schema.store, configuration: Dashboard.Configuration(refreshInterval: interval)).addRoutes(to: router)
        try await Application(router: router).test(.router) { client in try await body(client) }
    }

    struct Figures: Decodable {
        var ready: Int64
        var stale: Bool
        var error: String?
    }

    static func figures(_ client: any TestClientProtocol) async throws -> Figures {
        try await client.execute(uri: "/api/overview", method: .get) { response in
            #expect(response.headers[.contentType] == "application/json")
            return try JSONDecoder().decode(Figures.self, from: Data(buffer: response.body))
        }
    }

    static func page(_ client: any TestClientProtocol, _ uri: String) async throws -> (status: HTTPResponse.Status, body: String) {
        try await client.execute(uri: uri, method: .get) { ($0.status, String(buffer: $0.body)) }
    }

    @Test("api/overview follows the fleet: jobs enqueued after a read show within a refresh interval; the overview marks its live figures and loads the script that updates them")
    func figuresFollowTheFleet() async throws {
        try await TestDatabase.withSchema { schema in
            try await Self.withDashboard(schema) { client in
                #expect(try await Self.figures(client).ready == 0)
                try await JobQueue(store: schema.store).enqueue((0..<3).map { JobRequest(projection: "carts", partition: "acme", streamId: "s\($0)") })
                try await waitUntil(timeout: .seconds(10), "the figures show the new jobs") { try await Self.figures(client).ready == 3 }

                let overview = try await Self.page(client, "/")
                #expect(overview.body.contains(#"<span data-live="ready">3</span>"#), "\(overview.body)")
                #expect(overview.body.contains(#"<script src="/assets/live.js" defer></script>"#))
                #expect(overview.body.contains(#"<div id="stale" class="stale" role="status" hidden></div>"#))
                let script = try await client.execute(uri: "/assets/live.js", method: .get) { $0 }
                #expect(script.headers[.contentType] == "text/javascript; charset=utf-8")
                #expect(String(buffer: script.body).contains("api/overview"))
            }
        }
    }

    @Test("when reads fail, pages show the last read with a stale banner naming the error, and api/overview says stale; once reads succeed the banner goes")
    func staleWhileReadsFail() async throws {
        try await TestDatabase.withSchema { schema in
            try await JobQueue(store: schema.store).enqueue([JobRequest(projection: "carts", partition: "acme", streamId: "s")])
            try await Self.withDashboard(schema) { client in
                #expect(try await Self.page(client, "/tenants").body.contains(">acme<"))
                // The routine the reads call is gone, as in a database restored without it.
                try await schema.execute("ALTER FUNCTION ef_fleet_status(text) RENAME TO ef_fleet_status_gone")
                try await waitUntil(timeout: .seconds(10), "the figures are stale") { try await Self.figures(client).stale }
                let stale = try await Self.page(client, "/tenants")
                #expect(stale.status == .ok)
                #expect(stale.body.contains("The fleet could not be read since"), "\(stale.body)")
                #expect(stale.body.contains("ef_fleet_status"), "the banner names the error: \(stale.body)")
                #expect(stale.body.contains(">acme<"), "the last read is still shown")
                #expect(try await Self.figures(client).ready == 1)

                try await schema.execute("ALTER FUNCTION ef_fleet_status_gone(text) RENAME TO ef_fleet_status")
                try await waitUntil(timeout: .seconds(10), "the figures are fresh again") { try await !Self.figures(client).stale }
                #expect(try await Self.page(client, "/tenants").body.contains(#"role="status" hidden"#))
            }
        }
    }

    @Test("before any read has succeeded a page says the fleet cannot be read, with status 503")
    func unavailableBeforeTheFirstRead() async throws {
        try await TestDatabase.withSchema { schema in
            try await schema.execute("ALTER FUNCTION ef_fleet_status(text) RENAME TO ef_fleet_status_gone")
            try await Self.withDashboard(schema) { client in
                let page = try await Self.page(client, "/")
                #expect(page.status == .serviceUnavailable)
                #expect(page.body.contains("The fleet cannot be read"))
            }
        }
    }

    @Test("while the dashboard's service polls, pages render the last read at once even when a read hangs, and say stale once it has hung for three intervals and five seconds")
    func pagesNeverWaitForTheDatabase() async throws {
        try await TestDatabase.withSchema { schema in
            try await JobQueue(store: schema.store).enqueue([JobRequest(projection: "carts", partition: "acme", streamId: "s")])
            let router = Router()
            let dashboard = Dashboard(store: schema.store, configuration: Dashboard.Configuration(refreshInterval: Self.interval))
            dashboard.addRoutes(to: router)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await dashboard.run() }
                defer { group.cancelAll() }
                try await Application(router: router).test(.router) { client in
                    try await waitUntil("the service has read the fleet") { try await Self.figures(client).ready == 1 }
                    // Every read of the fleet now waits for this lock until the transaction ends.
                    try await schema.withOpenTransaction { connection in
                        try await connection.query("LOCK TABLE ef_tenant_quotas IN ACCESS EXCLUSIVE MODE", logger: TestDatabase.logger)
                        // Answered while the lock is held: the page rendered the last read.
                        let page = try await Self.page(client, "/tenants")
                        #expect(page.status == .ok && page.body.contains(">acme<"))
                        try await waitUntil(timeout: .seconds(30), "the figures say the database has not answered") {
                            let figures = try await Self.figures(client)
                            return figures.stale && figures.error?.contains("has not answered") == true
                        }
                        #expect(try await Self.page(client, "/tenants").body.contains("has not answered"))
                    }
                    try await waitUntil(timeout: .seconds(30), "fresh again once the lock is gone") { try await !Self.figures(client).stale }
                }
            }
        }
    }
}
