import EventFleetCore
import EventFleetPostgres
import EventFleetTestSupport
import Foundation
import Testing

/// Many commands at once on one stream ("hot streams"): pessimistic handling lets them take turns,
/// optimistic handling gives up with a typed error that says how many attempts it made.
@Suite("Hot streams", .sharingServer, .timeLimit(.minutes(1)))
struct HotStreamTests {
    static let writers = 16
    static let pessimistic = TallyHandler(decider: tally, options: .init(retry: .none, concurrency: .pessimistic))

    @Test(
        "16 concurrent pessimistic commands on one stream all succeed at the first attempt",
        arguments: StoreKind.allCases, [true, false]
    )
    func pessimisticCommandsTakeTurns(kind: StoreKind, streamExists: Bool) async throws {
        try await kind.withStore(poolSize: Self.writers + 2) { base in
            // The in-memory store answers without suspending; yielding after each read lets the
            // other commands run between a command's read and its append, as the database's round
            // trips do.
            let store = YieldingStore(base: base)
            let stream = "tally"
            if streamExists {
                try await Self.pessimistic.handle(.count(writer: -1), streamId: stream, in: store)
            }
            let before = streamExists ? 1 : 0
            // No retries: a command that lost a race would fail.
            let results = try await withThrowingTaskGroup(of: TallyHandler.Result.self) { group in
                for writer in 0..<Self.writers {
                    group.addTask { try await Self.pessimistic.handle(.count(writer: writer), streamId: stream, in: store) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(results.count == Self.writers)
            #expect(results.allSatisfy { $0.attempts == 1 })
            #expect(results.filter(\.createdNewStream).count == (streamExists ? 0 : 1), "exactly one command created the stream")

            let read = try await store.readStream(stream, as: TallyEvent.self)
            #expect(read.currentStreamVersion == Int64(before + Self.writers))
            let counted = read.events.dropFirst(before).map(\.event.counted)
            #expect(counted.count == Self.writers)
            #expect(Set(counted.map(\.writer)) == Set(0..<Self.writers), "each command appended its event once")
            // Each command decided on every event before its own: none decided on a stale state.
            #expect(read.events.map(\.event.counted.seen) == Array(0..<(before + Self.writers)))
        }
    }

    @Test(
        "optimistic commands that lose every attempt throw retriesExhausted with the attempt count",
        arguments: StoreKind.allCases, [0, 1]
    )
    func optimisticContentionExhaustsRetries(kind: StoreKind, retries: Int) async throws {
        try await kind.withStore(poolSize: Self.writers + 2) { base in
            let stream = "tally"
            try await TallyHandler(decider: tally).handle(.count(writer: -1), streamId: stream, in: base)
            // Every command reads before any appends, in each round: one wins each round, the rest
            // conflict, and those of the last round have no retry left.
            let rounds = Array((0...retries).map { Self.writers - $0 })
            let store = LockstepReadStore(base: base, rounds: rounds)
            let handler = TallyHandler(
                decider: tally, options: .init(retry: RetryPolicy(maxRetries: retries, initialDelay: .milliseconds(5)))
            )
            let outcomes = await withTaskGroup(of: Result<TallyHandler.Result, any Error>.self) { group in
                for writer in 0..<Self.writers {
                    group.addTask {
                        do {
                            return .success(try await handler.handle(.count(writer: writer), streamId: stream, in: store))
                        } catch {
                            return .failure(error)
                        }
                    }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            let succeeded = outcomes.compactMap { try? $0.get() }
            #expect(succeeded.count == retries + 1, "one command wins each round")
            let failures = outcomes.compactMap { outcome -> (any Error)? in
                if case .failure(let error) = outcome { error } else { nil }
            }
            #expect(failures.count == Self.writers - retries - 1)
            // The last round read version retries + 1; its winner made it retries + 2.
            let last = Int64(retries + 1)
            for failure in failures {
                #expect(
                    failure as? EventStoreError
                        == .retriesExhausted(
                            streamId: stream, partition: defaultPartition, attempts: retries + 1, expected: .exact(last), actual: last + 1
                        )
                )
            }
            let read = try await base.readStream(stream, options: ReadStreamOptions())
            #expect(read.currentStreamVersion == Int64(1 + retries + 1))
        }
    }

    @Test("a command that decide rejects appends nothing and releases the stream", arguments: StoreKind.allCases)
    func rejectedCommandReleasesTheLock(kind: StoreKind) async throws {
        try await kind.withStore(poolSize: 8) { base in
            let store = YieldingStore(base: base)
            let stream = "tally"
            try await Self.pessimistic.handle(.count(writer: -1), streamId: stream, in: store)
            await #expect(throws: TallyRefused()) {
                try await Self.pessimistic.handle(.refuse, streamId: stream, in: store)
            }
            #expect(try await store.readStream(stream, options: ReadStreamOptions()).currentStreamVersion == 1)
            // Several at once, so that a lock left behind with one connection (or in memory) stops
            // those that come on others.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<4 {
                    group.addTask { try await Self.pessimistic.handle(.count(writer: writer), streamId: stream, in: store) }
                }
                try await group.waitForAll()
            }
            #expect(try await store.readStream(stream, options: ReadStreamOptions()).currentStreamVersion == 5)
        }
    }

    @Test("a rejected first command leaves no stream, and the next first command creates it", arguments: StoreKind.allCases)
    func rejectedFirstCommand(kind: StoreKind) async throws {
        try await kind.withStore { store in
            await #expect(throws: TallyRefused()) {
                try await Self.pessimistic.handle(.refuse, streamId: "new", in: store)
            }
            #expect(try await store.readStream("new", options: ReadStreamOptions()).streamExists == false)
            let created = try await Self.pessimistic.handle(.count(writer: 0), streamId: "new", in: store)
            #expect(created.createdNewStream)
        }
    }

