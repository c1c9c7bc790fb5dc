import EventFleetJobs
import EventFleetPostgres
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle

/// The fleet's web dashboard: its tenants' queues, its workers and schedulers, its projections and
/// their versions, and its dead jobs, as pages rendered on the server that keep their figures
/// current on their own (a short poll of ``Configuration/refreshInterval``; the pages read without
/// a script too). Every asset is served by the binary.
///
/// `eventfleet dashboard` serves it alone (``DashboardCommand``). An application of its own adds its
/// routes and runs it as a service beside the application, which reads the fleet once per refresh
/// interval for every open page:
///
/// ```swift
/// let dashboard = Dashboard(store: store, configuration: .init(basePath: "/fleet"))
/// dashboard.addRoutes(to: router)
/// let services = ServiceGroup(configuration: .init(services: [application, dashboard], logger: logger))
/// ```
///
/// Every page reads the fleet through the library's own calls (`FleetStatus.read(from:)`,
/// `JobQueue.projectionVersions(of:)`, `JobQueue.deadJobs(partition:limit:)`), as the CLI does;
/// the overview's charts of the last hour read `FleetHistory.read(from:minutes:)`, once a minute.
/// When a read fails a page shows the last one and says since when it is stale; before any read has
/// succeeded it says that the fleet cannot be read, with status 503.
///
/// With ``Configuration/adminTokens`` an operator signed in with a token (or a script sending it as
/// a bearer header) retries and purges dead jobs, pauses, resumes, scales and backfills tenants
/// through the same library calls as the CLI, and each action is kept in the audit under the
/// token's name.
public struct Dashboard: Service {
    /// Where the dashboard is mounted, how much a page lists, how often it reads the fleet, and who
    /// may act.
    public struct Configuration: Sendable {
        /// The path the dashboard is mounted at: empty for the root, `/fleet` for under it.
        public var basePath: String
        /// Rows per page of the tenant and dead-job lists.
        public var pageSize: Int
        /// How often the fleet is read for the pages and their live figures.
        public var refreshInterval: Duration
        /// How long a ready job waits before a tenant's page lists its stream as waiting long.
        public var longWait: Duration
        /// The schedulers' consumer name (`FleetScheduler.Configuration.name`).
        public var schedulerName: String
        /// The tokens that may act (retry, purge, pause, scale, backfill); `nil` for a read-only
        /// dashboard.
        public var adminTokens: AdminTokens?
        /// How long the audit keeps an action.
        public var auditRetention: Duration
        /// How long a browser stays signed in.
        public var sessionLifetime: Duration
        /// Whether the session cookie is sent over HTTPS only. Browsers count `localhost` and
        /// `127.0.0.1` as secure; behind a reverse proxy, serve the dashboard over HTTPS.
        public var secureCookies: Bool

        /// - Parameters:
        ///   - basePath: The path the dashboard is mounted at (no trailing slash).
        ///   - pageSize: Rows per page of the tenant and dead-job lists.
        ///   - refreshInterval: How often the fleet is read for the pages and their live figures.
        ///   - longWait: How long a ready job waits before a tenant's page lists its stream.
        ///   - schedulerName: The schedulers' consumer name.
        ///   - adminTokens: The tokens that may act; `nil` for a read-only dashboard.
        ///   - auditRetention: How long the audit keeps an action (at least a day).
        ///   - sessionLifetime: How long a browser stays signed in.
        ///   - secureCookies: Whether the session cookie is sent over HTTPS only.
        public init(
            basePath: String = "", pageSize: Int = 100, refreshInterval: Duration = .seconds(2), longWait: Duration = .seconds(60),
            schedulerName: String = FleetScheduler.Configuration().name, adminTokens: AdminTokens? = nil,
            auditRetention: Duration = .seconds(90 * 86_400), sessionLifetime: Duration = .seconds(12 * 3_600), secureCookies: Bool = true
        ) {
            self.basePath = basePath.hasSuffix("/") ? String(basePath.dropLast()) : basePath
            self.pageSize = max(1, pageSize)
            self.refreshInterval = max(.milliseconds(100), refreshInterval)
            self.longWait = max(.zero, longWait)
            self.schedulerName = schedulerName
            self.adminTokens = adminTokens
            self.auditRetention = max(.seconds(86_400), auditRetention)
            self.sessionLifetime = max(.seconds(60), sessionLifetime)
            self.secureCookies = secureCookies
        }
    }

