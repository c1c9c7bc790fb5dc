import EventFleetCore
import EventFleetPostgres
import Foundation
import Logging
import PostgresNIO

/// A read-model row per stream holding the state the write model's own `evolve` produces.
///
/// The row has the snapshot columns (`stream_id`, `partition`, `last_stream_position`,
/// `last_global_position`, `snapshot jsonb`), the key columns (its own, or `(partition, stream_id)`
/// for a row per stream) and optional denormalized columns (``SnapshotColumn``). The table needs a
/// unique constraint on the key columns and an index on `(partition, stream_id)`;
/// ``validate(context:)`` checks both at start. A table named
/// without a schema lives in the store's (`EventFleetPostgres.DatabaseConfiguration.schema`).
///
/// > Important: Each event applies exactly once in effect: the row is locked, events must continue
/// > at `last_stream_position + 1`, and the row and its positions are written in one statement of
/// > the caller's transaction.
public struct SnapshotProjection<State: Codable & Sendable, E: Event>: StreamProjection {
    public let name: String
    public let version: Int
    public let table: SQLIdentifier
    public let view: SQLIdentifier?
    public let promotesWhenCaughtUp: Bool
    /// The projection's row per stream is in ``table``.
    public var rowTable: SQLIdentifier? { table }
    /// A new version is built by folding every stream into its table: a snapshot projection only
    /// writes its rows.
    public var replaysHistoryOnNewVersion: Bool { true }
    public let keyColumns: [SQLIdentifier]
    public let columns: [SQLIdentifier]
    public let eventTypes: Set<String>?
    let key: @Sendable (RecordedEvent<E>, String) -> [SQLValue]
    let evolve: @Sendable (State, E) throws -> State
    let initialState: @Sendable () -> State
    let columnValues: ColumnValues
    /// The denormalized columns an update sets (key and snapshot columns stay as they are or are set apart).
    let updatedColumns: [SQLIdentifier]
    /// The columns an insert writes: the snapshot columns, then key and denormalized columns.
    let insertedColumns: [String]

    /// A projection with a key of your own: the row's unique key is `keyColumns`, filled by `key`.
    ///
    /// - Parameters:
    ///   - name: A stable name for logs, errors, jobs and the CLI.
    ///   - version: The projection's version (see ``StreamProjection/version``).
    ///   - table: The read-model table (`name` or `schema.name`); each version has its own.
    ///   - view: The view readers query, pointed at the active version's table (see ``StreamProjection/view``).
    ///   - promotesWhenCaughtUp: Whether the fleet promotes this version once it has caught up
    ///     (see ``StreamProjection/promotesWhenCaughtUp``).
    ///   - keyColumns: The columns of the table's unique key.
    ///   - eventTypes: The handled types; all of `E`'s by default. Other events of the stream only
    ///     advance `last_stream_position`.
    ///   - key: The key values, in `keyColumns` order, from any event of the stream and its partition.
    ///   - evolve: The write model's evolve. If it throws, the batch rolls back and the error
    ///     reaches the runner, the consumer's failure policy or the job's retries.
    ///   - initialState: The write model's initial state.
    ///   - columns: The other columns the projection fills, each from the state.
    /// - Throws: ``ProjectionError/invalidIdentifier(_:kind:reason:)`` for a bad table or column name.
    public init(
        name: String,
        version: Int = 1,
        table: String,
        view: String? = nil,
        promotesWhenCaughtUp: Bool = false,
        keyColumns: [String],
        eventTypes: Set<String>? = nil,
        key: @escaping @Sendable (RecordedEvent<E>, String) -> [SQLValue],
        evolve: @escaping @Sendable (State, E) throws -> State,
        initialState: @escaping @Sendable () -> State,
        columns: [SnapshotColumn<State>]
    ) throws {
        try self.init(
            name: name, version: version, table: table, view: view, promotesWhenCaughtUp: promotesWhenCaughtUp, keyColumns: keyColumns, eventTypes: eventTypes, key: key, evolve: evolve,
            initialState: initialState, columnNames: columns.map(\.name), columnValues: .each(columns)
        )
    }

