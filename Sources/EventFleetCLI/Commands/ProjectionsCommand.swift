import ArgumentParser
import EventFleetCore
import EventFleetJobs
import EventFleetPostgres
import EventFleetProjections
import Foundation
import Logging

/// `projections`: the versions of the fleet's projections, and changing them: status, promote,
/// rollback, retire, and rebuilding a tenant's rows in place.
public struct ProjectionsCommand<Provider: ProjectionsProvider>: AsyncParsableCommand where Provider.Options: ParsableArguments {
    public static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: "projections",
            abstract: "Show projection versions and change them: status, promote, rollback, retire, rebuild.",
            subcommands: [
                ProjectionsStatusCommand.self, ProjectionsPromoteCommand.self, ProjectionsRollbackCommand.self,
                ProjectionsRetireCommand.self, ProjectionsRebuildCommand<Provider>.self,
            ]
        )
    }

    public init() {}
}

/// `projections status`: every version of every projection (or of one) with its state and, per
/// tenant, streams done of all, events behind the head, rate and time left.
public struct ProjectionsStatusCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show each projection version's state (building, ready, active, behind, retired) and its progress per tenant."
    )

    @OptionGroup public var database: DatabaseOptions
    @Argument(help: "Only this projection.") public var projection: String?
    @Flag(help: "Print one JSON object.") public var json = false
    @Flag(help: "Redraw every --interval seconds until interrupted.") public var watch = false
    @Option(help: "Seconds between the two readings a rate is measured over, and between redraws with --watch.") public var interval: Double = 1

    public init() {}

    public func validate() throws {
        guard interval > 0, interval <= 3_600 else { throw ValidationError("--interval must be between 0 and 3600 seconds") }
    }

    public func run() async throws {
        let (projection, json, watch) = (self.projection, self.json, self.watch)
        let interval = Duration.milliseconds(Int64(self.interval * 1_000))
        try await database.withStore(logger: Logger(label: "eventfleet.projections")) { store in
            let queue = JobQueue(store: store)
            var earlier = try await queue.projectionVersions(of: projection)
            if let projection, earlier.isEmpty { throw try await queue.unknownProjection(projection) }
            while true {
                try await Task.sleep(for: interval)
                let now = try await queue.projectionVersions(of: projection)
                let rated = now.map { version in earlier.first { $0.key == version.key }.map { version.rated(since: $0, over: interval) } ?? version }
                if json {
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.sortedKeys]
                    encoder.dateEncodingStrategy = .iso8601
                    print(String(decoding: try encoder.encode(["versions": rated]), as: UTF8.self))
                } else {
                    if watch { print("\u{1B}[2J\u{1B}[H", terminator: "") }
                    print(ProjectionVersionStatus.text(rated))
                }
                guard watch else { return }
                earlier = now
            }
        }
    }
}

/// `projections promote`: makes a version the active one once it has caught up.
public struct ProjectionsPromoteCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "promote",
        abstract: "Switch readers to a version once every row of it is at or ahead of the active version's.",
        discussion: """
            Readers query the projection's view; it shows the new version's table from the moment the switch commits. \
            The active version's writers wait while the rows are compared (about a second at most), so no reader sees a row go back. \
            A user's own view on the projection's view stops a switch that changes its columns.
            """
    )

    @OptionGroup public var database: DatabaseOptions
    @Argument(help: "The projection.") public var projection: String
    @Option(help: "The version to activate.") public var version: Int32
    @Flag(help: "Switch even if rows are behind: readers then see them go back or disappear until the version catches up.") public var force = false
    @Option(help: "Seconds to wait for the version to catch up.") public var timeout: Int = 15

    public init() {}

    public func validate() throws {
        guard version >= 1 else { throw ValidationError("--version must be 1 or more") }
        guard timeout >= 0 else { throw ValidationError("--timeout must not be negative") }
    }

    public func run() async throws {
        let (projection, version, force, timeout) = (self.projection, self.version, self.force, self.timeout)
        let switched = try await database.withStore(logger: Logger(label: "eventfleet.projections")) { store in
            try await JobQueue(store: store).promote(projection, version: version, force: force, timeout: .seconds(timeout))
        }
        print(switched.text)
    }
}

/// `projections rollback`: makes the version active before the current one active again.
public struct ProjectionsRollbackCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "rollback",
        abstract: "Switch readers back to the previously active version, if its rows are at or ahead of the active version's."
    )

    @OptionGroup public var database: DatabaseOptions
    @Argument(help: "The projection.") public var projection: String
    @Flag(help: "Switch even if the previous version has fallen behind: readers then see rows go back.") public var force = false
    @Option(help: "Seconds to wait for the previous version to catch up.") public var timeout: Int = 15

    public init() {}

    public func validate() throws {
        guard timeout >= 0 else { throw ValidationError("--timeout must not be negative") }
    }

    public func run() async throws {
        let (projection, force, timeout) = (self.projection, self.force, self.timeout)
        let switched = try await database.withStore(logger: Logger(label: "eventfleet.projections")) { store in
            try await JobQueue(store: store).rollback(projection, force: force, timeout: .seconds(timeout))
        }
        print(switched.text)
    }
}

/// `projections retire`: drops a version that is neither active nor run by a worker.
public struct ProjectionsRetireCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "retire",
        abstract: "Drop a version's table, jobs and backfills once its workers are stopped; its workers are refused from then on."
    )

    @OptionGroup public var database: DatabaseOptions
    @Argument(help: "The projection.") public var projection: String
    @Option(help: "The version to retire (not the active one).") public var version: Int32

    public init() {}

    public func validate() throws {
        guard version >= 1 else { throw ValidationError("--version must be 1 or more") }
    }

    public func run() async throws {
        let (projection, version) = (self.projection, self.version)
        let retired = try await database.withStore(logger: Logger(label: "eventfleet.projections")) { store in
            try await JobQueue(store: store).retire(projection, version: version)
        }
        print(retired.text)
    }
}

