import CartsExample
import EventFleetCLI
import EventFleetCore
import EventFleetJobs
import EventFleetPostgres
import EventFleetTestSupport
import Foundation
import PostgresNIO
import Testing

/// Real `eventfleet worker` and `eventfleet scheduler` processes, killed, frozen and stopped.
@Suite("Fleet processes", .exclusive, .timeLimit(.minutes(3)))
struct FleetProcessTests {
    /// A worker that works slowly (one event per transaction) so it is caught mid-job.
    static func startWorker(_ schema: TestSchema, extra: [String] = []) throws -> ChildProcess {
        try ChildProcess(
            try builtProduct("eventfleet"),
            arguments: ["worker", "--concurrency", "4", "--batch-size", "1", "--heartbeat-interval-ms", "300",
                        "--poll-interval-ms", "100", "--drain-timeout", "2"] + extra,
            environment: childEnvironment(url: schema.url, ["LOG_LEVEL": "info"]), error: .capture
        )
    }

    static func scheduler(_ store: PostgresEventStore) -> FleetScheduler {
        var configuration = FleetScheduler.Configuration()
        configuration.heartbeatTimeout = .seconds(2)
        configuration.maintenanceInterval = .milliseconds(200)
        configuration.leaseDuration = .seconds(2)
        return FleetScheduler(configuration: configuration, store: store)
    }

    static func workerId(_ schema: TestSchema, pid: Int32) async throws -> String? {
        for id in try await schema.rows("SELECT id FROM ef_workers WHERE pid = \(pid)", as: String.self) { return id }
        return nil
    }

    static func runningJobs(_ schema: TestSchema, owner: String) async throws -> Int64 {
        try await schema.count("SELECT count(*) FROM ef_jobs WHERE state = 'running' AND owner = \(owner)")
    }

    static func waitForIdleQueue(_ schema: TestSchema, _ scheduler: FleetScheduler) async throws {
        try await scheduler.whenCaughtUp(timeout: .seconds(60))
        try await waitUntil(timeout: .seconds(90), "the queue is drained") {
            try await schema.count("SELECT count(*) FROM ef_jobs WHERE state IN ('ready', 'running')") == 0
        }
    }

