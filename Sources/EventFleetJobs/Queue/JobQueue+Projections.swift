import EventFleetCore
import Foundation
import PostgresNIO

extension JobQueue {
    /// Records the projections a worker runs, so the scheduler knows which event types make jobs
    /// (`eventTypes` `nil`: every type).
    ///
    /// - Returns: The names registered for the first time. Events written before a projection was
    ///   registered made no jobs for it, so the caller backfills those (``backfill(projections:partition:batchSize:progress:)``).
    @discardableResult
    public func registerProjections(_ projections: [(name: String, version: Int32, eventTypes: [String]?)]) async throws -> [String] {
        var new: [String] = []
        for projection in projections {
            let rows = try await database.query("register projection", """
                INSERT INTO \(schema.ef_projections) AS p (name, version, event_types)
                VALUES (\(projection.name), \(projection.version), \(projection.eventTypes)::text[])
                ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version, event_types = EXCLUDED.event_types, updated = now()
                 WHERE p.version <= EXCLUDED.version
                RETURNING (xmax = 0)
                """)
            if try rows.first?.decode(Bool.self) == true { new.append(projection.name) }
        }
        return new
    }
}
