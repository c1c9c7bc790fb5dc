import EventFleetCore
import EventFleetProjections
import Foundation
import PostgresNIO

/// A projection as the fleet knows it: what a worker records in `ef_projections`, so that the
/// scheduler makes its jobs and the leading scheduler rescues them, with no domain code.
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

    public init(name: String, version: Int32 = 1, eventTypes: [String]?, jobTimeout: Duration? = nil, rowTable: SQLIdentifier? = nil) {
        self.name = name
        self.version = version
        self.eventTypes = eventTypes
        self.jobTimeout = jobTimeout
        self.rowTable = rowTable
    }

    /// A stream projection's registration: its name, event types, job timeout and row table.
    public init(_ projection: any StreamProjection, version: Int32 = 1) {
        self.init(
            name: projection.name, version: version, eventTypes: projection.eventTypes?.sorted(), jobTimeout: projection.jobTimeout,
            rowTable: projection.rowTable
        )
    }
}

extension JobQueue {
    /// Records the projections a worker runs, so the scheduler knows which event types make jobs
    /// (`eventTypes` `nil`: every type).
    ///
    /// Events written before a projection was registered made no jobs for it, so a projection new
    /// to the fleet gets a backfill of every stream, recorded in the same transaction as the
    /// registration: the caller advances it (``advanceBackfills(batchSize:until:finished:)``), and
    /// if the caller dies first, the leading scheduler does.
    ///
    /// - Returns: The names registered for the first time.
    @discardableResult
    public func registerProjections(_ projections: [ProjectionRegistration]) async throws -> [String] {
        for projection in projections {
            try IdentifierValidation.validate(projection.name, field: "projection")
            if let timeout = projection.jobTimeout, timeout <= .zero {
                throw JobQueueError.invalidConfiguration(field: "jobTimeout", reason: "must be positive (projection '\(projection.name)')")
            }
        }
        return try await database.transaction("register projections") { connection in
            var new: [String] = []
            // In name order: two workers registering the same projections lock their rows in the
            // same order, so they cannot deadlock.
            for projection in projections.sorted(by: { $0.name < $1.name }) {
                let rows = try await connection.query("""
                    INSERT INTO \(schema.ef_projections) AS p (name, version, event_types, job_timeout, row_schema, row_table)
                    VALUES (\(projection.name), \(projection.version), \(projection.eventTypes)::text[],
                            \(projection.jobTimeout?.milliseconds)::bigint * interval '1 millisecond',
                            \(projection.rowTable.flatMap { $0.schema ?? schema.name }), \(projection.rowTable?.name))
                    ON CONFLICT (name) DO UPDATE
                       SET version = EXCLUDED.version, event_types = EXCLUDED.event_types, job_timeout = EXCLUDED.job_timeout,
                           -- A previous release's worker records no row table: the one recorded stays.
                           row_schema = CASE WHEN EXCLUDED.row_table IS NULL THEN p.row_schema ELSE EXCLUDED.row_schema END,
                           row_table = coalesce(EXCLUDED.row_table, p.row_table), updated = now()
                     WHERE p.version <= EXCLUDED.version
                    RETURNING (xmax = 0)
                    """)
                if try rows.first?.decode(Bool.self) == true { new.append(projection.name) }
            }
            if !new.isEmpty {
                try await startBackfill(projections: new, partition: nil, on: connection.connection)
            }
            return new
        }
    }
}
