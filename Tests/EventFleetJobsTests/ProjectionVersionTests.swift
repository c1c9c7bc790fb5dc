import CartsExample
import EventFleetCore
import EventFleetJobs
import EventFleetPostgres
import EventFleetProjections
import EventFleetTestSupport
import Foundation
import Logging
import PostgresNIO
import Synchronization
import Testing

/// Projection versions (docs/DESIGN.md, "Projection versions"): a changed read model is built
/// beside the live one, readers are switched atomically, the old version is rolled back to or
/// retired.
@Suite("Projection versions", .exclusive, .timeLimit(.minutes(4)))
struct ProjectionVersionTests {
    static let tenants = ["a", "b", "c"]

    @Test("v2 is built beside v1 under live writes, on the backfill lane; promote, rollback and promote again never show a reader an error, a missing row or a row going back; v1 is retired and its workers refused")
    func buildPromoteRollbackRetire() async throws {
        try await withCartsSchema(poolSize: 24) { schema in
            let initial = try await writeCarts(schema.store, tenants: Self.tenants, cartsPerTenant: 10)
            let queue = JobQueue(store: schema.store)
            let scheduler = FleetScheduler(configuration: fastScheduler(), store: schema.store)
            let version1 = try Self.pool(version: 1, workers: 2, store: schema.store)
            let version2 = try Self.pool(version: 2, workers: 2, store: schema.store)

            try await withServices([scheduler] + version1) {
                try await waitForIdleQueue(schema, scheduler: scheduler)
                #expect(try await CartsReadModel.rowsNotMatchingStreams(initial, store: schema.store, version: 1).isEmpty)

                let reader = ViewReader(schema: schema)
                let writes = Writes(store: schema.store, tenants: Self.tenants)
                try await withThrowingTaskGroup(of: Void.self) { background in
                    background.addTask { try await reader.run() }
                    background.addTask { try await writes.run() }

                    try await withServices(version2) {
                        try await waitUntil(timeout: .seconds(90), "version 2 has caught up") {
                            try await queue.projectionVersions(of: "carts").first { $0.version == 2 }?.state == .ready
                        }
                        // A version being built takes no live capacity: its jobs, live ones included,
                        // are on the backfill lane.
                        #expect(try await schema.count("SELECT count(*) FROM ef_jobs WHERE projection = 'carts@2' AND lane = 'live'") == 0)
                        let status = try await queue.projectionVersions(of: "carts")
                        #expect(status.map(\.key) == ["carts", "carts@2"])
                        #expect(status.first?.state == .active)
                        #expect(Set(status[1].tenants.map(\.partition)).isSuperset(of: Self.tenants))

                        let promoted = try await queue.promote("carts", version: 2, timeout: .seconds(60))
                        #expect(promoted.from == 1 && promoted.to == 2)
                        // Readers of the view now see version 2's columns.
                        #expect(try await schema.count("SELECT count(*) FROM carts WHERE status IS NULL") == 0)
                        try await writes.waitForMore()

                        let rolledBack = try await queue.rollback("carts", timeout: .seconds(60))
                        #expect(rolledBack.from == 2 && rolledBack.to == 1)
                        await #expect(throws: (any Error).self) { try await schema.count("SELECT count(*) FROM carts WHERE status IS NULL") }
                        try await writes.waitForMore()

                        try await queue.promote("carts", version: 2, timeout: .seconds(60))
                        try await writes.waitForMore()
                        await writes.stop()
                        try await waitForIdleQueue(schema, scheduler: scheduler)
                    }
                    await reader.stop()
                    try await background.waitForAll()
                }
                let seen = reader.report()
                #expect(seen.errors.isEmpty, "reader errors: \(seen.errors.prefix(3))")
                #expect(seen.missing.isEmpty, "rows a reader saw disappear: \(seen.missing.prefix(5))")
                #expect(seen.wentBack.isEmpty, "rows a reader saw go back: \(seen.wentBack.prefix(5))")
                #expect(seen.polls > 50)

                let streams = initial + writes.streams()
                #expect(try await CartsReadModel.rowsNotMatchingStreams(streams, store: schema.store, version: 2).isEmpty)
                #expect(try await CartsReadModel.rowsNotMatchingStreams(streams, store: schema.store, version: 1).isEmpty)
                #expect(try await schema.count("SELECT count(*) FROM ef_jobs WHERE state = 'dead'") == 0)
                #expect(try await schema.count("SELECT coalesce(sum(failed), 0)::bigint FROM ef_job_stats") == 0)

                // Version 1's pool still runs.
                await #expect(throws: ProjectionVersionError.self) { try await queue.retire("carts", version: 1) }
            }

            let retired = try await queue.retire("carts", version: 1)
            #expect(retired.droppedTable?.hasSuffix("carts_v1") == true)
            #expect(try await schema.count("SELECT count(*) FROM pg_tables WHERE schemaname = \(schema.name) AND tablename = 'carts_v1'") == 0)
            #expect(try await schema.count("SELECT count(*) FROM ef_jobs WHERE projection = 'carts'") == 0)
            #expect(try await queue.projectionVersions(of: "carts").map(\.state) == [.retired, .active])

            // A worker of the retired version does not bring it back.
            let again = try Self.pool(version: 1, workers: 1, store: schema.store)[0]
            let refusal = await #expect(throws: ProjectionVersionError.self) { try await again.run() }
            #expect(refusal == .retired(projection: "carts", version: 1, active: 2))
            #expect("\(refusal.map { "\($0)" } ?? "")".contains("the active version is 2"))
        }
    }

