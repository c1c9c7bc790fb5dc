import Foundation
import Synchronization

/// An event store in memory with the semantics of the PostgreSQL store, for users' unit tests.
///
/// Every append is its own transaction and commits at once, so the global log never stalls.
public actor InMemoryEventStore: EventStore {
    private struct StreamKey: Hashable {
        var partition: String
        var streamId: String
    }

    private struct StoredStream {
        var type: String?
        var metadata: [String: JSONValue]?
        var messages: [RecordedMessage] = []
    }

    private var streams: [StreamKey: StoredStream] = [:]
    private var log: [RecordedMessage] = []
    /// Message ids per partition, to the stored message's stream and position.
    private var messageIds: [String: [String: (streamId: String, position: Int64, global: Int64)]] = [:]
    private var nextTransactionId: UInt64 = 1
    private var nextGlobalPosition: Int64 = 1
    /// The streams held by ``withExclusiveAccess(toStream:partition:_:)``, outside the actor so that
    /// a cancelled waiter can leave the queue at once.
    private nonisolated let exclusiveStreams = ExclusiveTurns<StreamKey>()

    public init() {}

    @discardableResult
    public func appendToStream(_ streamId: String, messages: [ProposedMessage], options: AppendOptions) throws -> AppendResult {
        try options.validate(streamId: streamId, messages: messages)
        for (index, message) in messages.enumerated() {
            _ = try message.jsonText(streamId: streamId, partition: options.partition, position: index + 1)
            try Self.validateJSON(message.data, streamId: streamId, partition: options.partition)
            if let metadata = message.metadata {
                try Self.validateJSON(metadata, streamId: streamId, partition: options.partition)
            }
        }
        let key = StreamKey(partition: options.partition, streamId: streamId)
        let current = Int64(streams[key]?.messages.count ?? 0)

        let suppliedIds = messages.compactMap(\.messageId)
        if !suppliedIds.isEmpty, let earlier = try earlierAppend(ids: suppliedIds, streamId: streamId, partition: options.partition) {
            return earlier
        }
        guard options.expectedVersion.isSatisfied(by: current) else {
            throw EventStoreError.versionConflict(
                streamId: streamId, partition: options.partition, expected: options.expectedVersion, actual: current
            )
        }

        let transactionId = nextTransactionId
        nextTransactionId += 1
        var stream = streams[key] ?? StoredStream(type: options.streamType, metadata: options.streamMetadata)
        let now = Date()
        for (offset, message) in messages.enumerated() {
            let recorded = RecordedMessage(
                streamId: streamId, partition: options.partition, streamPosition: current + Int64(offset) + 1,
                globalPosition: nextGlobalPosition, transactionId: transactionId,
                messageId: message.messageId ?? UUID().uuidString.lowercased(), type: message.type, data: message.data,
                metadata: message.metadata ?? Data("{}".utf8), schemaVersion: message.schemaVersion, created: now
            )
            nextGlobalPosition += 1
            stream.messages.append(recorded)
            log.append(recorded)
            messageIds[options.partition, default: [:]][recorded.messageId] = (streamId, recorded.streamPosition, recorded.globalPosition)
        }
        streams[key] = stream
        let version = Int64(stream.messages.count)
        return AppendResult(
            nextExpectedVersion: version,
            lastGlobalPosition: nextGlobalPosition - 1,
            createdNewStream: current == 0,
            token: PositionToken(partition: options.partition, streamId: streamId, streamPosition: version, globalPosition: nextGlobalPosition - 1)
        )
    }

    /// Runs `body` while no other caller of this method holds the same stream, as the PostgreSQL
    /// store does with its lock. `body` is given this store: each append commits at once, so what
    /// `body` appended before it threw stays appended (the command handler appends once, last).
    ///
    /// - Parameters:
    ///   - streamId: The stream, which need not exist.
    ///   - partition: Its partition.
    ///   - body: The work to do exclusively.
    /// - Returns: What `body` returns.
    /// - Throws: What `body` throws, ``EventStoreError/invalidArgument(field:reason:)`` for an invalid
    ///   stream id or partition, and `CancellationError` when the task was cancelled while it waited.
    public nonisolated func withExclusiveAccess<T: Sendable>(
        toStream streamId: String,
        partition: String,
        _ body: (any EventStore) async throws -> T
    ) async throws -> T {
        try IdentifierValidation.validate(streamId, field: "streamId")
        try IdentifierValidation.validate(partition, field: "partition")
        let key = StreamKey(partition: partition, streamId: streamId)
        try await exclusiveStreams.acquire(key)
        defer { exclusiveStreams.release(key) }
        try Task.checkCancellation()
        return try await body(self)
    }

    /// The result of an earlier append with exactly these ids, `nil` when none was used, or a conflict.
    private func earlierAppend(ids: [String], streamId: String, partition: String) throws -> AppendResult? {
        let known = ids.compactMap { messageIds[partition]?[$0] }
        if known.isEmpty { return nil }
        let positions = known.map(\.position)
        let consecutive = positions == Array(positions[0]...(positions[0] + Int64(positions.count) - 1))
        guard known.count == ids.count, known.allSatisfy({ $0.streamId == streamId }), consecutive else {
            throw EventStoreError.messageIdConflict(
                streamId: streamId, partition: partition, messageIds: ids,
                reason: "the ids were already used for other events"
            )
        }
        let global = known.map(\.global).max()!
        return AppendResult(
            nextExpectedVersion: positions.last!,
            lastGlobalPosition: global,
            createdNewStream: positions[0] == 1,
            token: PositionToken(partition: partition, streamId: streamId, streamPosition: positions.last!, globalPosition: global)
        )
    }

    private static func validateJSON(_ data: Data, streamId: String, partition: String) throws {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        } catch {
            throw EventStoreError.invalidJSON(streamId: streamId, partition: partition, reason: "\(error.localizedDescription)")
        }
        // PostgreSQL's jsonb cannot hold NUL characters; reject them here too so both stores agree.
        if containsNUL(object) {
            throw EventStoreError.invalidJSON(streamId: streamId, partition: partition, reason: "\\u0000 cannot be stored")
        }
    }

    private static func containsNUL(_ value: Any) -> Bool {
        switch value {
        case let string as String: string.utf8.contains(0)
        case let array as [Any]: array.contains(where: containsNUL)
        case let object as [String: Any]: object.contains { $0.key.utf8.contains(0) || containsNUL($0.value) }
        default: false
        }
    }

    public func readStream(_ streamId: String, options: ReadStreamOptions) throws -> ReadStreamResult<RecordedMessage> {
        try options.validate(streamId: streamId)
        guard let stream = streams[StreamKey(partition: options.partition, streamId: streamId)] else {
            return ReadStreamResult(currentStreamVersion: 0, streamExists: false, events: [])
        }
        let version = Int64(stream.messages.count)
        let upper = min(options.to ?? version, version)
        var events: [RecordedMessage] = []
        if options.from <= upper {
            events = Array(stream.messages[Int(options.from - 1)..<Int(upper)])
        }
        if let maxCount = options.maxCount { events = Array(events.prefix(maxCount)) }
        return ReadStreamResult(currentStreamVersion: version, streamExists: true, events: events)
    }

    public func readAll(after checkpoint: GlobalCheckpoint, options: ReadAllOptions) throws -> GlobalLogBatch {
        guard options.batchSize > 0 else {
            throw EventStoreError.invalidArgument(field: "batchSize", reason: "must be positive")
        }
        let types = options.types.map(Set.init)
        // Appends here commit at once, in position order: nothing is ever held back.
        let messages = log.lazy
            .filter {
                $0.globalPosition > checkpoint.position && options.scope.contains($0.partition) && (types?.contains($0.type) ?? true)
            }
            .prefix(options.batchSize)
        let batch = Array(messages)
        return GlobalLogBatch(
            messages: batch, from: checkpoint, horizon: LogHorizon(bound: log.last?.globalPosition ?? 0), limit: options.batchSize
        )
    }

    /// None: an in-memory append is never in flight where a reader can see it.
    public func logHolds(scope: PartitionScope) -> [LogHold] { [] }
}