    let store: PostgresEventStore
    let configuration: Configuration
    let logger: Logger
    let snapshots: FleetSnapshots
    let access: Access

    /// - Parameters:
    ///   - store: The store whose database holds the fleet's tables.
    ///   - configuration: Where it is mounted, how much a page lists, how often it reads, who acts.
    ///   - logger: Where failures to read the fleet and every action are logged.
    public init(store: PostgresEventStore, configuration: Configuration = Configuration(), logger: Logger = Logger(label: "eventfleet.dashboard")) {
        self.store = store
        self.configuration = configuration
        self.logger = logger
        self.snapshots = FleetSnapshots(
            store: store, schedulerName: configuration.schedulerName, interval: configuration.refreshInterval, logger: logger
        )
        self.access = Access(
            tokens: configuration.adminTokens, sessions: AdminSessions(lifetime: configuration.sessionLifetime),
            secureCookies: configuration.secureCookies, cookiePath: configuration.basePath.isEmpty ? "/" : configuration.basePath
        )
    }

    /// Reads the fleet once per refresh interval for every open page, and deletes audit entries
    /// past their retention once an hour, until the service group shuts down. Without it each page
    /// reads when the last read is older than the interval.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await snapshots.run() }
                group.addTask { await pruneAudit() }
            }
        }
    }

    private func pruneAudit() async {
        while !Task.isCancelled {
            do {
                try await audit.prune(olderThan: configuration.auditRetention)
            } catch {
                logger.warning("could not prune the dashboard's audit", metadata: ["eventfleet.error": "\(error)"])
            }
            try? await Task.sleep(for: .seconds(3_600))
        }
    }

    /// Adds the dashboard's pages to `router`, under ``Configuration/basePath``.
    ///
    /// - Parameter router: The application's router.
    public func addRoutes<Context: RequestContext>(to router: Router<Context>) {
        let base = configuration.basePath
        let pages = router.group(RouterPath(base.isEmpty ? "/" : base))
        pages.get { request, _ in
            await fleetPage(request) { snapshot, _ in
                OverviewPage(
                    status: snapshot.status, versions: snapshot.versions, history: snapshot.history, historyError: snapshot.historyError, base: base
                ).page
            }
        }
        pages.get("tenants") { request, _ in
            let query = TenantsPage.Query(request.uri.queryParameters)
            return await fleetPage(request) { snapshot, _ in
                TenantsPage(status: snapshot.status, query: query, pageSize: configuration.pageSize, base: base).page
            }
        }
        pages.get("tenants/:partition") { request, context in
            // Path parameters arrive percent-encoded, as the tenant links encode them.
            let encoded = try context.parameters.require("partition")
            let partition = encoded.removingPercentEncoding ?? encoded
            let dead = try await readOrNil { try await queue.deadJobs(partition: partition, limit: configuration.pageSize) }
            let waiting = try await readOrNil {
                try await queue.waitingJobs(partition: partition, atLeast: configuration.longWait, limit: configuration.pageSize)
            }
            return await fleetPage(request) { snapshot, forms in
                TenantPage(
                    partition: partition, status: snapshot.status, dead: dead ?? [], waiting: waiting ?? [], longWait: configuration.longWait,
                    projections: Self.backfillable(snapshot.versions), base: base, forms: forms
                ).page
            }
        }
        pages.get("workers") { request, _ in await fleetPage(request) { snapshot, _ in WorkersPage(status: snapshot.status).page } }
        pages.get("projections") { request, _ in await fleetPage(request) { snapshot, _ in ProjectionsPage(versions: snapshot.versions).page } }
        pages.get("dead") { request, _ in
            let filter = DeadJobsPage.Filter(request.uri.queryParameters)
            let visitor = access.visitor(request)
            do {
                let dead = try await queue.deadJobs(partition: filter.tenant, limit: DeadJobsPage.scanned)
                let page = DeadJobsPage(dead: dead, filter: filter, pageSize: configuration.pageSize, base: base, forms: forms(visitor, request)).page
                return respond(page, visitor: visitor, request: request)
            } catch {
                logger.warning("could not read the dead jobs", metadata: ["eventfleet.error": "\(error)"])
                return respond(Page.unavailable(error), visitor: visitor, request: request, status: .serviceUnavailable)
            }
        }
        pages.get("audit") { request, _ in
            let visitor = access.visitor(request)
            do {
                let entries = try await audit.recent(limit: configuration.pageSize)
                return respond(AuditPage(entries: entries, retention: configuration.auditRetention).page, visitor: visitor, request: request)
            } catch {
                logger.warning("could not read the audit", metadata: ["eventfleet.error": "\(error)"])
                return respond(Page.unavailable(error), visitor: visitor, request: request, status: .serviceUnavailable)
            }
        }
        pages.get("login") { request, _ in
            let back = Self.back(request.uri.queryParameters.get("back"), base: base)
            return respond(LoginPage(base: base, back: back, admin: access.tokens != nil, failed: false).page, visitor: access.visitor(request), request: request)
        }
        pages.post("login") { request, _ in
            var request = request
            let form = try await FormBody.fields(&request)
            let back = Self.back(form["back"], base: base)
            guard let tokens = access.tokens, let name = form["token"].flatMap(tokens.name(of:)) else {
                logger.warning("a sign-in with a token the dashboard does not have was refused")
                let page = LoginPage(base: base, back: back, admin: access.tokens != nil, failed: true).page
                return respond(page, visitor: .anonymous, request: request, status: access.tokens == nil ? .forbidden : .unauthorized)
            }
            let id = access.sessions.start(name: name)
            logger.notice("signed in", metadata: ["eventfleet.actor": "\(name)"])
            var response = Response(status: .seeOther, headers: [.location: back])
            response.setCookie(access.cookie(id))
            return response
        }
        pages.post("logout") { request, _ in
            var request = request
            let form = try await FormBody.fields(&request)
            let visitor = access.visitor(request)
            if case .session(let id, let session) = visitor, let csrf = form["csrf"], AdminTokens.constantTimeEquals(csrf, session.csrf) {
                access.sessions.end(id)
            }
            var response = Response(status: .seeOther, headers: [.location: base + "/"])
            response.setCookie(access.cookie(nil))
            return response
        }
        pages.post("actions/:action") { request, context in
            let name = try context.parameters.require("action")
            var request = request
            let form = try await FormBody.fields(&request)
            return await act(name, form: form, request: request)
        }
        pages.get("api/overview") { _, _ in
            let latest = await snapshots.current()
            return JSONResponse(LiveFigures(latest))
        }
        pages.get("assets/dashboard.css") { _, _ in Asset.stylesheet.response }
        pages.get("assets/live.js") { _, _ in Asset.liveScript.response }
    }

    private var queue: JobQueue { JobQueue(store: store, logger: logger) }
    private var audit: AuditLog { AuditLog(store: store) }

    /// Takes the action `name` with `form`'s values for whoever sent it, records it in the audit,
    /// and answers a browser with the page it came from (the outcome shown once) and a script with
    /// JSON. A refused request or a wrong form changes nothing.
    private func act(_ name: String, form: [String: String], request: Request) async -> Response {
        let visitor = access.visitor(request)
        // A browser (a session, or a form that asks for a page) gets pages; a script gets JSON.
        let script: Bool = switch visitor {
        case .session: false
        case .bearer, .refused: true
        case .anonymous: !(request.headers[.accept] ?? "").contains("text/html")
        }
        func refuse(_ status: HTTPResponse.Status, _ message: String, field: String? = nil) -> Response {
            if script { return JSONResponse(ActionOutcome(error: message, field: field), status: status).response }
            let page = Page(title: "Not done", section: nil, body: """
                <h1>Nothing was changed</h1><p class="bad">\(message)</p>
                <p><a href="\(Self.back(form["back"], base: configuration.basePath))">Back</a></p>
                """)
            return respond(page, visitor: visitor, request: request, status: status)
        }
        let actor: String
        do {
            actor = try access.actor(visitor, request: request, form: form)
        } catch {
            logger.warning("an action was refused", metadata: ["eventfleet.action": "\(name)", "eventfleet.reason": "\(error)"])
            return refuse(error.status, error.message)
        }
        let action: DashboardAction
        do {
            let versions = await snapshots.current().snapshot?.versions ?? []
            action = try DashboardAction(name: name, form: form, projections: Self.backfillable(versions))
        } catch let error as DashboardActionError {
            return refuse(.badRequest, "\(error)", field: error.field)
        } catch {
            return refuse(.badRequest, "\(error)")
        }
        let detail = form.filter { $0.key != "csrf" && $0.key != "back" }
        let outcome: String
        do {
            outcome = try await action.perform(on: queue)
        } catch {
            logger.error("an action failed", metadata: ["eventfleet.actor": "\(actor)", "eventfleet.action": "\(name)", "eventfleet.error": "\(error)"])
            try? await audit.record(actor: actor, action: name, partition: action.partition, detail: detail, outcome: "failed: \(error)")
            return refuse(.serviceUnavailable, "The action failed: \(error)")
        }
        logger.notice("\(outcome)", metadata: ["eventfleet.actor": "\(actor)", "eventfleet.action": "\(name)"])
        do {
            try await audit.record(actor: actor, action: name, partition: action.partition, detail: detail, outcome: outcome)
        } catch {
            logger.error("an action was taken but not recorded in the audit", metadata: ["eventfleet.actor": "\(actor)", "eventfleet.error": "\(error)"])
        }
        // The pages show the action's effect at once, not after the next read.
        await snapshots.refresh()
        if case .session(let id, _) = visitor {
            access.sessions.leave("\(outcome) (by \(actor))", for: id)
            return Response(status: .seeOther, headers: [.location: Self.back(form["back"], base: configuration.basePath)])
        }
        return JSONResponse(ActionOutcome(action: name, actor: actor, outcome: outcome)).response
    }

    /// The projection versions a backfill may name: every registered version that is not retired.
    static func backfillable(_ versions: [ProjectionVersionStatus]) -> [String] {
        versions.filter { $0.state != .retired }.map(\.key).sorted()
    }

    /// `back` when it is a page of this dashboard, else the overview: an action never redirects
    /// to another site.
    static func back(_ back: String?, base: String) -> String {
        guard let back, back.hasPrefix(base + "/"), !back.hasPrefix("//"), !back.contains("\\"), !back.contains("://") else { return base + "/" }
        return back
    }

    /// The forms a signed-in visitor sees, returning to the page it asked for.
    private func forms(_ visitor: Visitor, _ request: Request) -> Forms? {
        visitor.signedIn.map { Forms(signedIn: $0, base: configuration.basePath, back: Self.back(request.uri.description, base: configuration.basePath)) }
    }

    /// A page made from the latest read of the fleet: stale when later reads failed, or the page
    /// that says the fleet cannot be read (503) when none has succeeded.
    private func fleetPage(_ request: Request, _ make: (FleetSnapshots.Snapshot, Forms?) -> Page) async -> Response {
        let visitor = access.visitor(request)
        let latest = await snapshots.current()
        guard let snapshot = latest.snapshot else {
            return respond(Page.unavailable(latest.error ?? "not read yet"), visitor: visitor, request: request, status: .serviceUnavailable)
        }
        var page = make(snapshot, forms(visitor, request))
        page.stale = latest.error.map { Page.Stale(error: $0, readAt: snapshot.readAt) }
        return respond(page, visitor: visitor, request: request, status: page.notFound ? .notFound : .ok)
    }

    /// `read`'s value, or `nil` (logged) when it fails: a part of a page that can be left out.
    private func readOrNil<T>(_ read: () async throws -> T) async throws -> T? {
        do {
            return try await read()
        } catch {
            logger.warning("could not read part of a page", metadata: ["eventfleet.error": "\(error)"])
            return nil
        }
    }

    private func respond(_ page: Page, visitor: Visitor, request: Request, status: HTTPResponse.Status = .ok) -> Response {
        var notice: String?
        if case .session(let id, _) = visitor { notice = access.sessions.takeNotice(of: id) }
        let chrome = Chrome(
            signedIn: visitor.signedIn, admin: access.tokens != nil, notice: notice,
            back: Self.back(request.uri.description, base: configuration.basePath)
        )
        return Response(
            status: status, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: Layout.page(page, base: configuration.basePath, refresh: configuration.refreshInterval, chrome: chrome).text))
        )
    }
}

