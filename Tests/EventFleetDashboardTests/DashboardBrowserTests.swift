import EventFleetCLI
import EventFleetCore
import EventFleetJobs
import EventFleetPostgres
import EventFleetTestSupport
import Foundation
import Synchronization
import Testing

/// The dashboard in a real browser: headless chromium, driven over the DevTools protocol, loads the
/// pages of `eventfleet dashboard` serving a running fleet (a scheduler and a worker process, carts
/// being written for three tenants, dead jobs), checks what they render, saves screenshots under
/// `.build/dashboard-screenshots/`, and sees a live figure change without a reload.
///
/// `scripts/test` installs chromium with `scripts/chromium`; without one the test is skipped, except
/// under `CI=true`, where it fails.
@Suite(
    "Dashboard in a browser", .exclusive, .timeLimit(.minutes(4)),
    .enabled(
        if: HeadlessChromium.executable != nil || HeadlessChromium.required,
        "no chromium found: run scripts/chromium (installs Debian's chromium package) or set CHROMIUM"
    )
)
struct DashboardBrowserTests {
    static let tenants = ["acme", "globex", "initech"]
    /// A tenant no worker serves: a job of its, claimed by the test, stays the test's.
    static let unserved = "umbrella"
    /// Markup that would set `window.__injected` if a page let it run.
    static let hostileStream = "<script>window.__injected = 1</script>"
    static let hostileError = #"<img src="x" onerror="window.__injected = 2"> decoding failed at position 7"#

    @Test("the overview, a tenant's page and the dead jobs render the running fleet; markup in its data shows as text; a live figure changes without a reload")
    func browsesARunningFleet() async throws {
        let chromium = try HeadlessChromium.locate()
        let screenshots = try Self.screenshotDirectory()
        try await withCartsSchema { schema in
            try await Self.killJob(schema, tenant: "acme", stream: Self.hostileStream, error: Self.hostileError)
            let fleet = try Self.startFleet(schema)
            try await Self.stopping(fleet) {
                try await Self.writingCarts(schema) { firstCarts in
                    try await waitUntil(timeout: .seconds(90), "the scheduler leads, the worker runs and the first carts are projected") {
                        let status = try await FleetStatus.read(from: schema.store)
                        guard status.scheduler.leader != nil, status.workers.count == 1 else { return false }
                        return try await cartRowsNotMatchingStreams(schema, streams: firstCarts).isEmpty
                    }
                    let dashboard = try ChildProcess(
                        try builtProduct("eventfleet"), arguments: ["dashboard", "--port", "0"], environment: childEnvironment(url: schema.url),
                        output: .lines, error: .capture
                    )
                    try await Self.stopping([dashboard]) {
                        guard let line = await dashboard.readLine() else {
                            let log = await dashboard.capturedError()
                            Issue.record("the dashboard exited without saying where it listens: \(log.suffix(2_000))")
                            return
                        }
                        let address = try #require(line.firstMatch(of: /(http:\/\/127\.0\.0\.1:\d+)\//).map { String($0.1) }, "\(line)")
                        try await HeadlessChromium.with(executable: chromium, log: screenshots + "/chromium.log") { browser in
                            let page = try await browser.openPage()
                            try await Self.overview(page, address: address, schema: schema, screenshot: screenshots + "/overview.png")
                            try await Self.tenantPage(page, address: address, screenshot: screenshots + "/tenant.png")
                            try await Self.deadJobs(page, address: address, screenshot: screenshots + "/dead.png")
                            #expect(browser.exceptions.isEmpty, "the pages' scripts threw: \(browser.exceptions)")
                        }
                    }
                }
            }
        }
    }

    /// The overview shows the fleet's figures, and its live script rewrites the dead-jobs figure
    /// when another job dies, in the same document.
    static func overview(_ page: BrowserPage, address: String, schema: TestSchema, screenshot: String) async throws {
        try await page.navigate(to: address + "/")
        #expect(try await page.string("document.title") == "Overview · EventFleet")
        let keys = try await page.strings("Array.from(document.querySelectorAll('[data-live]'), e => e.dataset.live)")
        #expect(Set(keys) == ["ready", "running", "dead", "donePerMinute", "oldestReadySeconds", "lagEvents", "tenants", "workers"], "\(keys)")
        for key in keys where key != "oldestReadySeconds" {
            let text = try await page.string(Self.figure(key))
            #expect(text?.wholeMatch(of: /\d{1,3}(,\d{3})*/) != nil, "\(key): \(text ?? "missing")")
        }
        #expect(try await page.string(Self.figure("workers")) == "1")
        #expect(try await page.string(Self.figure("dead")) == "1")
        #expect(try await page.string("document.querySelector('main p').textContent")?.hasPrefix("Scheduler: leader ") == true)
        #expect(try await page.evaluate("document.getElementById('stale').hidden") == .bool(true))
        try await page.screenshot(to: screenshot)

        // A reload would lose the marker: the figure must change in this document.
        try await page.evaluate("window.__marker = performance.timeOrigin")
        try await killJob(schema, tenant: unserved, stream: "cart-late", error: "boom")
        try await waitUntil(timeout: .seconds(20), "the overview's dead-jobs figure shows the second dead job") {
            try await page.string(Self.figure("dead")) == "2"
        }
        #expect(try await page.evaluate("window.__marker === performance.timeOrigin") == .bool(true), "the page was not reloaded")
    }

