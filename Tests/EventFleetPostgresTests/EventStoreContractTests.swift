import EventFleetCore
import EventFleetTestSupport
import Foundation
import Testing

/// The semantics every store has: run against the PostgreSQL store and the in-memory store.
@Suite("Event store contract")
struct EventStoreContractTests {
    @Test("append, read and version checks of one stream", arguments: StoreKind.allCases)
    func seedStoreCases(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let first = try await store.appendToStream(
                "cart-1", messages: [message("A"), message("B")], options: AppendOptions(expectedVersion: .noStream)
            )
            #expect(first.nextExpectedVersion == 2)
            #expect(first.createdNewStream)
            #expect(first.lastGlobalPosition > 0)

            let second = try await store.appendToStream("cart-1", messages: [message("C"), message("D")], options: AppendOptions())
            #expect(second.nextExpectedVersion == 4)
            #expect(!second.createdNewStream)
            #expect(second.lastGlobalPosition > first.lastGlobalPosition)

            let all = try await store.readStream("cart-1", options: ReadStreamOptions())
            #expect(all.events.map(\.streamPosition) == [1, 2, 3, 4])
            #expect(all.events.map(\.type) == ["A", "B", "C", "D"])
            #expect(all.currentStreamVersion == 4)
            #expect(all.streamExists)

            await #expect(throws: EventStoreError.versionConflict(streamId: "cart-1", partition: defaultPartition, expected: .noStream, actual: 4)) {
                try await store.appendToStream("cart-1", messages: [message("E")], options: AppendOptions(expectedVersion: .noStream))
            }

            let range = try await store.readStream("cart-1", options: ReadStreamOptions(from: 2, to: 4))
            #expect(range.events.map(\.streamPosition) == [2, 3, 4])
            #expect(range.currentStreamVersion == 4)
            let limited = try await store.readStream("cart-1", options: ReadStreamOptions(from: 3, maxCount: 2))
            #expect(limited.events.map(\.streamPosition) == [3, 4])
            let one = try await store.readStream("cart-1", options: ReadStreamOptions(from: 1, maxCount: 1))
            #expect(one.events.map(\.streamPosition) == [1])
            #expect(one.currentStreamVersion == 4, "the version comes from the stream, not from the events read")

