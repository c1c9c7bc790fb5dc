import CartsExample
import EventFleetCLI
import EventFleetCore
import EventFleetJobs
import EventFleetPostgres
import EventFleetProjections
import EventFleetTestSupport
import Foundation
import Synchronization
import Testing

/// `eventfleet projections` and `worker --carts-version`: a change of the carts read model run
/// through the binary, as an operator runs it.
@Suite("Projections CLI", .exclusive, .timeLimit(.minutes(4)))
struct ProjectionsCLITests {
    final class Locked: Sendable {
        let value: Mutex<String>
        init(_ value: String) { self.value = Mutex(value) }
        func set(_ new: String) { value.withLock { $0 = new } }
        func get() -> String { value.withLock { $0 } }
    }

    @Test("a v2 pool beside the v1 pool builds carts v2; status shows it; promote switches the view; v1 is retired after its pool stops and its worker is refused; rebuild recomputes a tenant")
    func upgradeThroughTheBinary() async throws {
        try await withCartsSchema { schema in
            let streams = try await writeCarts(schema.store, tenants: ["a", "b"], cartsPerTenant: 5)
            let environment = childEnvironment(url: schema.url)
            let binary = try builtProduct("eventfleet")
            let fast = ["--concurrency", "4", "--heartbeat-interval-ms", "300", "--poll-interval-ms", "100", "--drain-timeout", "5"]
            let scheduler = try ChildProcess(binary, arguments: ["scheduler"], environment: environment, error: .capture)
            let version1 = try ChildProcess(binary, arguments: ["worker"] + fast, environment: environment, error: .capture)
            var fleet = [scheduler, version1]
            do {
                let last = Locked("")
                // The v1 pool is the one running when the v2 pool is deployed: it registers first.
                try await waitUntil(timeout: .seconds(60), "carts version 1 is registered") {
                    try await schema.count("SELECT count(*) FROM ef_projections WHERE name = 'carts'") == 1
                }
                let version2 = try ChildProcess(binary, arguments: ["worker", "--carts-version", "2"] + fast, environment: environment, error: .capture)
                fleet.append(version2)
                do {
                    try await waitUntil(timeout: .seconds(90), "carts version 2 is ready") {
                        let status = try await eventfleet(["projections", "status", "carts", "--json", "--interval", "0.1"], url: schema.url)
                        last.set(status.stdout + status.stderr)
                        return status.stdout.contains(#""key":"carts@2""#) && status.stdout.contains(#""state":"ready""#)
                    }
                } catch {
                    // A process's captured stderr is complete once it has exited.
                    for process in fleet { process.signal(SIGTERM) }
                    var logs = ""
                    for process in fleet { logs += await process.capturedError().suffix(3_000) + "\n---\n" }
                    Issue.record("\(last.get())\n\(logs)")
                    throw error
                }
                let text = try await eventfleet(["projections", "status"], url: schema.url)
                #expect(text.status == 0, "\(text.stderr)")
                #expect(text.stdout.contains("carts version 1  ACTIVE  table"), "\(text.stdout)")
                #expect(text.stdout.contains("carts version 2  READY  table"), "\(text.stdout)")
                #expect(text.stdout.contains("view"), "\(text.stdout)")

                let promoted = try await eventfleet(["projections", "promote", "carts", "--version", "2", "--timeout", "60"], url: schema.url)
                #expect(promoted.status == 0, "\(promoted.stderr)")
                #expect(promoted.stdout.contains("carts: version 2 is active, was 1"), "\(promoted.stdout)")
                #expect(try await schema.count("SELECT count(*) FROM carts WHERE status IS NOT NULL") == Int64(streams.count))

                let stillRunning = try await eventfleet(["projections", "retire", "carts", "--version", "1"], url: schema.url)
                #expect(stillRunning.status == 2, "\(stillRunning.stderr)")
                #expect(stillRunning.stderr.contains("run by registered workers"), "\(stillRunning.stderr)")

                version1.signal(SIGTERM)
                #expect(try await version1.exit(within: .seconds(30)) == .exited(0))
                let retired = try await eventfleet(["projections", "retire", "carts", "--version", "1"], url: schema.url)
                #expect(retired.status == 0, "\(retired.stderr)")
                #expect(retired.stdout.contains("retired carts version 1: dropped table"), "\(retired.stdout)")

                let refused = try await eventfleet(["worker"] + fast, url: schema.url)
                #expect(refused.status == 2, "\(refused.stderr)")
                #expect(refused.stderr.contains("version 1 of projection 'carts' is retired; the active version is 2"), "\(refused.stderr)")

                try await schema.execute("UPDATE carts_v2 SET item_count = -1 WHERE partition = 'a'")
                let rebuilt = try await eventfleet(["projections", "rebuild", "carts", "--partition", "a", "--carts-version", "2"], url: schema.url)
                #expect(rebuilt.status == 0, "\(rebuilt.stderr)")
                #expect(rebuilt.stdout.contains("rebuilt carts version 2 in partition 'a': 5 streams"), "\(rebuilt.stdout)")
                #expect(try await CartsReadModel.rowsNotMatchingStreams(streams, store: schema.store, version: 2).isEmpty)
            } catch {
                for process in fleet { process.signal(SIGTERM) }
                throw error
            }
            let survivors = fleet.filter { $0 !== version1 }
            for process in survivors { process.signal(SIGTERM) }
            for process in survivors {
                let termination = try await process.exit(within: .seconds(30))
                let log = await process.capturedError()
                #expect(termination == .exited(0), "\(log.suffix(2_000))")
            }
        }
    }

    @Test("scripts/demo --upgrade: writers and a v1 pool, a v2 pool builds beside it, promotion, v1 retired, every row of version 2 verified; its schema is dropped")
    func upgradeDemo() async throws {
        try await withCartsSchema { schema in
            let demo = try await ChildProcess.run(
                try builtProduct("eventfleet-demo"), arguments: ["demo", "--upgrade", "--tenants", "2", "--carts", "20", "--workers", "1", "--writers", "4"],
                environment: childEnvironment(url: schema.url)
            )
            #expect(demo.status == 0, "\(demo.stdout.suffix(3_000))\n\(demo.stderr.suffix(2_000))")
            for step in [
                "carts version 2  READY", "carts: version 2 is active, was 1", "retired carts version 1: dropped table",
                "verification: all", "rows of carts version 2 equal aggregateStream of their streams",
            ] {
                #expect(demo.stdout.contains(step), "\(step): \(demo.stdout.suffix(3_000))")
            }
            let sandbox = try #require(demo.stdout.firstMatch(of: /in schema (\w+):/)?.1)
            #expect(try await schema.count("SELECT count(*) FROM information_schema.schemata WHERE schema_name = \(String(sandbox))") == 0)
        }
    }

    @Test("refusals exit 2 and change nothing: unknown projection or version, retiring the active version, rollback without a previous version, promoting a version behind, a version the binary lacks")
    func refusals() async throws {
        try await withCartsSchema { schema in
            let streams = try await writeCarts(schema.store, tenants: ["a"], cartsPerTenant: 2)
            let queue = JobQueue(store: schema.store)
            try await queue.registerProjections([ProjectionRegistration(try CartsReadModel.projection())])
            try await queue.registerProjections([ProjectionRegistration(try CartsReadModel.projection(version: 2))])
            for (partition, stream) in streams {
                try await ProjectionRunner(store: schema.store).projectEvents(try CartsReadModel.projection(), streamId: stream, partition: partition)
            }
            let before = try await schema.rows("SELECT name || ' ' || state FROM ef_projections ORDER BY name", as: String.self)

            let cases: [([String], String)] = [
                (["projections", "status", "orders"], "no version of projection 'orders' is registered (registered: carts)"),
                (["projections", "promote", "carts", "--version", "9"], "projection 'carts' has no version 9 (registered: 1, 2)"),
                (["projections", "promote", "carts", "--version", "2", "--timeout", "0"], "version 2 of projection 'carts' is behind the active version 1: 2 rows behind or missing, 10 events"),
                (["projections", "retire", "carts", "--version", "1"], "version 1 of projection 'carts' is active"),
                (["projections", "rollback", "carts"], "projection 'carts' has no previous version to roll back to (version 1 is active)"),
                (["projections", "promote", "carts", "--version", "0"], "--version must be 1 or more"),
                (["worker", "--carts-version", "3"], "--carts-version: the carts projection has versions 1 and 2, not 3"),
                (["projections", "rebuild", "carts"], "give either --partition P or --all-partitions"),
            ]
            for (arguments, message) in cases {
                let result = try await eventfleet(arguments, url: schema.url)
                #expect(result.status == 2, "\(arguments): \(result.stderr)")
                #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)")
            }
            #expect(try await schema.rows("SELECT name || ' ' || state FROM ef_projections ORDER BY name", as: String.self) == before)
        }
    }
}
