import EventFleetJobs
import EventFleetPostgres
import Foundation
import Logging
import Synchronization

/// The fleet as the dashboard last read it. One reader per dashboard process feeds every page and
/// every open page's live updates, so a hundred open pages cost the database what one does: a
/// page uses the last read while it is younger than the refresh interval, and reads again (for
/// every page) only when it is older.
///
/// A read that fails keeps the last good one, with the error and its age, so a page can show the
/// fleet as it was and say that it is stale.
final class FleetSnapshots: Sendable {
    /// One read of the fleet.
    struct Snapshot: Sendable {
        var status: FleetStatus
        var versions: [ProjectionVersionStatus]
        /// When it was read.
        var readAt: Date
    }

    /// The last good read, and the error of any later one that failed.
    struct Latest: Sendable {
        var snapshot: Snapshot?
        /// The last read's error, while reads fail; `nil` once one succeeds.
        var error: String?
        var checkedAt: ContinuousClock.Instant?
    }

    private let store: PostgresEventStore
    private let schedulerName: String
    private let interval: Duration
    private let logger: Logger
    private let latest = Mutex(Latest())

    init(store: PostgresEventStore, schedulerName: String, interval: Duration, logger: Logger) {
        self.store = store
        self.schedulerName = schedulerName
        self.interval = interval
        self.logger = logger
    }

    /// The last read if it is younger than the refresh interval; otherwise a new read (or the last
    /// good one with the new read's error).
    func current() async -> Latest {
        let known = latest.withLock { $0 }
        if let checked = known.checkedAt, ContinuousClock.now - checked < interval { return known }
        return await refresh()
    }

    /// Reads the fleet now.
    @discardableResult
    func refresh() async -> Latest {
        let checkedAt = ContinuousClock.now
        do {
            let status = try await FleetStatus.read(from: store, schedulerName: schedulerName)
            let versions = try await JobQueue(store: store, logger: logger).projectionVersions()
            let snapshot = Snapshot(status: status, versions: versions, readAt: Date())
            return latest.withLock { latest in
                latest = Latest(snapshot: snapshot, error: nil, checkedAt: checkedAt)
                return latest
            }
        } catch {
            logger.warning("could not read the fleet", metadata: ["eventfleet.error": "\(error)"])
            return latest.withLock { latest in
                latest.error = String(describing: error)
                latest.checkedAt = checkedAt
                return latest
            }
        }
    }

    /// Reads the fleet every interval until cancelled, so that pages find a fresh read waiting.
    func run() async {
        while !Task.isCancelled {
            await refresh()
            try? await Task.sleep(for: interval)
        }
    }
}
