import CartsExample
import EventFleetCLI
import EventFleetCore
import EventFleetJobs
import EventFleetPostgres
import EventFleetTestSupport
import Foundation
import PostgresNIO
import Testing

/// PostgreSQL restarted mid-run under a real scheduler and real workers.
@Suite("Database restart", .exclusive, .timeLimit(.minutes(4)), .enabled(if: DatabaseRestart.command != nil, "needs EVENTFLEET_TEST_RESTART_DATABASE (set by scripts/test)"))
struct DatabaseRestartTests {
    /// Runs `body` until it succeeds, retrying while the database is down or restarting.
    static func retrying<T: Sendable>(_ what: String, timeout: Duration = .seconds(60), _ body: () async throws -> T) async throws -> T {
        let deadline = ContinuousClock.now + timeout
        while true {
            do {
                return try await body()
            } catch {
                trace("\(what): \(String(reflecting: error))")
                guard ContinuousClock.now < deadline else {
                    throw TimedOut(description: "\(what): still failing after \(timeout): \(String(reflecting: error))")
                }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    /// Like `waitUntil`, but a query that fails because the server is restarting counts as "not yet".
    static func eventually(_ what: String, timeout: Duration = .seconds(90), _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        var lastError: (any Error)?
        while true {
            do {
                if try await condition() { return }
                lastError = nil
            } catch {
                lastError = error
            }
            guard ContinuousClock.now < deadline else {
                throw TimedOut(description: "\(what)" + (lastError.map { "; last error: \(String(reflecting: $0))" } ?? ""))
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    static func trace(_ message: String) {
        FileHandle.standardError.write(Data("[restart-test \(Date())] \(message)\n".utf8))
    }

    @Test("pg_ctl restart -m immediate mid-run: the scheduler and the workers reconnect and finish; nothing is lost")
    func restartMidRun() async throws {
        try await withCartsSchema(poolSize: 20) { schema in
            try await JobQueue(store: schema.store).registerProjections([ProjectionRegistration(name: "carts", eventTypes: CartEvent.eventTypes)])
            let environment = childEnvironment(url: schema.url, ["LOG_LEVEL": "info"])
            let eventfleet = try builtProduct("eventfleet")
            let scheduler = try ChildProcess(
                eventfleet, arguments: ["scheduler", "--lease-seconds", "3", "--heartbeat-timeout", "5"], environment: environment, error: .capture
            )
            let workers = try (0..<2).map { _ in
                try ChildProcess(
                    eventfleet,
                    arguments: ["worker", "--concurrency", "4", "--batch-size", "1", "--heartbeat-interval-ms", "500",
                                "--poll-interval-ms", "200", "--drain-timeout", "5"],
                    environment: environment, error: .capture
                )
            }
            var streams = try await writeCarts(schema.store, tenants: ["a", "b"], cartsPerTenant: 6, extraItems: 30)
            try await waitUntil(timeout: .seconds(30), "the workers run jobs") {
                try await schema.count("SELECT count(*) FROM ef_jobs WHERE state = 'running'") > 0
            }

            Self.trace("restarting")
            try await DatabaseRestart.restart()
            Self.trace("restarted")

            // The server is back but every connection was cut. New writes still reach the fleet.
            streams += try await Self.retrying("writing after the restart") {
                try await writeCarts(schema.store, tenants: ["c"], cartsPerTenant: 4)
            }
            Self.trace("written")
            try await Self.eventually("every cart is projected after the restart") {
                try await cartRowsNotMatchingStreams(schema, streams: streams).isEmpty
            }
            Self.trace("projected")
            try await Self.eventually("no job is left ready or running") {
                try await schema.count("SELECT count(*) FROM ef_jobs WHERE state IN ('ready', 'running')") == 0
            }
            #expect(try await schema.count("SELECT count(*) FROM ef_jobs WHERE state = 'dead'") == 0)

            // Every process lived through it and still shuts down cleanly.
            for process in workers + [scheduler] {
                process.signal(SIGTERM)
            }
            for process in workers + [scheduler] {
                let status = try await process.exit(within: .seconds(30))
                let log = await process.capturedError()
                #expect(status == .exited(0), "pid \(process.pid) \(status): \(log.suffix(40_000))")
            }
        }
    }

    @Test("an append held open in tenant a when the server crashes: b-d were projected meanwhile; the append never committed, and its retry with the same message ids is projected once")
    func heldAppendAcrossRestart() async throws {
        try await withCartsSchema(poolSize: 20) { schema in
            // Registered and backfilled before (as in a running system): jobs come from the scheduler only.
            let queue = JobQueue(store: schema.store)
            try await queue.registerProjections([ProjectionRegistration(try CartsReadModel.projection())])
            try await queue.advanceBackfills()
            let environment = childEnvironment(url: schema.url, ["LOG_LEVEL": "info"])
            let eventfleet = try builtProduct("eventfleet")
            let fleet = try [
                ChildProcess(eventfleet, arguments: ["scheduler", "--lease-seconds", "3", "--heartbeat-timeout", "5"], environment: environment, error: .capture),
                ChildProcess(
                    eventfleet, arguments: ["worker", "--heartbeat-interval-ms", "500", "--poll-interval-ms", "200", "--drain-timeout", "5"],
                    environment: environment, error: .capture
                ),
            ]
            let heldEvents = try [
                CartEvent.created(CartCreated(tenantId: "a", cartId: "held", currency: "EUR")),
                CartEvent.itemAdded(ItemAddedToCart(sku: "H", name: "held", unitPrice: 5, quantity: 1)),
            ].enumerated().map { try ProposedMessage($1, messageId: "held-\($0)") }
            let open = try await schema.connect()
            try await open.query("BEGIN", logger: TestDatabase.logger)
            try await schema.store.appendToStream(cartStreamId("held"), messages: heldEvents, options: AppendOptions(partition: "a"), connection: open)
            var streams = [("a", cartStreamId("held"))]
            var waiting: PositionToken?
            for tenant in ["a", "b", "c", "d"] {
                let result = try await schema.store.appendToStream(cartStreamId("\(tenant)-1"), events: [
                    CartEvent.created(CartCreated(tenantId: tenant, cartId: "\(tenant)-1", currency: "EUR")),
                ], options: AppendOptions(partition: tenant))
                streams.append((tenant, cartStreamId("\(tenant)-1")))
                if tenant == "a" {
                    waiting = result.token
                } else {
                    try await schema.store.waitForProjection("carts", token: result.token, timeout: .seconds(60))
                }
            }
            let behind = try #require(waiting)
            await #expect(throws: EventStoreError.self, "a's committed event waits behind the open append") {
                try await schema.store.waitForProjection("carts", token: behind, timeout: .milliseconds(500))
            }

            Self.trace("restarting with an append open")
            try await DatabaseRestart.restart()
            try? await open.close()
            // The open append was never acknowledged; the application retries it with its ids.
            let retried = try await Self.retrying("retrying the held append") {
                try await schema.store.appendToStream(cartStreamId("held"), messages: heldEvents, options: AppendOptions(partition: "a"))
            }
            #expect(retried.nextExpectedVersion == 2)
            try await Self.eventually("every cart is projected after the restart") {
                try await cartRowsNotMatchingStreams(schema, streams: streams).isEmpty
            }
            #expect(try await schema.count("SELECT total FROM carts WHERE partition = 'a' AND stream_id = \(cartStreamId("held"))") == 5)
            #expect(try await schema.count("SELECT count(*) FROM ef_messages WHERE partition = 'a' AND stream_id = \(cartStreamId("held"))") == 2)
            for process in fleet { process.signal(SIGTERM) }
            for process in fleet {
                let status = try await process.exit(within: .seconds(30))
                let log = await process.capturedError()
                #expect(status == .exited(0), "pid \(process.pid) \(status): \(log.suffix(40_000))")
            }
        }
    }
}