    /// A tenant's page lists its lanes and its dead job, whose markup shows as text.
    static func tenantPage(_ page: BrowserPage, address: String, screenshot: String) async throws {
        try await page.navigate(to: address + "/tenants/acme")
        #expect(try await page.string("document.querySelector('h1').textContent") == "Tenant acme")
        let lanes = try await page.strings("Array.from(document.querySelector('main > table').tBodies[0].rows, r => r.cells[0].textContent)")
        #expect(lanes.contains("live"), "\(lanes)")
        try await expectShownAsText(page)
        try await page.screenshot(to: screenshot)
    }

    /// The dead-jobs page lists both dead jobs with their errors.
    static func deadJobs(_ page: BrowserPage, address: String, screenshot: String) async throws {
        try await page.navigate(to: address + "/dead")
        let tenants = try await page.strings("Array.from(document.querySelectorAll('main tbody tr'), r => r.cells[1].textContent)")
        #expect(Set(tenants) == ["acme", unserved], "\(tenants)")
        #expect(try await page.string("document.querySelector('.pages').textContent")?.contains("2 dead jobs") == true)
        try await expectShownAsText(page)
        try await page.screenshot(to: screenshot)
    }

    /// The hostile stream id and error appear as the text they are, and neither ran.
    static func expectShownAsText(_ page: BrowserPage) async throws {
        let streams = try await page.strings("Array.from(document.querySelectorAll('main td code'), e => e.textContent)")
        #expect(streams.contains(hostileStream), "\(streams)")
        let errors = try await page.strings("Array.from(document.querySelectorAll('main td pre'), e => e.textContent)")
        #expect(errors.contains(hostileError), "\(errors)")
        #expect(try await page.evaluate("document.querySelectorAll('main script, main img').length") == .number(0))
        #expect(try await page.evaluate("typeof window.__injected") == .string("undefined"), "markup from the fleet's data ran")
    }

    /// The expression for the text of the overview's live figure `key`.
    static func figure(_ key: String) -> String {
        "document.querySelector('[data-live=\"\(key)\"]')?.textContent ?? null"
    }

    /// A job of `tenant` dead after its one attempt failed with `error`. The test claims it, so
    /// `tenant` must be one whose jobs no worker takes meanwhile.
    static func killJob(_ schema: TestSchema, tenant: String, stream: String, error: String) async throws {
        let queue = JobQueue(store: schema.store)
        try await queue.enqueue([JobRequest(projection: "carts", partition: tenant, streamId: stream, maxAttempts: 1)])
        let claimed = try await queue.claim(worker: "browser-test", lanes: [.live], partitions: [tenant], slots: 1)
        let job = try #require(claimed.first { $0.streamId == stream }, "claimed \(claimed)")
        #expect(try await queue.fail(job, worker: "browser-test", error: error, retryDelay: .zero) == .dead)
    }

    /// A scheduler and a worker for the carts tenants (not the unserved one), as an operator runs them.
    static func startFleet(_ schema: TestSchema) throws -> [ChildProcess] {
        let eventfleet = try builtProduct("eventfleet")
        let environment = childEnvironment(url: schema.url)
        let scheduler = try ChildProcess(eventfleet, arguments: ["scheduler"], environment: environment, error: .capture)
        do {
            let worker = try ChildProcess(
                eventfleet,
                arguments: [
                    "worker", "--partitions", tenants.joined(separator: ","), "--heartbeat-interval-ms", "500", "--poll-interval-ms", "200",
                    "--drain-timeout", "2",
                ],
                environment: environment, error: .capture
            )
            return [scheduler, worker]
        } catch {
            scheduler.signal(SIGKILL)
            throw error
        }
    }

    /// Runs `body` while carts are written for every tenant, a round every half second, until it
    /// returns; `body` gets the carts of a first round, written before.
    static func writingCarts(_ schema: TestSchema, _ body: ([(String, String)]) async throws -> Void) async throws {
        let first = try await writeCarts(schema.store, tenants: tenants, cartsPerTenant: 2)
        // A flag rather than cancellation ends the writes: a cancelled write may fail with any error.
        let stop = Flag()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                while !stop.isSet {
                    _ = try await writeCarts(schema.store, tenants: tenants, cartsPerTenant: 1)
                    // Paces the writes: the fleet should be busy, not flooded. Nothing waits on it.
                    try await Task.sleep(for: .milliseconds(500))
                }
            }
            do {
                try await body(first)
            } catch {
                stop.set()
                try? await group.waitForAll()
                throw error
            }
            stop.set()
            try await group.waitForAll()
        }
    }

    /// A flag one task sets and another reads.
    final class Flag: Sendable {
        private let value = Mutex(false)

        var isSet: Bool { value.withLock { $0 } }
        func set() { value.withLock { $0 = true } }
    }

    /// Runs `body`, then stops `processes` (SIGTERM, SIGKILL after a grace), whether it returned or threw.
    static func stopping(_ processes: [ChildProcess], _ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch {
            for process in processes { await process.stop(grace: .seconds(10)) }
            throw error
        }
        for process in processes {
            let termination = await process.stop(grace: .seconds(10))
            let log = await process.capturedError()
            #expect(termination == .exited(0), "\(process.executable) stopped: \(termination.map { "\($0)" } ?? "still running"): \(log.suffix(2_000))")
        }
    }

    /// `.build/dashboard-screenshots` of the build the tests run from (created).
    static func screenshotDirectory() throws -> String {
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        while directory.path != "/" && directory.lastPathComponent != ".build" {
            directory.deleteLastPathComponent()
        }
        if directory.path == "/" {
            directory = URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(".build")
        }
        let screenshots = directory.appendingPathComponent("dashboard-screenshots").path
        try FileManager.default.createDirectory(atPath: screenshots, withIntermediateDirectories: true)
        return screenshots
    }
}
