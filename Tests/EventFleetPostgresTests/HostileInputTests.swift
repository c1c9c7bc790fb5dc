import EventFleetCore
import EventFleetPostgres
import EventFleetTestSupport
import Foundation
import PostgresNIO
import Testing

/// Hostile input against the real server: each input either round-trips verbatim or fails with a
/// specific typed error; afterwards nothing partial is stored and the same store keeps working.
@Suite("Hostile input: the PostgreSQL store", .sharingServer)
struct HostileInputTests {
    // MARK: Large events

    @Test("events of 1 MiB and 8 MiB round-trip through append, read and the global log", arguments: [1 << 20, 8 << 20])
    func largeEvents(size: Int) async throws {
        try await TestDatabase.withSchema { schema in
            let store = schema.store
            let blob = Blob(text: mixedText(utf8Length: size))
            let result = try await store.appendToStream(
                "big", events: [BlobEvent.blob(blob)], options: AppendOptions(partition: "p", expectedVersion: .noStream)
            )
            #expect(result.nextExpectedVersion == 1)

            let read = try await store.readStream("big", options: ReadStreamOptions(partition: "p"))
            let recorded = try #require(read.events.first)
            #expect(recorded.data.count >= size)
            let decoded = try #require(try recorded.decode(as: BlobEvent.self))
            #expect(decoded.event.blob == blob, "the \(size)-byte text comes back unchanged")

            let log = try await readLog(store, options: ReadAllOptions(scope: .partition("p")), count: 1)
            #expect(try log.messages.map { try $0.decode(as: BlobEvent.self)?.event.blob } == [blob])
            try await expectStoreKeepsWorking(schema)
        }
    }

