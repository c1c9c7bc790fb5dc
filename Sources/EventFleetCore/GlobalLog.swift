import Foundation

/// A position in the global log: how far a reader has read it.
///
/// The log is ordered by global position, and an append in flight holds back only its own
/// partition: a read passes every other partition's events and stops at that partition's last
/// readable position (docs/DESIGN.md, "The log horizon"). So a checkpoint is a position, below which
/// every event has been read, and the partitions it held back, each read only up to a position of
/// its own. The list grows with the partitions held back at one time, not with all partitions.
public struct GlobalCheckpoint: Sendable, Hashable, Codable, CustomStringConvertible {
    /// A partition the checkpoint holds back.
    public struct HeldPartition: Sendable, Hashable, Codable {
        /// The partition's key (PostgreSQL's `hashtext` of its name): partitions with one key are held
        /// together.
        public var key: Int32
        /// Its events are read up to this global position.
        public var position: Int64

        public init(key: Int32, position: Int64) {
            self.key = key
            self.position = position
        }
    }

    /// Every event at or below this global position has been read, except in ``held`` partitions.
    public var position: Int64
    /// The partitions read only up to a position below ``position``, in key order.
    public var held: [HeldPartition]

    public init(position: Int64, held: [HeldPartition] = []) {
        self.position = position
        self.held = held.sorted { $0.key < $1.key }
    }

    /// Before the first event.
    public static let start = GlobalCheckpoint(position: 0)

    public var description: String {
        held.isEmpty ? "\(position)" : "\(position) (held: \(held.map { "\($0.key)@\($0.position)" }.joined(separator: ", ")))"
    }

    /// The checkpoint after a read of up to `limit` events from this one, under `horizon`, that
    /// returned `count` events, the last at `last`: a full read covers the log up to its last event,
    /// any other up to the horizon's bound.
    package func advanced(overPageOf count: Int, endingAt last: Int64?, limit: Int, horizon: LogHorizon) -> GlobalCheckpoint {
        advanced(through: count >= limit ? last ?? horizon.bound : horizon.bound, horizon: horizon)
    }

    /// The checkpoint after a read from this one, under `horizon`, that returned every event up to
    /// `cut` (for a part of a read, the last position handled).
    ///
    /// Each partition key's events were read up to `min(cut, its bound)` from where it stood. The
    /// position moves to `cut`; a key that stands below it is held there.
    package func advanced(through cut: Int64, horizon: LogHorizon) -> GlobalCheckpoint {
        let next = max(position, cut)
        var held: [HeldPartition] = []
        var keys = Dictionary(uniqueKeysWithValues: self.held.map { ($0.key, $0.position) })
        for key in horizon.marked.keys where keys[key] == nil {
            keys[key] = position
        }
        for (key, from) in keys {
            let to = min(horizon.bound, horizon.marked[key] ?? horizon.bound)
            let reached = max(from, min(cut, to))
            if reached < next { held.append(HeldPartition(key: key, position: reached)) }
        }
        return GlobalCheckpoint(position: next, held: held)
    }
}

/// How far the global log can be read at one moment: up to ``bound``, and each partition key an
/// append in flight marks only up to that append's own bound (``marked``).
package struct LogHorizon: Sendable, Hashable {
    /// The last global position handed out.
    package var bound: Int64
    /// For each partition key with an append in flight: the position below all of its events.
    package var marked: [Int32: Int64]

    package init(bound: Int64, marked: [Int32: Int64] = [:]) {
        self.bound = bound
        self.marked = marked
    }
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
    /// Events in global-position order (partitions held back by an append in flight are read behind
    /// the others: see ``GlobalCheckpoint``).
    public var messages: [RecordedMessage]
    /// Where the next read starts.
    public var checkpoint: GlobalCheckpoint
    /// Whether an append in flight holds back a partition the read covers: its events appear when it
    /// commits, so a follower should look again soon rather than only wait for a notification.
    public var isHeldBack: Bool
    /// Where the read started and what it read under, for the checkpoint after part of the batch.
    let start: GlobalCheckpoint
    let horizon: LogHorizon?

    public init(messages: [RecordedMessage], checkpoint: GlobalCheckpoint, isHeldBack: Bool = false) {
        self.messages = messages
        self.checkpoint = checkpoint
        self.isHeldBack = isHeldBack
        self.start = checkpoint
        self.horizon = nil
    }

    package init(messages: [RecordedMessage], from start: GlobalCheckpoint, horizon: LogHorizon, limit: Int) {
        self.messages = messages
        self.start = start
        self.horizon = horizon
        self.checkpoint = start.advanced(overPageOf: messages.count, endingAt: messages.last?.globalPosition, limit: limit, horizon: horizon)
        self.isHeldBack = !horizon.marked.isEmpty
    }

    /// The checkpoint after the batch's messages up to the one at `index`, for a reader that commits
    /// part of a batch.
    package func checkpoint(afterMessageAt index: Int) -> GlobalCheckpoint {
        if index == messages.count - 1 { return checkpoint }
        guard let horizon else { return GlobalCheckpoint(position: messages[index].globalPosition) }
        return start.advanced(through: messages[index].globalPosition, horizon: horizon)
    }
}

/// An append in flight that holds back a partition of the global log: readers pass the partition's
/// events until it commits or rolls back.
public struct LogHold: Sendable, Hashable, Codable {
    /// The partition, as its newest committed event names it; `nil` while it has none (then only
    /// ``partitionKey`` is known).
    public var partition: String?
    /// The partition's key (PostgreSQL's `hashtext` of its name).
    public var partitionKey: Int32
    /// How long the appending transaction has been open.
    public var age: Duration
    /// The server process of the appending session (`pg_stat_activity.pid`): behind a pooler, the
    /// pooler's connection, not the application's.
    public var pid: Int32
    /// The application name the appender reported: its own, even behind a pooler.
    public var applicationName: String?
    /// The address the session connects from (the pooler's, behind one).
    public var clientAddress: String?
    /// The session's state (`active`, `idle in transaction`, ...).
    public var state: String?

    /// The partition's name, or `key N` while it has no committed event: how reports, logs and
    /// metrics label it.
    public var partitionLabel: String { partition ?? "key \(partitionKey)" }

    public init(
        partition: String?, partitionKey: Int32, age: Duration, pid: Int32, applicationName: String?, clientAddress: String?,
        state: String?
    ) {
        self.partition = partition
        self.partitionKey = partitionKey
        self.age = age
        self.pid = pid
        self.applicationName = applicationName
        self.clientAddress = clientAddress
        self.state = state
    }
}
