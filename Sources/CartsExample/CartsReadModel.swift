import EventFleetCore
import EventFleetPostgres
import EventFleetProjections
import Foundation
import Logging
import PostgresNIO

/// The `carts` read model: one row per cart stream with the cart's state as a snapshot and the
/// columns a cart list needs.
///
/// It supplies its projections and its migrations to the fleet commands, as an application's own
/// read models do: `WorkerCommand<CartsReadModel>`, `MigrateCommand<CartsReadModel>`.
public enum CartsReadModel: ProjectionsProvider, MigrationsProvider {
    /// The component name of the example's migrations (versions count apart from the library's).
    public static let component = "carts-example"

    /// The migrations that create the `carts` table (`Migrations/` of the example, compiled in).
    public static var migrations: [Migration] {
        [Migration(version: 1, name: "carts", sql: String(decoding: PackageResources._001_carts_sql, as: UTF8.self))]
    }

    /// Applies the library's migrations and then the example's.
    public static func migrate(store: PostgresEventStore, logger: Logger = Logger(label: "eventfleet.migrations")) async throws {
        try await MigrationRunner(store: store, logger: logger).migrate()
        try await MigrationRunner(store: store, component: component, migrations: migrations, logger: logger).migrate()
    }

    /// The `carts` snapshot projection: key (tenant_id, cart_id, partition), state from
    /// ``CartState/evolve(_:_:)``, and the denormalized columns of a cart list.
    ///
    /// - Parameter table: The table name (`carts` unless you keep it elsewhere).
    public static func projection(table: String = "carts") throws -> SnapshotProjection<CartState, CartEvent> {
        try SnapshotProjection(
            name: "carts",
            table: table,
            keyColumns: ["tenant_id", "cart_id", "partition"],
            key: { recorded, partition in
                [.text(partition), .text(cartId(fromStreamId: recorded.message.streamId)), .text(partition)]
            },
            evolve: CartState.evolve,
            initialState: CartState.initialState,
            columns: ["currency", "total", "order_id", "items_json", "is_checked_out", "is_cancelled"],
            mapToColumns: columns(for:)
        )
    }

    /// The example's projections, as `eventfleet` mounts them.
    public static func registry() throws -> ProjectionRegistry {
        ProjectionRegistry([try projection()])
    }

    /// The cart id in a `cart-<id>` stream id (the whole id for other names).
    public static func cartId(fromStreamId streamId: String) -> String {
        streamId.hasPrefix("cart-") ? String(streamId.dropFirst("cart-".count)) : streamId
    }

    /// The denormalized columns of a cart's row (currency, total, order id, items, flags).
    public static func columns(for state: CartState) -> [String: SQLValue] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let items = state.details?.items ?? []
        let itemsJSON = (try? encoder.encode(items)).map { String(decoding: $0, as: UTF8.self) } ?? "[]"
        var columns: [String: SQLValue] = [
            "items_json": .json(itemsJSON),
            "is_checked_out": .bool(false),
            "is_cancelled": .bool(false),
        ]
        if let details = state.details {
            columns["currency"] = .text(details.currency)
            columns["total"] = .int(Int64(details.total))
        }
        switch state {
        case .checkedOut(_, let orderId, let total):
            columns["order_id"] = .text(orderId)
            columns["total"] = .int(Int64(total))
            columns["is_checked_out"] = .bool(true)
        case .cancelled:
            columns["is_cancelled"] = .bool(true)
        case .initial, .active:
            break
        }
        return columns
    }
}
