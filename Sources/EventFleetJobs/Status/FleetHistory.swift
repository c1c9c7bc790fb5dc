import EventFleetCore
import EventFleetPostgres
import Foundation
import PostgresNIO

/// The fleet's last minutes, a point a minute: its backlog, the jobs done and events appended, and
/// the scheduler's lag. The dashboard's overview charts the last hour of it.
///
/// The leading scheduler records the backlog and its lag once a minute
/// (``JobQueue/recordFleetMinute(schedulerName:minute:)``); the jobs done are the workers'
/// per-minute statistics, which their heartbeats flush. Both are kept for
/// ``FleetScheduler/Configuration/statisticsRetention``. A minute in which no scheduler led and no
/// job was done is missing from ``minutes``: a gap, not a minute of zeros.
public struct FleetHistory: Sendable, Hashable {
    /// One minute of the fleet.
    public struct Minute: Sendable, Hashable {
        /// The minute's start.
        public var minute: Date
        /// What the leading scheduler recorded for the minute, `nil` when no scheduler led then.
        public var point: Point?
        /// Jobs completed in the minute, over every tenant and lane. The current minute's count
        /// still grows.
        public var completed: Int64
        /// Job attempts that failed in the minute, over every tenant and lane.
        public var failed: Int64
        /// Events appended in the minute: the log's head at the next minute's point less the head
        /// at this one's; `nil` unless both minutes have a point (so the current minute has none).
        public var appended: Int64?
    }

    /// The fleet as the leading scheduler found it when it recorded a minute.
    public struct Point: Sendable, Hashable {
        /// Jobs ready, running and dead.
        public var ready: Int64
        public var running: Int64
        public var dead: Int64
        /// How long the oldest job that could run had waited; `nil` when none waited.
        public var oldestReadySeconds: Double?
        /// The global position of the newest event; `nil` while the log was empty.
        public var headPosition: Int64?
        /// The schedulers' checkpoint; `nil` before they scheduled anything.
        public var scheduledPosition: Int64?
        /// Global positions between the checkpoint and the head: an estimate of events behind.
        public var lagEvents: Int64
        /// How long the oldest event without its jobs had waited: 0 when the scheduler was caught up.
        public var lagSeconds: Double
    }

    /// The window's last minute, the current one by the database's clock.
    public var end: Date
    /// The minutes the window spans, ending with ``end``.
    public var length: Int
    /// The window's minutes that have a point or jobs done, oldest first.
    public var minutes: [Minute]

    /// The window's first minute.
    public var start: Date { end.addingTimeInterval(-60 * Double(length - 1)) }

    /// Reads the fleet's last `minutes` minutes, the current one included.
    ///
    /// It reads the window's points by their key and the window's job statistics by their
    /// minute, both ranges of a primary key, so its cost grows with the window and the number of
    /// tenants, not with the jobs or the log.
    ///
    /// - Parameters:
    ///   - store: The store whose database (and schema) holds the fleet's tables.
    ///   - minutes: How many minutes to read; at least 1.
    public static func read(from store: PostgresEventStore, minutes: Int = 60) async throws -> FleetHistory {
        let database = store.database
        let schema = database.schema
        let length = max(1, minutes)
        let rows = try await database.query("read fleet history", """
            WITH bounds AS (
                SELECT date_trunc('minute', now()) AS last_minute,
                       date_trunc('minute', now()) - \(Int64(length - 1)) * interval '1 minute' AS first_minute
            ), points AS (
                SELECT f.*, lead(f.minute) OVER (ORDER BY f.minute) AS next_minute,
                       lead(f.head_position) OVER (ORDER BY f.minute) AS next_head
                  FROM \(schema.ef_fleet_minutes) f, bounds b
                 WHERE f.minute BETWEEN b.first_minute AND b.last_minute
            ), done AS (
                SELECT s.minute, sum(s.completed)::bigint AS completed, sum(s.failed)::bigint AS failed
                  FROM \(schema.ef_job_stats) s, bounds b
                 WHERE s.minute BETWEEN b.first_minute AND b.last_minute
                 GROUP BY s.minute
            )
            SELECT b.last_minute, coalesce(p.minute, d.minute), p.ready, p.running, p.dead, p.oldest_ready_seconds,
                   p.head_position, p.scheduled_position, p.lag_events, p.lag_seconds,
                   CASE WHEN p.next_minute = p.minute + interval '1 minute' THEN coalesce(p.next_head, 0) - coalesce(p.head_position, 0) END,
                   coalesce(d.completed, 0), coalesce(d.failed, 0)
              FROM bounds b
              LEFT JOIN (points p FULL JOIN done d ON d.minute = p.minute) ON true
             ORDER BY 2
            """)
        var history: FleetHistory?
        for row in rows {
            let (end, minute, ready, running, dead, oldest, head, scheduled, lagEvents, lagSeconds, appended, completed, failed) = try row.decode(
                (Date, Date?, Int64?, Int64?, Int64?, Double?, Int64?, Int64?, Int64?, Double?, Int64?, Int64, Int64).self
            )
            if history == nil { history = FleetHistory(end: end, length: length, minutes: []) }
            guard let minute else { continue }
            var point: Point?
            if let ready, let running, let dead, let lagEvents, let lagSeconds {
                point = Point(
                    ready: ready, running: running, dead: dead, oldestReadySeconds: oldest, headPosition: head,
                    scheduledPosition: scheduled, lagEvents: lagEvents, lagSeconds: lagSeconds
                )
            }
            history?.minutes.append(Minute(minute: minute, point: point, completed: completed, failed: failed, appended: appended))
        }
        guard let history else {
            throw EventStoreError.database(operation: "read fleet history", sqlState: nil, message: "the statement answered no row")
        }
        return history
    }
}
