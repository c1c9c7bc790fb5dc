import ArgumentParser
import EventFleetCore
import EventFleetJobs
import EventFleetPostgres
import Foundation
import Logging

extension FleetStatus {
    /// From this age on, the monitor names the database's oldest transaction.
    static let oldTransactionSeconds = 10.0

    /// The monitor's table.
    var text: String {
        var lines = ["PARTITION            LANE      READY  RUNNING/CAP  DEAD  OLDEST-READY  DONE/MIN"]
        for lane in lanes {
            let oldest = lane.oldestReadySeconds.map { String(format: "%.1fs", $0) } ?? "-"
            let cap = lane.paused ? "paused" : "\(lane.running)/\(lane.maxRunning)"
            lines.append(
                "\(lane.partition.padded(20)) \(lane.lane.rawValue.padded(8)) \((String(lane.ready) + (lane.readyBeyondLimit == true ? "+" : "")).padded(6, left: true)) \(cap.padded(12, left: true)) \((String(lane.dead) + (lane.deadBeyondLimit == true ? "+" : "")).padded(5, left: true)) \(oldest.padded(13, left: true)) \(String(format: "%.1f", lane.completedPerMinute).padded(9, left: true))"
            )
        }
        lines.append("")
        lines.append("WORKERS (\(workers.count))")
        for worker in workers {
            lines.append(
                "  \(worker.id.padded(36)) pid \(worker.pid)  running \(worker.running)/\(worker.slots)  heartbeat \(String(format: "%.1fs", worker.heartbeatAgeSeconds)) ago\(worker.draining ? "  draining" : "")"
            )
        }
        if !unrunnable.isEmpty {
            lines.append("")
            lines.append("READY JOBS NO LIVE WORKER RUNS")
            for jobs in unrunnable {
                lines.append("  \(jobs.projection.padded(24)) \(jobs.lane.rawValue.padded(8)) \(jobs.ready) ready")
            }
        }
        if !backfills.isEmpty {
            lines.append("")
            lines.append("BACKFILLS (\(backfills.count) unfinished)")
            for backfill in backfills {
                lines.append(
                    "  \(backfill.projections.joined(separator: ",").padded(24)) \((backfill.partition ?? "all partitions").padded(20)) \(backfill.streams)/\(backfill.total) streams  last page \(String(format: "%.1fs", backfill.idleSeconds)) ago"
                )
            }
        }
        lines.append("")
        let vacuumed = jobTable.lastVacuumSeconds.map { String(format: "%.0fs ago", $0) } ?? "never"
        lines.append("JOB TABLE live rows \(jobTable.liveRows), dead rows \(jobTable.deadRows), last vacuum \(vacuumed)")
        if let oldest = jobTable.oldestTransaction, oldest.ageSeconds >= Self.oldTransactionSeconds {
            lines.append(
                "  the oldest transaction, \(oldest.applicationName.map { $0.isEmpty ? "(unnamed)" : $0 } ?? "?") pid \(oldest.pid) "
                    + "(\(oldest.state ?? "?")), open for \(String(format: "%.0fs", oldest.ageSeconds)), keeps the dead rows: claims slow down until it ends"
            )
        }
        let total = connections.reduce(0) { $0 + $1.count }
        lines.append("CONNECTIONS \(total): " + connections.map { "\($0.applicationName.isEmpty ? "(unnamed)" : $0.applicationName) \($0.count)" }.joined(separator: ", "))
        let leader = scheduler.leader ?? "none"
        lines.append(
            "SCHEDULER leader \(leader), checkpoint \(scheduler.checkpoint?.description ?? "-"), head \(scheduler.headPosition.map(String.init) ?? "-"), behind ~\(scheduler.lagEvents) events"
        )
        for hold in scheduler.heldBack {
            lines.append(
                "  partition \(hold.partition ?? "key \(hold.partitionKey)") held back for \(String(format: "%.1fs", hold.ageSeconds)) by an append in flight: \(hold.applicationName.map { $0.isEmpty ? "(unnamed)" : $0 } ?? "?") pid \(hold.pid) from \(hold.clientAddress ?? "local"), \(hold.state ?? "?")"
            )
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
        abstract: "Show jobs per tenant and lane, workers, unfinished backfills, and the scheduler's lag (and the appends in flight that hold partitions back)."
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
                let status = try await FleetStatus.read(from: store)
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
