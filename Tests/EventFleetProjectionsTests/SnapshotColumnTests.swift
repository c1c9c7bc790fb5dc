import CartsExample
import EventFleetCore
import EventFleetPostgres
import EventFleetProjections
import EventFleetTestSupport
import Foundation
import PostgresNIO
import Testing

@Suite("Snapshot columns and rows keyed by their stream")
struct SnapshotColumnTests {
    /// A row per stream: its unique key is (partition, stream_id), and no key column of its own.
    static let streamTable: PostgresQuery = """
        CREATE TABLE cart_lines (
            stream_id text NOT NULL, partition text NOT NULL, last_stream_position bigint NOT NULL,
            last_global_position bigint NOT NULL, snapshot jsonb NOT NULL,
            currency text, total bigint, items jsonb, checked_out boolean, ratio double precision,
            UNIQUE (partition, stream_id)
        )
        """

    static func streamProjection(_ extra: [SnapshotColumn<CartState>] = []) throws -> SnapshotProjection<CartState, CartEvent> {
        try SnapshotProjection(
            name: "cart_lines", table: "cart_lines", evolve: CartState.evolve, initialState: CartState.initialState,
            columns: [
                SnapshotColumn("currency") { state in state.details?.currency },
                SnapshotColumn("total") { state in state.details?.total ?? 0 },
                .json("items") { state in state.details?.items ?? [] },
                SnapshotColumn("checked_out") { state in if case .checkedOut = state { true } else { false } },
            ] + extra
        )
    }

    func shop(_ store: PostgresEventStore, stream: String, partition: String) async throws {
        try await store.appendToStream(stream, events: [
            CartEvent.created(CartCreated(tenantId: partition, cartId: stream, currency: "EUR")),
            CartEvent.itemAdded(ItemAddedToCart(sku: "A", name: "Mug", unitPrice: 25, quantity: 2)),
            CartEvent.itemAdded(ItemAddedToCart(sku: "B", name: "Tea", unitPrice: 15, quantity: 1)),
        ], options: AppendOptions(partition: partition))
    }

    @Test("a projection without a key writes one row per (partition, stream_id), with Int, optional, Bool and Encodable columns")
    func keyedByStream() async throws {
        try await withCartsSchema { schema in
            try await schema.execute(Self.streamTable)
            let projection = try Self.streamProjection()
            let runner = ProjectionRunner(store: schema.store)
            try await runner.validate(projection)
            // The same stream id in two partitions: two rows, each its stream's.
            for partition in ["acme", "globex"] {
                try await shop(schema.store, stream: "cart-1", partition: partition)
                try await runner.projectEvents(projection, streamId: "cart-1", partition: partition)
            }
            let rows = try await schema.rows(
                "SELECT partition, currency, total, items::text, checked_out FROM cart_lines ORDER BY partition",
                as: (String, String?, Int64?, String?, Bool?).self
            )
            #expect(rows.map(\.0) == ["acme", "globex"])
            for row in rows {
                #expect(row.1 == "EUR")
                #expect(row.2 == 65)
                #expect(row.4 == false)
                let items = try JSONDecoder().decode([CartItem].self, from: Data((row.3 ?? "").utf8))
                #expect(items.map(\.sku) == ["A", "B"])
            }
        }
    }

    @Test("a column closure that throws is a typed error naming the column, the stream and the partition; nothing is written")
    func throwingColumn() async throws {
        struct NoRatio: Error {}
        try await withCartsSchema { schema in
            try await schema.execute(Self.streamTable)
            let projection = try Self.streamProjection([SnapshotColumn("ratio") { _ -> Double in throw NoRatio() }])
            try await shop(schema.store, stream: "cart-2", partition: "acme")
            let error = await #expect(throws: ProjectionError.self) {
                try await ProjectionRunner(store: schema.store).projectEvents(projection, streamId: "cart-2", partition: "acme")
            }
            guard case .invalidColumnValue(let name, let table, let column, let streamId, let partition, _) = error else {
                Issue.record("expected invalidColumnValue, got \(String(describing: error))")
                return
            }
            #expect(name == "cart_lines")
            #expect(table == "cart_lines")
            #expect(column == "ratio")
            #expect(streamId == "cart-2")
            #expect(partition == "acme")
            #expect(try await schema.count("SELECT count(*) FROM cart_lines") == 0)
        }
    }

    @Test("a JSON column whose value does not encode names its column")
    func unencodableJSON() async throws {
        try await withCartsSchema { schema in
            try await schema.execute(Self.streamTable)
            // JSONEncoder refuses a non-finite number.
            let projection = try Self.streamProjection([.json("ratio") { _ in Double.infinity }])
            try await shop(schema.store, stream: "cart-3", partition: "acme")
            let error = await #expect(throws: ProjectionError.self) {
                try await ProjectionRunner(store: schema.store).projectEvents(projection, streamId: "cart-3", partition: "acme")
            }
            guard case .invalidColumnValue(_, _, let column, _, _, _) = error else {
                Issue.record("expected invalidColumnValue, got \(String(describing: error))")
                return
            }
            #expect(column == "ratio")
        }
    }

    @Test("a column given twice is refused when the projection is made")
    func repeatedColumn() throws {
        #expect(throws: ProjectionError.self) {
            try Self.streamProjection([SnapshotColumn("total") { _ in 1 }])
        }
    }
}
