import ArgumentParser
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

    /// The migrations that create the `carts` tables and view (`Migrations/` of the example, compiled in).
    public static var migrations: [Migration] {
        [
            Migration(version: 1, name: "carts", sql: String(decoding: PackageResources._001_carts_sql, as: UTF8.self)),
            Migration(version: 2, name: "carts_versions", sql: String(decoding: PackageResources._002_carts_versions_sql, as: UTF8.self)),
        ]
    }

    /// Applies the library's migrations and then the example's.
    public static func migrate(store: PostgresEventStore, logger: Logger = Logger(label: "eventfleet.migrations")) async throws {
        try await MigrationRunner(store: store, logger: logger).migrate()
        try await MigrationRunner(store: store, component: component, migrations: migrations, logger: logger).migrate()
    }

    /// The versions of the `carts` projection this binary has: 1, and 2 (which adds `item_count` and
    /// `status`).
    public static let versions = 1...2

    /// The view readers query; the fleet points it at the active version's table.
    public static let view = "carts"

    /// The table of a version's rows: `carts_v1`, `carts_v2`.
    public static func table(version: Int) -> String {
        "carts_v\(version)"
    }

    /// The `carts` snapshot projection: key (tenant_id, cart_id, partition), state from
    /// ``CartState/evolve(_:_:)``, and the denormalized columns of a cart list (version 2 adds the
    /// number of items and the cart's status).
    ///
    /// - Parameters:
    ///   - version: The version (see ``versions``).
    ///   - table: The table of its rows; ``table(version:)`` and readers through the view ``view``
    ///     unless given (then readers query the table).
    ///   - promotesWhenCaughtUp: Whether the fleet promotes the version once it has caught up.
    ///   - evolve: The fold of a cart's events; ``CartState/evolve(_:_:)`` unless given (the chaos
    ///     soak gives one that cannot apply its poison item).
    /// - Throws: `ProjectionError.invalidArgument` for a version this binary does not have.
    public static func projection(
        version: Int = 1, table: String? = nil, promotesWhenCaughtUp: Bool = false,
        evolve: @escaping @Sendable (CartState, CartEvent) throws -> CartState = CartState.evolve
    ) throws -> SnapshotProjection<CartState, CartEvent> {
        guard versions.contains(version) else {
            throw ProjectionError.invalidArgument(field: "version", reason: "the carts projection has versions \(versions.lowerBound)–\(versions.upperBound), not \(version)")
        }
        var columns = ["currency", "total", "order_id", "items_json", "is_checked_out", "is_cancelled"]
        if version >= 2 { columns += ["item_count", "status"] }
        return try SnapshotProjection(
            name: "carts",
            version: version,
            table: table ?? Self.table(version: version),
            view: table == nil ? view : nil,
            promotesWhenCaughtUp: promotesWhenCaughtUp,
            keyColumns: ["tenant_id", "cart_id", "partition"],
            key: { recorded, partition in
                [.text(partition), .text(cartId(fromStreamId: recorded.message.streamId)), .text(partition)]
            },
            evolve: evolve,
            initialState: CartState.initialState,
            columns: columns,
            mapToColumns: version >= 2 ? columnsOfVersion2(for:) : columns(for:)
        )
    }

    /// The example's projections, as `eventfleet` mounts them: version 1 of `carts`.
    public static func registry() throws -> ProjectionRegistry {
        ProjectionRegistry([try projection()])
    }

    /// The version of `carts` that `--carts-version` picks.
    public static func registry(options: Options) throws -> ProjectionRegistry {
        ProjectionRegistry([try projection(version: options.cartsVersion)])
    }

    /// `--carts-version`: which version of the `carts` projection a worker runs, so that a pool of
    /// each version can run from this one binary during a change of the read model.
    public struct Options: ParsableArguments, ProjectionsProviderOptions {
        @Option(name: .customLong("carts-version"), help: "The version of the carts projection to run (1 or 2).")
        public var cartsVersion: Int = 1

        public init() {}

        public func validate() throws {
            guard CartsReadModel.versions.contains(cartsVersion) else {
                throw ValidationError("--carts-version: the carts projection has versions 1 and 2, not \(cartsVersion)")
            }
        }

        public var arguments: [String] { ["--carts-version", "\(cartsVersion)"] }
    }

    /// The cart id in a `cart-<id>` stream id (the whole id for other names).
    public static func cartId(fromStreamId streamId: String) -> String {
        streamId.hasPrefix("cart-") ? String(streamId.dropFirst("cart-".count)) : streamId
    }

    /// Version 2's columns: version 1's, the number of items (their quantities added up) and the
    /// status (`open`, `checked_out`, `cancelled`).
    public static func columnsOfVersion2(for state: CartState) -> [String: SQLValue] {
        var columns = columns(for: state)
        columns["item_count"] = .int(Int64((state.details?.items ?? []).reduce(0) { $0 + $1.quantity }))
        columns["status"] = switch state {
        case .checkedOut: .text("checked_out")
        case .cancelled: .text("cancelled")
        case .initial, .active: .text("open")
        }
        return columns
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
