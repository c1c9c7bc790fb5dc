/// Errors of projections, the runner and the consumer.
public enum ProjectionError: Error, Sendable, CustomStringConvertible {
    /// A table or column name from configuration is not a plain identifier.
    case invalidIdentifier(String, kind: String, reason: String)
    /// The read-model table does not fit the projection; `problems` lists what is missing.
    case misconfigured(projection: String, table: String, problems: [String])
    /// A stream's events did not continue at the row's `last_stream_position + 1`.
    case positionGap(projection: String, streamId: String, partition: String, expected: Int64, found: Int64)
    /// A stored snapshot cannot be decoded into the projection's state type, for example after the
    /// state type changed incompatibly or when the row was written by something else. Rebuild the
    /// row (delete it and project the stream again) or make the state's decoding accept the old form.
    case malformedSnapshot(projection: String, table: String, streamId: String, partition: String, reason: String)
    /// A column's value could not be produced (its closure threw) or cannot be stored in its column.
    case invalidColumnValue(projection: String, table: String, column: String, streamId: String, partition: String, reason: String)
    /// A handler kept failing on an event and the consumer's policy is to stop. `underlying` is the
    /// handler's last error, as it threw it.
    case handlerFailed(consumer: String, streamId: String, partition: String, streamPosition: Int64, attempts: Int, underlying: any Error)
    /// Another instance holds the consumer's lease (or took it over): this one must not write.
    case leaseLost(consumer: String, scope: String)
    /// No projection with that name is registered.
    case unknownProjection(String, known: [String])
    /// `whenCaughtUp` ran out of time.
    case timedOut(consumer: String, after: Duration)
    /// The consumer stopped before catching up: with `underlying`, or by a graceful shutdown (`nil`).
    case consumerStopped(consumer: String, underlying: (any Error)?)
    /// An argument or setting of a consumer, a runner or a projection cannot work; `field` names it.
    /// Nothing was started or written.
    case invalidArgument(field: String, reason: String)

    public var description: String {
        switch self {
        case .invalidIdentifier(let name, let kind, let reason):
            "invalid \(kind) name '\(name)': \(reason)"
        case .misconfigured(let projection, let table, let problems):
            "projection '\(projection)' cannot use table \(table): \(problems.joined(separator: "; "))"
        case .positionGap(let projection, let streamId, let partition, let expected, let found):
            "projection '\(projection)' expected stream '\(streamId)' in partition '\(partition)' to continue at position \(expected) but found \(found)"
        case .malformedSnapshot(let projection, let table, let streamId, let partition, let reason):
            "projection '\(projection)' cannot decode the snapshot in \(table) of stream '\(streamId)' in partition '\(partition)': \(reason)"
        case .invalidColumnValue(let projection, let table, let column, let streamId, let partition, let reason):
            "projection '\(projection)' cannot write column \(column) of \(table) for stream '\(streamId)' in partition '\(partition)': \(reason)"
        case .handlerFailed(let consumer, let streamId, let partition, let position, let attempts, let underlying):
            "consumer '\(consumer)' stopped: the handler failed \(attempts) times on position \(position) of stream '\(streamId)' in partition '\(partition)': \(underlying)"
        case .leaseLost(let consumer, let scope):
            "consumer '\(consumer)' (scope \(scope)) lost its lease to another instance"
        case .unknownProjection(let name, let known):
            "no projection named '\(name)'; known: \(known.joined(separator: ", "))"
        case .timedOut(let consumer, let after):
            "consumer '\(consumer)' did not catch up within \(after)"
        case .consumerStopped(let consumer, let underlying):
            "consumer '\(consumer)' stopped: \(underlying.map { "\($0)" } ?? "shut down")"
        case .invalidArgument(let field, let reason):
            "invalid \(field): \(reason)"
        }
    }
}
