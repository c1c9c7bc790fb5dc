import EventFleetCore
import EventFleetPostgres
import Foundation
import PostgresNIO

/// A registered projection version and how far it has come, per tenant: what
/// `eventfleet projections status` shows.
public struct ProjectionVersionStatus: Codable, Sendable, Hashable {
    /// Where a version stands.
    public enum State: String, Codable, Sendable, Hashable {
        /// Registered beside the active version and not caught up yet: its rows are being built.
        case building
        /// Not active, its backfill is done, and it is no further behind the streams than the active
        /// version (under live writes both lag by the events in flight): it can be promoted (or, for
        /// a version that was active before, rolled back to), and the switch's barrier waits for
        /// those last events.
        case ready
        /// A version that was active before and whose rows have fallen behind (its workers stopped):
        /// rolling back to it needs `force`.
        case behind
        /// The version readers see.
        case active
        /// Its table and jobs are gone.
        case retired
    }

    /// One tenant's share of the version's work.
    public struct Tenant: Codable, Sendable, Hashable {
        public var partition: String
        /// Streams of the tenant; `nil` when the version has no row table to compare.
        public var streams: Int64?
        /// Streams whose row has every event the version handles.
        public var streamsDone: Int64?
        /// Events of its types that its rows still lack.
        public var eventsBehind: Int64?
        /// Ready and running jobs.
        public var jobsPending: Int64
        public var jobsDead: Int64
        /// How fast its events behind shrink, from two readings (``ProjectionVersionStatus/rated(since:over:)``);
        /// negative while they grow. `nil` without an earlier reading.
        public var eventsPerSecond: Double?
        /// When its events behind reach zero at that rate; `nil` while they do not shrink.
        public var etaSeconds: Double?
    }

    public var projection: String
    public var version: Int32
    /// What jobs, workers and metrics name the version by (``ProjectionVersionKey``).
    public var key: String
    public var state: State
    /// Whether the version has been active (a rollback target when it is not now).
    public var wasActive: Bool
    /// Whether the leading scheduler promotes it once caught up.
    public var promotesWhenCaughtUp: Bool
    /// Its row table, qualified when recorded with a schema; `nil` for none.
    public var table: String?
    /// The view readers query; `nil` for none.
    public var view: String?
    /// Whether the backfill of its streams has not finished enqueueing.
    public var backfilling: Bool
    /// When it last changed state (registered, promoted, rolled back, retired).
    public var since: Date
    public var tenants: [Tenant]
    /// How fast the version's events behind shrink (see ``Tenant/eventsPerSecond``).
    public var eventsPerSecond: Double?
    /// When they reach zero at that rate.
    public var etaSeconds: Double?

    /// Streams of every tenant; `nil` without a row table.
    public var streams: Int64? { sum(\.streams) }
    public var streamsDone: Int64? { sum(\.streamsDone) }
    public var eventsBehind: Int64? { sum(\.eventsBehind) }
    public var jobsPending: Int64 { tenants.reduce(0) { $0 + $1.jobsPending } }
    public var jobsDead: Int64 { tenants.reduce(0) { $0 + $1.jobsDead } }

    /// This reading with rates and times left, from an earlier reading of the same version taken
    /// `elapsed` before (the net rate: events projected less events appended meanwhile).
    public func rated(since earlier: ProjectionVersionStatus, over elapsed: Duration) -> ProjectionVersionStatus {
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        guard seconds > 0 else { return self }
        func rate(_ before: Int64?, _ now: Int64?) -> (Double?, Double?) {
            guard let before, let now else { return (nil, nil) }
            let perSecond = Double(before - now) / seconds
            return (perSecond, now == 0 ? 0 : perSecond > 0 ? Double(now) / perSecond : nil)
        }
        var rated = self
        (rated.eventsPerSecond, rated.etaSeconds) = rate(earlier.eventsBehind, eventsBehind)
        let before = Dictionary(earlier.tenants.map { ($0.partition, $0.eventsBehind) }, uniquingKeysWith: { first, _ in first })
        for index in rated.tenants.indices {
            let tenant = rated.tenants[index]
            (rated.tenants[index].eventsPerSecond, rated.tenants[index].etaSeconds) = rate(before[tenant.partition] ?? nil, tenant.eventsBehind)
        }
        return rated
    }

    private func sum(_ field: KeyPath<Tenant, Int64?>) -> Int64? {
        let values = tenants.compactMap { $0[keyPath: field] }
        return values.isEmpty && tenants.contains(where: { $0[keyPath: field] == nil }) ? nil : values.reduce(0, +)
    }
}

