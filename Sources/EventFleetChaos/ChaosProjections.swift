import CartsExample
import EventFleetCLI
import EventFleetCore
import EventFleetPostgres
import EventFleetProjections
import Foundation
import Logging
import PostgresNIO

/// The projections the soak's workers run: the carts read model, whose version 1 is poisoned by
/// one item, and a projection that counts how often each event was applied.
///
/// `--carts-version 2` runs version 2, which fixes the poison: the soak builds it beside version 1
/// under faults and promotes it once the fleet drained.
enum ChaosProjections: ProjectionsProvider {
    typealias Options = CartsReadModel.Options

    /// The item whose `ItemAddedToCart` makes version 1's `evolve` throw.
    static let poisonSku = "POISON"

    static func registry() throws -> ProjectionRegistry {
        try registry(options: Options())
    }

    static func registry(options: Options) throws -> ProjectionRegistry {
        ProjectionRegistry([try carts(version: options.cartsVersion), EventApplications()])
    }

    /// The carts projection of the example; version 1 cannot apply the poison item.
    static func carts(version: Int) throws -> SnapshotProjection<CartState, CartEvent> {
        try CartsReadModel.projection(version: version, evolve: version == 1 ? poisonedEvolve : CartState.evolve)
    }

    @Sendable private static func poisonedEvolve(_ state: CartState, _ event: CartEvent) throws -> CartState {
        if case .itemAdded(let added) = event, added.sku == poisonSku { throw PoisonedEvent() }
        return CartState.evolve(state, event)
    }
}

/// What the poisoned `evolve` throws.
struct PoisonedEvent: Error, CustomStringConvertible {
    var description: String { "poisoned: the soak's poison item cannot be applied" }
}

/// Counts, per event, how many times a job applied it: a row per event in `chaos_applications`,
/// and per stream the last position applied. Exactly-once processing leaves every count at 1.
struct EventApplications: StreamProjection {
    let name = "chaos_applications"
    let eventTypes: Set<String>? = Set(CartEvent.eventTypes)

    /// The soak's tables, in `schema`.
    static func tables(in schema: Schema) -> String {
        """
        CREATE TABLE IF NOT EXISTS \(schema.chaos_applications) (
            partition       text   NOT NULL,
            stream_id       text   NOT NULL,
            stream_position bigint NOT NULL,
            message_id      text   NOT NULL,
            applications    int    NOT NULL,
            PRIMARY KEY (partition, stream_id, stream_position)
        );
        CREATE TABLE IF NOT EXISTS \(schema.chaos_stream_positions) (
            partition     text   NOT NULL,
            stream_id     text   NOT NULL,
            last_position bigint NOT NULL,
            PRIMARY KEY (partition, stream_id)
        )
        """
    }

    func validate(context: ProjectionContext) async throws {
        let schema = context.database.schema
        let rows = try await context.query(
            "SELECT to_regclass(\(schema.chaos_applications.description)) IS NOT NULL AND to_regclass(\(schema.chaos_stream_positions.description)) IS NOT NULL"
        )
        if try rows.first?.decode(Bool.self) != true {
            throw ProjectionError.misconfigured(projection: name, table: "chaos_applications", problems: ["the soak's tables are missing"])
        }
    }

    func handle(_ messages: [RecordedMessage], context: ProjectionContext) async throws {
        try await apply(messages, context: context)
    }

    func project(streamId: String, partition: String, upTo position: Int64?, batchSize: Int, context: ProjectionContext) async throws -> Int {
        let positions = context.database.schema.chaos_stream_positions
        try await context.execute("INSERT INTO \(positions) VALUES (\(partition), \(streamId), 0) ON CONFLICT DO NOTHING")
        let last = try await context.query(
            "SELECT last_position FROM \(positions) WHERE partition = \(partition) AND stream_id = \(streamId) FOR UPDATE"
        ).first?.decode(Int64.self) ?? 0
        if let position, position <= last { return 0 }
        let read = try await context.store.readStream(
            streamId, options: ReadStreamOptions(partition: partition, from: last + 1, to: position, maxCount: batchSize),
            connection: context.connection
        )
        try await apply(read.events, context: context)
        return read.events.count
    }

    /// Counts one more application of each message and moves its stream's position.
    private func apply(_ messages: [RecordedMessage], context: ProjectionContext) async throws {
        guard let lastMessage = messages.last else { return }
        let schema = context.database.schema
        try await context.execute("""
            INSERT INTO \(schema.chaos_applications) AS a (partition, stream_id, stream_position, message_id, applications)
            SELECT p, s, pos, id, 1 FROM unnest(\(messages.map(\.partition))::text[], \(messages.map(\.streamId))::text[],
                                                 \(messages.map(\.streamPosition))::bigint[], \(messages.map(\.messageId))::text[]) AS m(p, s, pos, id)
            ON CONFLICT (partition, stream_id, stream_position) DO UPDATE SET applications = a.applications + 1
            """)
        try await context.execute("""
            INSERT INTO \(schema.chaos_stream_positions) VALUES (\(lastMessage.partition), \(lastMessage.streamId), \(lastMessage.streamPosition))
            ON CONFLICT (partition, stream_id) DO UPDATE SET last_position = EXCLUDED.last_position
            """)
    }
}