    @Test("refusals change nothing: unknown projection or version, promoting the active or a version behind, rollback without a previous version, retiring the active version, a changed version without a bump; an older version registered later stands by")
    func refusals() async throws {
        try await withCartsSchema { schema in
            let streams = try await writeCarts(schema.store, tenants: ["a"], cartsPerTenant: 3)
            let queue = JobQueue(store: schema.store)
            try await withFleet(schema, workers: 1) { scheduler, _ in
                try await waitForIdleQueue(schema, scheduler: scheduler)
            }
            // Version 2 registered, and nothing built.
            try await queue.registerProjections([ProjectionRegistration(try CartsReadModel.projection(version: 2))])
            let before = try await Self.registrations(schema)

            await #expect(throws: ProjectionVersionError.unknownProjection("orders", known: ["carts"])) {
                try await queue.promote("orders", version: 2)
            }
            await #expect(throws: ProjectionVersionError.unknownVersion(projection: "carts", version: 7, known: [1, 2])) {
                try await queue.promote("carts", version: 7)
            }
            await #expect(throws: ProjectionVersionError.alreadyActive(projection: "carts", version: 1)) {
                try await queue.promote("carts", version: 1)
            }
            let behind = await #expect(throws: ProjectionVersionError.self) { try await queue.promote("carts", version: 2, timeout: .zero) }
            #expect(behind == .notCaughtUp(projection: "carts", version: 2, active: 1, rowsBehind: Int64(streams.count), eventsBehind: 15))
            await #expect(throws: ProjectionVersionError.noPreviousVersion(projection: "carts", active: 1)) {
                try await queue.rollback("carts")
            }
            await #expect(throws: ProjectionVersionError.cannotRetireActive(projection: "carts", version: 1)) {
                try await queue.retire("carts", version: 1)
            }
            await #expect(throws: ProjectionVersionError.unknownVersion(projection: "carts", version: 3, known: [1, 2])) {
                try await queue.retire("carts", version: 3)
            }
            let changed = ProjectionRegistration(name: "carts", version: 1, eventTypes: ["CartCreated"], rowTable: try SQLIdentifier("carts_v1", kind: "table"))
            let difference = await #expect(throws: ProjectionVersionError.self) { try await queue.registerProjections([changed]) }
            #expect("\(difference.map { "\($0)" } ?? "")".contains("event types"))
            let otherTable = ProjectionRegistration(try CartsReadModel.projection(version: 1, table: "carts_v2"))
            let moved = await #expect(throws: ProjectionVersionError.self) { try await queue.registerProjections([otherTable]) }
            #expect("\(moved.map { "\($0)" } ?? "")".contains("carts_v1 registered"))
            // Pools of two versions starting together race to register: whichever is first is
            // active, and the older one is not refused but stands by.
            try await queue.registerProjections([ProjectionRegistration(name: "orders", version: 3, eventTypes: nil)])
            try await queue.registerProjections([ProjectionRegistration(name: "orders", version: 2, eventTypes: nil)])
            #expect(try await Self.registrations(schema).filter { $0.hasPrefix("orders") } == ["orders@2 standby", "orders@3 active"])

            #expect(try await Self.registrations(schema).filter { !$0.hasPrefix("orders") } == before)
            // The view still shows version 1, whose rows are all there.
            #expect(try await schema.count("SELECT count(*) FROM carts") == Int64(streams.count))
        }
    }

    @Test("a standby is ready once its backfill is done and it lacks no more events than the active version: under live writes neither is ever at zero")
    func readyUnderLiveWrites() async throws {
        try await withCartsSchema { schema in
            let streams = try await writeCarts(schema.store, tenants: ["a"], cartsPerTenant: 3)
            let queue = JobQueue(store: schema.store)
            let runner = ProjectionRunner(store: schema.store)
            try await queue.registerProjections([ProjectionRegistration(try CartsReadModel.projection())])
            try await queue.registerProjections([ProjectionRegistration(try CartsReadModel.projection(version: 2))])
            try await queue.advanceBackfills()
            for version in 1...2 {
                for (partition, stream) in streams {
                    try await runner.projectEvents(try CartsReadModel.projection(version: version), streamId: stream, partition: partition)
                }
            }
            func state() async throws -> ProjectionVersionStatus.State? {
                try await queue.projectionVersions(of: "carts").first { $0.version == 2 }?.state
            }
            #expect(try await state() == .ready)

            // An event in flight for both versions: version 2 is as current as the active one.
            let (partition, stream) = streams[0]
            try await schema.store.appendToStream(stream, events: [
                CartEvent.itemAdded(ItemAddedToCart(sku: "late", name: "Late", unitPrice: 1, quantity: 1)),
            ], options: AppendOptions(partition: partition))
            #expect(try await state() == .ready)

            // Version 1 has it and version 2 does not yet: version 2 is behind the active one.
            try await runner.projectEvents(try CartsReadModel.projection(), streamId: stream, partition: partition)
            #expect(try await state() == .building)
        }
    }

    @Test("retiring a version waits for an enqueue of its jobs in flight (a scheduler page that read it before) and deletes that job too; an enqueue after the retirement makes none")
    func retirementWaitsForEnqueuesInFlight() async throws {
        try await withCartsSchema { schema in
            let queue = JobQueue(store: schema.store)
            try await queue.registerProjections([ProjectionRegistration(try CartsReadModel.projection())])
            try await queue.registerProjections([ProjectionRegistration(try CartsReadModel.projection(version: 2))])
            try await queue.promote("carts", version: 2, force: true)
            let logger = Logger(label: "eventfleet.tests")
            let connection = try await schema.connect()
            do {
                try await connection.query("BEGIN", logger: logger)
                try await queue.enqueue([JobRequest(projection: "carts", partition: "a", streamId: "cart-late", lane: .backfill)], on: connection)
                async let retired = queue.retire("carts", version: 1)
                try await waitUntil("the retirement waits for the enqueue in flight") {
                    try await schema.count("""
                        SELECT count(*) FROM pg_stat_activity
                         WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%ef_retire_projection_version%'
                        """) == 1
                }
                try await connection.query("COMMIT", logger: logger)
                #expect(try await retired.deletedJobs == 1)
            } catch {
                try? await connection.close()
                throw error
            }
            try await connection.close()
            #expect(try await schema.count("SELECT count(*) FROM ef_jobs WHERE projection = 'carts'") == 0)

            #expect(try await queue.enqueue([JobRequest(projection: "carts", partition: "a", streamId: "cart-later", lane: .backfill)]) == 0)
            #expect(try await schema.count("SELECT count(*) FROM ef_jobs WHERE projection = 'carts'") == 0)
        }
    }

    @Test("a version that opts in is promoted by the leading scheduler once caught up")
    func promotesItselfWhenCaughtUp() async throws {
        try await withCartsSchema(poolSize: 16) { schema in
            let streams = try await writeCarts(schema.store, tenants: Self.tenants, cartsPerTenant: 5)
            var configuration = fastScheduler()
            configuration.autoPromotionInterval = .milliseconds(200)
            try await withFleet(schema, workers: 1, scheduler: configuration) { scheduler, _ in
                try await waitForIdleQueue(schema, scheduler: scheduler)
                let registry = ProjectionRegistry([try CartsReadModel.projection(version: 2, promotesWhenCaughtUp: true)])
                let version2 = ProjectionWorker(configuration: fastWorker(), store: schema.store, registry: registry)
                try await withServices([version2]) {
                    try await waitUntil(timeout: .seconds(60), "version 2 is active") {
                        try await CartsReadModel.activeVersion(store: schema.store) == 2
                    }
                }
            }
            #expect(try await CartsReadModel.rowsNotMatchingStreams(streams, store: schema.store, version: 2).isEmpty)
            #expect(try await schema.count("SELECT count(*) FROM carts WHERE status = 'open'") == 0)
            #expect(try await JobQueue(store: schema.store).projectionVersions(of: "carts").map(\.state) == [.ready, .active])
        }
    }

    @Test("rebuilding tenant a recomputes its bad rows in place while its streams get new events: no row missing or going back, nothing lost, tenant b's rows untouched")
    func rebuildOneTenant() async throws {
        try await withCartsSchema(poolSize: 16) { schema in
            let streams = try await writeCarts(schema.store, tenants: ["a", "b"], cartsPerTenant: 12)
            try await withFleet(schema, workers: 2) { scheduler, _ in
                try await waitForIdleQueue(schema, scheduler: scheduler)
                // A bug wrote wrong rows for tenant a: the rows are at their streams' ends, their contents wrong.
                try await schema.execute(#"UPDATE carts_v1 SET snapshot = '{"initial": {}}', total = -1 WHERE partition = 'a'"#)
                #expect(try await cartRowsNotMatchingStreams(schema, streams: streams).count == 12)
                let tenantB = try await Self.rows(of: "b", schema)

                let reader = ViewReader(schema: schema)
                try await withThrowingTaskGroup(of: Void.self) { background in
                    background.addTask { try await reader.run() }
                    // Tenant a's carts get new events while the rebuild runs.
                    async let appended: Void = {
                        for (partition, stream) in streams where partition == "a" {
                            try await schema.store.appendToStream(stream, events: [
                                CartEvent.itemAdded(ItemAddedToCart(sku: "L", name: "late", unitPrice: 3, quantity: 1)),
                            ], options: AppendOptions(partition: partition))
                        }
                    }()
                    let rebuilt = try await ProjectionRunner(store: schema.store).rebuild(
                        try CartsReadModel.projection(), partition: "a", streamsPerTransaction: 3, batchSize: 2
                    )
                    #expect(rebuilt.streams == 12)
                    try await appended
                    await reader.stop()
                    try await background.waitForAll()
                }
                try await waitForIdleQueue(schema, scheduler: scheduler)
                let seen = reader.report()
                #expect(seen.errors.isEmpty && seen.missing.isEmpty && seen.wentBack.isEmpty, "\(seen.errors.prefix(2)) \(seen.missing.prefix(2)) \(seen.wentBack.prefix(2))")
                try await expectRowsMatchStreams(schema, streams: streams)
                #expect(try await Self.rows(of: "b", schema) == tenantB)
            }
        }
    }

    /// Tenant `partition`'s rows, whole, in stream order.
    static func rows(of partition: String, _ schema: TestSchema) async throws -> [String] {
        try await schema.rows("SELECT row_to_json(c)::text FROM carts_v1 c WHERE partition = \(partition) ORDER BY stream_id", as: String.self)
    }

    /// Every registration as `key state`.
    static func registrations(_ schema: TestSchema) async throws -> [String] {
        try await schema.rows("SELECT name || ' ' || state FROM ef_projections ORDER BY name", as: String.self)
    }

    /// Workers running version `version` of `carts`.
    static func pool(version: Int, workers: Int, store: PostgresEventStore) throws -> [ProjectionWorker] {
        let registry = ProjectionRegistry([try CartsReadModel.projection(version: version)])
        return (0..<workers).map { _ in ProjectionWorker(configuration: fastWorker(), store: store, registry: registry) }
    }
}

