import Foundation
import Logging

/// Runs commands against a ``Decider``: reads the stream, decides, appends with the version it read.
///
/// When the version was implicit (the caller gave none) and another writer appended in between, the
/// append conflicts; the handler then re-reads the stream and decides again, with jittered backoff, up
/// to ``Options/retry``. A caller-supplied ``ExpectedVersion/exact(_:)`` is never retried: the caller
/// asked for that version and gets the conflict.
public struct DeciderCommandHandler<State: Sendable, Command: Sendable, E: Event>: Sendable {
    /// Settings of the handler.
    public struct Options: Sendable {
        /// Retrying of version conflicts for implicit versions.
        public var retry: RetryPolicy
        /// The stream type recorded when a command creates a stream.
        public var streamType: String?
        /// Unknown stored event types: fail (default) or skip while folding.
        public var unknownTypes: UnknownEventTypePolicy

        public init(retry: RetryPolicy = RetryPolicy(), streamType: String? = nil, unknownTypes: UnknownEventTypePolicy = .fail) {
            self.retry = retry
            self.streamType = streamType
            self.unknownTypes = unknownTypes
        }
    }

    /// The outcome of a handled command.
    public struct Result: Sendable {
        /// The state after the new events.
        public var newState: State
        /// The events `decide` returned and the handler appended (empty when it decided nothing).
        public var newEvents: [E]
        /// The stream's version after the command.
        public var nextExpectedVersion: Int64
        /// The global position of the last appended event, `nil` when nothing was appended.
        public var lastGlobalPosition: Int64?
        public var createdNewStream: Bool
        /// How many attempts it took (1 when there was no conflict).
        public var attempts: Int
    }

    public let decider: Decider<State, Command, E>
    public var options: Options
    private let logger: Logger

    public init(decider: Decider<State, Command, E>, options: Options = Options(), logger: Logger = Logger(label: "eventfleet.command-handler")) {
        self.decider = decider
        self.options = options
        self.logger = logger
    }

    /// Handles one command.
    ///
    /// - Parameters:
    ///   - command: The command.
    ///   - streamId: The stream it addresses.
    ///   - store: The event store.
    ///   - partition: The partition (tenant).
    ///   - expectedVersion: An explicit version to require; `nil` uses the version read (and retries).
    ///   - metadata: Metadata stored with every new event.
    ///   - messageIds: Optional idempotency ids, one per event `decide` returns.
    /// - Throws: The domain's errors from `decide` unchanged (nothing is appended), and
    ///   ``EventStoreError`` from the store, including the conflict once retries are exhausted.
    @discardableResult
    public func handle(
        _ command: Command,
        streamId: String,
        in store: some EventStore,
        partition: String = defaultPartition,
        expectedVersion: ExpectedVersion? = nil,
        metadata: [String: JSONValue]? = nil,
        messageIds: (@Sendable ([E]) -> [String])? = nil
    ) async throws -> Result {
        let retries = expectedVersion == nil ? options.retry.maxRetries : 0
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await attemptOnce(
                    command, streamId: streamId, store: store, partition: partition,
                    expectedVersion: expectedVersion, metadata: metadata, messageIds: messageIds, attempt: attempt
                )
            } catch let error as EventStoreError {
                guard case .versionConflict = error, attempt <= retries else { throw error }
                let delay = options.retry.delay(beforeRetry: attempt)
                logger.debug(
                    "version conflict, retrying command",
                    metadata: [
                        "eventfleet.stream_id": "\(streamId)", "eventfleet.partition": "\(partition)",
                        "eventfleet.attempt": "\(attempt)", "eventfleet.delay": "\(delay)",
                    ]
                )
                try await Task.sleep(for: delay)
            }
        }
    }

    private func attemptOnce(
        _ command: Command, streamId: String, store: some EventStore, partition: String,
        expectedVersion: ExpectedVersion?, metadata: [String: JSONValue]?,
        messageIds: (@Sendable ([E]) -> [String])?, attempt: Int
    ) async throws -> Result {
        let aggregate = try await store.aggregateStream(
            streamId,
            as: E.self,
            options: AggregateStreamOptions(partition: partition, expectedVersion: expectedVersion, unknownTypes: options.unknownTypes),
            evolve: decider.evolve,
            initialState: decider.initialState
        )
        let events = try decider.decide(command, aggregate.state)
        guard !events.isEmpty else {
            return Result(
                newState: aggregate.state, newEvents: [], nextExpectedVersion: aggregate.currentStreamVersion,
                lastGlobalPosition: nil, createdNewStream: false, attempts: attempt
            )
        }
        let ids = messageIds?(events)
        if let ids, ids.count != events.count {
            throw EventStoreError.invalidArgument(
                field: "messageIds", reason: "got \(ids.count) ids for \(events.count) events"
            )
        }
        let encoder = JSONEncoder()
        let messages = try events.enumerated().map { index, event in
            try ProposedMessage(event, metadata: metadata, messageId: ids?[index], encoder: encoder)
        }
        let version = expectedVersion ?? (aggregate.streamExists ? .exact(aggregate.currentStreamVersion) : .noStream)
        let appended = try await store.appendToStream(
            streamId,
            messages: messages,
            options: AppendOptions(partition: partition, expectedVersion: version, streamType: options.streamType)
        )
        return Result(
            newState: events.reduce(aggregate.state, decider.evolve),
            newEvents: events,
            nextExpectedVersion: appended.nextExpectedVersion,
            lastGlobalPosition: appended.lastGlobalPosition,
            createdNewStream: appended.createdNewStream,
            attempts: attempt
        )
    }
}