    @Test("a batch of large events with one bad event stores none of them")
    func largeBatchIsAtomic() async throws {
        try await TestDatabase.withSchema { schema in
            let store = schema.store
            try await store.appendToStream("s", messages: [message("First")], options: AppendOptions())
            let large = try ProposedMessage(BlobEvent.blob(Blob(text: mixedText(utf8Length: 1 << 20))))
            let batch = [large, large, large, message("Bad", #"{"a":"\u0000"}"#), large]
            let error = await #expect(throws: EventStoreError.self) {
                try await store.appendToStream("s", messages: batch, options: AppendOptions(expectedVersion: .exact(1)))
            }
            guard case .invalidJSON(streamId: "s", partition: defaultPartition, let reason) = error else {
                Issue.record("expected invalidJSON, got \(String(describing: error))")
                return
            }
            #expect(reason.contains(#"\u0000"#), "\(reason)")
            #expect(try await counts(schema, stream: "s") == Counts(streams: 1, messages: 1))
            #expect(try await store.streamVersion("s") == 1)
            try await expectStoreKeepsWorking(schema)
        }
    }

    // MARK: JSON the database cannot hold

    @Test("JSON with \\u0000, NUL bytes or invalid UTF-8 is a typed invalidJSON error and stores nothing", arguments: BadJSON.all)
    func badJSON(bad: BadJSON) async throws {
        try await TestDatabase.withSchema { schema in
            let store = schema.store
            try await store.appendToStream("s", messages: [message("First")], options: AppendOptions(partition: "p"))
            let hostile = ProposedMessage(type: "Hostile", data: bad.data, metadata: bad.metadata)
            let error = await #expect(throws: EventStoreError.self) {
                try await store.appendToStream(
                    "s", messages: [message("Good"), hostile, message("Good")],
                    options: AppendOptions(partition: "p", expectedVersion: .exact(1))
                )
            }
            guard case .invalidJSON(streamId: "s", partition: "p", let reason) = error else {
                Issue.record("\(bad.label): expected invalidJSON, got \(String(describing: error))")
                return
            }
            #expect(reason.localizedCaseInsensitiveContains(bad.reason), "\(bad.label): \(reason)")
            #expect(try await counts(schema, stream: "s", partition: "p") == Counts(streams: 1, messages: 1))
            #expect(try await store.streamVersion("s", partition: "p") == 1)

            // A new stream is not left behind either.
            await #expect(throws: EventStoreError.self) {
                try await store.appendToStream("new", messages: [hostile], options: AppendOptions(partition: "p"))
            }
            #expect(try await counts(schema, stream: "new", partition: "p") == Counts(streams: 0, messages: 0))

            let next = try await store.appendToStream("s", messages: [message("Next")], options: AppendOptions(partition: "p", expectedVersion: .exact(1)))
            #expect(next.nextExpectedVersion == 2)
        }
    }

    @Test("odd but valid JSON is stored as the same JSON value", arguments: OddJSON.all)
    func oddJSON(odd: OddJSON) async throws {
        try await TestDatabase.withSchema { schema in
            let store = schema.store
            let data = Data(odd.text.utf8)
            let metadata = odd.text.trimmingCharacters(in: .whitespacesAndNewlines).hasPrefix("{") ? data : nil
            try await store.appendToStream(
                "s", messages: [ProposedMessage(type: "Odd", data: data, metadata: metadata)], options: AppendOptions(partition: "p")
            )
            let read = try #require(try await store.readStream("s", options: ReadStreamOptions(partition: "p")).events.first)
            #expect(try await sameJSON(schema, read.data, data), "\(odd.label): \(String(decoding: read.data, as: UTF8.self))")
            if let metadata {
                #expect(try await sameJSON(schema, read.metadata, metadata), "\(odd.label)")
            }
            #expect(try foundationValue(read.data).isEqual(try foundationValue(data)), "\(odd.label)")
            if let expected = odd.storedText {
                #expect(String(decoding: read.data, as: UTF8.self) == expected)
            }
            let log = try await readLog(store, options: ReadAllOptions(scope: .partition("p")), count: 1)
            #expect(try await sameJSON(schema, try #require(log.messages.first).data, data))
        }
    }

    // MARK: Deep nesting

    @Test("10,000 levels of nesting are stored; decoding them fails with malformedEvent, not a crash")
    func deeplyNestedData() async throws {
        try await TestDatabase.withSchema { schema in
            let store = schema.store
            let data = Data((#"{"text":"t","value":"# + deepArrays(10_000) + "}").utf8)
            try await store.appendToStream("deep", messages: [ProposedMessage(type: Blob.eventType, data: data)], options: AppendOptions())
            let read = try #require(try await store.readStream("deep", options: ReadStreamOptions()).events.first)
            #expect(try await sameJSON(schema, read.data, data))

            let decoding = Result { () throws(EventStoreError) in try read.decode(as: BlobEvent.self) }
            guard case .failure(.malformedEvent(type: Blob.eventType, streamId: "deep", partition: defaultPartition, streamPosition: 1, _)) = decoding else {
                Issue.record("expected malformedEvent, got \(decoding)")
                return
            }
            await #expect(throws: EventStoreError.self) {
                try await store.aggregateStream("deep", as: BlobEvent.self, evolve: { count, _ in count + 1 }, initialState: { 0 })
            }
            let log = try await readLog(store, count: 1)
            #expect(log.messages.count == 1)
            try await expectStoreKeepsWorking(schema)
        }
    }

    @Test("nesting beyond PostgreSQL's stack limit is a typed invalidJSON error")
    func tooDeepForPostgres() async throws {
        try await TestDatabase.withSchema { schema in
            let data = Data((#"{"value":"# + deepArrays(200_000) + "}").utf8)
            let error = await #expect(throws: EventStoreError.self) {
                try await schema.store.appendToStream("deep", messages: [ProposedMessage(type: "Deep", data: data)], options: AppendOptions())
            }
            guard case .invalidJSON(streamId: "deep", partition: defaultPartition, let reason) = error else {
                Issue.record("expected invalidJSON, got \(String(describing: error))")
                return
            }
            #expect(reason.contains("stack depth"), "\(reason)")
            #expect(try await counts(schema, stream: "deep") == Counts(streams: 0, messages: 0))
            try await expectStoreKeepsWorking(schema)
        }
    }

    @Test("JSONValue metadata and stream metadata nested deeper than the limit are refused before anything is sent")
    func deepJSONValues() async throws {
        try await TestDatabase.withSchema { schema in
            let store = schema.store
            let event = BlobEvent.blob(Blob(text: "t"))

            // Exactly at the limit: stored, and decodes back to the same value.
            let atLimit: [String: JSONValue] = ["k": nested(JSONValue.maximumNestingDepth - 1)]
            try await store.appendToStream("ok", messages: [try ProposedMessage(event, metadata: atLimit)], options: AppendOptions())
            let read = try #require(try await store.readStream("ok", options: ReadStreamOptions()).events.first)
            let decoded = try #require(try read.decode(as: BlobEvent.self))
            #expect(decoded.metadata == atLimit)

            for depth in [JSONValue.maximumNestingDepth + 1, 10_000] {
                let tooDeep: [String: JSONValue] = ["k": nested(depth - 1)]
                #expect(throws: EventStoreError.invalidArgument(field: "metadata", reason: "nests \(depth) levels deep; the limit is \(JSONValue.maximumNestingDepth)")) {
                    _ = try ProposedMessage(event, metadata: tooDeep)
                }
                await #expect(throws: EventStoreError.invalidArgument(field: "streamMetadata", reason: "nests \(depth) levels deep; the limit is \(JSONValue.maximumNestingDepth)")) {
                    try await store.appendToStream(
                        "s", messages: [message("A")], options: AppendOptions(streamMetadata: tooDeep)
                    )
                }
            }
            #expect(try await counts(schema, stream: "s") == Counts(streams: 0, messages: 0))
            try await expectStoreKeepsWorking(schema)
        }
    }

    @Test("encoding a 10,000-level JSONValue throws instead of overflowing the stack")
    func deepJSONValueEncoding() throws {
        let deep = nested(10_000)
        #expect(deep.nestingDepth == 10_000)
        #expect(throws: EncodingError.self) { _ = try JSONEncoder().encode(deep) }
        let error = #expect(throws: EventStoreError.self) {
            _ = try ProposedMessage(BlobEvent.blob(Blob(text: "t", value: deep)))
        }
        guard case .invalidArgument(field: "data", let reason) = error else {
            Issue.record("expected invalidArgument(data), got \(String(describing: error))")
            return
        }
        #expect(reason.contains("'Blob'") && reason.contains("\(JSONValue.maximumNestingDepth) levels"), "\(reason)")
        #expect(throws: EventStoreError.self) {
            _ = try JSONValue.parseObject(#"{"a":"# + deepArrays(10_000) + "}", field: "data")
        }
    }

    // MARK: Identifiers

    @Test("stream ids, partitions, types and message ids with quotes, backslashes and emoji are stored verbatim", arguments: hostileNames)
    func hostileIdentifiers(name: String) async throws {
        try await TestDatabase.withSchema { schema in
            let store = schema.store
            let stored = ProposedMessage(type: name, data: Data(#"{"a":1}"#.utf8), messageId: name)
            let options = AppendOptions(partition: name, expectedVersion: .noStream, streamType: name, streamMetadata: ["name": .string(name)])
            let first = try await store.appendToStream(name, messages: [stored], options: options)
            #expect(first.createdNewStream)

            var streamRows: [[String]] = []
            for (stream, partition, type, metadata) in try await schema.rows(
                "SELECT stream_id, partition, stream_type, stream_metadata ->> 'name' FROM ef_streams"
            , as: (String, String, String, String).self) {
                streamRows.append([stream, partition, type, metadata])
            }
            #expect(streamRows.map { $0.map(utf8) } == [Array(repeating: utf8(name), count: 4)])
            var messageRows: [[String]] = []
            for (stream, partition, type, id) in try await schema.rows(
                "SELECT stream_id, partition, message_type, message_id FROM ef_messages"
            , as: (String, String, String, String).self) {
                messageRows.append([stream, partition, type, id])
            }
            #expect(messageRows.map { $0.map(utf8) } == [Array(repeating: utf8(name), count: 4)])

            let read = try await store.readStream(name, options: ReadStreamOptions(partition: name))
            #expect(read.events.map { utf8($0.type) } == [utf8(name)])
            #expect(read.events.map { utf8($0.messageId) } == [utf8(name)])
            let log = try await readLog(store, options: ReadAllOptions(scope: .partition(name), types: [name]), count: 1)
            #expect(log.messages.map { [$0.streamId, $0.partition, $0.type, $0.messageId].map(utf8) } == [Array(repeating: utf8(name), count: 4)])

            let retry = try await store.appendToStream(name, messages: [stored], options: options)
            #expect(retry == first, "the hostile message id still makes the retry idempotent")
            #expect(try await counts(schema, stream: name, partition: name) == Counts(streams: 1, messages: 1))
            try await expectStoreKeepsWorking(schema)
        }
    }

    @Test("canonically equal but differently encoded ids are different streams and partitions")
    func unicodeNormalization() async throws {
        try await TestDatabase.withSchema { schema in
            let store = schema.store
            let composed = "caf\u{E9}"
            let decomposed = "cafe\u{301}"
            #expect(composed == decomposed, "Swift compares them as equal")
            try await store.appendToStream(composed, messages: [message("Composed")], options: AppendOptions(partition: composed, expectedVersion: .noStream))
            try await store.appendToStream(decomposed, messages: [message("Decomposed")], options: AppendOptions(partition: decomposed, expectedVersion: .noStream))
            try await store.appendToStream(decomposed, messages: [message("Mixed")], options: AppendOptions(partition: composed, expectedVersion: .noStream))
            #expect(try await schema.count("SELECT count(*) FROM ef_streams") == 3)

            let log = try await readLog(store, count: 3)
            #expect(log.messages.map { [utf8($0.streamId), utf8($0.partition)] } == [
                [utf8(composed), utf8(composed)], [utf8(decomposed), utf8(decomposed)], [utf8(decomposed), utf8(composed)],
            ])
            #expect(try await store.readStream(composed, options: ReadStreamOptions(partition: composed)).events.map(\.type) == ["Composed"])
            #expect(try await store.readStream(decomposed, options: ReadStreamOptions(partition: composed)).events.map(\.type) == ["Mixed"])
        }
    }

    @Test("identifiers over 1,000 bytes or with NUL are a validation error naming the field", arguments: IdentifierField.allCases)
    func oversizedIdentifiers(field: IdentifierField) async throws {
        try await TestDatabase.withSchema { schema in
            let cases: [(value: String, reason: String)] = [
                (String(repeating: "x", count: 10_000), "is 10000 bytes long; the limit is 1000 bytes of UTF-8"),
                (String(repeating: "🛒", count: 10_000), "is 40000 bytes long; the limit is 1000 bytes of UTF-8"),
                (String(repeating: "'", count: 1_001), "is 1001 bytes long; the limit is 1000 bytes of UTF-8"),
                ("a\u{0}b", "must not contain NUL bytes"),
            ]
            for (value, reason) in cases {
                await #expect(throws: EventStoreError.invalidArgument(field: field.rawValue, reason: reason)) {
                    try await field.append(value, to: schema.store)
                }
            }
            #expect(try await schema.count("SELECT count(*) FROM ef_streams") == 0)
            #expect(try await schema.count("SELECT count(*) FROM ef_messages") == 0)
            try await expectStoreKeepsWorking(schema)
        }
    }

    // MARK: Versions and positions

    @Test("negative expected versions are a validation error", arguments: [Int64(-1), Int64.min])
    func negativeExpectedVersion(version: Int64) async throws {
        try await TestDatabase.withSchema { schema in
            try await schema.store.appendToStream("s", messages: [message("A")], options: AppendOptions())
            await #expect(throws: EventStoreError.invalidArgument(field: "expectedVersion", reason: "must not be negative (got \(version))")) {
                try await schema.store.appendToStream("s", messages: [message("B")], options: AppendOptions(expectedVersion: .exact(version)))
            }
            #expect(try await counts(schema, stream: "s") == Counts(streams: 1, messages: 1))
            try await expectStoreKeepsWorking(schema)
        }
    }

    @Test("exact(0) and exact(Int64.max) conflict with the real version and create nothing")
    func extremeExpectedVersions() async throws {
        try await TestDatabase.withSchema { schema async throws in
            let store = schema.store
            await #expect(throws: EventStoreError.versionConflict(streamId: "s", partition: defaultPartition, expected: .exact(.max), actual: 0)) {
                try await store.appendToStream("s", messages: [message("A")], options: AppendOptions(expectedVersion: .exact(.max)))
            }
            #expect(try await counts(schema, stream: "s") == Counts(streams: 0, messages: 0), "a refused append leaves no stream row")

            #expect(try await store.appendToStream("s", messages: [message("A")], options: AppendOptions(expectedVersion: .exact(0))).createdNewStream)
            await #expect(throws: EventStoreError.versionConflict(streamId: "s", partition: defaultPartition, expected: .exact(0), actual: 1)) {
                try await store.appendToStream("s", messages: [message("B")], options: AppendOptions(expectedVersion: .exact(0)))
            }
            await #expect(throws: EventStoreError.versionConflict(streamId: "s", partition: defaultPartition, expected: .exact(.max), actual: 1)) {
                try await store.appendToStream("s", messages: [message("B")], options: AppendOptions(expectedVersion: .exact(.max)))
            }
            #expect(try await counts(schema, stream: "s") == Counts(streams: 1, messages: 1))
            #expect(try await store.appendToStream("s", messages: [message("B")], options: AppendOptions(expectedVersion: .exact(1))).nextExpectedVersion == 2)
        }
    }

    @Test("stream reads at negative, zero and Int64.max positions and counts")
    func extremeReadPositions() async throws {
        try await TestDatabase.withSchema { schema in
            let store = schema.store
            try await store.appendToStream("s", messages: [message("A"), message("B"), message("C")], options: AppendOptions())
            for from in [Int64(0), -1, .min] {
                await #expect(throws: EventStoreError.invalidArgument(field: "from", reason: "stream positions start at 1 (got \(from))")) {
                    try await store.readStream("s", options: ReadStreamOptions(from: from))
                }
            }
            await #expect(throws: EventStoreError.invalidArgument(field: "to", reason: "must not be below from (0 < 1)")) {
                try await store.readStream("s", options: ReadStreamOptions(to: 0))
            }
            await #expect(throws: EventStoreError.invalidArgument(field: "maxCount", reason: "must not be negative")) {
                try await store.readStream("s", options: ReadStreamOptions(maxCount: -1))
            }
            let past = try await store.readStream("s", options: ReadStreamOptions(from: .max))
            #expect(past.events.isEmpty && past.streamExists && past.currentStreamVersion == 3)
            let missing = try await store.readStream("missing", options: ReadStreamOptions(from: .max, to: .max))
            #expect(missing.events.isEmpty && !missing.streamExists)
            #expect(try await store.readStream("s", options: ReadStreamOptions(to: .max, maxCount: .max)).events.map(\.streamPosition) == [1, 2, 3])
            let none = try await store.readStream("s", options: ReadStreamOptions(maxCount: 0))
            #expect(none.events.isEmpty && none.currentStreamVersion == 3)

            for pageSize in [0, -1] {
                await #expect(throws: EventStoreError.invalidArgument(field: "pageSize", reason: "must be positive")) {
                    try await store.aggregateStream(
                        "s", as: BlobEvent.self, options: AggregateStreamOptions(unknownTypes: .skip, pageSize: pageSize),
                        evolve: { count, _ in count + 1 }, initialState: { 0 }
                    )
                }
                await #expect(throws: EventStoreError.invalidArgument(field: "pageSize", reason: "must be positive")) {
                    for try await _ in store.streamMessages("s", pageSize: pageSize) {}
                }
                await #expect(throws: EventStoreError.invalidArgument(field: "batchSize", reason: "must be positive")) {
                    try await store.readAll(after: .start, options: ReadAllOptions(batchSize: pageSize))
                }
            }
            #expect(try await readLog(store, options: ReadAllOptions(batchSize: .max), count: 3).messages.count == 3)
        }
    }

    @Test("global-log checkpoints at negative and maximal positions")
    func extremeCheckpoints() async throws {
        try await TestDatabase.withSchema { schema in
            let store = schema.store
            try await store.appendToStream("s", messages: [message("A"), message("B")], options: AppendOptions())
            let all = try await readLog(store, count: 2).messages
            let last = try #require(all.last)
            for checkpoint in [GlobalCheckpoint(position: -1), GlobalCheckpoint(position: .min)] {
                #expect(try await store.readAll(after: checkpoint, options: ReadAllOptions()).messages.map(\.messageId) == all.map(\.messageId))
            }
            // A held partition that is not the store's, and held positions at the extremes.
            let foreign = GlobalCheckpoint(position: last.globalPosition, held: [.init(key: .min, position: .min), .init(key: .max, position: .max)])
            #expect(try await store.readAll(after: foreign, options: ReadAllOptions()).messages.isEmpty)
            let beyond = try await store.readAll(after: GlobalCheckpoint(position: .max), options: ReadAllOptions())
            #expect(beyond.messages.isEmpty)
            #expect(beyond.checkpoint == GlobalCheckpoint(position: .max))
            #expect(!beyond.isHeldBack)
            #expect(try await store.readAll(after: .start, options: ReadAllOptions(scope: .only([]))).messages.isEmpty)
            #expect(try await store.globalLogHead(scope: .only([])) == nil)
            #expect(try await store.globalLogHead() == last.globalPosition)
        }
    }

    // MARK: Connections

    @Test("a wrong password is a prompt connectionFailed naming password authentication")
    func wrongPassword() async throws {
        var wrong = try DatabaseConfiguration(url: TestDatabase.baseURL())
        wrong.password = "wrong'; DROP DATABASE eventfleet; --"
        let configuration = wrong
        let error = try await failure(within: promptly) { try await configuration.checkConnection() }
        guard case .connectionFailed(let target, let reason) = error else {
            Issue.record("expected connectionFailed, got \(error)")
            return
        }
        #expect(target == configuration.target)
        #expect(reason.contains("password authentication failed"), "\(reason)")
        #expect(!reason.contains("DROP DATABASE") && !"\(error)".contains("DROP DATABASE"), "the password never shows")
    }

    @Test("a database that does not exist is a prompt connectionFailed naming it")
    func missingDatabase() async throws {
        var missing = try DatabaseConfiguration(url: TestDatabase.baseURL())
        missing.database = "ef_missing_\(randomSuffix())"
        let configuration = missing
        let error = try await failure(within: promptly) { try await configuration.checkConnection() }
        guard case .connectionFailed(_, let reason) = error else {
            Issue.record("expected connectionFailed, got \(error)")
            return
        }
        #expect(reason.contains("\(configuration.database ?? "")\" does not exist"), "\(reason)")
    }

    @Test("a refused port is a prompt connectionFailed naming host and port")
    func refusedPort() async throws {
        var refused = try DatabaseConfiguration(url: TestDatabase.baseURL())
        refused.port = try unusedPort()
        let configuration = refused
        let error = try await failure(within: promptly) { try await configuration.checkConnection() }
        guard case .connectionFailed(let target, let reason) = error else {
            Issue.record("expected connectionFailed, got \(error)")
            return
        }
        #expect(target == "\(configuration.host):\(configuration.port)")
        #expect(reason.localizedCaseInsensitiveContains("refused"), "\(reason)")
    }

    @Test("an append whose backend is terminated mid-query fails typed, writes nothing, and the store recovers")
    func terminatedMidAppend() async throws {
        try await TestDatabase.withSchema { schema in
            let store = schema.store
            try await store.appendToStream("s", messages: [message("A")], options: AppendOptions())
            let locker = try await schema.connect()
            let outcome = await capture {
                try await appendInterrupted(store: store, stream: "s", holdingLockOn: locker) { victim in
                    _ = try await locker.query("SELECT pg_terminate_backend(\(victim))", logger: TestDatabase.logger)
                }
            }
            _ = try? await locker.query("ROLLBACK", logger: TestDatabase.logger)
            try? await locker.close()
            expectConnectionLoss(try outcome.get())
            #expect(try await counts(schema, stream: "s") == Counts(streams: 1, messages: 1))
            #expect(try await store.streamVersion("s") == 1)
            let next = try await store.appendToStream("s", messages: [message("B")], options: AppendOptions(expectedVersion: .exact(1)))
            #expect(next.nextExpectedVersion == 2, "the same store appends again on a fresh connection")
        }
    }

    @Test("a database dropped mid-append is a typed error and the process stays up")
    func databaseDroppedMidAppend() async throws {
        let base = try DatabaseConfiguration(url: TestDatabase.baseURL())
        let name = "ef_hostile_\(randomSuffix())"
        let admin = try await TestDatabase.connect(base)
        try await admin.query("CREATE DATABASE \(unescaped: name)", logger: TestDatabase.logger)
        var throwaway = base
        throwaway.database = name
        throwaway.poolSize = 4
        let configuration = throwaway
        let client = PostgresClient(configuration: try configuration.clientConfiguration(), backgroundLogger: TestDatabase.logger)
        let store = PostgresEventStore(client: client, configuration: configuration, logger: TestDatabase.logger)
        let outcome: Result<EventStoreError, any Error> = await withTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            do {
                try await MigrationRunner(store: store, logger: TestDatabase.logger).migrate()
                try await store.appendToStream("s", messages: [message("A")], options: AppendOptions())
                // The next append stalls in its insert until the drop ends its backend. (A lock held
                // by another session would not do: the drop ends that session too, and the append
                // could commit in between.)
                try await store.database.query("stall appends", """
                    CREATE FUNCTION stall() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(60); RETURN NEW; END $$
                    """)
                try await store.database.query(
                    "stall appends", "CREATE TRIGGER stall BEFORE INSERT ON ef_messages FOR EACH ROW EXECUTE FUNCTION stall()"
                )
                return .success(try await failure(within: promptly * 2) {
                    try await withThrowingTaskGroup(of: Bool.self) { group in
                        group.addTask {
                            try await store.appendToStream("s", messages: [message("Interrupted")], options: AppendOptions())
                            return true
                        }
                        group.addTask {
                            try await waitUntil(timeout: promptly, "the append stalls") {
                                for try await _ in try await admin.query(
                                    "SELECT 1 FROM pg_stat_activity WHERE datname = \(name) AND wait_event = 'PgSleep'", logger: TestDatabase.logger
                                ) { return true }
                                return false
                            }
                            _ = try await admin.query("DROP DATABASE \(unescaped: name) WITH (FORCE)", logger: TestDatabase.logger)
                            return false
                        }
                        defer { group.cancelAll() }
                        // The append's outcome, not the drop's, ends the wait.
                        while let appendEnded = try await group.next(), !appendEnded {}
                    }
                })
            } catch {
                return .failure(error)
            }
        }
        _ = try? await admin.query("DROP DATABASE IF EXISTS \(unescaped: name) WITH (FORCE)", logger: TestDatabase.logger)
        try? await admin.close()
        expectConnectionLoss(try outcome.get())

        let reconnect = try await failure(within: promptly) { try await configuration.checkConnection() }
        guard case .connectionFailed(_, let reason) = reconnect else {
            Issue.record("expected connectionFailed, got \(reconnect)")
            return
        }
        #expect(reason.contains("does not exist"), "\(reason)")
    }
}

