import ArgumentParser
import EventFleetCore
import EventFleetJobs
import EventFleetPostgres
import EventFleetProjections
import Foundation
import Logging

/// `backfill`: enqueues a backfill job for every stream of a partition (or all), in batches.
public struct BackfillCommand<Provider: ProjectionsProvider>: AsyncParsableCommand where Provider.Options: ParsableArguments {
    public static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: "backfill",
            abstract: "Enqueue backfill jobs for every stream of a partition, or of all (safe to re-run)."
        )
    }

    @OptionGroup public var database: DatabaseOptions
    @OptionGroup public var projectionOptions: Provider.Options
    @Option(help: "The partition (tenant) to backfill.") public var partition: String?
    @Flag(name: .customLong("all-partitions"), help: "Backfill every partition.") public var allPartitions = false
    @Option(help: "Only this projection (default: every stream projection).") public var projection: String?
    @Option(name: .customLong("batch-size"), help: "Streams per statement.") public var batchSize: Int = 1_000

    public init() {}

    public func validate() throws {
        guard (partition != nil) != allPartitions else { throw ValidationError("give either --partition P or --all-partitions") }
        guard batchSize > 0 else { throw ValidationError("--batch-size must be positive") }
    }

    public func run() async throws {
        let registry = try Provider.registry(options: projectionOptions)
        let projections = try projection.map { [try registry.projection(named: $0)] } ?? registry.streamProjections
        // The versions this binary runs, by the keys their jobs carry.
        let names = projections.compactMap { $0 as? any StreamProjection }.map { ProjectionRegistration($0).key }
        let partition = self.partition
        let batchSize = self.batchSize
        let result = try await database.withStore(logger: Logger(label: "eventfleet.backfill")) { store in
            try await JobQueue(store: store).backfill(
                projections: names, partition: partition, batchSize: batchSize
            ) { seen, total in
                ProgressBar.draw(seen: seen, total: total, label: "streams")
            }
        }
        ProgressBar.finish()
        print("backfill of \(names.joined(separator: ", ")) for \(partition.map { "partition '\($0)'" } ?? "all partitions"): \(result.streams) streams, \(result.enqueued) new jobs")
    }
}

/// A one-line progress bar on standard error.
enum ProgressBar {
    static func draw(seen: Int, total: Int, label: String) {
        let width = 30
        let filled = total == 0 ? width : min(width, seen * width / max(total, 1))
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        FileHandle.standardError.write(Data("\r[\(bar)] \(seen)/\(total) \(label)".utf8))
    }

    static func finish() {
        FileHandle.standardError.write(Data("\n".utf8))
    }
}
