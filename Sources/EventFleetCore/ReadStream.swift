/// Options of ``EventStore/readStream(_:options:)``.
public struct ReadStreamOptions: Sendable, Hashable {
    public var partition: String
    /// First stream position to return, inclusive. Defaults to 1, the start.
    public var from: Int64
    /// Last stream position to return, inclusive. `nil` reads to the end.
    public var to: Int64?
    /// At most this many events. `nil` means no limit.
    public var maxCount: Int?

    public init(partition: String = defaultPartition, from: Int64 = 1, to: Int64? = nil, maxCount: Int? = nil) {
        self.partition = partition
        self.from = from
        self.to = to
        self.maxCount = maxCount
    }

    package func validate(streamId: String) throws(EventStoreError) {
        try IdentifierValidation.validate(streamId, field: "streamId")
        try IdentifierValidation.validate(partition, field: "partition")
        if from < 1 { throw .invalidArgument(field: "from", reason: "stream positions start at 1 (got \(from))") }
        if let to, to < from { throw .invalidArgument(field: "to", reason: "must not be below from (\(to) < \(from))") }
        if let maxCount, maxCount < 0 { throw .invalidArgument(field: "maxCount", reason: "must not be negative") }
    }
}

/// The result of a stream read.
public struct ReadStreamResult<Element: Sendable>: Sendable {
    /// The stream's version as recorded on the stream row, whatever range was read.
    public var currentStreamVersion: Int64
    /// Whether the stream exists.
    public var streamExists: Bool
    /// The events in stream order.
    public var events: [Element]

    public init(currentStreamVersion: Int64, streamExists: Bool, events: [Element]) {
        self.currentStreamVersion = currentStreamVersion
        self.streamExists = streamExists
        self.events = events
    }
}

/// The result of ``EventStore/aggregateStream(_:as:options:evolve:initialState:decoder:)``.
public struct AggregateStreamResult<State: Sendable>: Sendable {
    public var state: State
    /// The version the state reflects.
    public var currentStreamVersion: Int64
    public var streamExists: Bool

    public init(state: State, currentStreamVersion: Int64, streamExists: Bool) {
        self.state = state
        self.currentStreamVersion = currentStreamVersion
        self.streamExists = streamExists
    }
}

/// Options of ``EventStore/aggregateStream(_:as:options:evolve:initialState:decoder:)``.
public struct AggregateStreamOptions: Sendable, Hashable {
    public var partition: String
    /// When set, the stream must be at this version or the call throws a version conflict.
    public var expectedVersion: ExpectedVersion?
    /// What to do with events of types the event type does not know.
    public var unknownTypes: UnknownEventTypePolicy
    /// Events read per round trip; long streams are folded page by page.
    public var pageSize: Int

    public init(
        partition: String = defaultPartition,
        expectedVersion: ExpectedVersion? = nil,
        unknownTypes: UnknownEventTypePolicy = .fail,
        pageSize: Int = 1_000
    ) {
        self.partition = partition
        self.expectedVersion = expectedVersion
        self.unknownTypes = unknownTypes
        self.pageSize = pageSize
    }
}