    @Test("pessimistic mode keeps an explicit expected version: a mismatch is a version conflict", arguments: StoreKind.allCases)
    func explicitVersionInPessimisticMode(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let stream = "tally"
            let handler = TallyHandler(decider: tally, options: .init(concurrency: .pessimistic))
            try await handler.handle(.count(writer: 0), streamId: stream, in: store)
            await #expect(throws: EventStoreError.versionConflict(streamId: stream, partition: defaultPartition, expected: .exact(0), actual: 1)) {
                try await handler.handle(.count(writer: 2), streamId: stream, in: store, expectedVersion: .exact(0))
            }
            let matching = try await handler.handle(.count(writer: 3), streamId: stream, in: store, expectedVersion: .exact(1))
            #expect(matching.nextExpectedVersion == 2)
        }
    }

    @Test("pessimistic mode keeps idempotent message ids: a repeated command stores nothing twice", arguments: StoreKind.allCases)
    func messageIdsInPessimisticMode(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let stream = "tally"
            let ids: @Sendable ([TallyEvent]) -> [String] = { events in events.indices.map { "command-1/\($0)" } }
            let first = try await Self.pessimistic.handle(.count(writer: 1), streamId: stream, in: store, messageIds: ids)
            let repeated = try await Self.pessimistic.handle(.count(writer: 1), streamId: stream, in: store, messageIds: ids)
            #expect(first.nextExpectedVersion == 1)
            #expect(repeated.nextExpectedVersion == 1)
            #expect(try await store.readStream(stream, options: ReadStreamOptions()).currentStreamVersion == 1)
        }
    }

    @Test("a store without exclusive access refuses pessimistic commands with a typed error")
    func storeWithoutExclusiveAccess() async throws {
        let store = LockstepReadStore(base: InMemoryEventStore(), rounds: [])
        await #expect(throws: EventStoreError.exclusiveAccessUnsupported(store: "LockstepReadStore")) {
            try await Self.pessimistic.handle(.count(writer: 0), streamId: "tally", in: store)
        }
    }
}

// MARK: A counting domain

/// Every command appends one event that records how many events its decision saw, so any two
/// commands that decided on the same state show it.
struct Counted: EventPayload {
    static let eventType = "Counted"
    var seen: Int
    var writer: Int
}

enum TallyEvent: Event {
    case counted(Counted)

    static let cases: [EventCase<TallyEvent>] = [EventCase(Counted.self, TallyEvent.counted)]

    var payload: any EventPayload {
        switch self {
        case .counted(let event): event
        }
    }

    var counted: Counted {
        switch self {
        case .counted(let event): event
        }
    }
}

enum TallyCommand: Sendable {
    case count(writer: Int)
    case refuse
}

struct TallyRefused: Error, Equatable {}

/// The state is the number of events so far.
let tally = Decider<Int, TallyCommand, TallyEvent>(
    decide: { command, seen in
        switch command {
        case .count(let writer): [.counted(Counted(seen: seen, writer: writer))]
        case .refuse: throw TallyRefused()
        }
    },
    evolve: { seen, _ in seen + 1 },
    initialState: { 0 }
)

typealias TallyHandler = DeciderCommandHandler<Int, TallyCommand, TallyEvent>

// MARK: Contention on demand

/// A store that yields its thread a few times after each stream read, also inside exclusive access.
struct YieldingStore: EventStore {
    let base: any EventStore

    func appendToStream(_ streamId: String, messages: [ProposedMessage], options: AppendOptions) async throws -> AppendResult {
        try await base.appendToStream(streamId, messages: messages, options: options)
    }

    func readStream(_ streamId: String, options: ReadStreamOptions) async throws -> ReadStreamResult<RecordedMessage> {
        let read = try await base.readStream(streamId, options: options)
        for _ in 0..<8 { await Task.yield() }
        return read
    }

    func readAll(after checkpoint: GlobalCheckpoint, options: ReadAllOptions) async throws -> GlobalLogBatch {
        try await base.readAll(after: checkpoint, options: options)
    }

