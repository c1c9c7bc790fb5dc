import EventFleetCore
import EventFleetPostgres
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// Follows the global log continuously and feeds a ``ProjectionRegistry``, checkpointing in the same
/// transaction as the projections' writes.
///
/// ```swift
/// var registry = ProjectionRegistry([cartsProjection])
/// registry.subscribe(to: ["CartCheckedOut"], name: "notify-orders") { message, context in ... }
/// let consumer = EventConsumer(configuration: .init(name: "carts"), store: store, registry: registry)
/// let group = ServiceGroup(services: [client, consumer], gracefulShutdownSignals: [.sigterm], logger: logger)
/// try await group.run()
/// ```
///
/// > Important: One instance per consumer name and scope is active at a time. It holds a lease with
/// > a fencing token; other instances stand by and take over when it stops or its lease expires. A
/// > batch commits only if the checkpoint it started from and the token are unchanged, so a stale
/// > instance can never commit. A failing handler is retried with jittered backoff and then, per
/// > ``FailurePolicy``, stops the consumer or parks the event in `ef_dead_letters`; the consumer never
/// > moves past a failed event silently.
public final class EventConsumer: Service, Sendable {
    /// What to do when a handler keeps failing on an event.
    public struct FailurePolicy: Sendable {
        public enum Exhausted: Sendable, Hashable {
            /// Stop the consumer with ``ProjectionError/handlerFailed(consumer:streamId:partition:streamPosition:attempts:underlying:)``.
            case stop
            /// Record the event and error in `ef_dead_letters` and go on with the next event.
            case deadLetter
        }

        /// Attempts per event, the first included.
        public var maxAttempts: Int
        /// Backoff between attempts.
        public var backoff: RetryPolicy
        public var whenExhausted: Exhausted

        public init(
            maxAttempts: Int = 5,
            backoff: RetryPolicy = RetryPolicy(maxRetries: .max, initialDelay: .milliseconds(50), maxDelay: .seconds(5)),
            whenExhausted: Exhausted = .stop
        ) {
            self.maxAttempts = maxAttempts
            self.backoff = backoff
            self.whenExhausted = whenExhausted
        }
    }

    /// Settings of a consumer.
    public struct Configuration: Sendable {
        /// The consumer's name: its checkpoint and lease are kept under it.
        public var name: String
        /// Which partitions it sees. A scoped consumer never sees other partitions' events.
        public var scope: PartitionScope
        /// The checkpoint's version: bump it to replay from the start under a new checkpoint.
        public var version: Int32
        /// Events per batch (and per transaction).
        public var batchSize: Int
        /// The first wait after an empty poll; it doubles while idle up to ``maxPollInterval``.
        public var pollInterval: Duration
        public var maxPollInterval: Duration
        /// A `NOTIFY` channel to wake up on (the store's `PostgresEventStore.Options.notifyChannel`);
        /// polling stays the fallback.
        public var notifyChannel: String?
        /// How long the lease lasts without renewal; a dead instance is replaced after about this long.
        public var leaseDuration: Duration
        public var failurePolicy: FailurePolicy
        /// This instance's id in the lease.
        public var instanceId: String
        /// Called after each committed batch with the new checkpoint and its event count.
        public var onCommit: (@Sendable (GlobalCheckpoint, Int) async -> Void)?
        /// Whether handlers get each event's data and metadata. Handlers that only look at where
        /// events are and of what type read far less with `false`; their messages then carry `{}` as
        /// data and metadata.
        public var readsPayload: Bool = true
        /// Pages handled on the server instead of read and handed to projections (the fleet's
        /// scheduler); see ``ServerSidePages``.
        package var serverSidePages: ServerSidePages?

        public init(name: String, scope: PartitionScope = .all) {
            self.name = name
            self.scope = scope
            self.version = 1
            self.batchSize = 200
            self.pollInterval = .milliseconds(50)
            self.maxPollInterval = .seconds(1)
            self.notifyChannel = nil
            self.leaseDuration = .seconds(10)
            self.failurePolicy = FailurePolicy()
            self.instanceId = "\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString.prefix(8).lowercased())"
            self.onCommit = nil
        }

        /// The scope as stored in the checkpoint row: `*`, or a JSON array of the partitions.
        var scopeKey: String {
            switch scope {
            case .all: return "*"
            case .only(let partitions):
                let sorted = Array(Set(partitions)).sorted()
                return String(decoding: (try? JSONEncoder().encode(sorted)) ?? Data("[]".utf8), as: UTF8.self)
            }
        }
    }

    /// Handles whole pages of the log on the server instead of reading their events, for a consumer
    /// whose work is one statement over the page (the fleet's scheduler turns a page into jobs).
    ///
    /// In the batch's transaction, before the checkpoint moves, `handle` takes up to `limit` events
    /// after the checkpoint, by the global log's rule, and says how many it took, the checkpoint after
    /// them, and whether an append in flight holds back a partition. Such a consumer has no projections:
    /// a page that fails for a reason other than the database being away stops it.
    package struct ServerSidePages: Sendable {
        /// What `handle` did with a page.
        package struct Page: Sendable {
            /// How many events it took; none for an empty page.
            package var events: Int
            /// The checkpoint after the page.
            package var checkpoint: GlobalCheckpoint
            /// Whether an append in flight holds back a partition of the page's scope (see
            /// ``GlobalLogBatch/isHeldBack``).
            package var isHeldBack: Bool

            package init(events: Int, checkpoint: GlobalCheckpoint, isHeldBack: Bool) {
                self.events = events
                self.checkpoint = checkpoint
                self.isHeldBack = isHeldBack
            }
        }

        package typealias Handle = @Sendable (
            _ after: GlobalCheckpoint, _ limit: Int, _ connection: Database.Connection
        ) async throws -> Page

        package var handle: Handle

        package init(handle: @escaping Handle) {
            self.handle = handle
        }
    }

