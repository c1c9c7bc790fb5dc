/// Why a projection version could not be registered, promoted, rolled back or retired. Nothing was
/// changed.
public enum ProjectionVersionError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A worker of a retired version started: it does not bring the version back.
    case retired(projection: String, version: Int32, active: Int32?)
    /// A registered version's event types or table differ from what a worker of it registers: two
    /// shapes would mix in one table. Bump the version to build the new shape beside the old one.
    case changedWithoutNewVersion(projection: String, version: Int32, differences: [String])
    /// No version of the projection is registered (no worker of it has started).
    case unknownProjection(String, known: [String])
    /// The projection has no such version.
    case unknownVersion(projection: String, version: Int32, known: [Int32])
    /// The version is active already.
    case alreadyActive(projection: String, version: Int32)
    /// The version is retired and cannot become active again.
    case cannotActivateRetired(projection: String, version: Int32)
    /// The active version cannot be retired: promote another one first.
    case cannotRetireActive(projection: String, version: Int32)
    /// The version is retired already.
    case alreadyRetired(projection: String, version: Int32)
    /// No version that was active before is left to roll back to.
    case noPreviousVersion(projection: String, active: Int32?)
    /// Some rows of the version are behind the active version's (or missing): switching readers to
    /// it would show them going back. `force` switches anyway.
    case notCaughtUp(projection: String, version: Int32, active: Int32, rowsBehind: Int64, eventsBehind: Int64)
    /// Registered workers run the version: stop them (their pool) before retiring it.
    case stillRunning(projection: String, version: Int32, workers: [String])

    public var description: String {
        switch self {
        case .retired(let projection, let version, let active):
            "version \(version) of projection '\(projection)' is retired\(active.map { "; the active version is \($0)" } ?? ""): "
                + "a worker of a retired version does not bring it back (run a worker of the active version)"
        case .changedWithoutNewVersion(let projection, let version, let differences):
            "projection '\(projection)' version \(version) is registered with another shape (\(differences.joined(separator: "; "))): "
                + "give the changed projection a new version, so it is built in its own table beside this one"
        case .unknownProjection(let projection, let known):
            "no version of projection '\(projection)' is registered (registered: \(known.isEmpty ? "none" : known.joined(separator: ", ")))"
        case .unknownVersion(let projection, let version, let known):
            "projection '\(projection)' has no version \(version) (registered: \(known.map(String.init).joined(separator: ", ")))"
        case .alreadyActive(let projection, let version):
            "version \(version) of projection '\(projection)' is active already"
        case .cannotActivateRetired(let projection, let version):
            "version \(version) of projection '\(projection)' is retired: its table and jobs are gone"
        case .cannotRetireActive(let projection, let version):
            "version \(version) of projection '\(projection)' is active: promote another version before retiring it"
        case .alreadyRetired(let projection, let version):
            "version \(version) of projection '\(projection)' is retired already"
        case .noPreviousVersion(let projection, let active):
            "projection '\(projection)' has no previous version to roll back to\(active.map { " (version \($0) is active)" } ?? "")"
        case .notCaughtUp(let projection, let version, let active, let rows, let events):
            "version \(version) of projection '\(projection)' is behind the active version \(active): \(rows) rows behind or missing, "
                + "\(events) events in all; wait for it to catch up (eventfleet projections status), or force the switch and let readers "
                + "see those rows go back or disappear until it does"
        case .stillRunning(let projection, let version, let workers):
            "version \(version) of projection '\(projection)' is run by registered workers (\(workers.joined(separator: ", "))): "
                + "stop them before retiring it"
        }
    }
}