    func logHolds(scope: PartitionScope) async throws -> [LogHold] { try await base.logHolds(scope: scope) }

    func withExclusiveAccess<T: Sendable>(
        toStream streamId: String, partition: String, _ body: (any EventStore) async throws -> T
    ) async throws -> T {
        try await base.withExclusiveAccess(toStream: streamId, partition: partition) { exclusive in
            try await body(YieldingStore(base: exclusive))
        }
    }
}

/// A store whose stream reads return only once a whole round of readers has read: every command of
/// a round decides on the same version before any of them appends. `rounds` gives the readers of
/// each round; reads after the last round pass at once. It has no exclusive access of its own.
final class LockstepReadStore: EventStore {
    private let base: any EventStore
    private let barrier: RoundBarrier

    init(base: any EventStore, rounds: [Int]) {
        self.base = base
        self.barrier = RoundBarrier(rounds: rounds)
    }

    func appendToStream(_ streamId: String, messages: [ProposedMessage], options: AppendOptions) async throws -> AppendResult {
        try await base.appendToStream(streamId, messages: messages, options: options)
    }

    func readStream(_ streamId: String, options: ReadStreamOptions) async throws -> ReadStreamResult<RecordedMessage> {
        let read = try await base.readStream(streamId, options: options)
        await barrier.arrive()
        return read
    }

    func readAll(after checkpoint: GlobalCheckpoint, options: ReadAllOptions) async throws -> GlobalLogBatch {
        try await base.readAll(after: checkpoint, options: options)
    }

    func logHolds(scope: PartitionScope) async throws -> [LogHold] { try await base.logHolds(scope: scope) }
}

/// Lets arrivals through a round at a time, once the round is full.
actor RoundBarrier {
    private var rounds: [Int]
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(rounds: [Int]) {
        self.rounds = rounds
    }

    func arrive() async {
        guard let size = rounds.first else { return }
        if waiting.count + 1 == size {
            rounds.removeFirst()
            let released = waiting
            waiting = []
            for continuation in released { continuation.resume() }
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }
}

@Suite("Hot streams: a frozen lock holder", .sharingServer, .timeLimit(.minutes(1)))
struct FrozenStreamLockTests {
    @Test("a command frozen while it holds a stream's lock is ended by the server, and the next command goes on")
    func frozenHolderReleasesTheLock() async throws {
        try await TestDatabase.withSchema { schema in
            var configuration = schema.configuration
            configuration.statementDeadline = .seconds(4)
            let store = PostgresEventStore(client: schema.client, configuration: configuration)
            let handler = HotStreamTests.pessimistic
            try await handler.handle(.count(writer: -1), streamId: "tally", in: store)
            let (holding, held) = AsyncStream.makeStream(of: Void.self)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    // Holds the lock and never finishes by itself, as a process stopped mid-command.
                    _ = try? await store.withExclusiveAccess(toStream: "tally", partition: defaultPartition) { _ in
                        held.yield()
                        try await Task.sleep(for: .seconds(50))
                    }
                }
                for await _ in holding { break }
                // Waiting for the lock counts against the 4 s deadline: the frozen holder must be
                // ended before then.
                let result = try await handler.handle(.count(writer: 1), streamId: "tally", in: store)
                #expect(result.attempts == 1)
                #expect(result.nextExpectedVersion == 2)
                group.cancelAll()
            }
        }
    }
}

@Suite("Hot streams: a long queue", .sharingServer, .timeLimit(.minutes(1)))
struct StreamLockQueueTests {
    @Test("a command waits for the stream's lock longer than the statement deadline, as behind a long queue of commands")
    func waitOutlastsTheStatementDeadline() async throws {
        try await TestDatabase.withSchema { schema in
            var configuration = schema.configuration
            // 3 s: the command's own transaction may idle half of it between its statements on a
            // loaded machine.
            configuration.statementDeadline = .seconds(3)
            let store = PostgresEventStore(client: schema.client, configuration: configuration)
            let handler = HotStreamTests.pessimistic
            try await handler.handle(.count(writer: -1), streamId: "tally", in: store)
            // Another session holds the stream's lock for 5 s, busy (not idle) as commands ahead
            // in a queue are.
            let holder = try await TestDatabase.connect(schema.configuration)
            do {
                try await holder.query("BEGIN", logger: TestDatabase.logger)
                try await holder.query(
                    "SELECT pg_advisory_xact_lock(hashtext(\(schema.name + "/" + defaultPartition)), hashtext('tally'))", logger: TestDatabase.logger
                )
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        try await holder.query("SELECT pg_sleep(5)", logger: TestDatabase.logger)
                        try await holder.query("COMMIT", logger: TestDatabase.logger)
                    }
                    let result = try await handler.handle(.count(writer: 1), streamId: "tally", in: store)
                    #expect(result.attempts == 1)
                    #expect(result.nextExpectedVersion == 2)
                    try await group.waitForAll()
                }
            } catch {
                try? await holder.close()
                throw error
            }
            try await holder.close()
        }
    }
}
