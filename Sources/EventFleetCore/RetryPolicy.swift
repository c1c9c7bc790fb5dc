import Foundation

/// How often and how patiently an operation is retried, with full-jitter exponential backoff.
public struct RetryPolicy: Sendable, Hashable {
    /// Retries after the first attempt; 0 disables retrying.
    public var maxRetries: Int
    /// The ceiling of the first delay.
    public var initialDelay: Duration
    /// The largest delay ceiling.
    public var maxDelay: Duration
    /// How much the ceiling grows per retry.
    public var multiplier: Double

    public init(maxRetries: Int = 5, initialDelay: Duration = .milliseconds(10), maxDelay: Duration = .seconds(1), multiplier: Double = 2) {
        self.maxRetries = maxRetries
        self.initialDelay = initialDelay
        self.maxDelay = maxDelay
        self.multiplier = multiplier
    }

    /// No retries.
    public static let none = RetryPolicy(maxRetries: 0)

    /// The delay before retry number `retry` (1-based): uniformly random up to the capped exponential
    /// ceiling, so that writers that collided do not collide again in lockstep.
    public func delay<G: RandomNumberGenerator>(beforeRetry retry: Int, using generator: inout G) -> Duration {
        let ceiling = initialDelay.seconds * pow(multiplier, Double(max(0, retry - 1)))
        let capped = min(ceiling, maxDelay.seconds)
        return .seconds(Double.random(in: 0...capped, using: &generator))
    }

    public func delay(beforeRetry retry: Int) -> Duration {
        var generator = SystemRandomNumberGenerator()
        return delay(beforeRetry: retry, using: &generator)
    }
}

/// The waits of a loop that retries after failures it does not count as its own (the database
/// being away): growing with each failure in a row, jittered, and starting over after a success.
package struct Backoff: Sendable {
    /// The policy of the fleet's loops: from 100 ms up to 5 s.
    package static let transientFailures = RetryPolicy(initialDelay: .milliseconds(100), maxDelay: .seconds(5))

    private let policy: RetryPolicy
    /// The failures in a row so far.
    package private(set) var failures = 0

    package init(_ policy: RetryPolicy = Backoff.transientFailures) {
        self.policy = policy
    }

    /// Counts a failure and returns how long to wait before the next attempt.
    package mutating func next() -> Duration {
        failures += 1
        // The ceiling stops growing long before this; the cap keeps the exponent finite.
        return policy.delay(beforeRetry: min(failures, 16))
    }

    /// A success: the next failure starts from the shortest wait again.
    package mutating func reset() {
        failures = 0
    }
}

extension Duration {
    /// The duration in seconds, as a `Double`.
    package var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }

    /// The duration in whole milliseconds, rounded down.
    package var milliseconds: Int64 {
        components.seconds * 1_000 + components.attoseconds / 1_000_000_000_000_000
    }
}
