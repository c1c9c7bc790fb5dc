import ServiceLifecycle
import Synchronization

/// The calls of one store waiting for projections to show appends
/// (`PostgresEventStore.waitForProjection`), and whether a ``ProjectionWaitListener`` wakes them.
final class ProjectionWaits: Sendable {
    private struct State {
        var waiters: [Int: (partition: String, wakeup: Wakeup)] = [:]
        var nextId = 0
        var listeners = 0
    }

    private let state = Mutex(State())

    /// Whether a listener runs: the waits then look again when the fleet says their partition moved,
    /// and poll only as a fallback.
    var isListening: Bool { state.withLock { $0.listeners > 0 } }

    /// Runs `body` as a wait of `partition`, with the wake-up the listener signals.
    func waiting<T>(in partition: String, _ body: (Wakeup) async throws -> T) async throws -> T {
        let wakeup = Wakeup()
        let id = state.withLock { state in
            defer { state.nextId += 1 }
            state.waiters[state.nextId] = (partition, wakeup)
            return state.nextId
        }
        defer { state.withLock { _ = $0.waiters.removeValue(forKey: id) } }
        return try await body(wakeup)
    }

    /// Wakes the waits of `partition`, or all of them for `nil` (the listener has just started
    /// listening and may have missed notifications).
    func wake(partition: String?) {
        let wakeups = state.withLock { state in
            state.waiters.values.filter { partition == nil || $0.partition == partition }.map(\.wakeup)
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
/// commit projected rows in their partition, instead of polling.
///
/// Workers of a store that notifies (`PostgresEventStore.Options.notifyChannel`) send a
/// notification on ``PostgresEventStore/projectedChannel`` after each committed batch, coalesced
/// like the appends' (one statement per burst). Run one listener per process, beside the store,
/// in the application's service group; it holds one connection for `LISTEN` (behind a
/// transaction-mode pooler, one of its own through `listen_url`; without one, the waits poll).
/// Without a listener, the waits poll: every 5 ms for their first 100 ms, then less often.
public struct ProjectionWaitListener: Service {
    let store: PostgresEventStore

    /// A listener for the waits of `store` (and of the stores made from it).
    public init(store: PostgresEventStore) {
        self.store = store
    }

    /// Listens until cancelled or the service group shuts down.
    public func run() async throws {
        let waits = store.projectionWaits
        let database = store.database
        await cancelWhenGracefulShutdown {
            await waits.listening {
                await database.listen(on: PostgresEventStore.projectedChannel) { partition in
                    waits.wake(partition: partition)
                }
            }
        }
    }
}
