import EventFleetCore
import EventFleetPostgres
import Foundation
import PostgresNIO

/// What a promotion or rollback did.
public struct ProjectionVersionSwitch: Sendable, Hashable, Codable {
    public var projection: String
    /// The version active before; `nil` when none was.
    public var from: Int32?
    public var to: Int32
    /// Rows of the new version behind the old one's when it switched (only with `force`).
    public var rowsBehind: Int64
    public var eventsBehind: Int64
}

extension JobQueue {
    /// Makes `version` the projection's active version: its view (when the projection has one)
    /// then shows that version's table, and the version's jobs run on the live lane, the old
    /// version's on the backfill lane (it is kept up to date while its workers run, for a rollback).
    ///
    /// The switch waits, up to `timeout`, until every row of `version` is at or ahead of the active
    /// version's row of the same stream, holding the active version's writers for a moment while
    /// it checks, so a reader never sees a row go back (docs/DESIGN.md, "Projection versions").
    ///
    /// - Parameters:
    ///   - projection: The projection's name.
    ///   - version: The version to activate.
    ///   - force: Switch even if rows are behind; readers then see them go back or disappear until
    ///     the version's workers catch up.
    ///   - timeout: How long to wait for the version to catch up.
    /// - Throws: ``ProjectionVersionError/notCaughtUp(projection:version:active:rowsBehind:eventsBehind:)``
    ///   when it did not catch up in time, ``ProjectionVersionError`` for an unknown projection or
    ///   version, a retired or already active one. Nothing changes then.
    @discardableResult
    public func promote(_ projection: String, version: Int32, force: Bool = false, timeout: Duration = .seconds(15)) async throws -> ProjectionVersionSwitch {
        try await switchVersion(projection, to: version, force: force, timeout: timeout)
    }

    /// Makes the version that was active before the current one active again (see
    /// ``promote(_:version:force:timeout:)``, which it checks and switches as): its rows must be at
    /// or ahead of the active version's, which they are while its workers still run.
    ///
    /// - Throws: ``ProjectionVersionError/noPreviousVersion(projection:active:)`` when no version
    ///   that was active before is kept, and the errors of ``promote(_:version:force:timeout:)``.
    @discardableResult
    public func rollback(_ projection: String, force: Bool = false, timeout: Duration = .seconds(15)) async throws -> ProjectionVersionSwitch {
        let versions = try await projectionVersions(of: projection)
        guard !versions.isEmpty else { throw try await unknownProjection(projection) }
        let previous = versions.filter { $0.wasActive && $0.state != .active && $0.state != .retired }.max { $0.since < $1.since }
        guard let previous else {
            throw ProjectionVersionError.noPreviousVersion(projection: projection, active: versions.first { $0.state == .active }?.version)
        }
        return try await switchVersion(projection, to: previous.version, force: force, timeout: timeout)
    }

    /// Promotes every version that opted in (`StreamProjection.promotesWhenCaughtUp`), has never
    /// been active, whose backfill has finished and whose rows are all at or ahead of the active
    /// version's: what the leading scheduler does now and then. A version not caught up yet is left
    /// for the next call; the active version's writers wait at most `hold` for each check.
    ///
    /// - Returns: The switches made.
    public func promoteCaughtUpVersions(hold: Duration = .milliseconds(200)) async throws -> [ProjectionVersionSwitch] {
        let candidates = try await database.query("read versions to promote", """
            SELECT p.projection, p.version FROM \(schema.ef_projections) p
             WHERE p.auto_promote AND p.state = 'standby' AND NOT p.was_active
               AND NOT EXISTS (SELECT 1 FROM \(schema.ef_backfills) b WHERE b.finished IS NULL AND p.name = ANY (b.projections))
             ORDER BY p.name
            """).map { try $0.decode((String, Int32).self) }
        var switched: [ProjectionVersionSwitch] = []
        for (projection, version) in candidates {
            if case .switched(let done) = try await trySwitch(projection, to: version, force: false, hold: hold) { switched.append(done) }
        }
        return switched
    }

    private func switchVersion(_ projection: String, to version: Int32, force: Bool, timeout: Duration) async throws -> ProjectionVersionSwitch {
        let deadline = ContinuousClock.now + timeout
        while true {
            // Long enough for in-flight jobs of the new version to commit; short, since the active
            // version's writers wait meanwhile.
            switch try await trySwitch(projection, to: version, force: force, hold: max(.zero, min(.seconds(1), deadline - .now))) {
            case .switched(let switched): return switched
            case .behind(let refusal): guard ContinuousClock.now < deadline else { throw refusal }
            }
            // The active version's writers catch up on what waited for the check.
            try await Task.sleep(for: .milliseconds(500))
        }
    }

