import Foundation
import Logging
import PostgresNIO

#if canImport(Glibc)
import Glibc
#endif

/// The processes of a soak: schedulers, workers and writers, started from this same executable.
actor ChaosFleet {
    struct Settings: Sendable {
        var executable: String
        var environment: [String: String]
        var directory: String
        var tenants: [String]
        var heartbeatTimeoutSeconds: Int
        var writerPauseMilliseconds: Int
    }

    let settings: Settings
    private(set) var schedulers: [ChaosChild] = []
    private(set) var workers: [ChaosChild] = []
    private(set) var writers: [ChaosChild] = []
    /// Every process ever started, for the final report.
    private(set) var started = 0
    private var counters: [String: Int] = [:]

    init(settings: Settings) {
        self.settings = settings
    }

    private func nextName(_ kind: String) -> String {
        counters[kind, default: 0] += 1
        return "\(kind)-\(counters[kind]!)"
    }

    private func spawn(_ name: String, _ arguments: [String]) throws -> ChaosChild {
        started += 1
        return try ChaosChild(
            name: name, executable: settings.executable, arguments: arguments, environment: settings.environment,
            log: "\(settings.directory)/\(name).log"
        )
    }

    @discardableResult
    func startScheduler() throws -> ChaosChild {
        let child = try spawn(nextName("scheduler"), [
            "scheduler", "--lease-seconds", "3", "--heartbeat-timeout", "\(settings.heartbeatTimeoutSeconds)", "--max-attempts", "5",
        ])
        schedulers.append(child)
        return child
    }

    @discardableResult
    func startWorker() throws -> ChaosChild {
        let child = try spawn(nextName("worker"), [
            "chaos", "worker", "--concurrency", "3", "--batch-size", "20", "--heartbeat-interval-ms", "500",
            "--poll-interval-ms", "200", "--drain-timeout", "5", "--idle-transaction-timeout-ms", "2000", "--retry-delay-ms", "200",
        ])
        workers.append(child)
        return child
    }

    @discardableResult
    func startWriter() throws -> ChaosChild {
        let name = nextName("writer")
        let child = try spawn(name, [
            "chaos", "writer", "--tenants", settings.tenants.joined(separator: ","), "--writer-id", name,
            "--ack-log", ackLog(name), "--pause-ms", "\(settings.writerPauseMilliseconds)",
        ])
        writers.append(child)
        return child
    }

    nonisolated func ackLog(_ writer: String) -> String {
        "\(settings.directory)/acks-\(writer).log"
    }

    /// Every writer that was ever started, by name.
    var writerNames: [String] { writers.map(\.name) }

    func running(_ children: [ChaosChild]) -> [ChaosChild] { children.filter(\.isRunning) }
    var runningWorkers: [ChaosChild] { running(workers) }
    var runningSchedulers: [ChaosChild] { running(schedulers) }
    var runningWriters: [ChaosChild] { running(writers) }

    /// Starts new processes for those that died, so the fleet keeps its size.
    func replaceDead(workers workerCount: Int, schedulers schedulerCount: Int, writers writerCount: Int) throws -> [String] {
        var replaced: [String] = []
        while running(workers).count < workerCount { replaced.append(try startWorker().name) }
        while running(schedulers).count < schedulerCount { replaced.append(try startScheduler().name) }
        while running(writers).count < writerCount { replaced.append(try startWriter().name) }
        return replaced
    }

    /// The scheduler process holding the leader lease, if it is one of ours and alive.
    func leader(client: PostgresClient) async throws -> ChaosChild? {
        let owner = try await client.guardedQuery(
            "SELECT owner FROM ef_subscriptions WHERE subscription_id = 'eventfleet-scheduler' AND lease_expires_at > now()",
            logger: Logger(label: "eventfleet.chaos")
        ) { rows -> String? in
            for try await value in rows.decode(String?.self) { return value }
            return nil
        }
        guard let owner else { return nil }
        return running(schedulers).first { owner.contains("-\($0.pid)-") }
    }
}