/// Turns at keys: one holder per key at a time, the others waiting first come first served.
private final class ExclusiveTurns<Key: Hashable & Sendable>: Sendable {
    private struct Waiter {
        var id: UInt64
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        /// The held keys, each with its waiters.
        var held: [Key: [Waiter]] = [:]
        var nextWaiterId: UInt64 = 0
    }

    private let state = Mutex(State())

    /// Waits for the turn at `key`.
    ///
    /// - Throws: `CancellationError` when the task is cancelled before its turn came.
    func acquire(_ key: Key) async throws {
        let id = state.withLock { state in
            state.nextWaiterId += 1
            return state.nextWaiterId
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let outcome: Result<Bool, CancellationError> = state.withLock { state in
                    // Checked under the lock that the cancellation handler takes: a cancellation
                    // either finds the waiter queued or is seen here.
                    if Task.isCancelled { return .failure(CancellationError()) }
                    guard state.held[key] != nil else {
                        state.held[key] = []
                        return .success(true)
                    }
                    state.held[key]!.append(Waiter(id: id, continuation: continuation))
                    return .success(false)
                }
                switch outcome {
                case .success(true): continuation.resume()
                case .success(false): break
                case .failure(let error): continuation.resume(throwing: error)
                }
            }
        } onCancel: {
            let waiter = state.withLock { state -> Waiter? in
                guard let index = state.held[key]?.firstIndex(where: { $0.id == id }) else { return nil }
                return state.held[key]!.remove(at: index)
            }
            waiter?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Ends the turn at `key`: hands it to the first waiter, or frees the key.
    func release(_ key: Key) {
        let next = state.withLock { state -> Waiter? in
            guard var waiters = state.held[key], !waiters.isEmpty else {
                state.held[key] = nil
                return nil
            }
            let next = waiters.removeFirst()
            state.held[key] = waiters
            return next
        }
        next?.continuation.resume()
    }
}