/// A version's row in `ef_projections`, as registration and the operator's checks read it.
struct RegisteredVersion: Sendable {
    enum State: String { case active, standby, retired }

    var key: String
    var version: Int32
    var state: State
    var eventTypes: [String]?
    var rowSchema: String?
    var rowTable: String?

    /// Every version of `projection`, locked for the caller's transaction, in version order.
    static func all(of projection: String, schema: Schema, on connection: Database.Connection) async throws -> [RegisteredVersion] {
        try await connection.query("""
            SELECT name, version, state, event_types, row_schema, row_table FROM \(schema.ef_projections)
             WHERE projection = \(projection) ORDER BY name FOR UPDATE
            """).map { row in
            var cells = RowCells(row, statement: "read projection versions")
            return RegisteredVersion(
                key: try cells.next(), version: try cells.next(), state: State(rawValue: try cells.next()) ?? .retired,
                eventTypes: try cells.next(), rowSchema: try cells.next(), rowTable: try cells.next()
            )
        }.sorted { $0.version < $1.version }
    }
}

extension JobQueue {
    /// Every registered version of `projection` (of every projection when `nil`) and how far each
    /// has come per tenant, in projection and version order.
    ///
    /// Each version's rows are compared with the streams table (a join of the two, plus the events
    /// of streams whose row is behind), so a call costs about a scan of both: an operator's view,
    /// not something to poll many times a second.
    public func projectionVersions(of projection: String? = nil) async throws -> [ProjectionVersionStatus] {
        // A build of a large store takes longer to compare than a statement's deadline.
        let rows = try await database.withoutDeadline().query("read projection versions", """
            SELECT key, projection, version, state, was_active, auto_promote, row_schema, row_table, view_schema, view_name,
                   backfilling, state_changed, partition, streams, streams_done, events_behind, jobs_pending, jobs_dead
              FROM \(schema.ef_projection_versions)(\(projection))
            """)
        var versions: [ProjectionVersionStatus] = []
        for row in rows {
            var cells = RowCells(row, statement: "read projection versions")
            let key: String = try cells.next()
            let (name, version, stored, wasActive, autoPromote) = (
                try cells.next(String.self), try cells.next(Int32.self), try cells.next(String.self), try cells.next(Bool.self),
                try cells.next(Bool.self)
            )
            let (rowSchema, rowTable, viewSchema, viewName) = (
                try cells.next(String?.self), try cells.next(String?.self), try cells.next(String?.self), try cells.next(String?.self)
            )
            let (backfilling, since) = (try cells.next(Bool.self), try cells.next(Date.self))
            let partition: String? = try cells.next()
            let tenant = ProjectionVersionStatus.Tenant(
                partition: partition ?? "", streams: try cells.next(), streamsDone: try cells.next(), eventsBehind: try cells.next(),
                jobsPending: try cells.next(), jobsDead: try cells.next()
            )
            if versions.last?.key != key {
                versions.append(ProjectionVersionStatus(
                    projection: name, version: version, key: key, state: .building, wasActive: wasActive,
                    promotesWhenCaughtUp: autoPromote, table: rowTable.map { qualified(rowSchema, $0) },
                    view: viewName.map { qualified(viewSchema, $0) }, backfilling: backfilling, since: since, tenants: [],
                    eventsPerSecond: nil, etaSeconds: nil
                ))
            }
            if partition != nil { versions[versions.count - 1].tenants.append(tenant) }
            versions[versions.count - 1].state = Self.state(stored, wasActive: wasActive, backfilling: backfilling)
        }
        for index in versions.indices where versions[index].state == .building || versions[index].state == .behind {
            let version = versions[index]
            let active = versions.first { $0.projection == version.projection && $0.state == .active }
            let behind = version.eventsBehind ?? version.jobsPending
            let activeBehind = active.map { $0.eventsBehind ?? $0.jobsPending } ?? 0
            if !version.backfilling && behind <= activeBehind { versions[index].state = .ready }
        }
        return versions
    }

    private static func state(_ stored: String, wasActive: Bool, backfilling: Bool) -> ProjectionVersionStatus.State {
        switch RegisteredVersion.State(rawValue: stored) {
        case .active: .active
        case .retired, nil: .retired
        case .standby: wasActive ? .behind : .building
        }
    }

    private func qualified(_ schema: String?, _ name: String) -> String {
        schema.map { "\($0).\(name)" } ?? name
    }
}
