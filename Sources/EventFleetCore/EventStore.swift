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
    /// > Important: Only events of transactions older than every running transaction are returned, so
    /// > following the returned checkpoints never skips an event that commits late. A long-running
    /// > transaction stalls the log; ``globalLogStall()`` reports it.
    func readAll(after checkpoint: GlobalCheckpoint, options: ReadAllOptions) async throws -> GlobalLogBatch

    /// The oldest running transaction when it is holding the global log back, else `nil`.
    func globalLogStall() async throws -> GlobalLogStall?
}
