import CartsExample
import EventFleetCLI
import EventFleetCore
import EventFleetPostgres
import EventFleetProjections
import EventFleetTestSupport
import Foundation
import Testing

/// A real consumer process is killed (SIGKILL) at a point of its batch and restarted; every event's
/// effect must be applied exactly once.
@Suite("Consumer crash points", .exclusive)
struct CrashTests {
    @Test("killed before the handler, between handler and checkpoint, and after commit", arguments: ["before-handler", "after-handler", "after-commit"])
    func crashAndRestart(point: String) async throws {
        try await withCartsSchema { schema in
            try await schema.execute("""
                CREATE TABLE event_applications (
                    partition text, stream_id text, stream_position bigint, applied integer NOT NULL,
                    PRIMARY KEY (partition, stream_id, stream_position)
                )
                """
            )
            let store = schema.store
            var positions: [Int64] = []
            for index in 1...4 {
                let id = "k\(index)"
                positions.append(try await store.appendToStream(
                    cartStreamId(id), events: [
                        CartEvent.created(CartCreated(tenantId: "default", cartId: id, currency: "EUR")),
                        CartEvent.itemAdded(ItemAddedToCart(sku: "A", name: "a", unitPrice: index, quantity: 1)),
                    ]
                ).lastGlobalPosition)
            }
            // Die in the middle of the log: at the first event of the second batch of three.
            let victim = positions[1]
            let crashed = try await runFixture(url: schema.url, environment: ["FIXTURE_CRASH": "\(point):\(victim)"])
            #expect(crashed.termination == .signalled(SIGKILL), "the fixture killed itself at \(point): \(crashed.stderr)")

            let resumed = try await runFixture(url: schema.url, environment: ["FIXTURE_EXIT": "caught-up"])
            #expect(resumed.termination == .exited(0), "\(resumed.stderr)")

            let counts = try await schema.rows("SELECT applied FROM event_applications", as: Int32.self)
            var applied: [Int32] = []
            for count in counts { applied.append(count) }
            #expect(applied.count == 8, "every event was applied")
            #expect(applied.allSatisfy { $0 == 1 }, "and none twice: \(applied)")
            let rows = try await cartRows(schema)
            #expect(rows.count == 4)
            for row in rows {
                let folded = try await store.aggregateStream(row.streamId, evolve: CartState.evolve, initialState: CartState.initialState)
                #expect(row.snapshot == folded.state)
                #expect(row.lastStreamPosition == 2)
            }
        }
    }
}

/// Runs the consumer fixture binary (built beside the tests) to its end.
func runFixture(url: String, environment extra: [String: String]) async throws -> ChildProcess.Result {
    try await ChildProcess.run(try builtProduct("ConsumerFixture"), environment: childEnvironment(url: url, extra))
}
