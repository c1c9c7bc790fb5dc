import Logging
import PostgresNIO
import Synchronization

/// Sends a store's append notifications after the appends commit, outside their transactions, and
/// coalesced: one `pg_notify` statement per partition for all the appends of a burst. The fleet's
/// workers send theirs the same way after committing projected rows
/// (`PostgresEventStore.projectedChannel`).
///
/// A transaction that calls `NOTIFY` holds a cluster-wide lock from just before its commit until the
/// commit is flushed, so appends that notified inside their own transactions would commit one at a
/// time and lose group commit. A notifying statement of its own writes nothing and flushes nothing.
///
/// The appends themselves send the notifications, like a group commit: the append that finds no
/// statement in flight sends one for every partition waiting; the first append that arrives while
/// one is in flight waits for it and then sends the next for everything that arrived meanwhile; the
/// others return at once. So an append waits for at most two notifying statements, and every
/// partition appended to is notified after its append committed.
///
/// Notifications only wake listeners early; they poll anyway, so one lost (the database restarting)
/// costs a poll interval, never an event.
final class AppendNotifier: Sendable {
    private struct State {
        var pending: Set<String> = []
        var sending = false
        /// The append that sends the next statement, waiting for the one in flight.
        var next: CheckedContinuation<Bool, Never>?
    }

    let channel: String
    private let database: Database
    private let state = Mutex(State())

    init(channel: String, database: Database) {
        self.channel = channel
        self.database = database
    }

    /// Has `payloads` notified (each once), sending the statement itself when it is this caller's
    /// turn.
    func notify(payloads: some Sequence<String> & Sendable) async {
        await notify(Set(payloads))
    }

    private func notify(_ payloads: Set<String>) async {
        let sends = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            enum Turn { case send, wait, done }
            let turn = state.withLock { state -> Turn in
                state.pending.formUnion(payloads)
                if !state.sending {
                    state.sending = true
                    return .send
                }
                guard state.next == nil else { return .done }
                state.next = continuation
                return .wait
            }
            switch turn {
            case .send: continuation.resume(returning: true)
            case .done: continuation.resume(returning: false)
            case .wait: break
            }
        }
        if sends { await send() }
    }

    /// Sends one statement for the waiting partitions, then hands over to the next sender, if any.
    private func send() async {
        let partitions = state.withLock { state -> [String] in
            defer { state.pending = [] }
            return Array(state.pending)
        }
        if !partitions.isEmpty {
            do {
                try await database.query(
                    "notify \(channel)", "SELECT pg_notify(\(channel), p) FROM unnest(\(partitions)::text[]) AS p"
                )
            } catch {
                database.logger.debug(
                    "could not notify listeners; they find out when they poll",
                    metadata: ["eventfleet.channel": "\(channel)", "eventfleet.error": "\(String(reflecting: error))"]
                )
            }
        }
        let next = state.withLock { state -> CheckedContinuation<Bool, Never>? in
            defer { state.next = nil }
            if state.next == nil { state.sending = false }
            return state.next
        }
        next?.resume(returning: true)
    }
}
