import EventFleetCLI
import EventFleetPostgres
import EventFleetProjections
import Foundation

/// The orders read model: one row per order stream, in a table whose name comes from the
/// environment (`ORDERS_TABLE`, `orders` by default), so the projection and its migration are
/// values made at run time.
enum OrdersReadModel {
    static let component = "orders-example"

    /// The table's name from the environment.
    static func tableName(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        environment["ORDERS_TABLE"] ?? "orders"
    }

    /// The table: the snapshot columns keyed by (partition, stream_id), and columns to query by.
    static func migration(table: String) throws -> Migration {
        let name = try SQLIdentifier(table, kind: "table").quoted
        return Migration(version: 1, name: "orders", sql: """
            CREATE TABLE \(name) (
                partition            text    NOT NULL,
                stream_id            text    NOT NULL,
                last_stream_position bigint  NOT NULL,
                last_global_position bigint  NOT NULL,
                snapshot             jsonb   NOT NULL,
                customer             text    NOT NULL,
                status               text    NOT NULL,
                total_cents          bigint  NOT NULL,
                line_count           integer NOT NULL,
                lines                jsonb   NOT NULL,
                carrier              text,
                PRIMARY KEY (partition, stream_id)
            );
            """)
    }

    /// A row per order stream: no key function, the row's key is its stream's.
    static func projection(table: String) throws -> SnapshotProjection<Order, OrderEvent> {
        try SnapshotProjection(
            name: "orders",
            table: table,
            evolve: Order.evolve,
            initialState: Order.initial,
            columns: [
                SnapshotColumn("customer") { order in order.customer },
                SnapshotColumn("status") { order in order.status.rawValue },
                SnapshotColumn("total_cents") { order in order.totalCents },
                SnapshotColumn("line_count") { order in order.lines.count },
                .json("lines") { order in order.lines },
                SnapshotColumn("carrier") { order in order.carrier },
            ]
        )
    }

    /// The application as the fleet's commands run it.
    static func application(table: String) throws -> FleetApplication {
        FleetApplication(component: component, migrations: [try migration(table: table)]) {
            ProjectionRegistry([try projection(table: table)])
        }
    }
}
