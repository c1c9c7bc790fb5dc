import ArgumentParser
import EventFleetCore
import EventFleetPostgres
import Foundation
import Logging

/// `eventfleet append`: appends one event and prints the result as one JSON object.
public struct AppendCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "append",
        abstract: "Append one event to a stream and print the result as JSON.",
        discussion: """
            With --wait-for, it returns once each named projection's row shows the event (read-your-writes).

            Exit codes: 0 success, 2 invalid input, 3 version conflict, 4 appended but a projection \
            did not show it within --wait-timeout, 1 anything else.
            """
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
    @Option(
        name: .customLong("wait-for"),
        help: "A projection that must show the event before the command returns (repeatable)."
    )
    public var waitFor: [String] = []
    @Option(name: .customLong("wait-timeout"), help: "Seconds to wait for the --wait-for projections together.")
    public var waitTimeout: Double = 10

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
        for projection in waitFor { try IdentifierValidation.validate(projection, field: "wait-for") }
        guard waitTimeout.isFinite, waitTimeout >= 0 else {
            throw EventStoreError.invalidArgument(field: "wait-timeout", reason: "must be a number of seconds, at least 0 (got \(waitTimeout))")
        }
        let database = self.database
        let stream = self.stream
        let waitFor = self.waitFor
        let timeout = Duration.milliseconds(Int64(waitTimeout * 1000))
        // The fleet is woken at once, and a waiting append listens for the workers' commits.
        let result = try await database.withStore(
            notifyChannel: PostgresEventStore.Options.defaultNotifyChannel, logger: Logger(label: "eventfleet.append")
        ) { store in
            // A projection that cannot be waited for is refused before anything is written.
            for projection in waitFor { try await store.checkAwaitable(projection) }
            let result = try await store.appendToStream(stream, messages: [message], options: options)
            guard !waitFor.isEmpty else { return result }
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await ProjectionWaitListener(store: store).run() }
                defer { group.cancelAll() }
                let deadline = ContinuousClock.now + timeout
                for projection in waitFor {
                    try await store.waitForProjection(projection, token: result.token, timeout: max(.zero, deadline - ContinuousClock.now))
                }
            }
            return result
        }
        var line = JSONLine()
        line.add("streamId", string: stream)
        line.add("partition", string: partition)
        line.add("nextExpectedVersion", number: result.nextExpectedVersion)
        line.add("lastGlobalPosition", number: result.lastGlobalPosition)
        line.add("createdNewStream", bool: result.createdNewStream)
        line.add("token", rawJSON: try JSONEncoder().encode(result.token))
        if !waitFor.isEmpty { line.add("shownBy", rawJSON: Data("[\(waitFor.map(JSONLine.quote).joined(separator: ","))]".utf8)) }
        print(line.text)
    }
}
