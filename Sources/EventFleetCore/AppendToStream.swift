import Foundation

/// Options of ``EventStore/appendToStream(_:messages:options:)``.
public struct AppendOptions: Sendable, Hashable {
    /// The partition (tenant) of the stream.
    public var partition: String
    /// The version the stream must be at; checked atomically with the append.
    public var expectedVersion: ExpectedVersion
    /// The stream's type, recorded when the append creates the stream.
    public var streamType: String?
    /// The stream's metadata (a JSON object), recorded when the append creates the stream.
    public var streamMetadata: [String: JSONValue]?

    public init(
        partition: String = defaultPartition,
        expectedVersion: ExpectedVersion = .any,
        streamType: String? = nil,
        streamMetadata: [String: JSONValue]? = nil
    ) {
        self.partition = partition
        self.expectedVersion = expectedVersion
        self.streamType = streamType
        self.streamMetadata = streamMetadata
    }
}

/// The outcome of an append.
public struct AppendResult: Sendable, Hashable, Codable {
    /// The stream's version after the append: pass it as `.exact` to append again without a conflict.
    public var nextExpectedVersion: Int64
    /// The global position of the last appended event.
    public var lastGlobalPosition: Int64
    /// Whether this append created the stream.
    public var createdNewStream: Bool
    /// Where the append's last event is, to wait for a projection to show it
    /// (``EventStore/waitForProjection(_:token:timeout:)``).
    public var token: PositionToken

    public init(nextExpectedVersion: Int64, lastGlobalPosition: Int64, createdNewStream: Bool, token: PositionToken) {
        self.nextExpectedVersion = nextExpectedVersion
        self.lastGlobalPosition = lastGlobalPosition
        self.createdNewStream = createdNewStream
        self.token = token
    }
}

/// Where an appended event is: its stream, partition and positions. An append returns one
/// (``AppendResult/token``); a caller that must read its own write passes it to
/// ``EventStore/waitForProjection(_:token:timeout:)``. It is `Codable`, so it can travel to a
/// client and back with the next request.
public struct PositionToken: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The partition (tenant) of the stream.
    public var partition: String
    /// The stream.
    public var streamId: String
    /// The event's position in its stream (the stream's version after the append).
    public var streamPosition: Int64
    /// The event's position in the global log.
    public var globalPosition: Int64

    public init(partition: String, streamId: String, streamPosition: Int64, globalPosition: Int64) {
        self.partition = partition
        self.streamId = streamId
        self.streamPosition = streamPosition
        self.globalPosition = globalPosition
    }

    public var description: String {
        "\(streamId)@\(streamPosition) in partition \(partition) (global position \(globalPosition))"
    }
}

extension AppendOptions {
    /// Checks everything that can be checked without the database.
    package func validate(streamId: String, messages: [ProposedMessage]) throws(EventStoreError) {
        try IdentifierValidation.validate(streamId, field: "streamId")
        try IdentifierValidation.validate(partition, field: "partition")
        if let streamType { try IdentifierValidation.validate(streamType, field: "streamType") }
        if let streamMetadata { try JSONValue.checkNesting(of: .object(streamMetadata), field: "streamMetadata") }
        if case .exact(let version) = expectedVersion, version < 0 {
            throw .invalidArgument(field: "expectedVersion", reason: "must not be negative (got \(version))")
        }
        if messages.isEmpty {
            throw .invalidArgument(field: "events", reason: "an append needs at least one event")
        }
        var seenIds = Set<String>()
        for message in messages {
            try IdentifierValidation.validate(message.type, field: "type")
            if let id = message.messageId {
                try IdentifierValidation.validate(id, field: "messageId")
                guard seenIds.insert(id).inserted else {
                    throw .invalidArgument(field: "messageId", reason: "'\(id)' appears twice in one append")
                }
            }
        }
        if !seenIds.isEmpty && seenIds.count != messages.count {
            throw .invalidArgument(
                field: "messageId",
                reason: "either every event of an append carries a message id or none does"
            )
        }
    }
}
