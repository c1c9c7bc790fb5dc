import Foundation
import Logging

/// How ``DeciderCommandHandler`` keeps concurrent commands on one stream from losing each other's
/// events.
public enum CommandConcurrency: Sendable, Hashable {
    /// Read, decide and append with the version read; when another writer appended in between, the
    /// append conflicts and the handler reads and decides again, up to its retry policy. No lock is
    /// held while deciding, so this suits streams that few writers share at once.
    case optimistic
    /// Take the stream's lock first (``EventStore/withExclusiveAccess(toStream:partition:_:)``),
    /// then read, decide and append while holding it, so that the commands of a hot stream take
    /// turns instead of conflicting. In `PostgresEventStore` the lock, the read and the append are
    /// one transaction, and the lock holds for a stream that does not exist yet.
    case pessimistic
}

public struct DeciderCommandHandler<State: Sendable, Command: Sendable, E: Event>: Sendable {
    /// Settings of the handler.
    public struct Options: Sendable {
        /// Retrying of version conflicts for implicit versions.
        public var retry: RetryPolicy
        /// The stream type recorded when a command creates a stream.
        public var streamType: String?
        /// Unknown stored event types: fail (default) or skip while folding.
        public var unknownTypes: UnknownEventTypePolicy
        /// Optimistic (the default) or pessimistic handling of concurrent commands on one stream.
        public var concurrency: CommandConcurrency
        /// Projections that must show the command's events before ``DeciderCommandHandler/handle(_:streamId:in:partition:expectedVersion:metadata:messageIds:)``
        /// returns (read-your-writes), waited for in turn with ``EventStore/waitForProjection(_:token:timeout:)``.
        public var waitForProjections: [String]
        /// How long to wait for all of ``waitForProjections`` together.
        public var projectionTimeout: Duration

        /// Settings of a handler.
        ///
        /// - Parameters:
        ///   - retry: Retrying of version conflicts for implicit versions.
        ///   - streamType: The stream type recorded when a command creates a stream.
        ///   - unknownTypes: Unknown stored event types: fail or skip while folding.
        ///   - concurrency: Optimistic, or pessimistic for streams that many writers contend for.
        ///   - waitForProjections: Projections that must show the command's events before `handle` returns.
        ///   - projectionTimeout: How long to wait for them together.
        public init(
            retry: RetryPolicy = RetryPolicy(), streamType: String? = nil, unknownTypes: UnknownEventTypePolicy = .fail,
            concurrency: CommandConcurrency = .optimistic, waitForProjections: [String] = [], projectionTimeout: Duration = .seconds(5)
        ) {
            self.retry = retry
            self.streamType = streamType
            self.unknownTypes = unknownTypes
            self.concurrency = concurrency
            self.waitForProjections = waitForProjections
            self.projectionTimeout = projectionTimeout
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
        /// Where the last appended event is, `nil` when nothing was appended
        /// (for ``EventStore/waitForProjection(_:token:timeout:)``).
        public var token: PositionToken?
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
    /// - Throws: The domain's errors from `decide` unchanged (nothing is appended);
    ///   ``EventStoreError/retriesExhausted(streamId:partition:attempts:expected:actual:)`` when
    ///   every attempt of a command without `expectedVersion` lost a version conflict;
    ///   ``EventStoreError/versionConflict(streamId:partition:expected:actual:)`` when the stream is
    ///   not at the given `expectedVersion`; ``EventStoreError/exclusiveAccessUnsupported(store:)``
    ///   in pessimistic mode with a store that cannot lock a stream; with
    ///   ``Options/waitForProjections``, the errors of ``EventStore/waitForProjection(_:token:timeout:)``
    ///   (the events are appended then); and other ``EventStoreError``s from the store.
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
        let result = try await decideAndAppend(
            command, streamId: streamId, in: store, partition: partition, expectedVersion: expectedVersion, metadata: metadata,
            messageIds: messageIds
        )
        if let token = result.token, !options.waitForProjections.isEmpty {
            let deadline = ContinuousClock.now + options.projectionTimeout
            for projection in options.waitForProjections {
                try await store.waitForProjection(projection, token: token, timeout: max(.zero, deadline - ContinuousClock.now))
            }
        }
        return result
    }

    private func decideAndAppend(
        _ command: Command, streamId: String, in store: some EventStore, partition: String, expectedVersion: ExpectedVersion?,
        metadata: [String: JSONValue]?, messageIds: (@Sendable ([E]) -> [String])?
    ) async throws -> Result {
        let retries = expectedVersion == nil ? options.retry.maxRetries : 0
        var attempt = 0
        while true {
            attempt += 1
            do {
                switch options.concurrency {
                case .optimistic:
                    return try await attemptOnce(
                        command, streamId: streamId, store: store, partition: partition,
                        expectedVersion: expectedVersion, metadata: metadata, messageIds: messageIds, attempt: attempt
                    )
                case .pessimistic:
                    // A conflict can still happen here: a writer that does not take the lock (a plain
                    // append, an optimistic handler) got in between. It is retried like any other.
                    return try await store.withExclusiveAccess(toStream: streamId, partition: partition) { exclusive in
                        try await attemptOnce(
                            command, streamId: streamId, store: exclusive, partition: partition,
                            expectedVersion: expectedVersion, metadata: metadata, messageIds: messageIds, attempt: attempt
                        )
                    }
                }
            } catch let error as EventStoreError {
                guard case .versionConflict(_, _, let expected, let actual) = error, expectedVersion == nil else { throw error }
                guard attempt <= retries else {
                    throw EventStoreError.retriesExhausted(
                        streamId: streamId, partition: partition, attempts: attempt, expected: expected, actual: actual
                    )
                }
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
        _ command: Command, streamId: String, store: any EventStore, partition: String,
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
                lastGlobalPosition: nil, token: nil, createdNewStream: false, attempts: attempt
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
            token: appended.token,
            createdNewStream: appended.createdNewStream,
            attempts: attempt
        )
    }
}
