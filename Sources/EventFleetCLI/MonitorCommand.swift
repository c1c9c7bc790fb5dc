import ArgumentParser
import EventFleetCore
import EventFleetJobs
import EventFleetPostgres
import Foundation
import Logging
import PostgresNIO

/// What the monitor shows, read in a few queries that only touch small (partial) indexes.
struct FleetStatus: Codable, Sendable {
    struct Lane: Codable, Sendable {
        var partition: String
        var lane: String
        var ready: Int64
        var running: Int64
        var dead: Int64
        var maxRunning: Int32
        var paused: Bool
        var oldestReadySeconds: Double?
        var completedPerMinute: Double
    }

    struct Worker: Codable, Sendable {
        var id: String
        var host: String
        var pid: Int32
        var slots: Int32
        var running: Int64
        var draining: Bool
        var heartbeatAgeSeconds: Double
    }

    struct Scheduler: Codable, Sendable {
        var leader: String?
        var checkpoint: GlobalCheckpoint?
        var head: GlobalCheckpoint?
        /// Global positions between the checkpoint and the newest event: an estimate of events behind.
        var lagEvents: Int64
        var stalledBy: GlobalLogStall?
    }

    var lanes: [Lane]
    var workers: [Worker]
    var scheduler: Scheduler

    static func read(store: PostgresEventStore, schedulerName: String = FleetScheduler.Configuration().name) async throws -> FleetStatus {
        let client = store.client
        var lanes: [Lane] = []
        let laneQuery: PostgresQuery = """
            SELECT q.partition, q.lane, q.max_running, q.paused,
                   (SELECT count(*) FROM ef_jobs j WHERE j.state = 'ready' AND j.partition = q.partition AND j.lane = q.lane),
                   (SELECT count(*) FROM ef_jobs j WHERE j.state = 'running' AND j.partition = q.partition AND j.lane = q.lane),
                   (SELECT count(*) FROM ef_jobs j WHERE j.state = 'dead' AND j.partition = q.partition AND j.lane = q.lane),
                   (SELECT extract(epoch FROM now() - min(j.run_at))::float8 FROM ef_jobs j
                     WHERE j.state = 'ready' AND j.partition = q.partition AND j.lane = q.lane AND j.run_at <= now()),
                   (SELECT coalesce(sum(s.completed), 0)::float8 / 5 FROM ef_job_stats s
                     WHERE s.partition = q.partition AND s.lane = q.lane AND s.minute >= date_trunc('minute', now()) - interval '5 minutes')
              FROM ef_tenant_quotas q
             ORDER BY q.partition, q.lane
            """
        for try await (partition, lane, maxRunning, paused, ready, running, dead, oldest, perMinute)
            in try await client.query(laneQuery).decode((String, String, Int32, Bool, Int64, Int64, Int64, Double?, Double).self)
        {
            lanes.append(Lane(
                partition: partition, lane: lane, ready: ready, running: running, dead: dead, maxRunning: maxRunning,
                paused: paused, oldestReadySeconds: oldest, completedPerMinute: perMinute
            ))
        }
        var workers: [Worker] = []
        let workerQuery: PostgresQuery = """
            SELECT w.id, w.host, w.pid, w.slots, w.draining, extract(epoch FROM now() - w.heartbeat)::float8,
                   (SELECT count(*) FROM ef_jobs j WHERE j.state = 'running' AND j.owner = w.id)
              FROM ef_workers w ORDER BY w.started
            """
        for try await (id, host, pid, slots, draining, age, running)
            in try await client.query(workerQuery).decode((String, String, Int32, Int32, Bool, Double, Int64).self)
        {
            workers.append(Worker(id: id, host: host, pid: pid, slots: slots, running: running, draining: draining, heartbeatAgeSeconds: age))
        }
        var scheduler = Scheduler(leader: nil, checkpoint: nil, head: nil, lagEvents: 0, stalledBy: nil)
        let checkpointQuery: PostgresQuery = """
            SELECT CASE WHEN lease_expires_at > now() THEN owner END, last_transaction_id::text, last_global_position
              FROM ef_subscriptions WHERE subscription_id = \(schedulerName) ORDER BY updated DESC LIMIT 1
            """
        for try await (leader, transaction, position) in try await client.query(checkpointQuery).decode((String?, String, Int64).self) {
            scheduler.leader = leader
            scheduler.checkpoint = GlobalCheckpoint(transactionId: UInt64(transaction) ?? 0, globalPosition: position)
        }
        scheduler.head = try await store.globalLogHead()
        if let head = scheduler.head {
            let checkpoint = scheduler.checkpoint ?? .start
            scheduler.lagEvents = checkpoint >= head ? 0 : max(0, head.globalPosition - checkpoint.globalPosition)
            if scheduler.lagEvents > 0 { scheduler.stalledBy = try await store.globalLogStall() }
        }
        return FleetStatus(lanes: lanes, workers: workers, scheduler: scheduler)
    }