    /// What one call of the switch did: switched, or found the version behind (worth another try).
    private enum SwitchAttempt {
        case switched(ProjectionVersionSwitch)
        case behind(ProjectionVersionError)
    }

    /// One call of the switch; a refusal other than "behind" throws.
    private func trySwitch(_ projection: String, to version: Int32, force: Bool, hold: Duration) async throws -> SwitchAttempt {
        let rows = try await database.withoutDeadline().query("switch projection version", """
            SELECT outcome, from_version, rows_behind, events_behind
              FROM \(schema.ef_switch_projection_version)(\(projection), \(version), \(force), \(hold.milliseconds)::bigint * interval '1 millisecond')
            """)
        var cells = RowCells(try rows.only("switch projection version"), statement: "switch projection version")
        let (outcome, from, rowsBehind, eventsBehind) = (
            try cells.next(String.self), try cells.next(Int32?.self), try cells.next(Int64.self), try cells.next(Int64.self)
        )
        switch outcome {
        case "switched", "no_active":
            return .switched(ProjectionVersionSwitch(projection: projection, from: from, to: version, rowsBehind: rowsBehind, eventsBehind: eventsBehind))
        case "behind":
            return .behind(.notCaughtUp(projection: projection, version: version, active: from ?? 0, rowsBehind: rowsBehind, eventsBehind: eventsBehind))
        case "active": throw ProjectionVersionError.alreadyActive(projection: projection, version: version)
        case "retired": throw ProjectionVersionError.cannotActivateRetired(projection: projection, version: version)
        default: throw try await unknownVersion(projection, version)
        }
    }

    /// The error for a projection none of whose versions is registered.
    package func unknownProjection(_ projection: String) async throws -> ProjectionVersionError {
        let known = try await database.query("read projections", "SELECT DISTINCT projection FROM \(schema.ef_projections) ORDER BY 1")
        return .unknownProjection(projection, known: try known.map { try $0.decode(String.self) })
    }

    /// The error for a version the projection does not have (or for the projection, when it has none).
    func unknownVersion(_ projection: String, _ version: Int32) async throws -> ProjectionVersionError {
        let versions = try await database.query("read projection versions", """
            SELECT version FROM \(schema.ef_projections) WHERE projection = \(projection) ORDER BY version
            """).map { try $0.decode(Int32.self) }
        guard !versions.isEmpty else { return try await unknownProjection(projection) }
        return .unknownVersion(projection: projection, version: version, known: versions)
    }
}

/// What retiring a version removed.
public struct RetiredProjectionVersion: Sendable, Hashable, Codable {
    public var projection: String
    public var version: Int32
    /// The table dropped; `nil` when it had none, it was gone, or another version or view uses it.
    public var droppedTable: String?
    public var deletedJobs: Int64
}

extension JobQueue {
    /// Retires a version that is neither active nor run by a registered worker: drops its table
    /// (unless another version or a projection's view uses it), deletes its jobs, takes it out of
    /// unfinished backfills, and keeps its registration as retired, so that a worker of it that
    /// starts again is refused (``ProjectionVersionError/retired(projection:version:active:)``).
    ///
    /// - Throws: ``ProjectionVersionError`` for an unknown projection or version, the active
    ///   version, a retired one, or one that registered workers run. Nothing changes then.
    @discardableResult
    public func retire(_ projection: String, version: Int32) async throws -> RetiredProjectionVersion {
        let rows = try await database.query("retire projection version", """
            SELECT outcome, workers, dropped_table, deleted_jobs FROM \(schema.ef_retire_projection_version)(\(projection), \(version))
            """)
        var cells = RowCells(try rows.only("retire projection version"), statement: "retire projection version")
        let (outcome, workers, dropped, deleted) = (
            try cells.next(String.self), try cells.next([String]?.self), try cells.next(String?.self), try cells.next(Int64.self)
        )
        switch outcome {
        case "retired": return RetiredProjectionVersion(projection: projection, version: version, droppedTable: dropped, deletedJobs: deleted)
        case "active": throw ProjectionVersionError.cannotRetireActive(projection: projection, version: version)
        case "already_retired": throw ProjectionVersionError.alreadyRetired(projection: projection, version: version)
        case "running": throw ProjectionVersionError.stillRunning(projection: projection, version: version, workers: workers ?? [])
        default: throw try await unknownVersion(projection, version)
        }
    }
}

extension [PostgresRow] {
    /// The row of a routine that answers one.
    fileprivate func only(_ operation: String) throws -> PostgresRow {
        guard let row = first else { throw EventStoreError.database(operation: operation, sqlState: nil, message: "the statement answered no row") }
        return row
    }
}
