import CartsExample
import EventFleetCLI
import EventFleetCore
import EventFleetJobs
import EventFleetPostgres
import EventFleetTestSupport
import Foundation
import Testing

/// The `eventfleet` binary of the previous release, which `scripts/test` builds (from the commit in
/// `.ci/previous-release`) and names in `EVENTFLEET_PREVIOUS_EVENTFLEET`.
private let previousEventFleet = ProcessInfo.processInfo.environment["EVENTFLEET_PREVIOUS_EVENTFLEET"]

/// A rolling deploy: this build's migrations are applied, and processes of the previous release
/// keep working beside this build's until they are replaced. A schema change that the previous
/// release cannot run against (a routine renamed, a column it writes gone) fails here.
@Suite(
    "Rolling deploy", .exclusive, .timeLimit(.minutes(4)),
    .enabled(if: previousEventFleet != nil, "needs EVENTFLEET_PREVIOUS_EVENTFLEET (set by scripts/test)")
)
struct RollingDeployTests {
    @Test("the previous release's scheduler, worker, append and monitor work against this build's migrations, beside this build's worker")
    func previousReleaseAgainstNewMigrations() async throws {
        let previous = try #require(previousEventFleet)
        try await TestDatabase.withSchema { schema in
            let environment = childEnvironment(url: schema.url)
            let arguments = ["--concurrency", "4", "--heartbeat-interval-ms", "300", "--poll-interval-ms", "100", "--drain-timeout", "5"]
            // The previous release's fleet runs on its own schema; this build's migrations (which
            // turn the example's `carts` table into a view over `carts_v1`) are applied under it.
            let migrated = try await ChildProcess.run(previous, arguments: ["migrate"], environment: environment)
            #expect(migrated.status == 0, "\(migrated.stderr)")
            let previousFleet = [
                try ChildProcess(previous, arguments: ["scheduler"], environment: environment, error: .capture),
                try ChildProcess(previous, arguments: ["worker"] + arguments, environment: environment, error: .capture),
            ]
            try await waitUntil(timeout: .seconds(30), "the previous release's worker has started") {
                try await schema.count("SELECT count(*) FROM ef_workers") == 1
            }
            try await CartsReadModel.migrate(store: schema.store)
            let fleet = previousFleet + [
                try ChildProcess(try builtProduct("eventfleet"), arguments: ["worker"] + arguments, environment: environment, error: .capture),
            ]
            var streams = try await writeCarts(schema.store, tenants: ["a", "b"], cartsPerTenant: 10)
            let appended = try await ChildProcess.run(
                previous, arguments: ["append", "--stream", "cart-previous", "--partition", "a", "--type", "CartCreated",
                                      "--data", #"{"tenantId":"a","cartId":"previous","currency":"EUR"}"#],
                environment: environment
            )
            #expect(appended.status == 0, "\(appended.stderr)")
            streams.append(("a", "cart-previous"))

            let stable = streams
            try await waitUntil(timeout: .seconds(90), "every carts row is up to date") {
                try await cartRowsNotMatchingStreams(schema, streams: stable).isEmpty
            }
            let monitor = try await ChildProcess.run(previous, arguments: ["monitor", "--json"], environment: environment)
            #expect(monitor.status == 0, "\(monitor.stderr)")

            for process in fleet { process.signal(SIGTERM) }
            for process in fleet {
                let termination = try await process.exit(within: .seconds(30))
                let log = await process.capturedError()
                #expect(termination == .exited(0), "\(process.executable) \(termination): \(log.suffix(3_000))")
            }
        }
    }
}
