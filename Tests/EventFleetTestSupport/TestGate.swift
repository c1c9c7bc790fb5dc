import Testing

/// Runs the tests that start real fleets, processes and long-lived consumers, or restart the server,
/// one at a time and alone; every other database test runs in parallel with the rest.
///
/// On two cores, fleet processes and consumers that run beside other tests starve their heartbeats
/// and leases, and tests that time the server or restart it must have it to themselves. Swift Testing's
/// `.serialized` orders the tests of one suite only; this gate holds across suites and test
/// targets, so a plain `swift test` runs them as they need.
///
/// A test (or suite) marked ``Trait/exclusive`` holds the gate alone; every schema a test takes
/// (``TestDatabase/withSchema(poolSize:migrate:_:)``) holds it shared.
package actor TestGate {
    private static let gate = TestGate()

    /// What the current task holds, so that nested uses pass through instead of waiting for
    /// themselves.
    @TaskLocal static var held: Hold?

    enum Hold { case shared, exclusive }

    private var readers = 0
    private var writer = false
    private var waitingReaders: [CheckedContinuation<Void, Never>] = []
    private var waitingWriters: [CheckedContinuation<Void, Never>] = []

    /// Runs `body` while no exclusive test runs.
    package static func shared<T>(_ body: () async throws -> T) async throws -> T {
        try await holding(.shared, body)
    }

    /// Runs `body` while nothing else holds the gate.
    package static func exclusive<T>(_ body: () async throws -> T) async throws -> T {
        try await holding(.exclusive, body)
    }

    private static func holding<T>(_ hold: Hold, _ body: () async throws -> T) async throws -> T {
        // Already held by this task, at least as strongly: pass through.
        if held == .exclusive || (held == .shared && hold == .shared) { return try await body() }
        let exclusive = hold == .exclusive
        await gate.acquire(exclusive: exclusive)
        do {
            let value = try await $held.withValue(hold) { try await body() }
            await gate.release(exclusive: exclusive)
            return value
        } catch {
            await gate.release(exclusive: exclusive)
            throw error
        }
    }

    private func acquire(exclusive: Bool) async {
        if exclusive {
            guard writer || readers > 0 else {
                writer = true
                return
            }
            await withCheckedContinuation { waitingWriters.append($0) }
        } else {
            // A waiting exclusive test goes first, so a stream of parallel tests cannot starve it.
            guard writer || !waitingWriters.isEmpty else {
                readers += 1
                return
            }
            await withCheckedContinuation { waitingReaders.append($0) }
        }
    }

    /// Hands the gate on: to the next exclusive test once no one holds it, else to every waiting
    /// reader. The waiter is counted in before it resumes.
    private func release(exclusive: Bool) {
        if exclusive { writer = false } else { readers -= 1 }
        guard !writer, readers == 0 else { return }
        if !waitingWriters.isEmpty {
            writer = true
            waitingWriters.removeFirst().resume()
        } else {
            readers += waitingReaders.count
            for reader in waitingReaders { reader.resume() }
            waitingReaders = []
        }
    }
}

/// Holds the ``TestGate`` for each test it applies to, alone or shared.
///
/// The gate is taken once per test function, around all of its cases, and outside the test's
/// `.timeLimit`: Swift Testing starts a time limit inside the scope of a test case but outside the
/// scope of the test function, so time spent waiting for other tests never counts against it.
package struct GateTrait: TestTrait, SuiteTrait, TestScoping {
    let exclusive: Bool

    package var isRecursive: Bool { true }

    /// Only a test function's own scope: a suite's scope would hold the gate for all of its tests
    /// at once (an exclusive suite's tests would then run beside each other), and a test case's
    /// scope lies inside the time limit.
    package func scopeProvider(for test: Test, testCase: Test.Case?) -> GateTrait? {
        !test.isSuite && testCase == nil ? self : nil
    }

    package func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        if exclusive {
            try await TestGate.exclusive(function)
        } else {
            try await TestGate.shared(function)
        }
    }
}

extension Trait where Self == GateTrait {
    /// The test runs alone: no other test that uses the database runs meanwhile (see ``TestGate``).
    package static var exclusive: Self { GateTrait(exclusive: true) }

    /// The test must not run while an exclusive test does. ``TestDatabase/withSchema(poolSize:migrate:_:)``
    /// holds the gate by itself, inside the test; a test that talks to the server outside a schema
    /// of its own, or has a `.timeLimit` that waiting for the gate must not eat into, says so here.
    package static var sharingServer: Self { GateTrait(exclusive: false) }
}
