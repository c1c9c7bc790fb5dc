import EventFleetCore
import ServiceLifecycle
import Synchronization

/// The calls of one store waiting for projections to show appends
/// (`PostgresEventStore.waitForProjection`), and whether a ``ProjectionWaitListener`` wakes them.
final class ProjectionWaits: Sendable {
    private struct State {
        /// By notification payload (the stream), then by wait.
        var waiters: [String: [Int: Wakeup]] = [:]
        var nextId = 0
        var listeners = 0
    }

    private let state = Mutex(State())

    /// Whether a listener runs: the waits then look again when the fleet says their stream moved,
    /// and poll only as a fallback.
    var isListening: Bool { state.withLock { $0.listeners > 0 } }

    /// The payload of a notification that rows of a stream were committed: the partition's length
    /// in UTF-8 bytes, a colon, the partition, the stream id (either may hold any character but
    /// NUL, so neither can be a separator).
    static func payload(partition: String, streamId: String) -> String {
        "\(partition.utf8.count):\(partition)\(streamId)"
    }

    /// Runs `body` as a wait for `token`'s stream, with the wake-up the listener signals.
    func waiting<T>(for token: PositionToken, _ body: (Wakeup) async throws -> T) async throws -> T {
        let wakeup = Wakeup()
        let stream = Self.payload(partition: token.partition, streamId: token.streamId)
        let id = state.withLock { state in
            defer { state.nextId += 1 }
            state.waiters[stream, default: [:]][state.nextId] = wakeup
            return state.nextId
        }
        defer {
            state.withLock { state in
                state.waiters[stream]?[id] = nil
                if state.waiters[stream]?.isEmpty == true { state.waiters[stream] = nil }
            }
        }
        return try await body(wakeup)
    }

    /// Wakes the waits of the stream a notification's `payload` names, or all of them for `nil`
    /// (the listener has just started listening and may have missed notifications).
    func wake(payload: String?) {
        let wakeups = state.withLock { state -> [Wakeup] in
            guard let payload else { return state.waiters.values.flatMap(\.values) }
            return state.waiters[payload].map { Array($0.values) } ?? []
        }
        for wakeup in wakeups { wakeup.signal() }
    }

    /// Counts as a listener while `body` runs.
    func listening(_ body: () async -> Void) async {
        state.withLock { $0.listeners += 1 }
        defer { state.withLock { $0.listeners -= 1 } }
        await body()
    }
}

/// Wakes a process's `PostgresEventStore.waitForProjection` calls as soon as the fleet's workers
/// commit their streams' rows, instead of polling.
///
/// Workers of a store that notifies (`PostgresEventStore.Options.notifyChannel`) send a
/// notification per stream on ``PostgresEventStore/projectedChannel`` after each committed batch,
/// coalesced like the appends' (one statement per burst), so a wait wakes for its own stream only. Run one listener per process, beside the store,
/// in the application's service group; it holds one connection for `LISTEN` (behind a
/// transaction-mode pooler, one of its own through `listen_url`; without one, the waits poll).
/// Without a listener, the waits poll: every 5 ms for their first 100 ms, then less often.
public struct ProjectionWaitListener: Service {
    let store: PostgresEventStore

    /// A listener for the waits of `store` (and of the stores made from it).
    public init(store: PostgresEventStore) {
        self.store = store
    }

    /// Listens until cancelled or the service group shuts down. Behind a transaction-mode pooler
    /// without `listen_url` it cannot listen, and the waits go on polling as fast as without it.
    public func run() async throws {
        let waits = store.projectionWaits
        let database = store.database
        await cancelWhenGracefulShutdown {
            if case .pollOnly = database.notifications {
                await database.listen(on: PostgresEventStore.projectedChannel) { _ in }
                return
            }
            await waits.listening {
                await database.listen(on: PostgresEventStore.projectedChannel) { payload in
                    waits.wake(payload: payload)
                }
            }
        }
    }
}
