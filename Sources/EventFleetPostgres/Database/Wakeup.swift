import EventFleetCore
import PostgresNIO
import Synchronization

/// Wakes an idle loop early: `signal()` ends the current or next `wait(timeout:)`.
package final class Wakeup: Sendable {
    private struct State {
        var pending = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    package init() {}

    package func signal() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.pending = true
            return nil
        }
        waiter?.resume()
    }

    /// Returns after `timeout`, or earlier on a signal or cancellation.
    package func wait(timeout: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await Task.sleep(for: timeout) }
            group.addTask { await self.waitForSignal() }
            await group.next()
            group.cancelAll()
        }
    }

    private func waitForSignal() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state -> Bool in
                    if state.pending || Task.isCancelled {
                        state.pending = false
                        return true
                    }
                    state.waiter = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume()
        }
    }
}

extension Wakeup {
    /// Turns `NOTIFY` on `channel` into signals until cancelled: LISTEN on a pooled connection (or,
    /// behind a transaction-mode pooler, on a direct connection of its own), reconnecting with
    /// backoff when it drops (polling carries on meanwhile). It signals once as soon as it listens,
    /// since what was notified before LISTEN took effect was not seen. Behind a transaction-mode
    /// pooler without a direct URL it does nothing until cancelled: the loops poll.
    package func listen(on channel: String, database: Database) async {
        await database.listen(on: channel) { _ in self.signal() }
    }
}

extension Database {
    /// Hands `received` the payload of every `NOTIFY` on `channel` until cancelled, and `nil` each
    /// time it starts listening (what was notified before was not seen): LISTEN on a pooled
    /// connection (or, behind a transaction-mode pooler, on a direct connection of its own),
    /// reconnecting with backoff when it drops. Behind a transaction-mode pooler without a direct
    /// URL it does nothing until cancelled.
    package func listen(on channel: String, received: @escaping @Sendable (String?) -> Void) async {
        let database = self
        let connect: (@Sendable (@Sendable (PostgresConnection) async throws -> Void) async throws -> Void)
        switch database.notifications {
        case .pooled:
            connect = { body in try await database.withConnection("listen") { try await body($0.connection) } }
        case .direct(let configuration):
            connect = { body in
                let connection = try await PostgresConnection.connect(
                    configuration: try configuration.connectionConfiguration(), id: 0, logger: database.logger
                )
                do {
                    try await body(connection)
                } catch {
                    try? await connection.close()
                    throw error
                }
                try? await connection.close()
            }
        case .pollOnly:
            database.logger.info(
                "behind a transaction-mode pooler without listen_url: polling only",
                metadata: ["eventfleet.channel": "\(channel)"]
            )
            while !Task.isCancelled { try? await Task.sleep(for: .seconds(3_600)) }
            return
        }
        var backoff = Backoff(RetryPolicy())
        while !Task.isCancelled {
            let attempt = ContinuousClock.now
            do {
                try await connect { connection in
                    try await connection.listen(on: channel) { notifications in
                        received(nil)
                        database.logger.trace("listening", metadata: ["eventfleet.channel": "\(channel)"])
                        for try await notification in notifications {
                            received(notification.payload)
                        }
                    }
                }
            } catch {
                if Task.isCancelled { return }
                // A connection that listened for a while starts the backoff over.
                if ContinuousClock.now - attempt > .seconds(10) { backoff.reset() }
                database.logger.debug("LISTEN connection lost; polling continues", metadata: ["eventfleet.error": "\(error)"])
            }
            try? await Task.sleep(for: backoff.next())
        }
    }
}