    /// A projection whose row is its stream's: the unique key is `(partition, stream_id)`, so the
    /// table needs no key columns of its own and the projection no key function.
    ///
    /// - Parameters:
    ///   - name: A stable name for logs, errors, jobs and the CLI.
    ///   - version: The projection's version (see ``StreamProjection/version``).
    ///   - table: The read-model table (`name` or `schema.name`); each version has its own. Its
    ///     unique key is `(partition, stream_id)`, which also serves as the index the projection needs.
    ///   - view: The view readers query, pointed at the active version's table (see ``StreamProjection/view``).
    ///   - promotesWhenCaughtUp: Whether the fleet promotes this version once it has caught up
    ///     (see ``StreamProjection/promotesWhenCaughtUp``).
    ///   - eventTypes: The handled types; all of `E`'s by default. Other events of the stream only
    ///     advance `last_stream_position`.
    ///   - evolve: The write model's evolve. If it throws, the batch rolls back and the error
    ///     reaches the runner, the consumer's failure policy or the job's retries.
    ///   - initialState: The write model's initial state.
    ///   - columns: The other columns the projection fills, each from the state.
    /// - Throws: ``ProjectionError/invalidIdentifier(_:kind:reason:)`` for a bad table or column name.
    public init(
        name: String,
        version: Int = 1,
        table: String,
        view: String? = nil,
        promotesWhenCaughtUp: Bool = false,
        eventTypes: Set<String>? = nil,
        evolve: @escaping @Sendable (State, E) throws -> State,
        initialState: @escaping @Sendable () -> State,
        columns: [SnapshotColumn<State>] = []
    ) throws {
        try self.init(
            name: name, version: version, table: table, view: view, promotesWhenCaughtUp: promotesWhenCaughtUp, keyColumns: ["partition", "stream_id"], eventTypes: eventTypes,
            key: { recorded, partition in [.text(partition), .text(recorded.message.streamId)] },
            evolve: evolve, initialState: initialState, columnNames: columns.map(\.name), columnValues: .each(columns)
        )
    }

    /// A projection with a key of your own whose other columns one closure fills.
    ///
    /// - Parameters:
    ///   - name: A stable name for logs, errors, jobs and the CLI.
    ///   - version: The projection's version (see ``StreamProjection/version``).
    ///   - table: The read-model table (`name` or `schema.name`); each version has its own.
    ///   - view: The view readers query, pointed at the active version's table (see ``StreamProjection/view``).
    ///   - promotesWhenCaughtUp: Whether the fleet promotes this version once it has caught up
    ///     (see ``StreamProjection/promotesWhenCaughtUp``).
    ///   - keyColumns: The columns of the table's unique key.
    ///   - eventTypes: The handled types; all of `E`'s by default. Other events of the stream only
    ///     advance `last_stream_position`.
    ///   - key: The key values, in `keyColumns` order, from any event of the stream and its partition.
    ///   - evolve: The write model's evolve. If it throws, the batch rolls back and the error
    ///     reaches the runner, the consumer's failure policy or the job's retries.
    ///   - initialState: The write model's initial state.
    ///   - columns: The denormalized columns `mapToColumns` fills.
    ///   - mapToColumns: Values for `columns`; a missing entry writes NULL. If it throws, the batch
    ///     stops with ``ProjectionError/invalidColumnValue(projection:table:column:streamId:partition:reason:)``.
    /// - Throws: ``ProjectionError/invalidIdentifier(_:kind:reason:)`` for a bad table or column name.
    public init(
        name: String,
        version: Int = 1,
        table: String,
        view: String? = nil,
        promotesWhenCaughtUp: Bool = false,
        keyColumns: [String],
        eventTypes: Set<String>? = nil,
        key: @escaping @Sendable (RecordedEvent<E>, String) -> [SQLValue],
        evolve: @escaping @Sendable (State, E) throws -> State,
        initialState: @escaping @Sendable () -> State,
        columns: [String] = [],
        mapToColumns: (@Sendable (State) throws -> [String: SQLValue])? = nil
    ) throws {
        try self.init(
            name: name, version: version, table: table, view: view, promotesWhenCaughtUp: promotesWhenCaughtUp, keyColumns: keyColumns, eventTypes: eventTypes, key: key, evolve: evolve,
            initialState: initialState, columnNames: columns, columnValues: mapToColumns.map(ColumnValues.all) ?? .each([])
        )
    }

