import EventFleetPostgres
import Foundation
import PostgresNIO

/// One action taken through the dashboard.
struct AuditEntry: Sendable, Hashable {
    var id: Int64
    var at: Date
    /// The name of the admin token it was taken with.
    var actor: String
    var action: String
    var partition: String?
    /// The form's values, as JSON.
    var detail: String
    var outcome: String
}

/// The dashboard's audit table (`ef_dashboard_audit`): every action is recorded with who took it,
/// and entries older than the retention are deleted.
struct AuditLog: Sendable {
    let database: Database

    init(store: PostgresEventStore) {
        database = store.database
    }

    private var schema: Schema { database.schema }

    func record(actor: String, action: String, partition: String?, detail: [String: String], outcome: String) async throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let json = String(decoding: try encoder.encode(detail), as: UTF8.self)
        try await database.query("record a dashboard action", """
            INSERT INTO \(schema.ef_dashboard_audit) (actor, action, partition, detail, outcome)
            VALUES (\(actor), \(action), \(partition), \(json)::jsonb, \(outcome))
            """)
    }

    /// The newest entries first.
    func recent(limit: Int) async throws -> [AuditEntry] {
        let rows = try await database.query("read the dashboard's audit", """
            SELECT id, at, actor, action, partition, detail::text, outcome
              FROM \(schema.ef_dashboard_audit) ORDER BY id DESC LIMIT \(Int64(limit))
            """)
        return try rows.map { row in
            let (id, at, actor, action, partition, detail, outcome) = try row.decode((Int64, Date, String, String, String?, String, String).self)
            return AuditEntry(id: id, at: at, actor: actor, action: action, partition: partition, detail: detail, outcome: outcome)
        }
    }

    /// Deletes the entries older than `retention`.
    ///
    /// - Returns: How many were deleted.
    @discardableResult
    func prune(olderThan retention: Duration) async throws -> Int {
        Int(try await database.value("prune the dashboard's audit", """
            WITH gone AS (DELETE FROM \(schema.ef_dashboard_audit) WHERE at < now() - make_interval(secs => \(Double(retention.components.seconds)))
                          RETURNING 1)
            SELECT count(*) FROM gone
            """, as: Int64.self))
    }
}