    /// Runs an in-process scheduler for the duration of `body`.
    static func withScheduler<T: Sendable>(_ schema: TestSchema, _ body: @Sendable (FleetScheduler) async throws -> T) async throws -> T {
        let scheduler = Self.scheduler(schema.store)
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                try await scheduler.run()
                return nil
            }
            defer { group.cancelAll() }
            return try await body(scheduler)
        }
    }

    @Test("kill -9 of a worker mid-job: its jobs are rescued within the heartbeat timeout and every row ends correct")
    func killedWorker() async throws {
        try await withCartsSchema(poolSize: 20) { schema in
            try await JobQueue(store: schema.store).registerProjections([ProjectionRegistration(name: "carts", eventTypes: CartEvent.eventTypes)])
            let streams = try await writeCarts(schema.store, tenants: ["a", "b"], cartsPerTenant: 6, extraItems: 30)
            try await Self.withScheduler(schema) { scheduler in
                let victim = try Self.startWorker(schema)
                var victimId: String?
                try await waitUntil(timeout: .seconds(30), "the worker runs jobs") {
                    victimId = try await Self.workerId(schema, pid: victim.pid)
                    guard let victimId else { return false }
                    return try await Self.runningJobs(schema, owner: victimId) > 0
                }
                victim.signal(SIGKILL)
                #expect(try await victim.exit() == .signalled(SIGKILL))
                let killedAt = ContinuousClock.now
                let owner = try #require(victimId)
                try await waitUntil(timeout: .seconds(15), "its jobs are rescued") {
                    try await Self.runningJobs(schema, owner: owner) == 0
                }
                #expect(ContinuousClock.now - killedAt < .seconds(10), "rescued within seconds of the 2 s heartbeat timeout")
                let survivor = try Self.startWorker(schema)
                try await Self.waitForIdleQueue(schema, scheduler)
                survivor.signal(SIGTERM)
                #expect(try await survivor.exit() == .exited(0))
            }
            #expect(try await cartRowsNotMatchingStreams(schema, streams: streams).isEmpty)
        }
    }

    @Test("a frozen worker (SIGSTOP) loses its jobs and, resumed, can neither complete them nor commit their effects")
    func frozenWorker() async throws {
        try await withCartsSchema(poolSize: 20) { schema in
            try await JobQueue(store: schema.store).registerProjections([ProjectionRegistration(name: "carts", eventTypes: CartEvent.eventTypes)])
            let streams = try await writeCarts(schema.store, tenants: ["a"], cartsPerTenant: 6, extraItems: 40)
            try await Self.withScheduler(schema) { scheduler in
                let zombie = try ChildProcess(
                    try builtProduct("eventfleet"),
                    arguments: ["worker", "--concurrency", "4", "--batch-size", "1", "--heartbeat-interval-ms", "300",
                                "--poll-interval-ms", "100", "--drain-timeout", "2", "--idle-transaction-timeout-ms", "1000"],
                    environment: childEnvironment(url: schema.url, ["LOG_LEVEL": "info"]), error: .capture
                )
                var zombieId: String?
                try await waitUntil(timeout: .seconds(30), "the worker runs jobs") {
                    zombieId = try await Self.workerId(schema, pid: zombie.pid)
                    guard let zombieId else { return false }
                    return try await Self.runningJobs(schema, owner: zombieId) > 0
                }
                let owner = try #require(zombieId)
                zombie.signal(SIGSTOP)
                try await waitUntil(timeout: .seconds(20), "its jobs are rescued") {
                    let running = try await Self.runningJobs(schema, owner: owner)
                    let registered = try await Self.workerId(schema, pid: zombie.pid)
                    return running == 0 && registered == nil
                }
                let healthy = try Self.startWorker(schema)
                try await Self.waitForIdleQueue(schema, scheduler)
                let projectedBefore = try await schema.count("SELECT coalesce(sum(last_global_position), 0)::bigint FROM carts")

                zombie.signal(SIGCONT)
                // Awake again, it finds its claims gone (its heartbeat tells it it was declared dead).
                try await waitUntil(timeout: .seconds(20), "the zombie registered again") {
                    try await Self.workerId(schema, pid: zombie.pid) != nil
                }
                #expect(try await schema.count("SELECT count(*) FROM ef_jobs WHERE state IN ('ready', 'running')") == 0)
                #expect(try await schema.count("SELECT coalesce(sum(last_global_position), 0)::bigint FROM carts") == projectedBefore)
                healthy.signal(SIGTERM)
                zombie.signal(SIGTERM)
                let healthyExit = try? await healthy.exit()
                // Its connections were cut while it was frozen; it still drains and exits cleanly.
                let zombieExit = try? await zombie.exit(within: .seconds(20))
                if zombieExit == nil { zombie.signal(SIGKILL) }
                let log = await zombie.capturedError()
                let healthyLog = await healthy.capturedError()
                #expect(healthyExit == .exited(0), "\(healthyLog.suffix(3_000))")
                #expect(zombieExit == .exited(0), "\(log.suffix(3_000))")
                #expect(log.contains("declared dead"), "\(log.suffix(2_000))")
            }
            #expect(try await cartRowsNotMatchingStreams(schema, streams: streams).isEmpty)
        }
    }

    @Test("SIGTERM drains a worker: it exits 0, deregisters, leaves no job running and loses none")
    func sigtermDrains() async throws {
        try await withCartsSchema(poolSize: 20) { schema in
            try await JobQueue(store: schema.store).registerProjections([ProjectionRegistration(name: "carts", eventTypes: CartEvent.eventTypes)])
            let streams = try await writeCarts(schema.store, tenants: ["a", "b"], cartsPerTenant: 5, extraItems: 30)
            try await Self.withScheduler(schema) { scheduler in
                let worker = try Self.startWorker(schema)
                try await waitUntil(timeout: .seconds(30), "the worker runs jobs") {
                    guard let id = try await Self.workerId(schema, pid: worker.pid) else { return false }
                    return try await Self.runningJobs(schema, owner: id) > 0
                }
                worker.signal(SIGTERM)
                #expect(try await worker.exit(within: .seconds(20)) == .exited(0))
                #expect(try await schema.count("SELECT count(*) FROM ef_jobs WHERE state = 'running'") == 0)
                #expect(try await Self.workerId(schema, pid: worker.pid) == nil, "deregistered")
                let next = try Self.startWorker(schema)
                try await Self.waitForIdleQueue(schema, scheduler)
                next.signal(SIGTERM)
                #expect(try await next.exit() == .exited(0))
            }
            #expect(try await cartRowsNotMatchingStreams(schema, streams: streams).isEmpty)
        }
    }

    @Test("a worker whose transaction the server ends while a long stream's rows arrive does not crash")
    func longStreamEndedByTheServer() async throws {
        try await withCartsSchema { schema in
            // One cart of 20,001 events, read in one batch: a fold that outlasts the idle timeout.
            let stream = cartStreamId("long")
            let options = AppendOptions(partition: "a")
            try await schema.store.appendToStream(stream, events: [CartEvent.created(CartCreated(tenantId: "a", cartId: "long", currency: "EUR"))], options: options)
            for chunk in 0..<20 {
                let items = (0..<1_000).map { CartEvent.itemAdded(ItemAddedToCart(sku: "S\(chunk)-\($0)", name: "n", unitPrice: 1, quantity: 1)) }
                try await schema.store.appendToStream(stream, events: items, options: options)
            }
            // No scheduler: the worker's backfill of the new projection makes the stream's job.
            let worker = try Self.startWorker(
                schema, extra: ["--batch-size", "20001", "--idle-transaction-timeout-ms", "300", "--concurrency", "1"]
            )
            try await waitUntil(timeout: .seconds(120), "the job failed once, or completed") {
                guard worker.isRunning else { return true }
                let projected = try await schema.count("SELECT count(*) FROM carts WHERE last_stream_position = 20001")
                let failed = try await schema.count("SELECT count(*) FROM ef_jobs WHERE jsonb_array_length(errors) >= 1")
                return projected == 1 || failed == 1
            }
            let crashed = !worker.isRunning
            worker.signal(SIGTERM)
            let termination = try await worker.exit(within: .seconds(20))
            let log = String((await worker.capturedError()).suffix(3_000))
            #expect(!crashed && termination == .exited(0), "\(termination): \(log)")
        }
    }

    @Test("connections the network drops without closing them: the worker notices within its statement deadline, goes on, and stops on SIGTERM")
    func halfOpenConnections() async throws {
        try await withCartsSchema(poolSize: 20) { schema in
            let configuration = try DatabaseConfiguration(url: schema.url)
            let proxy = try ChildProcess(
                DeployTests.root.appendingPathComponent("scripts/half-open-proxy").path,
                arguments: [configuration.host, String(configuration.port)], environment: ProcessInfo.processInfo.environment, output: .lines
            )
            defer { proxy.signal(SIGKILL) }
            let listening = try #require(await proxy.readLine())
            let port = try #require(listening.split(separator: " ").last.map(String.init))
            var proxied = try #require(URLComponents(string: schema.url))
            proxied.port = Int(port)
            let worker = try ChildProcess(
                try builtProduct("eventfleet"),
                arguments: ["worker", "--concurrency", "4", "--heartbeat-interval-ms", "300", "--poll-interval-ms", "100", "--drain-timeout", "2"],
                environment: childEnvironment(url: try #require(proxied.string), ["LOG_LEVEL": "info"]), error: .capture
            )
            try await JobQueue(store: schema.store).registerProjections([ProjectionRegistration(name: "carts", eventTypes: CartEvent.eventTypes)])
            try await Self.withScheduler(schema) { _ in
                var streams = try await writeCarts(schema.store, tenants: ["a", "b"], cartsPerTenant: 4)
                try await waitUntil(timeout: .seconds(60), "the worker projects every cart") {
                    try await cartRowsNotMatchingStreams(schema, streams: streams).isEmpty
                }
                // Every connection the worker holds now goes silent, its pooled ones and its LISTEN.
                proxy.signal(SIGUSR1)
                streams += try await writeCarts(schema.store, tenants: ["a", "b"], cartsPerTenant: 4)
                try await waitUntil(timeout: .seconds(60), "the worker, on new connections, projects the new carts") {
                    try await cartRowsNotMatchingStreams(schema, streams: streams).isEmpty
                }
            }
            worker.signal(SIGTERM)
            let stopped = ContinuousClock.now
            #expect(try await worker.exit(within: .seconds(30)) == .exited(0))
            let took = ContinuousClock.now - stopped
            #expect(took < .seconds(2) + DatabaseConfiguration.defaultStatementDeadline! + .seconds(5), "SIGTERM took \(took)")
        }
    }

    @Test("kill -9 of the leading scheduler: another scheduler takes over and nothing is missed")
    func schedulerFailover() async throws {
        try await withCartsSchema(poolSize: 20) { schema in
            try await JobQueue(store: schema.store).registerProjections([ProjectionRegistration(name: "carts", eventTypes: CartEvent.eventTypes)])
            let environment = childEnvironment(url: schema.url, ["LOG_LEVEL": "info"])
            let arguments = ["scheduler", "--lease-seconds", "2", "--heartbeat-timeout", "3"]
            let leader = try ChildProcess(try builtProduct("eventfleet"), arguments: arguments, environment: environment, error: .capture)
            try await waitUntil(timeout: .seconds(30), "the first scheduler leads") {
                try await schema.count("SELECT count(*) FROM ef_subscriptions WHERE subscription_id = 'eventfleet-scheduler' AND owner LIKE '%-' || \(String(leader.pid)) || '-%'") == 1
            }
            let standby = try ChildProcess(try builtProduct("eventfleet"), arguments: arguments, environment: environment, error: .capture)
            let worker = try Self.startWorker(schema)
            var streams = try await writeCarts(schema.store, tenants: ["a"], cartsPerTenant: 4)
            leader.signal(SIGKILL)
            _ = try await leader.exit()
            streams += try await writeCarts(schema.store, tenants: ["b"], cartsPerTenant: 4)
            try await waitUntil(timeout: .seconds(30), "the standby took over and every cart is projected") {
                let standbyLeads = try await schema.count("SELECT count(*) FROM ef_subscriptions WHERE subscription_id = 'eventfleet-scheduler' AND owner LIKE '%-' || \(String(standby.pid)) || '-%'") == 1
                guard standbyLeads else { return false }
                return try await cartRowsNotMatchingStreams(schema, streams: streams).isEmpty
            }
            standby.signal(SIGTERM)
            worker.signal(SIGTERM)
            #expect(try await standby.exit() == .exited(0))
            #expect(try await worker.exit() == .exited(0))
        }
    }
}