/// What an action answers a script (a bearer token): what it did, or why nothing was changed.
struct ActionOutcome: Codable, Sendable {
    var action: String?
    var actor: String?
    var outcome: String?
    var error: String?
    /// The form field at fault.
    var field: String?

    init(action: String? = nil, actor: String? = nil, outcome: String? = nil, error: String? = nil, field: String? = nil) {
        self.action = action
        self.actor = actor
        self.outcome = outcome
        self.error = error
        self.field = field
    }
}

/// The overview's figures as the live script reads them (`api/overview`).
struct LiveFigures: Codable, Sendable {
    var ready: Int64
    var running: Int64
    var dead: Int64
    /// Whether a lane has more ready (dead) jobs than its count, which stops at a limit.
    var readyBeyondLimit: Bool
    var deadBeyondLimit: Bool
    var donePerMinute: Int64
    var oldestReadySeconds: Double?
    var lagEvents: Int64
    var tenants: Int
    var workers: Int
    /// When the figures were read (ISO 8601), `nil` before any read.
    var readAt: String?
    /// Whether the last read failed (the figures are the last good ones), and its error.
    var stale: Bool
    var error: String?

    init(_ latest: FleetSnapshots.Latest) {
        let status = latest.snapshot?.status
        let lanes = status?.lanes ?? []
        ready = lanes.reduce(0) { $0 + $1.ready }
        running = lanes.reduce(0) { $0 + $1.running }
        dead = lanes.reduce(0) { $0 + $1.dead }
        readyBeyondLimit = lanes.contains { $0.readyBeyondLimit == true }
        deadBeyondLimit = lanes.contains { $0.deadBeyondLimit == true }
        donePerMinute = Int64(lanes.reduce(0) { $0 + $1.completedPerMinute }.rounded())
        oldestReadySeconds = lanes.compactMap(\.oldestReadySeconds).max()
        lagEvents = status?.scheduler.lagEvents ?? 0
        tenants = Set(lanes.map(\.partition)).count
        workers = status?.workers.count ?? 0
        readAt = latest.snapshot.map { ISO8601DateFormatter().string(from: $0.readAt) }
        stale = latest.error != nil
        error = latest.error
    }
}

/// A JSON body.
struct JSONResponse<Value: Encodable & Sendable>: ResponseGenerator {
    let value: Value
    let status: HTTPResponse.Status

    init(_ value: Value, status: HTTPResponse.Status = .ok) {
        self.value = value
        self.status = status
    }

    var response: Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        // The values are plain structs of strings and numbers, which always encode.
        let body = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return Response(
            status: status, headers: [.contentType: "application/json", .cacheControl: "no-store"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: body))
        )
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        response
    }
}
