import EventFleetDashboard
import EventFleetJobs
import EventFleetPostgres
import EventFleetTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// The dashboard's actions against real PostgreSQL: each changes exactly what it says, nothing is
/// changed without an admin token, forms forged by another site are refused, bad values change
/// nothing, and every action is in the audit under the token's name.
@Suite("Dashboard actions")
struct DashboardActionTests {
    static let aliceToken = "alice-token-0123456789abcdef"
    static let tokens = "# the operators\nalice \(aliceToken)\nci-bot:ci-token-0123456789abcdef\n"

    /// The dashboard of `schema`'s fleet with admin tokens (or read-only), tested through its router.
    static func withDashboard(
        _ schema: TestSchema, tokens: String? = tokens, _ body: @Sendable (any TestClientProtocol) async throws -> Void
    ) async throws {
        let router = Router()
        let adminTokens = try tokens.map { try AdminTokens(parsing: $0, source: "test") }
        Dashboard(store: schema.store, configuration: Dashboard.Configuration(adminTokens: adminTokens)).addRoutes(to: router)
        try await Application(router: router).test(.router) { client in try await body(client) }
    }

    struct Answer {
        var status: HTTPResponse.Status
        var headers: HTTPFields
        var body: String

        var json: [String: String] {
            (try? JSONDecoder().decode([String: String].self, from: Data(body.utf8))) ?? [:]
        }
    }

    static func send(
        _ client: any TestClientProtocol, _ method: HTTPRequest.Method, _ uri: String, form: [(String, String)] = [], headers: HTTPFields = [:]
    ) async throws -> Answer {
        var headers = headers
        var body: ByteBuffer?
        if method == .post {
            var components = URLComponents()
            components.queryItems = form.map { URLQueryItem(name: $0.0, value: $0.1) }
            body = ByteBuffer(string: components.percentEncodedQuery ?? "")
            headers[.contentType] = "application/x-www-form-urlencoded"
        }
        return try await client.execute(uri: uri, method: method, headers: headers, body: body) { response in
            Answer(status: response.status, headers: response.headers, body: String(buffer: response.body))
        }
    }

    static func bearer(_ token: String = aliceToken) -> HTTPFields {
        [.authorization: "Bearer \(token)"]
    }

    /// Signs in with `token` and returns the session cookie's header value and its `Set-Cookie`.
    static func signIn(_ client: any TestClientProtocol, token: String = aliceToken) async throws -> (cookie: String, setCookie: String) {
        let answer = try await send(client, .post, "/login", form: [("token", token), ("back", "/tenants/acme")])
        #expect(answer.status == .seeOther)
        #expect(answer.headers[.location] == "/tenants/acme")
        let setCookie = try #require(answer.headers[.setCookie])
        return (String(setCookie.prefix(while: { $0 != ";" })), setCookie)
    }

    /// The `csrf` value in a page's forms.
    static func csrf(in page: String) throws -> String {
        let match = try #require(page.firstMatch(of: /name="csrf" value="([0-9a-f]+)"/))
        return String(match.1)
    }

    /// Two tenants with a dead job each (acme's on stream `cart-1` with `error`), and one more dead
    /// job of acme's on `cart-2` that failed differently.
    static func seed(_ schema: TestSchema) async throws {
        let queue = JobQueue(store: schema.store)
        for (partition, stream, error) in [("acme", "cart-1", "decoding failed"), ("acme", "cart-2", "timeout"), ("globex", "order-1", "decoding failed")] {
            try await queue.enqueue([JobRequest(projection: "carts", partition: partition, streamId: stream, maxAttempts: 1)])
            for job in try await queue.claim(worker: "w1", lanes: [.live], partitions: [partition], slots: 10) {
                _ = try await queue.fail(job, worker: "w1", error: error, retryDelay: .zero)
            }
        }
    }

    /// Each job's (tenant, stream, state), sorted.
    static func jobs(_ schema: TestSchema) async throws -> [String] {
        try await schema.rows("SELECT partition, stream_id, state FROM ef_jobs ORDER BY partition, stream_id", as: (String, String, String).self)
            .map { "\($0.0)/\($0.1)/\($0.2)" }
    }

    static func quotas(_ schema: TestSchema) async throws -> [String] {
        try await schema.rows(
            "SELECT partition, lane, max_running, weight, paused FROM ef_tenant_quotas ORDER BY partition, lane", as: (String, String, Int32, Int32, Bool).self
        ).map { "\($0.0)/\($0.1): cap \($0.2) weight \($0.3)\($0.4 ? " paused" : "")" }
    }

