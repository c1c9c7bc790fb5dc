import EventFleetCLI
import EventFleetJobs
import EventFleetTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// `eventfleet dashboard` as an operator starts it: it says where it listens, serves the pages,
/// acts with a token from the environment, outlives a database restart, and stops cleanly on
/// SIGTERM.
@Suite("Dashboard command", .exclusive, .timeLimit(.minutes(3)))
struct DashboardCommandTests {
    /// Starts `eventfleet dashboard --port 0` on `schema`, runs `body` with its first line and a
    /// client connected to it, then stops it with SIGTERM and returns how it ended and its log.
    static func withDashboard(
        _ schema: TestSchema, environment extra: [String: String] = [:], _ body: (_ line: String, _ client: TestClient) async throws -> Void
    ) async throws -> (termination: ChildProcess.Termination, log: String) {
        let dashboard = try ChildProcess(
            try builtProduct("eventfleet"), arguments: ["dashboard", "--port", "0"],
            environment: childEnvironment(url: schema.url).merging(extra) { $1 }, output: .lines, error: .capture
        )
        do {
            let line = try #require(await dashboard.readLine())
            let port = try #require(line.firstMatch(of: /127\.0\.0\.1:(\d+)\//).flatMap { Int($0.1) }, "\(line)")
            let client = TestClient(host: "127.0.0.1", port: port)
            client.connect()
            do {
                try await body(line, client)
            } catch {
                try? await client.shutdown()
                throw error
            }
            try await client.shutdown()
        } catch {
            dashboard.signal(SIGTERM)
            throw error
        }
        dashboard.signal(SIGTERM)
        let termination = try await dashboard.exit(within: .seconds(20))
        return (termination, await dashboard.capturedError())
    }

    @Test("it listens on 127.0.0.1 and says so, serves the overview and the tenants page, and exits 0 on SIGTERM")
    func servesAndStops() async throws {
        try await withCartsSchema { schema in
            let (termination, log) = try await Self.withDashboard(schema) { line, client in
                #expect(line.contains("listening on http://127.0.0.1:"), "\(line)")
                #expect(line.contains("read-only"), "\(line)")
                for path in ["/", "/tenants"] {
                    let response = try await client.get(path)
                    #expect(response.status == .ok, "\(path)")
                    #expect(response.body.map { String(buffer: $0) }?.contains("EventFleet") == true, "\(path)")
                }
            }
            #expect(termination == .exited(0), "\(log.suffix(2_000))")
        }
    }

    @Test("given admin tokens in the environment, it says whose actions it takes; a bearer token acts, and the audit names it")
    func adminTokensFromTheEnvironment() async throws {
        try await withCartsSchema { schema in
            let (termination, _) = try await Self.withDashboard(schema, environment: ["EVENTFLEET_DASHBOARD_ADMIN_TOKENS": "ops-team 0123456789abcdef0123"]) { line, client in
                #expect(line.contains("(actions for ops-team)"), "\(line)")
                let response = try await client.post(
                    "/actions/quota", headers: [.authorization: "Bearer 0123456789abcdef0123", .contentType: "application/x-www-form-urlencoded"],
                    body: ByteBuffer(string: "tenant=acme&lane=live&paused=true")
                )
                #expect(response.status == .ok, "\(response.body.map { String(buffer: $0) } ?? "")")
            }
            #expect(termination == .exited(0))
            #expect(try await schema.count("SELECT count(*) FROM ef_tenant_quotas WHERE partition = 'acme' AND paused") == 1)
            #expect(try await schema.count("SELECT count(*) FROM ef_dashboard_audit WHERE actor = 'ops-team' AND action = 'quota'") == 1)
        }
    }

    struct Figures: Decodable {
        var ready: Int64
        var stale: Bool
    }

    @Test(
        "pg_ctl restart -m immediate under it: it keeps serving, and its figures follow the fleet again once the database is back",
        .enabled(if: DatabaseRestart.command != nil, "needs EVENTFLEET_TEST_RESTART_DATABASE (set by scripts/test)")
    )
    func outlivesADatabaseRestart() async throws {
        try await withCartsSchema { schema in
            try await JobQueue(store: schema.store).enqueue([JobRequest(projection: "carts", partition: "acme", streamId: "before")])
            let (termination, log) = try await Self.withDashboard(schema) { _, client in
                func figures() async throws -> Figures {
                    let response = try await client.get("/api/overview")
                    return try JSONDecoder().decode(Figures.self, from: Data(buffer: try #require(response.body)))
                }
                try await waitUntil("the dashboard reads the fleet") { try await figures().ready == 1 }
                try await DatabaseRestart.restart()
                // The overview answers while the database comes back (with the last read, or stale).
                #expect(try await client.get("/").status == .ok)
                try await waitUntil(timeout: .seconds(60), "a job enqueued after the restart") {
                    (try? await JobQueue(store: schema.store).enqueue([JobRequest(projection: "carts", partition: "acme", streamId: "after")])) != nil
                }
                try await waitUntil(timeout: .seconds(60), "the figures follow the fleet again") {
                    let now = try await figures()
                    return now.ready == 2 && !now.stale
                }
                #expect(try await client.get("/tenants/acme").status == .ok)
            }
            #expect(termination == .exited(0), "\(log.suffix(2_000))")
        }
    }

    @Test("a port out of range, a base path without a leading slash, a missing or wrong admin token file are refused with exit 2")
    func badInput() async throws {
        let tokens = FileManager.default.temporaryDirectory.appendingPathComponent("eventfleet-tokens-\(UUID().uuidString)").path
        try "alice short\n".write(toFile: tokens, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: tokens) }
        for (arguments, message) in [
            (["dashboard", "--port", "70000"], "--port must be 0 to 65535"), (["dashboard", "--base-path", "fleet"], "--base-path must begin with /"),
            (["dashboard", "--admin-token-file", "/nonexistent/tokens"], "the admin token file /nonexistent/tokens cannot be read"),
            (["dashboard", "--admin-token-file", tokens], "line 1): the token of 'alice' is shorter than 16 characters"),
        ] {
            let result = try await ChildProcess.run(try builtProduct("eventfleet"), arguments: arguments, environment: [:])
            #expect(result.status == 2, "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)")
        }
    }
}