/// Polls `SELECT partition, stream_id, last_stream_position FROM carts`, a fresh statement every
/// few milliseconds, and remembers every error, every row it saw that disappeared, and every row
/// whose position went back.
final class ViewReader: Sendable {
    struct Report {
        var polls = 0
        var errors: [String] = []
        var missing: [String] = []
        var wentBack: [String] = []
    }

    let schema: TestSchema
    private let state = Mutex((stopped: false, report: Report()))

    init(schema: TestSchema) {
        self.schema = schema
    }

    func run() async throws {
        let connection = try await schema.connect()
        do {
            try await poll(connection)
        } catch {
            try? await connection.close()
            throw error
        }
        try await connection.close()
    }

    private func poll(_ connection: PostgresConnection) async throws {
        var seen: [String: Int64] = [:]
        while !state.withLock({ $0.stopped }) {
            var now: [String: Int64] = [:]
            do {
                let rows = try await connection.query(
                    "SELECT partition, stream_id, last_stream_position FROM \(unescaped: schema.name).carts", logger: TestDatabase.logger
                )
                for try await (partition, stream, position) in rows.decode((String, String, Int64).self) {
                    now["\(partition)/\(stream)"] = position
                }
            } catch {
                state.withLock { $0.report.errors.append(String(reflecting: error)) }
                continue
            }
            let missing = seen.keys.filter { now[$0] == nil }
            let wentBack = now.compactMap { key, position in seen[key].flatMap { $0 > position ? "\(key): \($0) then \(position)" : nil } }
            state.withLock {
                $0.report.polls += 1
                $0.report.missing += missing
                $0.report.wentBack += wentBack
            }
            seen.merge(now) { max($0, $1) }
            try await Task.sleep(for: .milliseconds(3))
        }
    }

    func stop() async {
        state.withLock { $0.stopped = true }
    }

    func report() -> Report {
        state.withLock { $0.report }
    }
}

/// Writes carts to the tenants until stopped, a few at a time.
final class Writes: Sendable {
    let store: PostgresEventStore
    let tenants: [String]
    private let state = Mutex((stopped: false, rounds: 0, streams: [(String, String)]()))

    init(store: PostgresEventStore, tenants: [String]) {
        self.store = store
        self.tenants = tenants
    }

    func run() async throws {
        while !state.withLock({ $0.stopped }) {
            let written = try await writeCarts(store, tenants: tenants, cartsPerTenant: 1)
            state.withLock {
                $0.streams += written
                $0.rounds += 1
            }
        }
    }

    /// Waits until two more rounds of writes have gone in.
    func waitForMore() async throws {
        let start = state.withLock { $0.rounds }
        try await waitUntil(timeout: .seconds(30), "more carts are written") { state.withLock { $0.rounds } >= start + 2 }
    }

    func stop() async {
        state.withLock { $0.stopped = true }
    }

    func streams() -> [(String, String)] {
        state.withLock { $0.streams }
    }
}
