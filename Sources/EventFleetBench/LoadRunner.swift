/// What a timed load did: operations, the items they carried (events, jobs), the wall time, and
/// the latency of each operation.
struct LoadResult: Sendable {
    var operations = 0
    var items = 0
    var elapsed: Duration = .zero
    var latency = LatencyHistogram()

    var itemsPerSecond: Double { Double(items) / max(elapsed.seconds, 1e-9) }
}

extension Duration {
    /// The duration in seconds, as a floating-point number.
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }

    /// The duration in milliseconds.
    var milliseconds: Double { seconds * 1_000 }
}

/// Runs `operation` from `workers` concurrent tasks until `duration` has passed.
///
/// - Parameter operation: Called with the worker's index and its iteration; returns how many items
///   (events) the operation carried.
func runLoad(
    workers: Int, duration: Duration, operation: @escaping @Sendable (_ worker: Int, _ iteration: Int) async throws -> Int
) async throws -> LoadResult {
    let clock = ContinuousClock()
    let started = clock.now
    let deadline = started + duration
    var total = try await withThrowingTaskGroup(of: LoadResult.self) { group in
        for worker in 0..<workers {
            group.addTask {
                var result = LoadResult()
                var iteration = 0
                while clock.now < deadline {
                    let before = clock.now
                    result.items += try await operation(worker, iteration)
                    result.latency.record(clock.now - before)
                    result.operations += 1
                    iteration += 1
                }
                return result
            }
        }
        var total = LoadResult()
        for try await result in group {
            total.operations += result.operations
            total.items += result.items
            total.latency.merge(result.latency)
        }
        return total
    }
    total.elapsed = clock.now - started
    return total
}

/// A measurement that two runs of the same work add up to, so that a pair measured A B B A reports
/// each side once.
protocol Mergeable: Sendable {
    /// Adds another run's figures to this one (the runs were one after the other).
    mutating func merge(_ other: Self)
}

extension LoadResult: Mergeable {
    /// Adds another run's figures to this one (wall times add up: the runs were one after the other).
    mutating func merge(_ other: LoadResult) {
        operations += other.operations
        items += other.items
        elapsed += other.elapsed
        latency.merge(other.latency)
    }
}

/// Items (jobs, events) done in a wall time: the figure of the workloads timed from start to finish
/// rather than by a load of fixed duration.
struct Throughput: Mergeable {
    var items: Int
    var elapsed: Duration

    var itemsPerSecond: Double { Double(items) / max(elapsed.seconds, 1e-9) }

    mutating func merge(_ other: Throughput) {
        items += other.items
        elapsed += other.elapsed
    }
}

/// Measures EventFleet and its baseline in the order A B B A (each closure runs for half of the
/// run's duration and is told which half), so that a machine that gets busier or quieter during the run does not favour either side.
func measurePair<Result: Mergeable>(
    library: @Sendable (_ half: Int) async throws -> Result,
    baseline: @Sendable (_ half: Int) async throws -> Result
) async throws -> (library: Result, baseline: Result) {
    var first = try await library(0)
    var second = try await baseline(0)
    second.merge(try await baseline(1))
    first.merge(try await library(1))
    return (first, second)
}

/// Measures the same work on direct connections and through the pooler (`--pooler-url`), in the
/// order direct, pooled, pooled, direct, as `measurePair` does: the pooler's rows compare two runs
/// of EventFleet that the machine's noise treats alike.
func measureDirectAndPooled<Result: Mergeable>(
    direct: @Sendable (_ half: Int) async throws -> Result,
    pooled: @Sendable (_ half: Int) async throws -> Result
) async throws -> (direct: Result, pooled: Result) {
    let (direct, pooled) = try await measurePair(library: direct, baseline: pooled)
    return (direct, pooled)
}
