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
///
/// The fleet's last hour (``FleetHistory``) gains a point a minute, so it is read again only once
/// a minute (or once per refresh interval when that is longer), with the read that falls due.
final class FleetSnapshots: Sendable {
    /// One read of the fleet.
    struct Snapshot: Sendable {
        var status: FleetStatus
        var versions: [ProjectionVersionStatus]
        /// The last hour: the last read of it that succeeded, `nil` before one did.
        var history: FleetHistory?
        /// The error of the history's last read, while its reads fail.
        var historyError: String?
        /// When it was read.
        var readAt: Date
    }

    /// The last good read, and the error of any later one that failed.
    struct Latest: Sendable {
        var snapshot: Snapshot?
        /// The last read's error, while reads fail; `nil` once one succeeds.
        var error: String?
        var checkedAt: ContinuousClock.Instant?
        /// When the history was last read (whether or not the read succeeded).
        var historyCheckedAt: ContinuousClock.Instant?
    }

    /// The minutes of history the overview charts.
    static let historyMinutes = 60

    private let store: PostgresEventStore
    private let schedulerName: String
    private let interval: Duration
    private let historyInterval: Duration
    private let logger: Logger
    private let latest = Mutex(Latest())
    /// Whether ``run()`` reads the fleet every interval: pages then render the last read at once
    /// and never wait for the database.
    private let polling = Mutex(false)

    init(store: PostgresEventStore, schedulerName: String, interval: Duration, logger: Logger) {
        self.store = store
        self.schedulerName = schedulerName
        self.interval = interval
        self.historyInterval = max(interval, .seconds(60))
        self.logger = logger
    }

    /// While ``run()`` polls, the last read: stale, with an error saying so, when no read has
    /// finished for three intervals (and five seconds) because the database does not answer.
    /// Without it, the last read if it is younger than the refresh interval; otherwise a new read
    /// (or the last good one with the new read's error).
    func current() async -> Latest {
        let known = latest.withLock { $0 }
        if polling.withLock({ $0 }), let checked = known.checkedAt {
            let age = ContinuousClock.now - checked
            guard age > interval * 3 + .seconds(5), known.error == nil else { return known }
            var late = known
            late.error = "the database has not answered for \(age.components.seconds) s"
            return late
        }
        if let checked = known.checkedAt, ContinuousClock.now - checked < interval { return known }
        return await refresh()
    }

    /// Reads the fleet now, and its history when the last read of it is a minute old.
    @discardableResult
    func refresh() async -> Latest {
        let checkedAt = ContinuousClock.now
        do {
            let status = try await FleetStatus.read(from: store, schedulerName: schedulerName)
            let versions = try await JobQueue(store: store, logger: logger).projectionVersions()
            let known = latest.withLock { $0 }
            var snapshot = Snapshot(
                status: status, versions: versions, history: known.snapshot?.history, historyError: known.snapshot?.historyError, readAt: Date()
            )
            var historyCheckedAt = known.historyCheckedAt
            if historyCheckedAt.map({ checkedAt - $0 >= historyInterval }) ?? true {
                historyCheckedAt = checkedAt
                do {
                    snapshot.history = try await FleetHistory.read(from: store, minutes: Self.historyMinutes)
                    snapshot.historyError = nil
                } catch {
                    // The figures are read: the charts keep their last read and say why it is old.
                    logger.warning("could not read the fleet's history", metadata: ["eventfleet.error": "\(error)"])
                    snapshot.historyError = String(describing: error)
                }
            }
            return latest.withLock { latest in
                latest = Latest(snapshot: snapshot, error: nil, checkedAt: checkedAt, historyCheckedAt: historyCheckedAt)
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
        polling.withLock { $0 = true }
        defer { polling.withLock { $0 = false } }
        while !Task.isCancelled {
            await refresh()
            try? await Task.sleep(for: interval)
        }
    }
}
