import EventFleetCore
import EventFleetJobs
import EventFleetPostgres
import EventFleetTestSupport
import Foundation
import PostgresNIO
import Testing

/// Hostile input for the job queue against the real server.
@Suite("Hostile input: the job queue")
struct HostileInputJobTests {
    @Test("hostile partitions and stream ids go through enqueue, claim and complete verbatim")
    func hostileIds() async throws {
        try await TestDatabase.withSchema { schema in
            let queue = JobQueue(store: schema.store)
            let names = ["x'); DROP TABLE ef_jobs; --", #""quoted" \back\ 100%_"#, "🛒👩‍👩‍👧 \u{202E}", "*", String(repeating: "🛒", count: 250)]
            #expect(try await queue.enqueue(names.map { JobRequest(projection: "carts", partition: $0, streamId: $0) }) == names.count)
            try await schema.register("w1")
            let claimed = try await queue.claim(worker: "w1", lanes: [.live], partitions: names, slots: 10)
            #expect(Set(claimed.map { [Array($0.partition.utf8), Array($0.streamId.utf8)] }) == Set(names.map { [Array($0.utf8), Array($0.utf8)] }))
            for job in claimed {
                #expect(try await queue.complete(job, worker: "w1") == .completed)
            }
            #expect(try await schema.count("SELECT count(*) FROM ef_jobs") == 0)
        }
    }

    @Test("an error text with NUL bytes is recorded, so the job retries and dies instead of staying claimed")
    func nulInErrorText() async throws {
        try await TestDatabase.withSchema { schema in
            let queue = JobQueue(store: schema.store)
            try await queue.enqueue([JobRequest(projection: "carts", partition: "p", streamId: "s", maxAttempts: 2)])
            try await schema.register("w1")
            for attempt in 1...2 {
                let job = try #require(try await queue.claim(worker: "w1", lanes: [.live], partitions: nil, slots: 1).first)
                let outcome = try await queue.fail(job, worker: "w1", error: "boom\u{0}attempt \(attempt)", retryDelay: .zero)
                if attempt == 1 {
                    guard case .retrying = outcome else {
                        Issue.record("expected a retry, got \(outcome)")
                        return
                    }
                } else {
                    #expect(outcome == .dead)
                }
            }
            let dead = try #require(try await queue.deadJobs(partition: "p").first)
            let history = try #require(try JSONSerialization.jsonObject(with: Data(dead.errors.utf8)) as? [[String: Any]])
            #expect(history.compactMap { $0["error"] as? String } == ["boom\u{FFFD}attempt 1", "boom\u{FFFD}attempt 2"])
        }
    }
}
