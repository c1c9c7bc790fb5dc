import EventFleetCore
import EventFleetTestSupport
import Testing

/// Concurrent writers against the real server.
@Suite("Concurrent appends")
struct ConcurrencyTests {
    static let writers = 16

    @Test("16 concurrent .any appenders all succeed with dense positions")
    func anyAppendersAllSucceed() async throws {
        try await TestDatabase.withSchema(poolSize: Self.writers + 2) { schema in
            let store = schema.store
            let results = try await withThrowingTaskGroup(of: AppendResult.self) { group in
                for writer in 0..<Self.writers {
                    group.addTask {
                        try await store.appendToStream(
                            "hot", messages: [message("W\(writer)-a"), message("W\(writer)-b")], options: AppendOptions(expectedVersion: .any)
                        )
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(results.count == Self.writers)
            #expect(results.filter(\.createdNewStream).count == 1, "exactly one writer created the stream")
            #expect(Set(results.map(\.nextExpectedVersion)) == Set((1...Self.writers).map { Int64($0 * 2) }))
            let read = try await store.readStream("hot", options: ReadStreamOptions())
            #expect(read.events.map(\.streamPosition) == Array(1...Int64(Self.writers * 2)))
            #expect(read.currentStreamVersion == Int64(Self.writers * 2))
            // Each writer's two events are adjacent: an append is atomic.
            for pair in stride(from: 0, to: read.events.count, by: 2) {
                let writer = read.events[pair].type.dropLast(2)
                #expect(read.events[pair + 1].type == writer + "-b")
            }
        }
    }

    @Test("16 concurrent .noStream creators: one wins, the rest get the real version")
    func noStreamCreators() async throws {
        try await TestDatabase.withSchema(poolSize: Self.writers + 2) { schema in
            let store = schema.store
            let outcomes = await withTaskGroup(of: Result<AppendResult, EventStoreError>.self) { group in
                for writer in 0..<Self.writers {
                    group.addTask {
                        do {
                            return .success(try await store.appendToStream(
                                "new", messages: [message("W\(writer)"), message("W\(writer)")], options: AppendOptions(expectedVersion: .noStream)
                            ))
                        } catch let error as EventStoreError {
                            return .failure(error)
                        } catch {
                            return .failure(.database(operation: "test", sqlState: nil, message: "\(error)"))
                        }
                    }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            let winners = outcomes.compactMap { try? $0.get() }
            #expect(winners.count == 1)
            #expect(winners.first?.createdNewStream == true)
            for case .failure(let error) in outcomes {
                #expect(error == .versionConflict(streamId: "new", partition: defaultPartition, expected: .noStream, actual: 2))
            }
            let stored = try await store.readStream("new", options: ReadStreamOptions())
            #expect(stored.events.count == 2)
        }
    }

    @Test("concurrent .exact(n) appenders: one wins")
    func exactAppenders() async throws {
        try await TestDatabase.withSchema(poolSize: Self.writers + 2) { schema in
            let store = schema.store
            try await store.appendToStream("s", messages: [message("A"), message("B"), message("C")], options: AppendOptions())
            let outcomes = await withTaskGroup(of: Bool.self) { group in
                for writer in 0..<Self.writers {
                    group.addTask {
                        do {
                            _ = try await store.appendToStream("s", messages: [message("W\(writer)")], options: AppendOptions(expectedVersion: .exact(3)))
                            return true
                        } catch EventStoreError.versionConflict(_, _, .exact(3), let actual) {
                            return actual == 4 ? false : true
                        } catch {
                            return true
                        }
                    }
                }
                return await group.reduce(into: [Bool]()) { $0.append($1) }
            }
            #expect(outcomes.filter { $0 }.count == 1, "one success; every other writer sees a conflict at version 4")
            #expect(try await store.readStream("s", options: ReadStreamOptions()).currentStreamVersion == 4)
        }
    }

    @Test("concurrent retries of one idempotent append store it once")
    func concurrentIdempotentRetries() async throws {
        try await TestDatabase.withSchema(poolSize: Self.writers + 2) { schema in
            let store = schema.store
            let results = try await withThrowingTaskGroup(of: AppendResult.self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        try await store.appendToStream(
                            "s", messages: [message("A", id: "same-1"), message("B", id: "same-2")], options: AppendOptions()
                        )
                    }
                }
                return try await group.reduce(into: [AppendResult]()) { $0.append($1) }
            }
            #expect(Set(results).count == 1, "every retry answers with the same result")
            #expect(try await store.readStream("s", options: ReadStreamOptions()).events.count == 2)
        }
    }
}
