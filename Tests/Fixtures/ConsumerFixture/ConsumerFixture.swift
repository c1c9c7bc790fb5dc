// A consumer process for crash tests: it counts how often each event is applied and can kill
// itself (SIGKILL, like `kill -9`) at a chosen point of the batch.
//
// Environment:
//   DATABASE_URL     the database (with ?schema=...)
//   FIXTURE_CRASH    before-handler:GP | after-handler:GP | after-commit:GP — die when the event with
//                    global position GP reaches that point (after-commit: the commit of the batch
//                    that holds it); unset to run normally
//   FIXTURE_EXIT     caught-up — exit 0 once caught up (otherwise run until killed)
import CartsExample
import EventFleetCore
import EventFleetPostgres
import EventFleetProjections
import Foundation
import Logging
import PostgresNIO

#if canImport(Glibc)
import Glibc
#endif

@main
enum ConsumerFixture {
    static func main() async throws {
        let environment = ProcessInfo.processInfo.environment
        let configuration = try DatabaseConfiguration.fromEnvironment()
        let crash = environment["FIXTURE_CRASH"].map { value -> (point: String, position: Int64) in
            let parts = value.split(separator: ":")
            return (String(parts[0]), Int64(parts[1]) ?? 0)
        }
        var logger = Logger(label: "fixture")
        logger.logLevel = .warning
        let client = PostgresClient(configuration: try configuration.clientConfiguration(), backgroundLogger: logger)
        let store = PostgresEventStore(client: client, configuration: configuration, logger: logger)

        // Handlers see each event; a commit reports the batch's last position, so after-commit
        // fires on the first commit at or past the chosen event.
        @Sendable func die(_ point: String, _ position: Int64) {
            guard let crash, crash.point == point else { return }
            guard point == "after-commit" ? position >= crash.position : position == crash.position else { return }
            kill(getpid(), SIGKILL)
        }

        var registry = ProjectionRegistry()
        registry.subscribeToAll(name: "crash-before") { message, _ in
            die("before-handler", message.globalPosition)
        }
        registry.subscribeToAll(name: "count-applications") { message, context in
            try await context.execute("""
                INSERT INTO \(try context.table("event_applications")) AS a (partition, stream_id, stream_position, applied)
                VALUES (\(message.partition), \(message.streamId), \(message.streamPosition), 1)
                ON CONFLICT (partition, stream_id, stream_position) DO UPDATE SET applied = a.applied + 1
                """)
        }
        registry.register(try CartsReadModel.projection())
        registry.subscribeToAll(name: "crash-after") { message, _ in
            die("after-handler", message.globalPosition)
        }

        var consumerConfiguration = EventConsumer.Configuration(name: "crash-fixture")
        consumerConfiguration.leaseDuration = .seconds(1)
        consumerConfiguration.batchSize = 3
        consumerConfiguration.onCommit = { checkpoint, _ in
            die("after-commit", checkpoint.position)
        }
        let consumer = EventConsumer(configuration: consumerConfiguration, store: store, registry: registry, logger: logger)

        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            group.addTask { try await consumer.run() }
            if environment["FIXTURE_EXIT"] == "caught-up" {
                try await consumer.whenCaughtUp(timeout: .seconds(60))
                group.cancelAll()
            } else {
                try await group.next()
            }
        }
    }
}
