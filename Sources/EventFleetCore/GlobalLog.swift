import Foundation

/// A position in the global log: the (transaction id, global position) pair of the last event seen.
///
/// Global positions come from a sequence and are handed out before commit, so a reader that only
/// remembered the highest position would skip events whose transactions commit late. The global log
/// instead orders events by (transaction id, global position) and only shows transactions older than
/// every transaction still running, so a checkpoint pair never passes an event that can still appear.
public struct GlobalCheckpoint: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    public var transactionId: UInt64
    public var globalPosition: Int64

    public init(transactionId: UInt64, globalPosition: Int64) {
        self.transactionId = transactionId
        self.globalPosition = globalPosition
    }

    /// Before the first event.
    public static let start = GlobalCheckpoint(transactionId: 0, globalPosition: 0)

    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.transactionId, lhs.globalPosition) < (rhs.transactionId, rhs.globalPosition)
    }

    public var description: String { "\(transactionId)/\(globalPosition)" }
}

/// Which partitions a global-log read or a consumer sees.
public enum PartitionScope: Sendable, Hashable {
    case all
    case only([String])

    /// One partition.
    public static func partition(_ partition: String) -> Self { .only([partition]) }

    public func contains(_ partition: String) -> Bool {
        switch self {
        case .all: true
        case .only(let partitions): partitions.contains(partition)
        }
    }

    /// The partitions of `.only`; `nil` for all (as SQL filters take them: `NULL` for no filter).
    public var partitions: [String]? {
        switch self {
        case .all: nil
        case .only(let partitions): partitions
        }
    }
}

/// Options of ``EventStore/readAll(after:options:)``.
public struct ReadAllOptions: Sendable, Hashable {
    public var scope: PartitionScope
    /// At most this many events per batch.
    public var batchSize: Int
    /// Only these types; `nil` for all.
    public var types: [String]?
    /// Whether to read each event's data and metadata. A reader that only needs where events are
    /// and of what type (the fleet's scheduler) reads much less with `false`: its messages then
    /// carry `{}` as data and metadata.
    public var includePayload: Bool

    public init(scope: PartitionScope = .all, batchSize: Int = 500, types: [String]? = nil, includePayload: Bool = true) {
        self.scope = scope
        self.batchSize = batchSize
        self.types = types
        self.includePayload = includePayload
    }
}

/// A batch of the global log.
public struct GlobalLogBatch: Sendable {
    /// Events in (transaction id, global position) order.
    public var messages: [RecordedMessage]
    /// Where the next read starts: the last message's checkpoint, or the one read from when empty.
    public var checkpoint: GlobalCheckpoint
    /// For an empty batch: committed events past the checkpoint exist that the read could not return
    /// yet, usually because an older, still open transaction holds them back (see
    /// ``EventStore/globalLogStall()``). They become readable when it ends, with no notification, so a
    /// follower should look again soon.
    public var isHeldBack: Bool

    public init(messages: [RecordedMessage], checkpoint: GlobalCheckpoint, isHeldBack: Bool = false) {
        self.messages = messages
        self.checkpoint = checkpoint
        self.isHeldBack = isHeldBack
    }
}

/// The oldest running transaction, which holds the global log back until it ends.
public struct GlobalLogStall: Sendable, Hashable, Codable {
    /// The backend's process id (`pg_stat_activity.pid`); `pg_terminate_backend(pid)` ends it.
    public var pid: Int32
    /// How long the transaction has been open.
    public var age: Duration
    /// The backend's state (`active`, `idle in transaction`, ...).
    public var state: String?
    /// The application name the backend reported.
    public var applicationName: String?
    /// The backend's current or last statement, when visible to the reading role.
    public var query: String?

    public init(pid: Int32, age: Duration, state: String?, applicationName: String?, query: String?) {
        self.pid = pid
        self.age = age
        self.state = state
        self.applicationName = applicationName
        self.query = query
    }
}
