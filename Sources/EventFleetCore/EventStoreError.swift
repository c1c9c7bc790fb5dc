/// Errors thrown by event stores, the command handler and the tools built on them.
///
/// Every case carries the context needed to act on it: which stream and partition, which versions,
/// which field of the input was wrong.
public enum EventStoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The stream was not at the expected version. `actual` is the stream's real current version.
    case versionConflict(streamId: String, partition: String, expected: ExpectedVersion, actual: Int64)
    /// ``DeciderCommandHandler`` lost a version conflict to other writers on every one of its
    /// `attempts` (the first and each retry of ``RetryPolicy/maxRetries``) and gave up; nothing of
    /// the command was appended. `expected` and `actual` are those of the last conflict. The caller
    /// gave no expected version, so the command may be handled again as it is; a stream that many
    /// writers contend for serializes without conflicts in ``CommandConcurrency/pessimistic`` mode.
    case retriesExhausted(streamId: String, partition: String, attempts: Int, expected: ExpectedVersion, actual: Int64)
    /// The store does not implement ``EventStore/withExclusiveAccess(toStream:partition:_:)``, which
    /// ``CommandConcurrency/pessimistic`` command handling needs. `store` names the store's type.
    case exclusiveAccessUnsupported(store: String)
    /// An argument failed validation; nothing was written. `field` names it (e.g. `streamId`, `data`).
    case invalidArgument(field: String, reason: String)
    /// Caller-supplied message ids were already used for other events (in another stream, at other
    /// positions, or only some of them), so the append is neither new nor a retry of an earlier one.
    case messageIdConflict(streamId: String, partition: String, messageIds: [String], reason: String)
    /// A stored event has a type name the reading code does not know.
    case unknownEventType(type: String, streamId: String, partition: String, streamPosition: Int64)
    /// A stored event's data could not be decoded into the type its name maps to.
    case malformedEvent(type: String, streamId: String, partition: String, streamPosition: Int64, reason: String)
    /// The event data or metadata is not valid JSON for the database (for example it holds `\u0000`).
    case invalidJSON(streamId: String, partition: String, reason: String)
    /// The database could not be reached. `target` is the host and port (or socket) that was tried.
    case connectionFailed(target: String, reason: String)
    /// The database rejected an operation. `sqlState` is PostgreSQL's error code when one was given.
    case database(operation: String, sqlState: String?, message: String)
    /// ``EventStore/waitForProjection(_:token:timeout:)`` waited `timeout` and the projection's row
    /// for the token's stream still did not show it. `projectedPosition` is the last event of the
    /// stream the row has moved past (`nil`: no row yet); `job` says what the fleet is doing about
    /// it (`ready`, `running`, or `nil` for no job: no worker has picked the append up yet, or no
    /// scheduler runs). The append itself is committed.
    case projectionTimedOut(projection: String, token: PositionToken, projectedPosition: Int64?, timeout: Duration, job: String?)
    /// ``EventStore/waitForProjection(_:token:timeout:)`` found the projection's job for the token's
    /// stream dead after `attempts`: it will not show the append until the job is retried
    /// (`eventfleet jobs retry`). `error` is the last attempt's.
    case projectionFailed(projection: String, token: PositionToken, attempts: Int, error: String)
    /// The projection cannot be waited for: it is not registered (no worker has run it), it keeps
    /// no row per stream, or the store runs no projections.
    case projectionNotAwaitable(projection: String, reason: String)

    public var description: String {
        switch self {
        case .versionConflict(let streamId, let partition, let expected, let actual):
            "version conflict on stream '\(streamId)' in partition '\(partition)': expected \(expected), actual \(actual)"
        case .retriesExhausted(let streamId, let partition, let attempts, let expected, let actual):
            "gave up on stream '\(streamId)' in partition '\(partition)' after \(attempts) attempt\(attempts == 1 ? "" : "s"): "
                + "each lost a version conflict to another writer (the last expected \(expected), actual \(actual)); "
                + "retry the command, allow more retries, or handle it with pessimistic concurrency"
        case .exclusiveAccessUnsupported(let store):
            "\(store) does not implement withExclusiveAccess(toStream:partition:_:), which pessimistic command handling needs; "
                + "use optimistic concurrency with this store"
        case .invalidArgument(let field, let reason):
            "invalid \(field): \(reason)"
        case .messageIdConflict(let streamId, let partition, let ids, let reason):
            "message id conflict appending to stream '\(streamId)' in partition '\(partition)' (ids \(ids.joined(separator: ", "))): \(reason)"
        case .unknownEventType(let type, let streamId, let partition, let position):
            "unknown event type '\(type)' at position \(position) of stream '\(streamId)' in partition '\(partition)'"
        case .malformedEvent(let type, let streamId, let partition, let position, let reason):
            "event '\(type)' at position \(position) of stream '\(streamId)' in partition '\(partition)' cannot be decoded: \(reason)"
        case .invalidJSON(let streamId, let partition, let reason):
            "invalid JSON for stream '\(streamId)' in partition '\(partition)': \(reason)"
        case .connectionFailed(let target, let reason):
            "cannot connect to the database at \(target): \(reason)"
        case .database(let operation, let sqlState, let message):
            "database error during \(operation)\(sqlState.map { " (SQLSTATE \($0))" } ?? ""): \(message)"
        case .projectionTimedOut(let projection, let token, let projected, let timeout, let job):
            "projection '\(projection)' did not show \(token) within \(timeout): its row is "
                + (projected.map { "at stream position \($0) of \(token.streamPosition)" } ?? "not there yet")
                + (job.map { "; the stream's job is \($0)" } ?? "; the stream has no job (is a scheduler running?)")
        case .projectionFailed(let projection, let token, let attempts, let error):
            "projection '\(projection)' cannot show \(token): the stream's job is dead after \(attempts) attempt\(attempts == 1 ? "" : "s") "
                + "(last error: \(error)); retry it with 'eventfleet jobs retry'"
        case .projectionNotAwaitable(let projection, let reason):
            "cannot wait for projection '\(projection)': \(reason)"
        }
    }
}
