import EventFleetCore
import Foundation

/// Raw messages for store tests.
package func message(_ type: String, _ json: String = "{}", id: String? = nil, metadata: String? = nil) -> ProposedMessage {
    ProposedMessage(type: type, data: Data(json.utf8), metadata: metadata.map { Data($0.utf8) }, messageId: id)
}

/// Waits until `condition` holds, polling, or fails after `timeout`.
package func waitUntil(
    timeout: Duration = .seconds(10),
    _ description: String,
    condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while try await !condition() {
        guard ContinuousClock.now < deadline else { throw TimedOut(description: description) }
        try await Task.sleep(for: .milliseconds(20))
    }
}

package struct TimedOut: Error, CustomStringConvertible {
    package var description: String

    package init(description: String) {
        self.description = description
    }
}

/// Follows the global log from `checkpoint` until `count` events arrived (an append in flight holds
/// its partition back for a moment), then reads once more to catch extras.
package func readGlobalLog(
    _ store: any EventStore,
    after checkpoint: GlobalCheckpoint = .start,
    options: ReadAllOptions = ReadAllOptions(),
    count: Int,
    // Generous: a loaded machine runs many suites at once.
    timeout: Duration = .seconds(30)
) async throws -> (messages: [RecordedMessage], checkpoint: GlobalCheckpoint) {
    var checkpoint = checkpoint
    var messages: [RecordedMessage] = []
    try await waitUntil(timeout: timeout, "\(count) events in the global log") {
        let batch = try await store.readAll(after: checkpoint, options: options)
        messages += batch.messages
        checkpoint = batch.checkpoint
        return messages.count >= count
    }
    let extra = try await store.readAll(after: checkpoint, options: options)
    return (messages + extra.messages, extra.checkpoint)
}
