import EventFleetCore
import Foundation
import PostgresNIO

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
    public func registerProjections(_ projections: [(name: String, version: Int32, eventTypes: [String]?)]) async throws -> [String] {
        try await database.transaction("register projections") { connection in
            var new: [String] = []
            for projection in projections {
                let rows = try await connection.query("""
                    INSERT INTO \(schema.ef_projections) AS p (name, version, event_types)
                    VALUES (\(projection.name), \(projection.version), \(projection.eventTypes)::text[])
                    ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version, event_types = EXCLUDED.event_types, updated = now()
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