/// `projections rebuild`: recomputes a tenant's rows (or every tenant's, one after another) in place.
public struct ProjectionsRebuildCommand<Provider: ProjectionsProvider>: AsyncParsableCommand where Provider.Options: ParsableArguments {
    public static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: "rebuild",
            abstract: "Recompute a tenant's rows of a projection from their streams, in place (for a bad row or a fixed bug without a new version).",
            discussion: """
                Each row is recomputed under its lock and written once: readers never see it missing or going back, events appended \
                meanwhile are projected by the fleet as usual, and other tenants are not touched. It rebuilds the version this binary \
                runs (its options pick it), in that version's table.
                """
        )
    }

    @OptionGroup public var database: DatabaseOptions
    @OptionGroup public var projectionOptions: Provider.Options
    @Argument(help: "The projection.") public var projection: String
    @Option(help: "The partition (tenant) to rebuild.") public var partition: String?
    @Flag(name: .customLong("all-partitions"), help: "Rebuild every partition, one after another.") public var allPartitions = false
    @Option(name: .customLong("streams-per-transaction"), help: "Streams recomputed per transaction.") public var streamsPerTransaction: Int = 100

    public init() {}

    public func validate() throws {
        guard (partition != nil) != allPartitions else { throw ValidationError("give either --partition P or --all-partitions") }
        guard streamsPerTransaction > 0 else { throw ValidationError("--streams-per-transaction must be positive") }
    }

    public func run() async throws {
        let registered = try Provider.registry(options: projectionOptions).projection(named: projection)
        guard let projection = registered as? any StreamProjection else {
            throw ProjectionError.invalidArgument(field: "projection", reason: "'\(projection)' has no row per stream to rebuild")
        }
        let (partition, streamsPerTransaction) = (self.partition, self.streamsPerTransaction)
        try await database.withStore(logger: Logger(label: "eventfleet.projections")) { store in
            let runner = ProjectionRunner(store: store, logger: Logger(label: "eventfleet.projections"))
            try await runner.validate(projection)
            let partitions = if let partition { [partition] } else { try await runner.partitions() }
            for partition in partitions {
                let rebuilt = try await runner.rebuild(projection, partition: partition, streamsPerTransaction: streamsPerTransaction)
                print("rebuilt \(projection.name) version \(projection.version) in partition '\(partition)': \(rebuilt.streams) streams")
            }
        }
    }
}

extension RetiredProjectionVersion {
    /// What the retire command prints.
    package var text: String {
        "retired \(projection) version \(version): \(droppedTable.map { "dropped table \($0)" } ?? "no table dropped"), \(deletedJobs) jobs deleted"
    }
}

extension ProjectionVersionSwitch {
    /// What promote and rollback print.
    package var text: String {
        let behind = rowsBehind > 0 ? " (forced: \(rowsBehind) rows were behind by \(eventsBehind) events)" : ""
        return "\(projection): version \(to) is active\(from.map { ", was \($0)" } ?? "")\(behind)"
    }
}

extension ProjectionVersionStatus {
    /// The status command's table.
    package static func text(_ versions: [ProjectionVersionStatus]) -> String {
        guard !versions.isEmpty else { return "no projection is registered (start a worker)" }
        var lines: [String] = []
        for version in versions {
            let table = version.table.map { "table \($0)" } ?? "no row table"
            let view = version.view.map { "  view \($0)" } ?? ""
            lines.append("\(version.projection) version \(version.version)  \(version.state.rawValue.uppercased())  \(table)\(view)\(version.backfilling ? "  backfilling" : "")")
            guard version.state != .retired else { continue }
            lines.append("  " + "TENANT".padded(20) + "STREAMS DONE/ALL".padded(20, left: true) + "EVENTS BEHIND".padded(15, left: true)
                + "PENDING".padded(9, left: true) + "DEAD".padded(6, left: true) + "EV/S".padded(9, left: true) + "ETA".padded(9, left: true))
            lines.append(row("(all)", version.streams, version.streamsDone, version.eventsBehind, version.jobsPending, version.jobsDead, version.eventsPerSecond, version.etaSeconds))
            for tenant in version.tenants {
                lines.append(row(tenant.partition, tenant.streams, tenant.streamsDone, tenant.eventsBehind, tenant.jobsPending, tenant.jobsDead, tenant.eventsPerSecond, tenant.etaSeconds))
            }
        }
        return lines.joined(separator: "\n")
    }

    private static func row(
        _ tenant: String, _ streams: Int64?, _ done: Int64?, _ behind: Int64?, _ pending: Int64, _ dead: Int64, _ rate: Double?, _ eta: Double?
    ) -> String {
        let progress = streams.map { "\(done ?? 0)/\($0)" } ?? "-"
        let columns: [String] = [
            progress.padded(20, left: true), (behind.map(String.init) ?? "-").padded(15, left: true), String(pending).padded(9, left: true),
            String(dead).padded(6, left: true), (rate.map { String(format: "%.0f", $0) } ?? "-").padded(9, left: true),
            (eta.map { String(format: "%.0fs", $0) } ?? "-").padded(9, left: true),
        ]
        return "  " + tenant.padded(20) + columns.joined()
    }
}
