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
public struct Dashboard: Service {
    /// Where the dashboard is mounted, how much a page lists and how often it reads the fleet.
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

        /// - Parameters:
        ///   - basePath: The path the dashboard is mounted at (no trailing slash).
        ///   - pageSize: Rows per page of the tenant and dead-job lists.
        ///   - refreshInterval: How often the fleet is read for the pages and their live figures.
        ///   - longWait: How long a ready job waits before a tenant's page lists its stream.
        ///   - schedulerName: The schedulers' consumer name.
        public init(
            basePath: String = "", pageSize: Int = 100, refreshInterval: Duration = .seconds(2), longWait: Duration = .seconds(60),
            schedulerName: String = FleetScheduler.Configuration().name
        ) {
            self.basePath = basePath.hasSuffix("/") ? String(basePath.dropLast()) : basePath
            self.pageSize = max(1, pageSize)
            self.refreshInterval = max(.milliseconds(100), refreshInterval)
            self.longWait = max(.zero, longWait)
            self.schedulerName = schedulerName
        }
    }

    let store: PostgresEventStore
    let configuration: Configuration
    let logger: Logger
    let snapshots: FleetSnapshots

    /// - Parameters:
    ///   - store: The store whose database holds the fleet's tables.
    ///   - configuration: Where it is mounted, how much a page lists, how often it reads.
    ///   - logger: Where failures to read the fleet are logged.
    public init(store: PostgresEventStore, configuration: Configuration = Configuration(), logger: Logger = Logger(label: "eventfleet.dashboard")) {
        self.store = store
        self.configuration = configuration
        self.logger = logger
        self.snapshots = FleetSnapshots(
            store: store, schedulerName: configuration.schedulerName, interval: configuration.refreshInterval, logger: logger
        )
    }

    /// Reads the fleet once per refresh interval for every open page, until the service group
    /// shuts down. Without it each page reads when the last read is older than the interval.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await snapshots.run()
        }
    }

    /// Adds the dashboard's pages to `router`, under ``Configuration/basePath``.
    ///
    /// - Parameter router: The application's router.
    public func addRoutes<Context: RequestContext>(to router: Router<Context>) {
        let base = configuration.basePath
        let pages = router.group(RouterPath(base.isEmpty ? "/" : base))
        pages.get { _, _ in
            await fleetPage {
                OverviewPage(status: $0.status, versions: $0.versions, history: $0.history, historyError: $0.historyError, base: base).page
            }
        }
        pages.get("tenants") { request, _ in
            let query = TenantsPage.Query(request.uri.queryParameters)
            return await fleetPage { TenantsPage(status: $0.status, query: query, pageSize: configuration.pageSize, base: base).page }
        }
        pages.get("tenants/:partition") { _, context in
            // Path parameters arrive percent-encoded, as the tenant links encode them.
            let encoded = try context.parameters.require("partition")
            let partition = encoded.removingPercentEncoding ?? encoded
            let dead = try await readOrNil { try await queue.deadJobs(partition: partition, limit: configuration.pageSize) }
            let waiting = try await readOrNil {
                try await queue.waitingJobs(partition: partition, atLeast: configuration.longWait, limit: configuration.pageSize)
            }
            return await fleetPage {
                TenantPage(partition: partition, status: $0.status, dead: dead ?? [], waiting: waiting ?? [], longWait: configuration.longWait, base: base).page
            }
        }
        pages.get("workers") { _, _ in await fleetPage { WorkersPage(status: $0.status).page } }
        pages.get("projections") { _, _ in await fleetPage { ProjectionsPage(versions: $0.versions).page } }
        pages.get("dead") { request, _ in
            let filter = DeadJobsPage.Filter(request.uri.queryParameters)
            do {
                let dead = try await queue.deadJobs(partition: filter.tenant, limit: DeadJobsPage.scanned)
                return respond(DeadJobsPage(dead: dead, filter: filter, pageSize: configuration.pageSize, base: base).page)
            } catch {
                logger.warning("could not read the dead jobs", metadata: ["eventfleet.error": "\(error)"])
                return respond(Page.unavailable(error), status: .serviceUnavailable)
            }
        }
        pages.get("api/overview") { _, _ in
            let latest = await snapshots.current()
            return JSONResponse(LiveFigures(latest))
        }
        pages.get("assets/dashboard.css") { _, _ in Asset.stylesheet.response }
        pages.get("assets/live.js") { _, _ in Asset.liveScript.response }
    }

    private var queue: JobQueue { JobQueue(store: store, logger: logger) }

    /// A page made from the latest read of the fleet: stale when later reads failed, or the page
    /// that says the fleet cannot be read (503) when none has succeeded.
    private func fleetPage(_ make: (FleetSnapshots.Snapshot) -> Page) async -> Response {
        let latest = await snapshots.current()
        guard let snapshot = latest.snapshot else {
            return respond(Page.unavailable(latest.error ?? "not read yet"), status: .serviceUnavailable)
        }
        var page = make(snapshot)
        page.stale = latest.error.map { Page.Stale(error: $0, readAt: snapshot.readAt) }
        return respond(page, status: page.notFound ? .notFound : .ok)
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

    private func respond(_ page: Page, status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: Layout.page(page, base: configuration.basePath, refresh: configuration.refreshInterval).text))
        )
    }
}

/// The overview's figures as the live script reads them (`api/overview`).
struct LiveFigures: Codable, Sendable {
    var ready: Int64
    var running: Int64
    var dead: Int64
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

    init(_ value: Value) {
        self.value = value
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return Response(
            status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: try encoder.encode(value)))
        )
    }
}