    private init(
        name: String,
        version: Int = 1,
        table: String,
        view: String? = nil,
        promotesWhenCaughtUp: Bool = false,
        keyColumns: [String],
        eventTypes: Set<String>?,
        key: @escaping @Sendable (RecordedEvent<E>, String) -> [SQLValue],
        evolve: @escaping @Sendable (State, E) throws -> State,
        initialState: @escaping @Sendable () -> State,
        columnNames: [String],
        columnValues: ColumnValues
    ) throws {
        self.name = name
        guard version >= 1 else {
            throw ProjectionError.invalidArgument(field: "version", reason: "must be 1 or more (projection '\(name)' got \(version))")
        }
        self.version = version
        self.table = try SQLIdentifier(table, kind: "table")
        self.view = try view.map { try SQLIdentifier($0, kind: "view") }
        if let view = self.view, view == self.table {
            throw ProjectionError.misconfigured(projection: name, table: table, problems: ["the view must not be the version's table"])
        }
        self.promotesWhenCaughtUp = promotesWhenCaughtUp
        guard !keyColumns.isEmpty else {
            throw ProjectionError.misconfigured(projection: name, table: table, problems: ["no key columns given"])
        }
        self.keyColumns = try keyColumns.map { try SQLIdentifier($0, kind: "key column") }
        self.columns = try columnNames.map { try SQLIdentifier($0, kind: "column") }
        for column in self.keyColumns + self.columns where column.parts.count != 1 {
            throw ProjectionError.invalidIdentifier(column.description, kind: "column", reason: "must not be qualified")
        }
        if let repeated = Dictionary(grouping: columnNames, by: { $0 }).first(where: { $0.value.count > 1 })?.key {
            throw ProjectionError.misconfigured(projection: name, table: table, problems: ["column '\(repeated)' is given twice"])
        }
        self.eventTypes = eventTypes ?? Set(E.cases.map(\.eventType))
        self.key = key
        self.evolve = evolve
        self.initialState = initialState
        self.columnValues = columnValues
        let keys = self.keyColumns
        self.updatedColumns = self.columns.filter { column in !keys.contains(column) && !Self.snapshotColumns.contains(column.name) }
        var inserted = Self.snapshotColumns
        for column in keys + self.columns where !inserted.contains(column.name) { inserted.append(column.name) }
        self.insertedColumns = inserted
    }

    /// How the columns beside the key and the snapshot get their values.
    enum ColumnValues: Sendable {
        /// One closure per column, so a failure names its column.
        case each([SnapshotColumn<State>])
        /// One closure for all of them.
        case all(@Sendable (State) throws -> [String: SQLValue])
    }

