import ArgumentParser
import EventFleetCore
import Logging

/// `eventfleet read`: prints a stream's events, one JSON object per line.
public struct ReadCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "read",
        abstract: "Read a stream's events as JSON lines (type, data, metadata, positions)."
    )

    @OptionGroup public var database: DatabaseOptions
    @Option(help: "The stream id.") public var stream: String
    @Option(help: "The partition (tenant).") public var partition: String = defaultPartition
    @Option(help: "First stream position, inclusive.") public var from: Int64 = 1
    @Option(help: "Last stream position, inclusive.") public var to: Int64?
    @Option(name: .customLong("max-count"), help: "At most this many events.") public var maxCount: Int?

    public init() {}

    public func run() async throws {
        let options = ReadStreamOptions(partition: partition, from: from, to: to, maxCount: maxCount)
        try options.validate(streamId: stream)
        let stream = self.stream
        let result = try await database.withStore(logger: Logger(label: "eventfleet.read")) { store in
            try await store.readStream(stream, options: options)
        }
        for message in result.events {
            var line = JSONLine()
            line.add("streamId", string: message.streamId)
            line.add("partition", string: message.partition)
            line.add("streamPosition", number: message.streamPosition)
            line.add("globalPosition", number: message.globalPosition)
            line.add("messageId", string: message.messageId)
            line.add("type", string: message.type)
            line.add("data", rawJSON: message.data)
            line.add("metadata", rawJSON: message.metadata)
            print(line.text)
        }
    }
}
