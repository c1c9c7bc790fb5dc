import EventFleetCore
import EventFleetPostgres
import EventFleetProjections
import Foundation
import PostgresNIO

/// A projection version as the fleet knows it: what a worker records in `ef_projections`, so that
/// the scheduler makes its jobs and the leading scheduler rescues them, with no domain code.
public struct ProjectionRegistration: Sendable, Hashable {
    public var name: String
    public var version: Int32
    /// The event types that make jobs for it; `nil` for every type.
    public var eventTypes: [String]?
    /// A running job of it without a committed batch for this long is rescued; `nil` for never
    /// (see `StreamProjection.jobTimeout`).
    public var jobTimeout: Duration?
    /// The table of its row per stream (see `StreamProjection.rowTable`); `nil` for none. A name
    /// without a schema is recorded in the store's schema.
    public var rowTable: SQLIdentifier?
    /// The view readers query, pointed at the active version's table (see `StreamProjection.view`).
    public var view: SQLIdentifier?
    /// Whether the leading scheduler promotes the version once it has caught up.
    public var promotesWhenCaughtUp: Bool
    /// Whether a new version beside an existing one gets a backfill of every stream (see
    /// `StreamProjection.replaysHistoryOnNewVersion`).
    public var replaysHistoryOnNewVersion: Bool

    public init(
        name: String, version: Int32 = 1, eventTypes: [String]?, jobTimeout: Duration? = nil, rowTable: SQLIdentifier? = nil,
        view: SQLIdentifier? = nil, promotesWhenCaughtUp: Bool = false, replaysHistoryOnNewVersion: Bool = true
    ) {
        self.name = name
        self.version = version
        self.eventTypes = eventTypes
        self.jobTimeout = jobTimeout
        self.rowTable = rowTable
        self.view = view
        self.promotesWhenCaughtUp = promotesWhenCaughtUp
        self.replaysHistoryOnNewVersion = replaysHistoryOnNewVersion
    }

    /// A stream projection's registration: its name, version, event types, job timeout, row table and view.
    public init(_ projection: any StreamProjection) {
        self.init(
            name: projection.name, version: Int32(clamping: projection.version), eventTypes: projection.eventTypes?.sorted(),
            jobTimeout: projection.jobTimeout, rowTable: projection.rowTable, view: projection.view,
            promotesWhenCaughtUp: projection.promotesWhenCaughtUp, replaysHistoryOnNewVersion: projection.replaysHistoryOnNewVersion
        )
    }

    /// The key its jobs, backfills, workers and metrics name it by (``ProjectionVersionKey``).
    public var key: String { ProjectionVersionKey(projection: name, version: version).text }
}

/// What the fleet names a projection version by: the projection's name for version 1 (the name the
/// previous release used, so its jobs and workers need no change), `name@version` for later ones.
/// A job's ``Job/projection`` is such a key.
public struct ProjectionVersionKey: Sendable, Hashable, CustomStringConvertible {
    public var projection: String
    public var version: Int32

    public init(projection: String, version: Int32) {
        self.projection = projection
        self.version = version
    }

    /// Reads a key; a name without `@` is version 1.
    public init(parsing text: String) {
        guard let at = text.lastIndex(of: "@"), let version = Int32(text[text.index(after: at)...]) else {
            self.init(projection: text, version: 1)
            return
        }
        self.init(projection: String(text[..<at]), version: version)
    }

    public var text: String { version == 1 ? projection : "\(projection)@\(version)" }
    public var description: String { "\(projection) version \(version)" }
}

extension JobQueue {
    /// Records the projection versions a worker runs, so the scheduler knows which event types make
    /// jobs (`eventTypes` `nil`: every type).
    ///
    /// The first version of a projection new to the fleet becomes its active version. A version
    /// registered beside an active one is on standby: it is built in its own table (every stream is
    /// backfilled into it when it replays history), its jobs run on the backfill lane, and
    /// ``promote(_:version:force:timeout:)`` makes it active.
    ///
    /// Events written before a version was registered made no jobs for it, so the backfill of every
    /// stream is recorded in the same transaction as the registration: the caller advances it
    /// (``advanceBackfills(batchSize:until:finished:)``), and if the caller dies first, the leading
    /// scheduler does.
    ///
    /// - Returns: The keys (``ProjectionVersionKey``) registered for the first time.
    /// - Throws: ``ProjectionVersionError/retired(projection:version:active:)`` for a retired
    ///   version, ``ProjectionVersionError/changedWithoutNewVersion(projection:version:differences:)``
    ///   when a registered version's event types or table differ.
    @discardableResult
    public func registerProjections(_ projections: [ProjectionRegistration]) async throws -> [String] {
        for projection in projections {
            try IdentifierValidation.validate(projection.name, field: "projection")
            guard projection.version >= 1 else {
                throw JobQueueError.invalidConfiguration(field: "version", reason: "must be 1 or more (projection '\(projection.name)')")
            }
            if let timeout = projection.jobTimeout, timeout <= .zero {
                throw JobQueueError.invalidConfiguration(field: "jobTimeout", reason: "must be positive (projection '\(projection.name)')")
            }
        }
        return try await database.transaction("register projections") { connection in
            // Registrations take turns, so two versions new to the fleet cannot both become active.
            // The mode lets the scheduler and the claims read on.
            try await connection.query("LOCK TABLE \(schema.ef_projections) IN SHARE ROW EXCLUSIVE MODE")
            var new: [String] = []
            var backfilled: [String] = []
            for projection in projections.sorted(by: { $0.key < $1.key }) {
                switch try await registerVersion(projection, on: connection) {
                case .registered: break
                case .new(let backfill):
                    new.append(projection.key)
                    if backfill { backfilled.append(projection.key) }
                }
            }
            if !backfilled.isEmpty {
                try await startBackfill(projections: backfilled, partition: nil, on: connection.connection)
            }
            return new
        }
    }