    /// The values of the columns beside the key and the snapshot, for a stream's state.
    ///
    /// - Throws: ``ProjectionError/invalidColumnValue(projection:table:column:streamId:partition:reason:)``
    ///   naming the column (or, for one `mapToColumns` closure, all of them) whose value failed.
    func values(of state: State, streamId: String, partition: String) throws(ProjectionError) -> [String: SQLValue] {
        func failure(_ column: String, _ error: any Error) -> ProjectionError {
            .invalidColumnValue(
                projection: name, table: table.description, column: column, streamId: streamId, partition: partition,
                reason: JSONValue.describe(error)
            )
        }
        switch columnValues {
        case .each(let columns):
            var values: [String: SQLValue] = [:]
            for column in columns {
                do { values[column.name] = try column.value(state) } catch { throw failure(column.name, error) }
            }
            return values
        case .all(let mapToColumns):
            do { return try mapToColumns(state) } catch {
                throw failure(columns.map(\.name).joined(separator: ", "), error)
            }
        }
    }

    /// The columns every snapshot table has.
    static var snapshotColumns: [String] {
        ["stream_id", "partition", "last_stream_position", "last_global_position", "snapshot"]
    }

    public func handle(_ messages: [RecordedMessage], context: ProjectionContext) async throws {
        // Bring each stream's row up to the last of its events in the batch, in first-seen order.
        var targets: [StreamKey: Int64] = [:]
        var order: [StreamKey] = []
        for message in messages where handles(message.type) {
            let key = StreamKey(partition: message.partition, streamId: message.streamId)
            if targets[key] == nil { order.append(key) }
            targets[key] = max(targets[key] ?? 0, message.streamPosition)
        }
        var pending = order.map { StreamTarget(partition: $0.partition, streamId: $0.streamId, upTo: targets[$0]) }
        while !pending.isEmpty {
            let outcomes = try await project(streams: pending, batchSize: 1_000, context: context)
            pending = zip(pending, outcomes).filter { !$0.1.caughtUp }.map(\.0)
        }
    }

    /// The current state of a stream's row, or `nil` when there is none.
    ///
    /// - Throws: ``ProjectionError/malformedSnapshot(projection:table:streamId:partition:reason:)``
    ///   when the stored snapshot does not decode as `State`.
    public func load(streamId: String, partition: String, context: ProjectionContext) async throws -> (state: State, lastStreamPosition: Int64)? {
        let rows = try await context.query(
            "SELECT last_stream_position, snapshot::text FROM \(tableName(context)) WHERE partition = \(partition) AND stream_id = \(streamId)"
        )
        return try rows.first.map { row in
            let (position, snapshot) = try row.decode((Int64, String).self)
            return (try decodeSnapshot(snapshot, streamId: streamId, partition: partition), position)
        }
    }

    /// The current state of a stream's row, read through the store's pool, or `nil` when there is
    /// none: what a read-your-writes check or a verification of the read model compares with
    /// `aggregateStream` of the stream.
    ///
    /// - Parameters:
    ///   - streamId: The stream.
    ///   - partition: Its partition.
    ///   - store: The store whose schema holds the table.
    /// - Throws: ``ProjectionError/malformedSnapshot(projection:table:streamId:partition:reason:)``
    ///   when the stored snapshot does not decode as `State`.
    public func load(streamId: String, partition: String = defaultPartition, store: PostgresEventStore) async throws -> (state: State, lastStreamPosition: Int64)? {
        try await store.database.withConnection("read \(name) row") { connection in
            try await load(streamId: streamId, partition: partition, context: ProjectionContext(connection, store: store, logger: store.database.logger))
        }
    }

    /// The table as statements name it: qualified with the store's schema unless it names its own.
    func tableName(_ context: ProjectionContext) -> SQLName {
        context.database.schema.qualifying(table)
    }

    /// Decodes a stored snapshot, naming the row when it does not fit `State`.
    func decodeSnapshot(_ snapshot: String, streamId: String, partition: String) throws(ProjectionError) -> State {
        do {
            return try JSONDecoder().decode(State.self, from: Data(snapshot.utf8))
        } catch {
            throw .malformedSnapshot(
                projection: name, table: table.description, streamId: streamId, partition: partition,
                reason: JSONValue.describe(error)
            )
        }
    }
}

struct StreamKey: Hashable {
    var partition: String
    var streamId: String
}
