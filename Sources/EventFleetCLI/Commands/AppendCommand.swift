import ArgumentParser
import EventFleetCore
import Foundation
import Logging

/// `eventfleet append`: appends one event and prints the result as one JSON object.
public struct AppendCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "append",
        abstract: "Append one event to a stream and print the result as JSON.",
        discussion: "Exit codes: 0 success, 2 invalid input, 3 version conflict, 1 anything else."
    )

    @OptionGroup public var database: DatabaseOptions
    @Option(help: "The stream id.") public var stream: String
    @Option(help: "The partition (tenant).") public var partition: String = defaultPartition
    @Option(help: "The event type name.") public var type: String
    @Option(help: "The event data, a JSON object.") public var data: String
    @Option(help: "The event metadata, a JSON object.") public var metadata: String?
    @Option(name: .customLong("expected-version"), help: "any, no-stream, exists or a version number.")
    public var expectedVersion: String = "any"
    @Option(name: .customLong("message-id"), help: "An idempotency id: repeating the append with it stores nothing new.")
    public var messageId: String?
    @Option(name: .customLong("stream-type"), help: "The stream type, recorded when the append creates the stream.")
    public var streamType: String?

    public init() {}

    public func run() async throws {
        // Everything is validated before connecting, so invalid input never writes anything.
        let expected = try ExpectedVersion(parsing: expectedVersion)
        // Validated here, stored as given: re-encoding would round large numbers through Double.
        _ = try JSONValue.parseObject(data, field: "data")
        _ = try metadata.map { try JSONValue.parseObject($0, field: "metadata") }
        let message = ProposedMessage(
            type: type, data: Data(data.utf8), metadata: metadata.map { Data($0.utf8) }, messageId: messageId
        )
        let options = AppendOptions(partition: partition, expectedVersion: expected, streamType: streamType)
        try options.validate(streamId: stream, messages: [message])
        let database = self.database
        let stream = self.stream
        let result = try await database.withStore(logger: Logger(label: "eventfleet.append")) { store in
            try await store.appendToStream(stream, messages: [message], options: options)
        }
        var line = JSONLine()
        line.add("streamId", string: stream)
        line.add("partition", string: partition)
        line.add("nextExpectedVersion", number: result.nextExpectedVersion)
        line.add("lastGlobalPosition", number: result.lastGlobalPosition)
        line.add("createdNewStream", bool: result.createdNewStream)
        print(line.text)
    }
}
