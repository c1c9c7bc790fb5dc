import EventFleetJobs
import EventFleetPostgres
import Foundation
import Hummingbird
import Logging

/// The fleet's web dashboard: its tenants' queues, its workers and schedulers, its projections and
/// their versions, and its dead jobs, as pages rendered on the server (no script is needed to read
/// them, and every asset is served by the binary).
///
/// `eventfleet dashboard` serves it alone (``DashboardCommand``); an application of its own mounts it
/// with ``addRoutes(to:)``:
///
/// ```swift
/// let router = Router()
/// Dashboard(store: store, configuration: .init(basePath: "/fleet")).addRoutes(to: router)
/// ```
///
/// Every page reads the fleet through the library's own calls (`FleetStatus.read(from:)`,
/// `JobQueue.projectionVersions(of:)`, `JobQueue.deadJobs(partition:limit:)`), as the CLI does.
/// While the database cannot be reached a page says so, with status 503.
public struct Dashboard: Sendable {
    /// Where the dashboard is mounted and how much a page lists.
    public struct Configuration: Sendable {
        /// The path the dashboard is mounted at: empty for the root, `/fleet` for under it.
        public var basePath: String
        /// Rows per page of the tenant and dead-job lists.
        public var pageSize: Int
        /// The schedulers' consumer name (`FleetScheduler.Configuration.name`).
        public var schedulerName: String

        /// - Parameters:
        ///   - basePath: The path the dashboard is mounted at (no trailing slash).
        ///   - pageSize: Rows per page of the tenant and dead-job lists.
        ///   - schedulerName: The schedulers' consumer name.
        public init(basePath: String = "", pageSize: Int = 100, schedulerName: String = FleetScheduler.Configuration().name) {
            self.basePath = basePath.hasSuffix("/") ? String(basePath.dropLast()) : basePath
            self.pageSize = max(1, pageSize)
            self.schedulerName = schedulerName
        }
    }

    let store: PostgresEventStore
    let configuration: Configuration
    let logger: Logger

    /// - Parameters:
    ///   - store: The store whose database holds the fleet's tables.
    ///   - configuration: Where it is mounted and how much a page lists.
    ///   - logger: Where failures to read the fleet are logged.
    public init(store: PostgresEventStore, configuration: Configuration = Configuration(), logger: Logger = Logger(label: "eventfleet.dashboard")) {
        self.store = store
        self.configuration = configuration
        self.logger = logger
    }

    /// Adds the dashboard's pages to `router`, under ``Configuration/basePath``.
    ///
    /// - Parameter router: The application's router.
    public func addRoutes<Context: RequestContext>(to router: Router<Context>) {
        let pages = router.group(RouterPath(configuration.basePath.isEmpty ? "/" : configuration.basePath))
        pages.get { request, _ in try await render(request) { try await overview() } }
        pages.get("tenants") { request, _ in try await render(request) { try await tenants(request) } }
        pages.get("tenants/:partition") { request, context in
            // Path parameters arrive percent-encoded, as the tenant links encode them.
            let encoded = try context.parameters.require("partition")
            return try await render(request) { try await tenant(encoded.removingPercentEncoding ?? encoded) }
        }
        pages.get("workers") { request, _ in try await render(request) { try await workers() } }
        pages.get("projections") { request, _ in try await render(request) { try await projections() } }
        pages.get("dead") { request, _ in try await render(request) { try await deadJobs(request) } }
        pages.get("assets/dashboard.css") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/css; charset=utf-8", .cacheControl: "max-age=3600"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: Layout.stylesheet))
            )
        }
    }

    /// A page, or the page that says the database cannot be reached (status 503).
    private func render(_ request: Request, _ page: () async throws -> Page) async throws -> Response {
        let html: HTML
        var status = HTTPResponse.Status.ok
        do {
            let page = try await page()
            html = Layout.page(page, base: configuration.basePath)
            if page.notFound { status = .notFound }
        } catch let error as HTTPError {
            throw error
        } catch {
            logger.warning("could not read the fleet", metadata: ["eventfleet.error": "\(error)", "eventfleet.path": "\(request.uri.path)"])
            status = .serviceUnavailable
            html = Layout.page(Page.unavailable(error), base: configuration.basePath)
        }
        return Response(
            status: status, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: html.text))
        )
    }

    private var queue: JobQueue { JobQueue(store: store, logger: logger) }

    private func fleetStatus() async throws -> FleetStatus {
        try await FleetStatus.read(from: store, schedulerName: configuration.schedulerName)
    }

    private func overview() async throws -> Page {
        OverviewPage(status: try await fleetStatus(), versions: try await queue.projectionVersions(), base: configuration.basePath).page
    }

    private func tenants(_ request: Request) async throws -> Page {
        TenantsPage(
            status: try await fleetStatus(), query: TenantsPage.Query(request.uri.queryParameters), pageSize: configuration.pageSize,
            base: configuration.basePath
        ).page
    }

    private func tenant(_ partition: String) async throws -> Page {
        let status = try await fleetStatus()
        let dead = try await queue.deadJobs(partition: partition, limit: configuration.pageSize)
        return TenantPage(partition: partition, status: status, dead: dead, base: configuration.basePath).page
    }

    private func workers() async throws -> Page {
        WorkersPage(status: try await fleetStatus()).page
    }

    private func projections() async throws -> Page {
        ProjectionsPage(versions: try await queue.projectionVersions()).page
    }

    private func deadJobs(_ request: Request) async throws -> Page {
        let filter = DeadJobsPage.Filter(request.uri.queryParameters)
        let dead = try await queue.deadJobs(partition: filter.tenant, limit: DeadJobsPage.scanned)
        return DeadJobsPage(dead: dead, filter: filter, pageSize: configuration.pageSize, base: configuration.basePath).page
    }
}