    var text: String {
        var lines = ["PARTITION            LANE      READY  RUNNING/CAP  DEAD  OLDEST-READY  DONE/MIN"]
        for lane in lanes {
            let oldest = lane.oldestReadySeconds.map { String(format: "%.1fs", $0) } ?? "-"
            let cap = lane.paused ? "paused" : "\(lane.running)/\(lane.maxRunning)"
            lines.append(
                "\(lane.partition.padded(20)) \(lane.lane.padded(8)) \(String(lane.ready).padded(6, left: true)) \(cap.padded(12, left: true)) \(String(lane.dead).padded(5, left: true)) \(oldest.padded(13, left: true)) \(String(format: "%.1f", lane.completedPerMinute).padded(9, left: true))"
            )
        }
        lines.append("")
        lines.append("WORKERS (\(workers.count))")
        for worker in workers {
            lines.append(
                "  \(worker.id.padded(36)) pid \(worker.pid)  running \(worker.running)/\(worker.slots)  heartbeat \(String(format: "%.1fs", worker.heartbeatAgeSeconds)) ago\(worker.draining ? "  draining" : "")"
            )
        }
        lines.append("")
        let leader = scheduler.leader ?? "none"
        lines.append("SCHEDULER leader \(leader), checkpoint \(scheduler.checkpoint?.description ?? "-"), head \(scheduler.head?.description ?? "-"), behind ~\(scheduler.lagEvents) events")
        if let stall = scheduler.stalledBy {
            lines.append("  held back by pid \(stall.pid) (\(stall.applicationName ?? "?"), \(stall.state ?? "?"), open \(stall.age))")
        }
        return lines.joined(separator: "\n")
    }
}

extension String {
    func padded(_ width: Int, left: Bool = false) -> String {
        guard count < width else { return self }
        let padding = String(repeating: " ", count: width - count)
        return left ? padding + self : self + padding
    }
}

/// `monitor`: the fleet at a glance, once or refreshed.
public struct MonitorCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "monitor",
        abstract: "Show jobs per tenant and lane, workers, and the scheduler's lag (and what stalls it)."
    )

    @OptionGroup public var database: DatabaseOptions
    @Flag(help: "Refresh every few seconds until interrupted.") public var watch = false
    @Flag(help: "Print one JSON object.") public var json = false
    @Option(name: .customLong("interval"), help: "Seconds between refreshes with --watch.") public var interval: Int = 2

    public init() {}

    public func validate() throws {
        guard interval > 0 else { throw ValidationError("--interval must be positive") }
    }

    public func run() async throws {
        let (watch, json, interval) = (self.watch, self.json, self.interval)
        try await database.withStore(logger: Logger(label: "eventfleet.monitor")) { store in
            repeat {
                let status = try await FleetStatus.read(store: store)
                if json {
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.sortedKeys]
                    print(String(decoding: try encoder.encode(status), as: UTF8.self))
                } else {
                    if watch { print("\u{1B}[2J\u{1B}[H", terminator: "") }
                    print(status.text)
                }
                if watch { try await Task.sleep(for: .seconds(interval)) }
            } while watch
        }
    }
}