// MARK: - Cases

/// JSON the store must refuse, and a fragment of the reason it must give.
struct BadJSON: Sendable, CustomTestStringConvertible {
    var label: String
    var data: Data
    var metadata: Data?
    var reason: String

    var testDescription: String { label }

    static func text(_ label: String, _ json: String, metadata: String? = nil, reason: String) -> BadJSON {
        BadJSON(label: label, data: Data(json.utf8), metadata: metadata.map { Data($0.utf8) }, reason: reason)
    }

    static func bytes(_ label: String, _ prefix: String, _ bytes: [UInt8], metadata: Bool = false, reason: String) -> BadJSON {
        let hostile = Data(#"{"a":""#.utf8) + Data(prefix.utf8) + Data(bytes) + Data(#""}"#.utf8)
        return BadJSON(
            label: label, data: metadata ? Data("{}".utf8) : hostile, metadata: metadata ? hostile : nil, reason: reason
        )
    }

    static let all: [BadJSON] = [
        .text(#"\u0000 in a string"#, #"{"a":"x\u0000y"}"#, reason: #"\u0000"#),
        .text(#"\u0000 in a key"#, #"{"x\u0000":1}"#, reason: #"\u0000"#),
        .text(#"\u0000 in metadata"#, "{}", metadata: #"{"m":["\u0000"]}"#, reason: #"\u0000"#),
        .text("escaped lone surrogate", #"{"a":"\ud800"}"#, reason: "surrogate"),
        .text("truncated JSON", #"{"a":"#, reason: "json"),
        .text("two documents", "{} {}", reason: "json"),
        .text("empty data", "", reason: "the data of event 2 ('Hostile') is empty"),
        .text("empty metadata", "{}", metadata: "", reason: "the metadata of event 2 ('Hostile') is empty"),
        .bytes("raw NUL byte", "x", [0x00], reason: "the data of event 2 ('Hostile') holds a NUL byte at offset 7"),
        .bytes("invalid UTF-8", "x", [0xFF, 0xFE], reason: "the data of event 2 ('Hostile') is not valid UTF-8"),
        .bytes("overlong UTF-8", "", [0xC0, 0xAF], reason: "not valid UTF-8"),
        .bytes("UTF-8-encoded surrogate", "", [0xED, 0xA0, 0x80], reason: "not valid UTF-8"),
        .bytes("truncated UTF-8 sequence", "caf", [0xC3], reason: "not valid UTF-8"),
        .bytes("invalid UTF-8 in metadata", "", [0x80], metadata: true, reason: "the metadata of event 2 ('Hostile') is not valid UTF-8"),
        .text("metadata that is an array", "{}", metadata: " [1, 2]", reason: "the metadata of event 2 ('Hostile') must be a JSON object"),
        .text("metadata that is a string", "{}", metadata: #""{}""#, reason: "must be a JSON object"),
        .text(
            "metadata nested 10,000 levels", "{}", metadata: #"{"m":"\"[[","n":"# + deepArrays(9_999) + "}",
            reason: "the metadata of event 2 ('Hostile') nests 10000 levels deep; the limit is \(JSONValue.maximumNestingDepth)"
        ),
    ]
}

/// Valid JSON that looks dangerous; it must come back as the same JSON value.
struct OddJSON: Sendable, CustomTestStringConvertible {
    var label: String
    var text: String
    /// The exact text read back, where PostgreSQL's normalization is part of the contract.
    var storedText: String?

    var testDescription: String { label }

    static let all: [OddJSON] = [
        OddJSON(label: "escaped backslash before u0000", text: #"{"text":"\\u0000 is only text here"}"#),
        OddJSON(label: "emoji, ZWJ, RTL, combining marks", text: #"{"escaped":"\uD83D\uDED2","raw":"🛒","zwj":"👩‍👩‍👧","rtl":"مرحبا \u202E","combining":"e\u0301"}"#),
        OddJSON(label: "escaped control characters", text: #"{"c":"\u0001\u001f\t\n\r\b\f\"\\\/"}"#),
        OddJSON(label: "SQL and dollar quoting", text: #"{"sql":"'); DROP TABLE ef_messages; --","dollar":"$1 $$ $tag$","path":"C:\\temp\\"}"#),
        OddJSON(label: "numbers beyond Double", text: #"{"big":123456789012345678901234567890,"tiny":1e-300,"exp":1E+2,"neg":-0.5}"#),
        OddJSON(label: "a top-level array", text: "[1,[2,[3]],{}]"),
        OddJSON(label: "a top-level string", text: #""just a string""#),
        OddJSON(label: "a top-level number", text: "42"),
        OddJSON(label: "a top-level null", text: "null"),
        OddJSON(label: "duplicate keys (the last one wins, as in jsonb)", text: #"{"dup":1,"dup":2}"#, storedText: #"{"dup": 2}"#),
        OddJSON(label: "whitespace everywhere", text: " \n\t{ \"a\" : [ 1 , 2 ] }\r\n "),
    ]
}

/// Names that must be stored byte for byte as stream id, partition, type, stream type and message id.
private let hostileNames: [String] = [
    "x'); DROP TABLE ef_messages; --",
    #""quoted" \"escaped\" 'single'"#,
    #"back\slash\\ and \x00 and \u0000 as text"#,
    "semi;colon; $1 $$ $tag$ E'\\x00'",
    "100%_like_*?[]",
    "🛒👩‍👩‍👧🇩🇪",
    "line\nbreak\ttab\rreturn",
    " leading and trailing spaces ",
    "مرحبا עברית \u{202E}override",
    String(repeating: "🛒", count: 250),
    String(repeating: #"'\;"#, count: 333) + "x",
]

/// The identifier fields of an append.
enum IdentifierField: String, CaseIterable, Sendable {
    case streamId, partition, type, streamType, messageId

    func append(_ value: String, to store: PostgresEventStore) async throws {
        let stream = self == .streamId ? value : "s"
        let options = AppendOptions(partition: self == .partition ? value : "p", streamType: self == .streamType ? value : nil)
        let proposed = ProposedMessage(type: self == .type ? value : "A", data: Data("{}".utf8), messageId: self == .messageId ? value : nil)
        try await store.appendToStream(stream, messages: [proposed], options: options)
    }
}

// MARK: - Events

private struct Blob: EventPayload, Hashable {
    static let eventType = "Blob"
    var text: String
    var value: JSONValue?
}

private enum BlobEvent: Event {
    case blob(Blob)

    static let cases: [EventCase<BlobEvent>] = [EventCase(Blob.self, BlobEvent.blob)]

    var payload: any EventPayload {
        switch self {
        case .blob(let blob): blob
        }
    }

    var blob: Blob {
        switch self {
        case .blob(let blob): blob
        }
    }
}

// MARK: - Helpers

/// Rows of one stream: its stream row and its events.
private struct Counts: Equatable, CustomStringConvertible {
    var streams: Int64
    var messages: Int64

    var description: String { "\(streams) stream rows, \(messages) messages" }
}

private func counts(_ schema: TestSchema, stream: String, partition: String = defaultPartition) async throws -> Counts {
    Counts(
        streams: try await schema.count("SELECT count(*) FROM ef_streams WHERE partition = \(partition) AND stream_id = \(stream)"),
        messages: try await schema.count("SELECT count(*) FROM ef_messages WHERE partition = \(partition) AND stream_id = \(stream)")
    )
}

/// A normal append and read on the same store, after whatever went before.
private func expectStoreKeepsWorking(_ schema: TestSchema) async throws {
    let stream = "after-\(randomSuffix())"
    let result = try await schema.store.appendToStream(
        stream, messages: [message("Normal", #"{"ok":true}"#)], options: AppendOptions(expectedVersion: .noStream)
    )
    #expect(result.createdNewStream)
    #expect(try await schema.store.readStream(stream, options: ReadStreamOptions()).events.map(\.type) == ["Normal"])
}

/// Whether PostgreSQL reads both texts as the same `jsonb` value.
private func sameJSON(_ schema: TestSchema, _ left: Data, _ right: Data) async throws -> Bool {
    let left = String(decoding: left, as: UTF8.self)
    let right = String(decoding: right, as: UTF8.self)
    return try await schema.rows("SELECT \(left)::jsonb = \(right)::jsonb", as: Bool.self).first ?? false
}

/// The value Foundation parses, for a second, independent comparison.
private func foundationValue(_ data: Data) throws -> NSObject {
    try #require(try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) as? NSObject)
}

private func utf8(_ text: String) -> [UInt8] { Array(text.utf8) }

/// Text of exactly `length` UTF-8 bytes, mixing one-, two- and four-byte characters and JSON escapes.
private func mixedText(utf8Length length: Int) -> String {
    let unit = #"ü🛒x"\"#
    let units = length / unit.utf8.count
    let text = String(repeating: unit, count: units)
    return text + String(repeating: "x", count: length - text.utf8.count)
}

private func deepArrays(_ depth: Int) -> String {
    String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
}

/// A value whose arrays nest `depth` levels deep.
private func nested(_ depth: Int) -> JSONValue {
    var value = JSONValue.null
    for _ in 0..<depth { value = .array([value]) }
    return value
}

/// ``readGlobalLog(_:after:options:count:)`` with a longer wait: the log's horizon is cluster-wide,
/// and on a server shared with benchmarks and soak tests it can lag for more than ten seconds.
private func readLog(
    _ store: PostgresEventStore, options: ReadAllOptions = ReadAllOptions(), count: Int
) async throws -> (messages: [RecordedMessage], checkpoint: GlobalCheckpoint) {
    try await readGlobalLog(store, options: options, count: count, timeout: .seconds(60))
}

/// The outcome of `body`, thrown or returned.
private func capture<T>(_ body: () async throws -> T) async -> Result<T, any Error> {
    do {
        return .success(try await body())
    } catch {
        return .failure(error)
    }
}

private func randomSuffix() -> String {
    String(UInt64.random(in: 0...UInt64.max), radix: 36)
}

/// A loopback port nothing listens on: bound by the kernel's choice, then closed.
private func unusedPort() throws -> Int {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { throw SocketError(call: "socket") }
    defer { close(descriptor) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
            bind(descriptor, pointer, length) == 0 && getsockname(descriptor, pointer, &length) == 0
        }
    }
    guard bound else { throw SocketError(call: "bind") }
    return Int(UInt16(bigEndian: address.sin_port))
}

private struct SocketError: Error {
    var call: String
}

/// The bound for answers that must come "at once": generous, because the machine and the server are
/// shared with other suites and benchmarks, yet finite, where a hang never ends.
private let promptly = Duration.seconds(15)

/// Runs `body`, which must fail with an ``EventStoreError`` within `limit`.
private func failure(within limit: Duration, _ body: @escaping @Sendable () async throws -> Void) async throws -> EventStoreError {
    let outcome = try await withThrowingTaskGroup(of: Result<Void, any Error>?.self) { group in
        group.addTask {
            do {
                try await body()
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        group.addTask {
            try await Task.sleep(for: limit)
            return nil
        }
        defer { group.cancelAll() }
        return try await group.next() ?? nil
    }
    switch outcome {
    case nil: throw TimedOut(description: "no answer within \(limit)")
    case .success: throw TimedOut(description: "expected an error, but the call succeeded")
    case .failure(let error as EventStoreError): return error
    case .failure(let error): throw error
    }
}

/// Starts an append to `stream` that waits for the stream row lock `locker` takes, runs `interrupt`
/// with the waiting backend's pid, and returns the append's error (within twice ``promptly``).
private func appendInterrupted(
    store: PostgresEventStore, stream: String, holdingLockOn locker: PostgresConnection,
    interrupt: @escaping @Sendable (Int32) async throws -> Void
) async throws -> EventStoreError {
    let logger = TestDatabase.logger
    try await locker.query("BEGIN", logger: logger)
    try await locker.query("SELECT 1 FROM ef_streams WHERE stream_id = \(stream) FOR UPDATE", logger: logger)
    var lockerPid: Int32 = 0
    for try await pid in try await locker.query("SELECT pg_backend_pid()", logger: logger).decode(Int32.self) { lockerPid = pid }
    let holder = lockerPid
    return try await failure(within: promptly * 2) {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await store.appendToStream(stream, messages: [message("Interrupted")], options: AppendOptions())
                return true
            }
            group.addTask {
                var victim: Int32?
                try await waitUntil(timeout: promptly, "the append waits for the stream lock") {
                    for try await pid in try await locker.query(
                        "SELECT pid FROM pg_stat_activity WHERE \(holder) = ANY (pg_blocking_pids(pid))", logger: logger
                    ).decode(Int32.self) {
                        victim = pid
                    }
                    return victim != nil
                }
                try await interrupt(victim ?? 0)
                return false
            }
            defer { group.cancelAll() }
            // The append's outcome, not the interruption's, ends the wait.
            while let appendEnded = try await group.next(), !appendEnded {}
        }
    }
}

/// The error of an append whose backend the server ended (`pg_terminate_backend`, `DROP DATABASE
/// ... WITH (FORCE)`): PostgreSQL's 57P01, typed, and transient so that callers retry.
private func expectConnectionLoss(_ error: EventStoreError, sourceLocation: SourceLocation = #_sourceLocation) {
    guard case .database(operation: "append", sqlState: "57P01", let message) = error else {
        Issue.record("expected the append's 57P01 database error, got \(error)", sourceLocation: sourceLocation)
        return
    }
    #expect(message == "terminating connection due to administrator command", sourceLocation: sourceLocation)
    #expect(PostgresErrorMapping.isTransient(error), sourceLocation: sourceLocation)
}
