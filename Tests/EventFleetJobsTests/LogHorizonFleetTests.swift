import CartsExample
import EventFleetCore
import EventFleetJobs
import EventFleetPostgres
import EventFleetProjections
import EventFleetTestSupport
import Foundation
import PostgresNIO
import Testing

/// The log horizon under a running fleet: only appends hold the log back, and each only its own
/// tenant (docs/DESIGN.md, "The log horizon").
@Suite("Log horizon under a fleet", .exclusive, .timeLimit(.minutes(3)))
struct LogHorizonFleetTests {
    static let tenants = ["a", "b", "c", "d"]

    @Test("a transaction holding an xid on an unrelated table for 15 s delays no tenant: appends in every tenant are projected while it stays open")
    func unrelatedTransactionStallsNoOne() async throws {
        try await withCartsSchema(poolSize: 20) { schema in
            try await schema.execute("CREATE TABLE unrelated (id integer)")
            try await withFleet(schema, workers: 2) { _, _ in
                try await schema.withOpenTransaction { open in
                    let xid = try await Self.xid(of: open, writing: "INSERT INTO \(unescaped: schema.name).unrelated VALUES (1)")
                    let clock = ContinuousClock()
                    let opened = clock.now
                    var round = 0
                    // Each round appends to every tenant and waits for the carts rows to show it.
                    while clock.now - opened < .seconds(15) {
                        round += 1
                        for tenant in Self.tenants {
                            let result = try await schema.store.appendToStream(cartStreamId("\(tenant)-\(round)"), events: [
                                CartEvent.created(CartCreated(tenantId: tenant, cartId: "\(tenant)-\(round)", currency: "EUR")),
                            ], options: AppendOptions(partition: tenant))
                            try await schema.store.waitForProjection("carts", token: result.token, timeout: .seconds(10))
                        }
                        // Paces the rounds over the 15 s; every wait above is on a condition.
                        try await Task.sleep(for: .milliseconds(500))
                    }
                    // The transaction was open all along, with its xid.
                    #expect(try await Self.xid(of: open, writing: "SELECT 1") == xid)
                    #expect(round >= 10)
                }
            }
        }
    }

    @Test("an append held open in tenant a: b-d are projected meanwhile, across a scheduler killed and replaced; a's events appear after the commit, once")
    func heldTenantStallsOnlyItself() async throws {
        try await withCartsSchema(poolSize: 20) { schema in
            let queue = JobQueue(store: schema.store)
            try await queue.registerProjections([ProjectionRegistration(try CartsReadModel.projection())])
            try await queue.advanceBackfills()
            let registry = try CartsReadModel.registry()
            let workers = (0..<2).map { _ in ProjectionWorker(configuration: fastWorker(), store: schema.store, registry: registry) }
            try await withThrowingTaskGroup(of: Void.self) { fleet in
                for worker in workers { fleet.addTask { try await worker.run() } }
                defer { fleet.cancelAll() }
                let open = try await schema.connect()
                do {
                    try await open.query("BEGIN", logger: TestDatabase.logger)
                    let held = try await schema.store.appendToStream(cartStreamId("a-held"), messages: try [
                        CartEvent.created(CartCreated(tenantId: "a", cartId: "a-held", currency: "EUR")),
                        CartEvent.itemAdded(ItemAddedToCart(sku: "H", name: "held", unitPrice: 5, quantity: 1)),
                    ].map { try ProposedMessage($0) }, options: AppendOptions(partition: "a"), connection: open)
                    var streams: [(String, String)] = [("a", cartStreamId("a-held"))]
                    var behind: [PositionToken] = []
                    // Two schedulers in turn: the first is stopped while a's append is open.
                    for generation in 1...2 {
                        let scheduler = FleetScheduler(configuration: fastScheduler(), store: schema.store)
                        try await withThrowingTaskGroup(of: Void.self) { group in
                            group.addTask { try await scheduler.run() }
                            defer { group.cancelAll() }
                            for tenant in Self.tenants {
                                let cartId = "\(tenant)-\(generation)"
                                let result = try await schema.store.appendToStream(cartStreamId(cartId), events: [
                                    CartEvent.created(CartCreated(tenantId: tenant, cartId: cartId, currency: "EUR")),
                                ], options: AppendOptions(partition: tenant))
                                streams.append((tenant, cartStreamId(cartId)))
                                if tenant == "a" {
                                    behind.append(result.token)
                                } else {
                                    try await schema.store.waitForProjection("carts", token: result.token, timeout: .seconds(30))
                                }
                            }
                            // a's committed events wait behind its open append.
                            for token in behind {
                                let error = try await #require(throws: EventStoreError.self) {
                                    try await schema.store.waitForProjection("carts", token: token, timeout: .milliseconds(300))
                                }
                                guard case .projectionTimedOut = error else { Issue.record("\(error)"); return }
                            }
                            #expect(try await schema.store.logHolds().map(\.partition) == ["a"])
                        }
                    }
                    try await open.query("COMMIT", logger: TestDatabase.logger)
                    // A third scheduler takes over from the stored checkpoint, with a held back in it.
                    let scheduler = FleetScheduler(configuration: fastScheduler(), store: schema.store)
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask { try await scheduler.run() }
                        defer { group.cancelAll() }
                        for token in behind + [held.token] {
                            try await schema.store.waitForProjection("carts", token: token, timeout: .seconds(30))
                        }
                        try await waitForIdleQueue(schema, scheduler: scheduler)
                    }
                    try await open.close()
                    try await expectRowsMatchStreams(schema, streams: streams)
                    #expect(try await schema.count("SELECT total FROM carts WHERE partition = 'a' AND stream_id = \(cartStreamId("a-held"))") == 5)
                } catch {
                    try? await open.close()
                    throw error
                }
            }
        }
    }

    /// Runs `statement` in `connection`'s open transaction and returns the transaction's id.
    static func xid(of connection: PostgresConnection, writing statement: PostgresQuery) async throws -> String {
        try await connection.query(statement, logger: TestDatabase.logger)
        let rows = try await connection.query("SELECT pg_current_xact_id()::text", logger: TestDatabase.logger)
        for try await xid in rows.decode(String.self) { return xid }
        throw TimedOut(description: "no transaction id")
    }
}
