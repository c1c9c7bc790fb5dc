import EventFleetCore
import EventFleetJobs
import EventFleetPostgres
import EventFleetProjections
import EventFleetTestSupport
import Foundation
import Testing

/// How a job's failures that are not the database's count.
@Suite("Job failures", .exclusive, .timeLimit(.minutes(3)))
struct JobFailureTests {
    /// A stream projection whose batch waits `pause` between two statements of its transaction, as a
    /// fold that takes that long does.
    struct SlowFold: StreamProjection {
        var name = "slow"
        var eventTypes: Set<String>? = nil
        var pause: Duration

        func validate(context: ProjectionContext) async throws {}
        func handle(_ messages: [RecordedMessage], context: ProjectionContext) async throws {}
        func project(streamId: String, partition: String, upTo position: Int64?, batchSize: Int, context: ProjectionContext) async throws -> Int {
            try await context.execute("SELECT 1")
            try await Task.sleep(for: pause)
            try await context.execute("SELECT 1")
            return 0
        }
    }

    @Test("a batch the server ends for outlasting the idle-transaction timeout counts its attempt, and the job ends dead")
    func idleTransactionTimeoutCountsAttempts() async throws {
        try await TestDatabase.withSchema { schema in
            let queue = JobQueue(store: schema.store)
            try await queue.enqueue([JobRequest(projection: "slow", partition: "a", streamId: "s", maxAttempts: 2)])
            var configuration = fastWorker()
            configuration.idleTransactionTimeout = .milliseconds(200)
            let worker = ProjectionWorker(
                configuration: configuration, store: schema.store, registry: ProjectionRegistry([SlowFold(pause: .milliseconds(1_000))])
            )
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await worker.run() }
                defer { group.cancelAll() }
                try await waitUntil(timeout: .seconds(60), "the job is dead after its two attempts") {
                    try await schema.count("SELECT count(*) FROM ef_jobs WHERE state = 'dead'") == 1
                }
            }
            let errors = try await schema.rows("SELECT errors::text FROM ef_jobs", as: String.self)
            #expect(errors.first.map { $0.contains("idle") } == true, "\(errors)")
        }
    }
}
