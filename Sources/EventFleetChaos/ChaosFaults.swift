import CartsExample
import EventFleetCLI
import EventFleetCore
import EventFleetJobs
import EventFleetPostgres
import Foundation
import Logging
import PostgresNIO
import Synchronization

/// Prints a line at once (unbuffered, also into a pipe or file), so a soak can be followed live.
func sayLine(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// The faults the soak injects.
enum ChaosFault: String, CaseIterable, Sendable {
    case killWorker = "kill -9 of a worker"
    case killLeader = "kill -9 of the leading scheduler"
    case killWriter = "kill -9 of a command writer"
    case freezeWorker = "SIGSTOP of a worker past its heartbeat timeout, then SIGCONT"
    case restartDatabase = "pg_ctl restart -m immediate"
    case unrelatedTransaction = "a long transaction that does not append (holds nothing back)"
    case heldAppend = "an append held open (holds back its tenant only)"
    case backfillBurst = "a burst of backfills for one tenant"
    case poisonStream = "a poison stream"
    case terminateSession = "pg_terminate_backend of a fleet session"
    case freezeLeader = "SIGSTOP of the leading scheduler past its lease, then SIGCONT"
    case killWorkerInBackfill = "kill -9 of a worker during a new projection's first backfill"
    case halfOpen = "the workers' connections go half-open (a proxy stops forwarding on them)"
    case restartPooler = "the connection pooler restarts"
    case killVersionWorker = "kill -9 of a worker building carts version 2"
    case restartDatabaseMidBuild = "pg_ctl restart -m immediate while carts version 2 builds"

    /// The faults of the version-2 build, injected once its pool is deployed rather than in the
    /// random rounds.
    static let ofVersionBuild: [ChaosFault] = [.killVersionWorker, .restartDatabaseMidBuild]
}

/// What the faults measured, for the invariants.
final class FaultRecord: Sendable {
    private let takeovers = Mutex<[Duration]>([])
    private let probes = Mutex<[Probe]>([])

    /// A cart created while a transaction was held open, in a tenant the hold must not hold back,
    /// and how long its row took to show (`nil`: not within ``ChaosInjector/probeTimeout``).
    struct Probe: Sendable {
        var fault: ChaosFault
        var tenant: String
        var shownAfter: Duration?
    }

    /// How long a standby took to lead after the leader froze.
    func recordTakeover(_ duration: Duration) { takeovers.withLock { $0.append(duration) } }
    var takeoverTimes: [Duration] { takeovers.withLock { $0 } }

    func recordProbe(_ probe: Probe) { probes.withLock { $0.append(probe) } }
    var probeResults: [Probe] { probes.withLock { $0 } }
}

/// Injects faults into a running soak.
struct ChaosInjector: Sendable {
    let fleet: ChaosFleet
    let store: PostgresEventStore
    let tenants: [String]
    let heartbeatTimeout: Duration
    let restartCommand: String?
    /// Restarts the pooler the soak runs through, when it runs through one.
    let restartPoolerCommand: String?
    let directory: String
    let started: ContinuousClock.Instant
    let leaseDuration: Duration
    /// The proxy between the workers and the database, when the soak has one.
    let proxy: ChildProcess?
    let record: FaultRecord
    let logger: Logger

    /// The stream the poison fault writes.
    static let poisonStream = cartStreamId("poison")

    func say(_ line: String) {
        let elapsed = ContinuousClock.now - started
        sayLine(String(format: "[%6.1fs] ", Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18) + line)
    }

    /// Injects `fault`; returns whether it was injected (some need a victim or a restart command).
    func inject(_ fault: ChaosFault, random: inout SplitMix64) async -> Bool {
        do {
            switch fault {
            case .killWorker:
                guard let victim = await fleet.runningWorkers.randomElement(using: &random) else { return false }
                victim.signal(SIGKILL)
                say("fault: \(fault.rawValue): \(victim.name) (pid \(victim.pid))")
            case .killLeader:
                guard let leader = try await fleet.leader(in: store.database) else {
                    say("fault skipped: \(fault.rawValue): no leader right now")
                    return false
                }
                leader.signal(SIGKILL)
                say("fault: \(fault.rawValue): \(leader.name) (pid \(leader.pid))")
            case .killWriter:
                guard let victim = await fleet.runningWriters.randomElement(using: &random) else { return false }
                victim.signal(SIGKILL)
                say("fault: \(fault.rawValue): \(victim.name) (pid \(victim.pid))")
            case .freezeWorker:
                guard let victim = await fleet.runningWorkers.randomElement(using: &random) else { return false }
                let frozenFor = heartbeatTimeout + .seconds(2)
                say("fault: \(fault.rawValue): \(victim.name) (pid \(victim.pid)) for \(frozenFor)")
                victim.signal(SIGSTOP)
                try await Task.sleep(for: frozenFor)
                victim.signal(SIGCONT)
                say("       \(victim.name) resumed")
            case .restartDatabase:
                return try await restartDatabase(fault)
            case .killVersionWorker:
                guard try await versionBuildInProgress(fault) else { return false }
                guard let victim = await fleet.running(fleet.versionWorkers).randomElement(using: &random) else { return false }
                victim.signal(SIGKILL)
                say("fault: \(fault.rawValue): \(victim.name) (pid \(victim.pid))")
            case .restartDatabaseMidBuild:
                guard restartCommand != nil, try await versionBuildInProgress(fault) else { return false }
                return try await restartDatabase(fault)
            case .restartPooler:
                guard let restartPoolerCommand else { return false }
                say("fault: \(fault.rawValue)")
                let termination = try await ChildProcess.runShell(restartPoolerCommand, log: "\(directory)/restart-pooler.log")
                say("       pooler restarted (\(termination))")
                if termination != .exited(0) { return false }
            case .unrelatedTransaction:
                let holdFor = Duration.seconds(Int64.random(in: 3...8, using: &random))
                let probed = tenants.randomElement(using: &random) ?? tenants[0]
                say("fault: \(fault.rawValue): for at least \(holdFor), a new cart in \(probed) meanwhile")
                try await holdOpen(fault, for: holdFor, probing: probed) { connection in
                    try await connection.execute("INSERT INTO \(store.database.schema.chaos_unrelated) (at) VALUES (now())")
                }
            case .heldAppend:
                let holdFor = Duration.seconds(Int64.random(in: 3...8, using: &random))
                let tenant = tenants.randomElement(using: &random) ?? tenants[0]
                let others = tenants.filter { $0 != tenant }
                let probed = others.randomElement(using: &random)
                say("fault: \(fault.rawValue): \(tenant) for at least \(holdFor)\(probed.map { ", a new cart in \($0) meanwhile" } ?? "")")
                try await holdOpen(fault, for: holdFor, probing: probed) { connection in
                    let cart = "held-\(UUID().uuidString.prefix(8).lowercased())"
                    try await store.appendToStream(
                        cartStreamId(cart), messages: [try ProposedMessage(CartEvent.created(CartCreated(tenantId: tenant, cartId: cart, currency: "EUR")))],
                        options: AppendOptions(partition: tenant), connection: connection.connection
                    )
                }
            case .backfillBurst:
                let tenant = tenants.randomElement(using: &random) ?? tenants[0]
                let result = try await JobQueue(store: store).backfill(projections: ["carts", "chaos_applications"], partition: tenant)
                say("fault: \(fault.rawValue): \(tenant), \(result.enqueued) jobs for \(result.streams) streams")
            case .poisonStream:
                let tenant = tenants[0]
                try await store.appendToStream(Self.poisonStream, events: [
                    CartEvent.created(CartCreated(tenantId: tenant, cartId: "poison", currency: "EUR")),
                    CartEvent.itemAdded(ItemAddedToCart(sku: ChaosProjections.poisonSku, name: "poison", unitPrice: 1, quantity: 1)),
                ], options: AppendOptions(partition: tenant))
                say("fault: \(fault.rawValue): \(Self.poisonStream) in \(tenant)")
            case .terminateSession:
                // A fleet process's session, preferably one running a statement.
                let pids = try await store.database.query("pick a fleet session", """
                    SELECT pid FROM pg_stat_activity
                     WHERE datname = current_database() AND application_name = ANY (\(ChaosRunCommand.fleetApplicationNames))
                       AND pid <> pg_backend_pid()
                     ORDER BY state = 'active' DESC, random()
                     LIMIT 1
                    """).map { try $0.decode(Int32.self) }
                guard let pid = pids.first else { return false }
                _ = try await store.database.query("terminate a fleet session", "SELECT pg_terminate_backend(\(pid))")
                say("fault: \(fault.rawValue): backend \(pid)")
            case .freezeLeader:
                guard let leader = try await fleet.leader(in: store.database) else {
                    say("fault skipped: \(fault.rawValue): no leader right now")
                    return false
                }
                say("fault: \(fault.rawValue): \(leader.name) (pid \(leader.pid))")
                let frozen = ContinuousClock.now
                leader.signal(SIGSTOP)
                let limit = leaseDuration * 3 + .seconds(10)
                var successor: SoakProcess?
                while successor == nil, ContinuousClock.now - frozen < limit {
                    try await Task.sleep(for: .milliseconds(100))
                    if let current = try? await fleet.leader(in: store.database), current.pid != leader.pid { successor = current }
                }
                let took = ContinuousClock.now - frozen
                leader.signal(SIGCONT)
                record.recordTakeover(took)
                say("       \(successor.map { "\($0.name) leads after \(took)" } ?? "no standby led within \(limit)"); \(leader.name) resumed")
            case .killWorkerInBackfill:
                // As a worker that registers a new projection does: the backfill is recorded, and the
                // starting worker drives it; it dies after its first pages.
                let queue = JobQueue(store: store)
                let tenant = tenants.randomElement(using: &random) ?? tenants[0]
                let backfill = try await queue.startBackfill(projections: ["chaos_applications"], partition: tenant)
                let victim = try await fleet.startWorker()
                let deadline = ContinuousClock.now + .seconds(10)
                while ContinuousClock.now < deadline {
                    let streams = try await store.database.value(
                        "follow the backfill", "SELECT streams FROM \(store.database.schema.ef_backfills) WHERE id = \(backfill)", as: Int64.self
                    )
                    if streams > 0 { break }
                    try await Task.sleep(for: .milliseconds(20))
                }
                victim.signal(SIGKILL)
                say("fault: \(fault.rawValue): backfill \(backfill) of \(tenant), \(victim.name) (pid \(victim.pid))")
            case .halfOpen:
                guard let proxy else {
                    say("fault skipped: \(fault.rawValue): no --half-open-proxy")
                    return false
                }
                proxy.signal(SIGUSR1)
                say("fault: \(fault.rawValue)")
            }
            return true
        } catch {
            say("fault failed: \(fault.rawValue): \(error)")
            return false
        }
    }

    /// Restarts the database the hard way with `--restart-command`; whether it did.
    private func restartDatabase(_ fault: ChaosFault) async throws -> Bool {
        guard let restartCommand else {
            say("fault skipped: \(fault.rawValue): no --restart-command")
            return false
        }
        say("fault: \(fault.rawValue)")
        let termination = try await ChildProcess.runShell(restartCommand, log: "\(directory)/restart.log")
        say("       database restarted (\(termination))")
        return termination == .exited(0)
    }

    /// Whether version 2 of carts is still building (a fault of the build is skipped after it).
    private func versionBuildInProgress(_ fault: ChaosFault) async throws -> Bool {
        let version = try await JobQueue(store: store).projectionVersions(of: "carts").first { $0.version == 2 }
        guard let version, version.state == .building else {
            say("fault skipped: \(fault.rawValue): version 2 is \(version.map { "\($0.state)" } ?? "not registered")")
            return false
        }
        return true
    }

    /// How long a probe cart may take to show while a transaction is held open.
    static let probeTimeout = Duration.seconds(60)

    /// Opens a transaction that takes an xid first (as an application's own transaction does), runs
    /// `body` in it (an append, or a write elsewhere), keeps it open for `duration` and until a new
    /// cart created meanwhile in `probed` shows in the carts read model (at most
    /// ``probeTimeout``), records how long that took, and commits. What the hold holds back waits
    /// for the commit; the probe proves that the tenant probed was not held back.
    private func holdOpen(
        _ fault: ChaosFault, for duration: Duration, probing probed: String?,
        _ body: @Sendable (Database.Connection) async throws -> Void
    ) async throws {
        try await store.database.withConnection("hold a transaction open") { connection in
            try await connection.execute("BEGIN")
            do {
                try await connection.execute("SELECT pg_current_xact_id()")
                try await body(connection)
                let opened = ContinuousClock.now
                if let probed {
                    let shownAfter = try await probe(in: probed)
                    record.recordProbe(FaultRecord.Probe(fault: fault, tenant: probed, shownAfter: shownAfter))
                    say("       the cart in \(probed) " + (shownAfter.map { "showed after \($0) while the transaction was open" } ?? "did not show within \(Self.probeTimeout)"))
                }
                let remaining = duration - (ContinuousClock.now - opened)
                if remaining > .zero { try await Task.sleep(for: remaining) }
                try await connection.execute("COMMIT")
            } catch {
                try? await connection.execute("ROLLBACK")
                throw error
            }
        }
    }

    /// Creates a cart in `tenant` and waits for its carts row: how long it took, or `nil` after
    /// ``probeTimeout``.
    private func probe(in tenant: String) async throws -> Duration? {
        let cart = "probe-\(UUID().uuidString.prefix(8).lowercased())"
        let stream = cartStreamId(cart)
        let started = ContinuousClock.now
        try await store.appendToStream(
            stream, messages: [try ProposedMessage(CartEvent.created(CartCreated(tenantId: tenant, cartId: cart, currency: "EUR")))],
            options: AppendOptions(partition: tenant)
        )
        while ContinuousClock.now - started < Self.probeTimeout {
            let rows = try await store.database.query(
                "read a probe's carts row", "SELECT 1 FROM \(store.database.schema.carts) WHERE partition = \(tenant) AND stream_id = \(stream)"
            )
            if !rows.isEmpty { return ContinuousClock.now - started }
            try await Task.sleep(for: .milliseconds(50))
        }
        return nil
    }
}
