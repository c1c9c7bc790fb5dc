import EventFleetCore
import EventFleetPostgres
import EventFleetTestSupport
import Foundation
import Logging
import PostgresNIO
import Testing

/// A notifying store wakes listeners after each append has committed, with the partition as payload.
@Suite("Append notifications", .sharingServer, .timeLimit(.minutes(1)))
struct AppendNotificationTests {
    static let logger = Logger(label: "eventfleet.tests")

    @Test("pool appends notify once committed, at most once per append, with each partition as payload")
    func poolAppendsNotify() async throws {
        try await TestDatabase.withSchema { schema in
            let channel = "ef_test_\(schema.name)"
            let store = PostgresEventStore(client: schema.client, configuration: schema.configuration, notifyChannel: channel)
            let listener = try await schema.connect()
            defer { Task { try? await listener.close() } }
            let payloads = try await listener.listen(on: channel) { notifications in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for index in 0..<20 {
                        group.addTask {
                            try await store.appendToStream("s-\(index)", messages: [message("E")], options: AppendOptions(partition: index.isMultiple(of: 2) ? "a" : "b"))
                        }
                    }
                    try await group.waitForAll()
                }
                var payloads: [String] = []
                for try await notification in notifications {
                    payloads.append(notification.payload)
                    if Set(payloads) == ["a", "b"] { break }
                }
                return payloads
            }
            #expect(Set(payloads) == ["a", "b"])
            #expect(payloads.count <= 20, "coalesced: never more notifications than appends")
        }
    }

    @Test("an append in the caller's transaction notifies as part of it, delivered when it commits")
    func transactionAppendNotifiesOnCommit() async throws {
        try await TestDatabase.withSchema { schema in
            let channel = "ef_test_\(schema.name)"
            let store = PostgresEventStore(client: schema.client, configuration: schema.configuration, notifyChannel: channel)
            let listener = try await schema.connect()
            let writer = try await schema.connect()
            defer {
                Task {
                    try? await listener.close()
                    try? await writer.close()
                }
            }
            try await listener.listen(on: channel) { notifications in
                var iterator = notifications.makeAsyncIterator()
                // The transaction stays open only between these lines: an open transaction with an
                // xid holds back every global-log reader on the server, other tests' included.
                try await writer.query("BEGIN", logger: Self.logger)
                try await store.appendToStream("in-tx", messages: [message("E")], options: AppendOptions(partition: "c"), connection: writer)
                try await writer.query("ROLLBACK", logger: Self.logger)
                try await writer.query("BEGIN", logger: Self.logger)
                try await store.appendToStream("in-tx", messages: [message("E")], options: AppendOptions(partition: "d"), connection: writer)
                try await writer.query("COMMIT", logger: Self.logger)
                // Only the committed append's notification arrives (PostgreSQL delivers a
                // transaction's notifications at its commit, and none of one rolled back).
                #expect(try await iterator.next()?.payload == "d")
            }
        }
    }
}