            let after = try await store.readStream("cart-1", options: ReadStreamOptions(from: 5))
            #expect(after.events.isEmpty)
            #expect(after.currentStreamVersion == 4)
        }
    }

    @Test("expected versions: exists, no stream, exact", arguments: StoreKind.allCases)
    func expectedVersions(kind: StoreKind) async throws {
        try await kind.withStore { store in
            await #expect(throws: EventStoreError.versionConflict(streamId: "missing", partition: defaultPartition, expected: .streamExists, actual: 0)) {
                try await store.appendToStream("missing", messages: [message("A")], options: AppendOptions(expectedVersion: .streamExists))
            }
            let missing = try await store.readStream("missing", options: ReadStreamOptions())
            #expect(!missing.streamExists, "a rejected append must not create the stream")

            await #expect(throws: EventStoreError.versionConflict(streamId: "s", partition: defaultPartition, expected: .exact(3), actual: 0)) {
                try await store.appendToStream("s", messages: [message("A")], options: AppendOptions(expectedVersion: .exact(3)))
            }
            let created = try await store.appendToStream("s", messages: [message("A")], options: AppendOptions(expectedVersion: .exact(0)))
            #expect(created.createdNewStream)
            let exists = try await store.appendToStream("s", messages: [message("B")], options: AppendOptions(expectedVersion: .streamExists))
            #expect(exists.nextExpectedVersion == 2)
            let exact = try await store.appendToStream("s", messages: [message("C")], options: AppendOptions(expectedVersion: .exact(2)))
            #expect(exact.nextExpectedVersion == 3)
            await #expect(throws: EventStoreError.versionConflict(streamId: "s", partition: defaultPartition, expected: .exact(2), actual: 3)) {
                try await store.appendToStream("s", messages: [message("D")], options: AppendOptions(expectedVersion: .exact(2)))
            }
            #expect(try await store.readStream("s", options: ReadStreamOptions()).events.count == 3)
        }
    }

    @Test("partitions isolate streams with the same id", arguments: StoreKind.allCases)
    func partitionsIsolate(kind: StoreKind) async throws {
        try await kind.withStore { store in
            try await store.appendToStream("cart-1", messages: [message("A")], options: AppendOptions(partition: "tenant-a"))
            let fromB = try await store.readStream("cart-1", options: ReadStreamOptions(partition: "tenant-b"))
            #expect(!fromB.streamExists)
            #expect(fromB.events.isEmpty)
            let createdInB = try await store.appendToStream(
                "cart-1", messages: [message("B")], options: AppendOptions(partition: "tenant-b", expectedVersion: .noStream)
            )
            #expect(createdInB.createdNewStream)
            #expect(try await store.readStream("cart-1", options: ReadStreamOptions(partition: "tenant-a")).events.map(\.type) == ["A"])
            let log = try await readGlobalLog(store, options: ReadAllOptions(scope: .partition("tenant-b")), count: 1)
            #expect(log.messages.map(\.partition) == ["tenant-b"])
            #expect(try await store.readStream("cart-1", options: ReadStreamOptions()).streamExists == false)
        }
    }

    @Test("caller-supplied message ids make a retried append idempotent", arguments: StoreKind.allCases)
    func idempotentAppend(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let batch = [message("A", id: "m-1"), message("B", id: "m-2")]
            let first = try await store.appendToStream("s", messages: batch, options: AppendOptions(expectedVersion: .noStream))
            let retry = try await store.appendToStream("s", messages: batch, options: AppendOptions(expectedVersion: .noStream))
            #expect(retry == first)
            #expect(try await store.readStream("s", options: ReadStreamOptions()).events.count == 2)

            try await store.appendToStream("s", messages: [message("C", id: "m-3")], options: AppendOptions())
            let lateRetry = try await store.appendToStream("s", messages: batch, options: AppendOptions(expectedVersion: .noStream))
            #expect(lateRetry == first, "a retry answers with the first append's result even after later appends")

            await #expect(throws: EventStoreError.self) {
                try await store.appendToStream("other", messages: [message("X", id: "m-1")], options: AppendOptions())
            }
            await #expect(throws: EventStoreError.self) {
                try await store.appendToStream("s", messages: [message("X", id: "m-1"), message("Y", id: "m-new")], options: AppendOptions())
            }
            #expect(try await store.readStream("s", options: ReadStreamOptions()).events.count == 3)
            #expect(try await store.readStream("other", options: ReadStreamOptions()).streamExists == false)
        }
    }

    @Test("bad input is a validation error and writes nothing", arguments: StoreKind.allCases)
    func validation(kind: StoreKind) async throws {
        try await kind.withStore { store in
            await #expect(throws: EventStoreError.invalidArgument(field: "events", reason: "an append needs at least one event")) {
                try await store.appendToStream("s", messages: [], options: AppendOptions())
            }
            await #expect(throws: EventStoreError.invalidArgument(field: "streamId", reason: "must not be empty")) {
                try await store.appendToStream("", messages: [message("A")], options: AppendOptions())
            }
            await #expect(throws: EventStoreError.invalidArgument(field: "partition", reason: "must not be empty")) {
                try await store.appendToStream("s", messages: [message("A")], options: AppendOptions(partition: ""))
            }
            await #expect(throws: EventStoreError.invalidArgument(field: "type", reason: "must not be empty")) {
                try await store.appendToStream("s", messages: [message("")], options: AppendOptions())
            }
            await #expect(throws: EventStoreError.self) {
                try await store.appendToStream("s", messages: [message("A")], options: AppendOptions(expectedVersion: .exact(-1)))
            }
            await #expect(throws: EventStoreError.self) {
                try await store.appendToStream("s\u{0}x", messages: [message("A")], options: AppendOptions())
            }
            await #expect(throws: EventStoreError.self) {
                try await store.appendToStream(String(repeating: "x", count: 10_000), messages: [message("A")], options: AppendOptions())
            }
            let jsonError = await #expect(throws: EventStoreError.self) {
                try await store.appendToStream("s", messages: [message("A"), message("B", "{not json")], options: AppendOptions())
            }
            guard case .invalidJSON(streamId: "s", partition: defaultPartition, _) = jsonError else {
                Issue.record("expected invalidJSON, got \(String(describing: jsonError))")
                return
            }
            await #expect(throws: EventStoreError.self) {
                try await store.readStream("s", options: ReadStreamOptions(from: 0))
            }
            let stream = try await store.readStream("s", options: ReadStreamOptions())
            #expect(!stream.streamExists)
            let log = try await store.readAll(after: .start, options: ReadAllOptions())
            #expect(log.messages.isEmpty)
        }
    }

    @Test("quotes, semicolons and emoji in ids are stored verbatim", arguments: StoreKind.allCases)
    func hostileIdentifiers(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let streamId = "x'); DROP TABLE ef_messages; -- \"quoted\" \\ 🛒"
            let partition = "t'; DELETE FROM ef_streams; --"
            let type = "Type\"; SELECT 1; --"
            try await store.appendToStream(
                streamId, messages: [message(type, #"{"note": "it's \"fine\"; really"}"#)], options: AppendOptions(partition: partition)
            )
            let read = try await store.readStream(streamId, options: ReadStreamOptions(partition: partition))
            #expect(read.events.map(\.streamId) == [streamId])
            #expect(read.events.map(\.partition) == [partition])
            #expect(read.events.map(\.type) == [type])
            let data = try JSONDecoder().decode([String: String].self, from: read.events[0].data)
            #expect(data == ["note": #"it's "fine"; really"#])
        }
    }

    @Test("the global log returns every event once, in order, scoped by partition", arguments: StoreKind.allCases)
    func globalLog(kind: StoreKind) async throws {
        try await kind.withStore { store in
            for index in 1...7 {
                try await store.appendToStream(
                    "s-\(index % 3)", messages: [message("E\(index)")], options: AppendOptions(partition: index.isMultiple(of: 2) ? "b" : "a")
                )
            }
            let all = try await readGlobalLog(store, options: ReadAllOptions(batchSize: 3), count: 7)
            #expect(all.messages.map(\.type) == (1...7).map { "E\($0)" })
            #expect(all.checkpoint == GlobalCheckpoint(position: all.messages.last?.globalPosition ?? -1))
            let positions = all.messages.map(\.globalPosition)
            #expect(positions == positions.sorted() && Set(positions).count == 7)
            let onlyA = try await readGlobalLog(store, options: ReadAllOptions(scope: .partition("a")), count: 4)
            #expect(onlyA.messages.map(\.type) == ["E1", "E3", "E5", "E7"])
            let typed = try await readGlobalLog(store, options: ReadAllOptions(types: ["E2", "E6"]), count: 2)
            #expect(typed.messages.map(\.type) == ["E2", "E6"])
        }
    }

    @Test("typed events round-trip through the store; unknown types fail or are skipped", arguments: StoreKind.allCases)
    func typedEvents(kind: StoreKind) async throws {
        try await kind.withStore { store in
            try await store.appendToStream("s", events: [TestEvent.opened(.init(name: "a")), .renamed(.init(name: "b"))])
            try await store.appendToStream("s", messages: [message("SomethingElse")], options: AppendOptions())
            await #expect(throws: EventStoreError.unknownEventType(type: "SomethingElse", streamId: "s", partition: defaultPartition, streamPosition: 3)) {
                try await store.readStream("s", as: TestEvent.self)
            }
            let skipped = try await store.readStream("s", as: TestEvent.self, unknownTypes: .skip)
            #expect(skipped.events.map(\.event) == [.opened(.init(name: "a")), .renamed(.init(name: "b"))])
            #expect(skipped.currentStreamVersion == 3)

            try await store.appendToStream("bad", messages: [message("Opened", #"{"nom": 1}"#)], options: AppendOptions())
            let decodeError = await #expect(throws: EventStoreError.self) {
                try await store.readStream("bad", as: TestEvent.self)
            }
            guard case .malformedEvent(type: "Opened", streamId: "bad", partition: defaultPartition, streamPosition: 1, _) = decodeError else {
                Issue.record("expected malformedEvent, got \(String(describing: decodeError))")
                return
            }
        }
    }

    @Test("aggregateStream folds with evolve and checks the expected version", arguments: StoreKind.allCases)
    func aggregate(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let missing = try await store.aggregateStream("s", as: TestEvent.self, evolve: TestEvent.evolve, initialState: { [String]() })
            #expect(!missing.streamExists)
            #expect(missing.currentStreamVersion == 0)
            #expect(missing.state.isEmpty)

            let events = (1...25).map { TestEvent.renamed(.init(name: "n\($0)")) }
            try await store.appendToStream("s", events: events)
            let folded = try await store.aggregateStream(
                "s", as: TestEvent.self, options: AggregateStreamOptions(pageSize: 4), evolve: TestEvent.evolve, initialState: { [String]() }
            )
            #expect(folded.state == (1...25).map { "n\($0)" })
            #expect(folded.currentStreamVersion == 25)
            #expect(folded.streamExists)

            await #expect(throws: EventStoreError.versionConflict(streamId: "s", partition: defaultPartition, expected: .exact(3), actual: 25)) {
                try await store.aggregateStream(
                    "s", as: TestEvent.self, options: AggregateStreamOptions(expectedVersion: .exact(3)),
                    evolve: TestEvent.evolve, initialState: { [String]() }
                )
            }
        }
    }

    @Test("long streams page as an AsyncSequence", arguments: StoreKind.allCases)
    func paging(kind: StoreKind) async throws {
        try await kind.withStore { store in
            try await store.appendToStream("long", messages: (1...103).map { message("E\($0)") }, options: AppendOptions())
            var positions: [Int64] = []
            for try await message in store.streamMessages("long", pageSize: 10) {
                positions.append(message.streamPosition)
            }
            #expect(positions == Array(1...103))
            var fromMiddle: [Int64] = []
            for try await message in store.streamMessages("long", from: 100, pageSize: 2) {
                fromMiddle.append(message.streamPosition)
            }
            #expect(fromMiddle == [100, 101, 102, 103])
        }
    }
}

/// A small event type for store tests.
enum TestEvent: Event, Equatable {
    struct Opened: EventPayload, Equatable {
        static let eventType = "Opened"
        var name: String
    }

    struct Renamed: EventPayload, Equatable {
        static let eventType = "Renamed"
        var name: String
    }

    case opened(Opened)
    case renamed(Renamed)

    static let cases: [EventCase<TestEvent>] = [EventCase(Opened.self, TestEvent.opened), EventCase(Renamed.self, TestEvent.renamed)]

    var payload: any EventPayload {
        switch self {
        case .opened(let event): event
        case .renamed(let event): event
        }
    }

    static func evolve(_ names: [String], _ event: TestEvent) -> [String] {
        switch event {
        case .opened(let opened): names + [opened.name]
        case .renamed(let renamed): names + [renamed.name]
        }
    }
}
