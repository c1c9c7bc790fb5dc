/// An event store: streams of events with optimistic concurrency, and a global log across them.
///
/// `PostgresEventStore` (module `EventFleetPostgres`) is the production implementation;
/// ``InMemoryEventStore`` has the same semantics for unit tests.
public protocol EventStore: Sendable {
    /// Appends events to a stream, atomically checking the expected version.
    ///
    /// - Parameters:
    ///   - streamId: The stream, unique within its partition.
    ///   - messages: The events, at least one.
    ///   - options: Partition, expected version, and stream type and metadata for a new stream.
    /// - Returns: The stream's next expected version, the last event's global position and whether
    ///   the stream was created.
    /// - Throws: ``EventStoreError/versionConflict(streamId:partition:expected:actual:)`` when the stream
    ///   is not at the expected version (never for `.any`), ``EventStoreError/invalidArgument(field:reason:)``
    ///   for bad input, and ``EventStoreError/messageIdConflict(streamId:partition:messageIds:reason:)``
    ///   when supplied message ids were used for other events. Nothing is written when it throws.
    @discardableResult
    func appendToStream(_ streamId: String, messages: [ProposedMessage], options: AppendOptions) async throws -> AppendResult

    /// Reads a stream's events in order.
    ///
    /// - Returns: The events in the range, the stream's current version (from the stream row) and
    ///   whether it exists.
    func readStream(_ streamId: String, options: ReadStreamOptions) async throws -> ReadStreamResult<RecordedMessage>

    /// Reads the global log after a checkpoint.
    ///
    /// > Important: An append in flight holds back only its own partition: the read passes the
    /// > partition's later events and returns them once the append has committed (or rolled back),
    /// > so following the returned checkpoints never skips an event that commits late, and a
    /// > transaction that does not append holds nothing back. ``logHolds()`` reports the appends
    /// > that hold partitions back.
    func readAll(after checkpoint: GlobalCheckpoint, options: ReadAllOptions) async throws -> GlobalLogBatch

    /// The appends in flight, with the partitions of `scope` they hold back, oldest first.
    func logHolds(scope: PartitionScope) async throws -> [LogHold]

    /// Runs `body` with exclusive access to one stream: other callers of this method for the same
    /// stream wait until `body` has returned or thrown. ``DeciderCommandHandler`` reads, decides
    /// and appends inside it in ``CommandConcurrency/pessimistic`` mode, so the writers of a hot
    /// stream take turns instead of conflicting.
    ///
    /// `body` reads and appends through the store it is given, not through this one: in
    /// `PostgresEventStore` that store works in the transaction that holds the stream's lock, so
    /// what `body` appends commits when it returns and is rolled back when it throws, and the lock
    /// is released either way. The lock also holds for a stream that does not exist yet.
    ///
    /// Exclusive access excludes only other exclusive writers: a plain ``appendToStream(_:messages:options:)``
    /// of another writer does not wait for it, and the expected version of `body`'s append catches
    /// such a writer as a version conflict. Do not ask for the same stream again inside `body`.
    ///
    /// The default implementation, for stores outside EventFleet, throws
    /// ``EventStoreError/exclusiveAccessUnsupported(store:)`` without calling `body`.
    ///
    /// - Parameters:
    ///   - streamId: The stream, which need not exist.
    ///   - partition: Its partition.
    ///   - body: The work to do exclusively, given the store to read and append through.
    /// - Returns: What `body` returns.
    /// - Throws: What `body` throws, unchanged, and ``EventStoreError`` when the access cannot be had
    ///   (an invalid stream id, the database unreachable).
    func withExclusiveAccess<T: Sendable>(
        toStream streamId: String,
        partition: String,
        _ body: (any EventStore) async throws -> T
    ) async throws -> T

    /// Returns once the projection named `projection` shows the append of `token`: its row for the
    /// token's stream reflects every event up to the token that the projection handles (an append
    /// of types it does not handle is shown at once). A caller that must read its own write, in
    /// the same request or the next, waits for it after appending.
    ///
    /// The default implementation, for stores that run no projections, throws
    /// ``EventStoreError/projectionNotAwaitable(projection:reason:)``.
    ///
    /// - Parameters:
    ///   - projection: The name of a projection of the fleet.
    ///   - token: An append's ``AppendResult/token``.
    ///   - timeout: How long to wait at most.
    /// - Throws: ``EventStoreError/projectionTimedOut(projection:token:projectedPosition:timeout:job:)``
    ///   naming how far the row is; ``EventStoreError/projectionFailed(projection:token:attempts:error:)``
    ///   as soon as the stream's job is dead; ``EventStoreError/projectionNotAwaitable(projection:reason:)``
    ///   for an unknown projection or one that keeps no row per stream; `CancellationError`.
    func waitForProjection(_ projection: String, token: PositionToken, timeout: Duration) async throws
}

extension EventStore {
    /// Throws ``EventStoreError/projectionNotAwaitable(projection:reason:)``: this store runs no
    /// projections.
    ///
    /// - Parameters:
    ///   - projection: The projection's name.
    ///   - token: An append's token.
    ///   - timeout: Unused.
    public func waitForProjection(_ projection: String, token: PositionToken, timeout: Duration) async throws {
        throw EventStoreError.projectionNotAwaitable(projection: projection, reason: "\(type(of: self)) runs no projections")
    }

    /// The appends in flight, with the partitions they hold back, oldest first.
    public func logHolds() async throws -> [LogHold] {
        try await logHolds(scope: .all)
    }

    /// Throws ``EventStoreError/exclusiveAccessUnsupported(store:)``: a store has to implement
    /// exclusive access itself, since only it knows how to make its writers take turns.
    ///
    /// - Parameters:
    ///   - streamId: The stream.
    ///   - partition: Its partition.
    ///   - body: Not called.
    public func withExclusiveAccess<T: Sendable>(
        toStream streamId: String,
        partition: String,
        _ body: (any EventStore) async throws -> T
    ) async throws -> T {
        throw EventStoreError.exclusiveAccessUnsupported(store: String(describing: type(of: self)))
    }
}
