import ArgumentParser
import EventFleetCore
import EventFleetPostgres
import EventFleetProjections
import Logging

/// `project`: runs the projection runner once for a stream and prints what it did.
public struct ProjectCommand<Provider: ProjectionsProvider>: AsyncParsableCommand where Provider.Options: ParsableArguments {
    public static var configuration: CommandConfiguration {
        CommandConfiguration(
            commandName: "project",
            abstract: "Bring a stream's read-model rows up to date with the projection runner."
        )
    }

    @OptionGroup public var database: DatabaseOptions
    @OptionGroup public var projectionOptions: Provider.Options
    @Option(help: "The stream id.") public var stream: String
    @Option(help: "The partition (tenant).") public var partition: String = defaultPartition
    @Option(help: "Only this projection (default: every stream projection).") public var projection: String?
    @Option(name: .customLong("batch-size"), help: "Events per transaction.") public var batchSize: Int = 500

    public init() {}

    public func validate() throws {
        guard batchSize > 0 else { throw ValidationError("--batch-size must be positive") }
    }

    public func run() async throws {
        try ReadStreamOptions(partition: partition).validate(streamId: stream)
        let registry = try Provider.registry(options: projectionOptions)
        let projections: [any StreamProjection]
        if let projection {
            guard let named = try registry.projection(named: projection) as? any StreamProjection else {
                throw ProjectionError.invalidArgument(field: "projection", reason: "'\(projection)' cannot be run per stream")
            }
            projections = [named]
        } else {
            projections = registry.streamProjections
        }
        let stream = self.stream
        let partition = self.partition
        let batchSize = self.batchSize
        let lines = try await database.withStore(logger: Logger(label: "eventfleet.project")) { store in
            let runner = ProjectionRunner(store: store)
            var lines: [String] = []
            for projection in projections {
                try await runner.validate(projection)
                let result = try await runner.projectEvents(projection, streamId: stream, partition: partition, batchSize: batchSize)
                lines.append(
                    "\(projection.name): applied \(result.eventsProcessed) events in \(result.batches) batches; stream '\(stream)' in partition '\(partition)' is at version \(result.streamVersion)"
                )
            }
            return lines
        }
        lines.forEach { print($0) }
    }
}
