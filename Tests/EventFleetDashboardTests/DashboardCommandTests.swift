import EventFleetCLI
import EventFleetTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// `eventfleet dashboard` as an operator starts it: it says where it listens, serves the pages, and
/// stops cleanly on SIGTERM.
@Suite("Dashboard command", .exclusive, .timeLimit(.minutes(3)))
struct DashboardCommandTests {
    @Test("it listens on 127.0.0.1 and says so, serves the overview and the tenants page, and exits 0 on SIGTERM")
    func servesAndStops() async throws {
        try await withCartsSchema { schema in
            let dashboard = try ChildProcess(
                try builtProduct("eventfleet"), arguments: ["dashboard", "--port", "0"], environment: childEnvironment(url: schema.url),
                output: .lines, error: .capture
            )
            do {
                let line = try #require(await dashboard.readLine())
                #expect(line.contains("listening on http://127.0.0.1:"), "\(line)")
                #expect(line.contains("read-only"), "\(line)")
                let port = try #require(line.firstMatch(of: /127\.0\.0\.1:(\d+)\//).flatMap { Int($0.1) })
                let client = TestClient(host: "127.0.0.1", port: port)
                client.connect()
                do {
                    for path in ["/", "/tenants"] {
                        let response = try await client.get(path)
                        #expect(response.status == .ok, "\(path)")
                        #expect(response.body.map { String(buffer: $0) }?.contains("EventFleet") == true, "\(path)")
                    }
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
            let log = await dashboard.capturedError()
            #expect(termination == .exited(0), "\(log.suffix(2_000))")
        }
    }

    @Test("given admin tokens in the environment, it says whose actions it takes; a bearer token acts, and the audit names it")
    func adminTokensFromTheEnvironment() async throws {
        try await withCartsSchema { schema in
            var environment = childEnvironment(url: schema.url)
            environment["EVENTFLEET_DASHBOARD_ADMIN_TOKENS"] = "ops-team 0123456789abcdef0123"
            let dashboard = try ChildProcess(
                try builtProduct("eventfleet"), arguments: ["dashboard", "--port", "0"], environment: environment, output: .lines, error: .capture
            )
            do {
                let line = try #require(await dashboard.readLine())
                #expect(line.contains("(actions for ops-team)"), "\(line)")
                let port = try #require(line.firstMatch(of: /127\.0\.0\.1:(\d+)\//).flatMap { Int($0.1) })
                let client = TestClient(host: "127.0.0.1", port: port)
                client.connect()
                do {
                    let response = try await client.post(
                        "/actions/quota", headers: [.authorization: "Bearer 0123456789abcdef0123", .contentType: "application/x-www-form-urlencoded"],
                        body: ByteBuffer(string: "tenant=acme&lane=live&paused=true")
                    )
                    #expect(response.status == .ok, "\(response.body.map { String(buffer: $0) } ?? "")")
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
            #expect(try await dashboard.exit(within: .seconds(20)) == .exited(0))
            #expect(try await schema.count("SELECT count(*) FROM ef_tenant_quotas WHERE partition = 'acme' AND paused") == 1)
            #expect(try await schema.count("SELECT count(*) FROM ef_dashboard_audit WHERE actor = 'ops-team' AND action = 'quota'") == 1)
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