    /// How a consumer's `run()` ended.
    struct Stopped {
        var error: (any Error)?
    }

    struct Progress {
        var checkpoint: GlobalCheckpoint?
        /// Set once `run()` ended: with its error, or with none after a graceful stop.
        var stopped: Stopped?
        var isLeader = false
        /// When the loop last reached the database for its lease (renewed it, acquired it, or
        /// found it held), leading or standing by; a lease still fresh enough to use is no contact.
        var lastContact: ContinuousClock.Instant?
    }

    public let configuration: Configuration
    public let store: PostgresEventStore
    public let registry: ProjectionRegistry
    let logger: Logger
    let wakeup = Wakeup()
    let progress = Mutex(Progress())

    public init(configuration: Configuration, store: PostgresEventStore, registry: ProjectionRegistry, logger: Logger = Logger(label: "eventfleet.consumer")) {
        self.configuration = configuration
        self.store = store
        self.registry = registry
        var logger = logger
        logger[metadataKey: "eventfleet.consumer"] = "\(configuration.name)"
        logger[metadataKey: "eventfleet.scope"] = "\(configuration.scopeKey)"
        self.logger = logger
    }

    /// Whether this instance currently holds the lease.
    public var isActive: Bool { progress.withLock(\.isLeader) }

    /// When this instance last reached the database for its lease (renewed, acquired, or found held
    /// by another instance); `nil` before the first time and after `run()` ended.
    public var lastContact: ContinuousClock.Instant? { progress.withLock(\.lastContact) }

    /// Runs until graceful shutdown or cancellation; a batch in flight finishes (or rolls back) first.
    ///
    /// - Throws: ``ProjectionError/misconfigured(projection:table:problems:)`` at start when a
    ///   projection does not fit its table, and ``ProjectionError/handlerFailed(consumer:streamId:partition:streamPosition:attempts:underlying:)``
    ///   when the failure policy is `.stop`.
    public func run() async throws {
        try validate()
        progress.withLock { $0.stopped = nil }
        do {
            try await validateProjections()
            try await withThrowingTaskGroup(of: Void.self) { group in
                if let channel = configuration.notifyChannel {
                    group.addTask { await self.wakeup.listen(on: channel, database: self.store.database) }
                }
                group.addTask {
                    try await withGracefulShutdownHandler {
                        try await self.loop()
                    } onGracefulShutdown: {
                        self.wakeup.signal()
                    }
                }
                try await group.next()
                group.cancelAll()
            }
        } catch {
            progress.withLock { $0.stopped = Stopped(error: error) }
            throw error
        }
        progress.withLock { $0.stopped = Stopped(error: nil) }
    }

    /// Waits until this instance has processed every event (of its scope and types) committed
    /// before the call. Events an append in flight adds later are not waited for, however early
    /// their positions.
    ///
    /// - Throws: ``ProjectionError/timedOut(consumer:after:)``, or
    ///   ``ProjectionError/consumerStopped(consumer:underlying:)`` when the consumer stopped.
    public func whenCaughtUp(timeout: Duration = .seconds(30)) async throws {
        let types = eventTypes.map { Array($0) }
        let head = try await store.globalLogHead(scope: configuration.scope, types: types) ?? 0
        wakeup.signal()
        let deadline = ContinuousClock.now + timeout
        while true {
            let (checkpoint, stopped) = progress.withLock { ($0.checkpoint, $0.stopped) }
            if let checkpoint, try await store.covers(checkpoint, head: head, scope: configuration.scope, types: types) { return }
            if let stopped { throw ProjectionError.consumerStopped(consumer: configuration.name, underlying: stopped.error) }
            guard ContinuousClock.now < deadline else { throw ProjectionError.timedOut(consumer: configuration.name, after: timeout) }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    private func validate() throws {
        guard !configuration.name.isEmpty else { throw ProjectionError.invalidArgument(field: "name", reason: "must not be empty") }
        guard configuration.batchSize > 0 else { throw ProjectionError.invalidArgument(field: "batchSize", reason: "must be positive") }
        guard configuration.failurePolicy.maxAttempts > 0 else {
            throw ProjectionError.invalidArgument(field: "failurePolicy.maxAttempts", reason: "must be positive")
        }
        if case .only(let partitions) = configuration.scope, partitions.isEmpty {
            throw ProjectionError.invalidArgument(field: "scope", reason: "names no partition")
        }
    }

    /// The types of the events this consumer reads: those its projections handle, or all of them
    /// (`nil`) when pages are handled on the server.
    var eventTypes: Set<String>? {
        configuration.serverSidePages == nil ? registry.eventTypes : nil
    }

    private func validateProjections() async throws {
        try await store.database.withConnection("validate projections") { [store, logger] connection in
            for projection in registry.projections {
                try await projection.validate(context: ProjectionContext(connection, store: store, logger: logger))
            }
        }
    }
}