    @Test("admin tokens: a file's names and tokens in either form; a wrong line is refused naming it")
    func tokenFile() throws {
        let tokens = try AdminTokens(parsing: Self.tokens, source: "tokens.txt")
        #expect(tokens.names == ["alice", "ci-bot"])
        let cases: [(String, Int?, String)] = [
            ("alice short", 1, "shorter than 16"),
            ("\nalice 0123456789abcdef\nalice 0123456789abcdeg", 3, "given twice"),
            ("<b>ob 0123456789abcdef", 1, "is not 1 to 64"),
            ("0123456789abcdef", 1, "found one word"),
            ("# nobody\n\n", nil, "holds no token"),
        ]
        for (text, line, reason) in cases {
            #expect {
                try AdminTokens(parsing: text, source: "tokens.txt")
            } throws: { error in
                guard case .adminTokens(let source, let errorLine, let message) = error as? DashboardConfigurationError else { return false }
                return source == "tokens.txt" && errorLine == line && message.contains(reason)
            }
        }
        #expect(throws: DashboardConfigurationError.self) { try AdminTokens(contentsOfFile: "/nonexistent/tokens") }
    }

    @Test("a read-only dashboard shows no forms and refuses every action, changing nothing")
    func readOnly() async throws {
        try await TestDatabase.withSchema { schema in
            try await Self.seed(schema)
            let before = try await Self.jobs(schema)
            try await Self.withDashboard(schema, tokens: nil) { client in
                let page = try await Self.send(client, .get, "/tenants/acme")
                #expect(page.body.contains("read-only"))
                #expect(!page.body.contains("/actions/"), "no forms: \(page.body)")
                let answer = try await Self.send(client, .post, "/actions/retry", form: [("tenant", "acme")], headers: Self.bearer())
                #expect(answer.status == .forbidden)
                #expect(answer.json["error"]?.contains("read-only") == true, "\(answer.body)")
                #expect(try await Self.send(client, .post, "/login", form: [("token", Self.aliceToken)]).status == .forbidden)
            }
            #expect(try await Self.jobs(schema) == before)
        }
    }

    @Test("without a token, or with one the dashboard lacks, an action is refused and changes nothing; with a bearer token it acts and answers JSON")
    func tokensGuardActions() async throws {
        try await TestDatabase.withSchema { schema in
            try await Self.seed(schema)
            let before = try await Self.jobs(schema)
            try await Self.withDashboard(schema) { client in
                let page = try await Self.send(client, .get, "/dead")
                #expect(page.body.contains(#"href="/login?back=/dead">Sign in to act</a>"#), "\(page.body.prefix(2_000))")
                #expect(!page.body.contains("/actions/"))

                let anonymous = try await Self.send(client, .post, "/actions/retry", form: [("tenant", "acme")])
                #expect(anonymous.status == .unauthorized)
                #expect(anonymous.json["error"]?.contains("Sign in") == true, "a script gets JSON: \(anonymous.body)")
                let browser = try await Self.send(client, .post, "/actions/retry", form: [("tenant", "acme")], headers: [.accept: "text/html"])
                #expect(browser.status == .unauthorized)
                #expect(browser.body.contains("Nothing was changed") && browser.body.contains("Sign in to act"), "a browser gets a page: \(browser.body)")
                let wrong = try await Self.send(client, .post, "/actions/retry", form: [("tenant", "acme")], headers: Self.bearer("not-a-token-0123456789"))
                #expect(wrong.status == .unauthorized)
                #expect(try await Self.jobs(schema) == before)

                let retried = try await Self.send(client, .post, "/actions/retry", form: [("tenant", "acme")], headers: Self.bearer())
                #expect(retried.status == .ok)
                #expect(retried.json == ["action": "retry", "actor": "alice", "outcome": "2 dead jobs retried"], "\(retried.body)")
            }
            #expect(try await Self.jobs(schema) == ["acme/cart-1/ready", "acme/cart-2/ready", "globex/order-1/dead"])
        }
    }

    @Test("signing in sets a secure, http-only, same-site cookie; a form without the session's csrf value, or sent by another site, is refused; with it the action is taken and its outcome shown once")
    func sessionsAndForgery() async throws {
        try await TestDatabase.withSchema { schema in
            try await Self.seed(schema)
            let before = try await Self.jobs(schema)
            try await Self.withDashboard(schema) { client in
                let refused = try await Self.send(client, .post, "/login", form: [("token", "alice-token-0123456789abcdeX")])
                #expect(refused.status == .unauthorized)
                #expect(refused.headers[.setCookie] == nil)
                #expect(refused.body.contains("not one of this dashboard"))

                let (cookie, setCookie) = try await Self.signIn(client)
                for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
                    #expect(setCookie.contains(attribute), "\(setCookie)")
                }
                let signedIn: HTTPFields = [.cookie: cookie]
                let page = try await Self.send(client, .get, "/tenants/acme", headers: signedIn)
                #expect(page.body.contains("signed in as <strong>alice</strong>"))
                let csrf = try Self.csrf(in: page.body)
                var proxied = signedIn
                proxied[.authorization] = "Basic YWRtaW46YWRtaW4="
                let behindProxy = try await Self.send(client, .get, "/tenants/acme", headers: proxied)
                #expect(behindProxy.body.contains("signed in as <strong>alice</strong>"), "a reverse proxy's basic authentication leaves the session alone")

                let job = try await schema.count("SELECT id FROM ef_jobs WHERE stream_id = 'cart-1'")
                let withoutCSRF = try await Self.send(client, .post, "/actions/purge", form: [("job", "\(job)")], headers: signedIn)
                #expect(withoutCSRF.status == .forbidden)
                #expect(withoutCSRF.body.contains("Nothing was changed"))
                let staleCSRF = try await Self.send(client, .post, "/actions/purge", form: [("job", "\(job)"), ("csrf", String(csrf.reversed()))], headers: signedIn)
                #expect(staleCSRF.status == .forbidden)
                var crossSite = signedIn
                crossSite[HTTPFields.Element.Name("Sec-Fetch-Site")!] = "cross-site"
                let forged = try await Self.send(client, .post, "/actions/purge", form: [("job", "\(job)"), ("csrf", csrf)], headers: crossSite)
                #expect(forged.status == .forbidden)
                #expect(try await Self.jobs(schema) == before)

                let purged = try await Self.send(
                    client, .post, "/actions/purge", form: [("job", "\(job)"), ("csrf", csrf), ("back", "/tenants/acme")], headers: signedIn
                )
                #expect(purged.status == .seeOther)
                #expect(purged.headers[.location] == "/tenants/acme")
                let after = try await Self.send(client, .get, "/tenants/acme", headers: signedIn)
                #expect(after.body.contains(#"<div class="notice" role="status">1 dead job purged (by alice)</div>"#), "\(after.body.prefix(2_000))")
                #expect(!(try await Self.send(client, .get, "/tenants/acme", headers: signedIn)).body.contains("class=\"notice\""), "shown once")

                // An action never sends the browser to another site.
                let elsewhere = try await Self.send(
                    client, .post, "/actions/retry", form: [("job", "999999"), ("csrf", csrf), ("back", "//evil.example/")], headers: signedIn
                )
                #expect(elsewhere.headers[.location] == "/")

                let out = try await Self.send(client, .post, "/logout", form: [("csrf", csrf)], headers: signedIn)
                #expect(out.headers[.setCookie]?.contains("Max-Age=0") == true)
                let afterLogout = try await Self.send(client, .post, "/actions/retry", form: [("tenant", "acme"), ("csrf", csrf)], headers: signedIn)
                #expect(afterLogout.status == .unauthorized)
            }
            #expect(try await Self.jobs(schema) == ["acme/cart-2/dead", "globex/order-1/dead"])
        }
    }

    @Test("each action changes exactly what it says: retry of one job, of the jobs an error filter matches, purge of a tenant's, pause and resume of a lane, cap and weight, a backfill of a tenant")
    func actionsChangeWhatTheySay() async throws {
        try await TestDatabase.withSchema { schema in
            try await Self.seed(schema)
            try await JobQueue(store: schema.store).registerProjections([ProjectionRegistration(name: "carts", eventTypes: nil)])
            try await Self.withDashboard(schema) { client in
                func act(_ name: String, _ form: [(String, String)]) async throws -> String {
                    let answer = try await Self.send(client, .post, "/actions/\(name)", form: form, headers: Self.bearer())
                    #expect(answer.status == .ok, "\(name): \(answer.body)")
                    return answer.json["outcome"] ?? answer.body
                }
                let job = try await schema.count("SELECT id FROM ef_jobs WHERE stream_id = 'cart-2'")
                #expect(try await act("retry", [("job", "\(job)")]) == "1 dead job retried")
                #expect(try await Self.jobs(schema) == ["acme/cart-1/dead", "acme/cart-2/ready", "globex/order-1/dead"])

                #expect(try await act("retry", [("scope", "filtered"), ("error", "DECODING"), ("tenant", "")]) == "2 dead jobs retried")
                #expect(try await Self.jobs(schema) == ["acme/cart-1/ready", "acme/cart-2/ready", "globex/order-1/ready"])

                for job in try await JobQueue(store: schema.store).claim(worker: "w1", lanes: [.live], partitions: nil, slots: 10) {
                    _ = try await JobQueue(store: schema.store).fail(job, worker: "w1", error: "again", retryDelay: .zero)
                }
                #expect(try await act("purge", [("tenant", "acme")]) == "2 dead jobs purged")
                #expect(try await Self.jobs(schema) == ["globex/order-1/dead"])

                #expect(try await act("quota", [("tenant", "acme"), ("lane", "live"), ("paused", "true")]) == "tenant acme (live): paused")
                let paused = try await Self.quotas(schema)
                #expect(paused == ["acme/live: cap 16 weight 1 paused", "globex/live: cap 16 weight 1"])
                _ = try await act("quota", [("tenant", "acme"), ("max_running", "4"), ("weight", "3")])
                _ = try await act("quota", [("tenant", "acme"), ("lane", "live"), ("paused", "false")])
                let scaled = try await Self.quotas(schema)
                #expect(scaled == ["acme/backfill: cap 4 weight 3", "acme/live: cap 4 weight 3", "globex/live: cap 16 weight 1"])

                let backfill = try await act("backfill", [("tenant", "acme"), ("projection", "carts")])
                #expect(backfill.contains("of carts for tenant acme recorded"), "\(backfill)")
                #expect(try await schema.rows("SELECT partition, projections FROM ef_backfills WHERE partition IS NOT NULL", as: (String?, [String]).self).map { "\($0.0 ?? "all") \($0.1)" }
                    == ["acme [\"carts\"]"])
            }
            let audit = try await schema.rows("SELECT actor, action, partition FROM ef_dashboard_audit ORDER BY id", as: (String, String, String?).self)
            #expect(audit.map { "\($0.0) \($0.1) \($0.2 ?? "-")" } == [
                "alice retry -", "alice retry -", "alice purge acme", "alice quota acme", "alice quota acme", "alice quota acme", "alice backfill acme",
            ])
        }
    }

    @Test("bad form values are refused with the field named, and change nothing")
    func badValues() async throws {
        try await TestDatabase.withSchema { schema in
            try await Self.seed(schema)
            let (jobs, quotas) = (try await Self.jobs(schema), try await Self.quotas(schema))
            try await Self.withDashboard(schema) { client in
                let cases: [(String, [(String, String)], String?)] = [
                    ("quota", [("tenant", "acme"), ("weight", "heavy")], "weight"),
                    ("quota", [("tenant", "acme"), ("weight", "0")], "weight"),
                    ("quota", [("tenant", "acme"), ("max_running", "-1")], "max_running"),
                    ("quota", [("tenant", "acme"), ("lane", "fast"), ("paused", "true")], "lane"),
                    ("quota", [("tenant", "acme")], "max_running"),
                    ("quota", [("tenant", "acme"), ("paused", "maybe")], "paused"),
                    ("quota", [("weight", "2")], "tenant"),
                    ("quota", [("tenant", "<b>acme</b>\u{0}"), ("weight", "2")], "tenant"),
                    ("retry", [("job", "one")], "job"),
                    ("retry", [], "job"),
                    ("backfill", [("tenant", "acme"), ("projection", "nonesuch")], "projection"),
                    ("backfill", [("tenant", "acme")], "projection"),
                    ("explode", [("tenant", "acme")], nil),
                ]
                for (action, form, field) in cases {
                    let answer = try await Self.send(client, .post, "/actions/\(action)", form: form, headers: Self.bearer())
                    #expect(answer.status == .badRequest, "\(action) \(form): \(answer.body)")
                    #expect(answer.json["field"] == field, "\(action) \(form): \(answer.body)")
                    #expect(answer.json["error"]?.isEmpty == false)
                }
            }
            #expect(try await Self.jobs(schema) == jobs)
            #expect(try await Self.quotas(schema) == quotas)
            #expect(try await schema.count("SELECT count(*) FROM ef_dashboard_audit") == 0)
        }
    }

    @Test("the audit page lists actions with who took them, escaped; the dashboard deletes entries past its retention")
    func auditAndRetention() async throws {
        try await TestDatabase.withSchema { schema in
            try await Self.seed(schema)
            try await schema.execute("""
                INSERT INTO ef_dashboard_audit (at, actor, action, partition, outcome)
                VALUES (now() - interval '100 days', 'old-operator', 'retry', 'acme', 'long ago')
                """)
            try await Self.withDashboard(schema) { client in
                _ = try await Self.send(client, .post, "/actions/retry", form: [("scope", "filtered"), ("error", "<script>")], headers: Self.bearer())
                let audit = try await Self.send(client, .get, "/audit")
                #expect(audit.body.contains("<td>alice</td><td>retry</td>"), "\(audit.body)")
                #expect(audit.body.contains("&lt;script&gt;"), "escaped values: \(audit.body)")
                #expect(!audit.body.contains("<script>\""))
                #expect(audit.body.contains("Entries older than 90 days are deleted."))
            }
            let dashboard = Dashboard(store: schema.store)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await dashboard.run() }
                try await waitUntil("the dashboard deletes the entry past its retention") {
                    try await schema.count("SELECT count(*) FROM ef_dashboard_audit WHERE actor = 'old-operator'") == 0
                }
                group.cancelAll()
            }
            #expect(try await schema.count("SELECT count(*) FROM ef_dashboard_audit WHERE actor = 'alice'") == 1)
        }
    }
}