    /// Refuses versions that are retired, before anything else about them is checked (a retired
    /// version's table is gone, so checking it first would name the table, not the retirement).
    ///
    /// - Throws: ``ProjectionVersionError/retired(projection:version:active:)`` for the first one.
    public func refuseRetired(_ projections: [ProjectionRegistration]) async throws {
        let rows = try await database.query("read retired versions", """
            SELECT r.projection, r.version, a.version FROM \(schema.ef_projections) r
              LEFT JOIN \(schema.ef_projections) a ON a.projection = r.projection AND a.state = 'active'
             WHERE r.state = 'retired' AND r.name = ANY (\(projections.map(\.key))::text[])
             ORDER BY r.name LIMIT 1
            """)
        if let (projection, version, active) = try rows.first?.decode((String, Int32, Int32?).self) {
            throw ProjectionVersionError.retired(projection: projection, version: version, active: active)
        }
    }

    private enum Registered { case registered, new(backfill: Bool) }

    private func registerVersion(_ projection: ProjectionRegistration, on connection: Database.Connection) async throws -> Registered {
        let versions = try await RegisteredVersion.all(of: projection.name, schema: schema, on: connection)
        let rowSchema = projection.rowTable.flatMap { $0.schema ?? schema.name }
        let viewSchema = projection.view.flatMap { $0.schema ?? schema.name }
        if let registered = versions.first(where: { $0.version == projection.version }) {
            if registered.state == .retired {
                throw ProjectionVersionError.retired(
                    projection: projection.name, version: projection.version, active: versions.first { $0.state == .active }?.version
                )
            }
            var differences: [String] = []
            if registered.eventTypes.map({ $0.sorted() }) != projection.eventTypes?.sorted() {
                differences.append(
                    "event types \(registered.eventTypes.map { $0.sorted().joined(separator: ", ") } ?? "(all)") registered, "
                        + "\(projection.eventTypes?.sorted().joined(separator: ", ") ?? "(all)") now"
                )
            }
            if let table = registered.rowTable, let name = projection.rowTable?.name, (registered.rowSchema, table) != (rowSchema, name) {
                differences.append(
                    "table \(registered.rowSchema.map { "\($0)." } ?? "")\(table) registered, \(rowSchema.map { "\($0)." } ?? "")\(name) now"
                )
            }
            guard differences.isEmpty else {
                throw ProjectionVersionError.changedWithoutNewVersion(projection: projection.name, version: projection.version, differences: differences)
            }
            try await connection.query("""
                UPDATE \(schema.ef_projections) AS p
                   SET job_timeout = \(projection.jobTimeout?.milliseconds)::bigint * interval '1 millisecond',
                       row_schema = coalesce(\(rowSchema), p.row_schema), row_table = coalesce(\(projection.rowTable?.name), p.row_table),
                       view_schema = \(viewSchema), view_name = \(projection.view?.name),
                       auto_promote = \(projection.promotesWhenCaughtUp), updated = now()
                 WHERE p.name = \(projection.key)
                """)
            return .registered
        }
        // The first version registered is active, whichever its number: pools of two versions
        // that start together on a new database race for it, and neither is refused.
        let live = versions.filter { $0.state != .retired }
        let state: RegisteredVersion.State = live.isEmpty ? .active : .standby
        try await connection.query("""
            INSERT INTO \(schema.ef_projections)
                   (name, version, event_types, job_timeout, row_schema, row_table, view_schema, view_name, auto_promote, state, was_active)
            VALUES (\(projection.key), \(projection.version), \(projection.eventTypes)::text[],
                    \(projection.jobTimeout?.milliseconds)::bigint * interval '1 millisecond', \(rowSchema), \(projection.rowTable?.name),
                    \(viewSchema), \(projection.view?.name), \(projection.promotesWhenCaughtUp), \(state.rawValue), \(state == .active))
            """)
        return .new(backfill: state == .active || projection.replaysHistoryOnNewVersion)
    }
}
