import EventFleetCore
import EventFleetPostgres
import EventFleetTestSupport
import Foundation
import PostgresNIO
import Testing

/// A pooler the URL does not declare fails clearly, naming the setting to change.
@Suite(
    "Behind an undeclared pooler", .timeLimit(.minutes(2)),
    .enabled("runs through a transaction-mode pooler: the pooler phase of scripts/test") {
        (try? DatabaseConfiguration(url: TestDatabase.baseURL()))?.pooler == .transaction
    }
)
struct PoolerTests {
    @Test("Appends through a transaction-mode pooler with pooler=none fail with an error naming pooler=transaction")
    func undeclaredPoolerNamesTheSetting() async throws {
        try await TestDatabase.withSchema { schema in
            // Two clients of one connection each: PgBouncer hands the server connection the first
            // one prepared its statement on to the second.
            var undeclared = schema.configuration
            undeclared.pooler = .none
            undeclared.poolSize = 1
            let error = await #expect(throws: EventStoreError.self) {
                try await withStores(undeclared, count: 2) { stores in
                    for round in 0..<10 {
                        for (index, store) in stores.enumerated() {
                            try await store.appendToStream(
                                "undeclared-\(round)-\(index)", messages: [message("Opened")], options: AppendOptions(partition: "p")
                            )
                        }
                    }
                }
            }
            guard case .database(_, let sqlState?, let message) = error else {
                Issue.record("expected a database error, got \(String(describing: error))")
                return
            }
            #expect(["42P05", "26000"].contains(sqlState))
            #expect(message.contains("pooler=transaction"), "\(message)")
        }
    }

    private func withStores<T: Sendable>(
        _ configuration: DatabaseConfiguration, count: Int, _ body: @Sendable ([PostgresEventStore]) async throws -> T
    ) async throws -> T {
        let clients = try (0..<count).map { _ in PostgresClient(configuration: try configuration.clientConfiguration(), backgroundLogger: TestDatabase.logger) }
        let stores = clients.map { PostgresEventStore(client: $0, configuration: configuration, logger: TestDatabase.logger) }
        return try await withThrowingTaskGroup(of: Void.self) { group in
            for client in clients { group.addTask { await client.run() } }
            defer { group.cancelAll() }
            return try await body(stores)
        }
    }
}
