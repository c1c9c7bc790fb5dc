import CartsExample
import EventFleetCore
import EventFleetJobs
import EventFleetPostgres
import Foundation
import PostgresNIO

/// One checked invariant of the soak.
struct InvariantResult: Sendable {
    var name: String
    var held: Bool
    var detail: String
}

/// The checks made after the fleet drained.
struct ChaosInvariants: Sendable {
    let store: PostgresEventStore
    private var database: Database { store.database }
    private var schema: Schema { store.database.schema }

    /// Every row of a version of `carts` equals the fold of its stream (version 1's poison stream
    /// excepted: version 1 cannot fold it).
    func cartsRowsMatchStreams(version: Int) async throws -> InvariantResult {
        let streams = try await cartStreams(includingPoison: version != 1)
        let mismatches = try await CartsReadModel.rowsNotMatchingStreams(streams, store: store, version: version)
        return InvariantResult(
            name: "every carts version \(version) row equals aggregateStream of its stream",
            held: mismatches.isEmpty,
            detail: mismatches.isEmpty ? "\(streams.count) streams" : "\(mismatches.count) of \(streams.count) differ: \(mismatches.prefix(5).joined(separator: "; "))"
        )
    }

    /// Version 2, built beside version 1 under faults, was promoted without force, and what readers
    /// of the view `carts` now see is its rows, each equal to the fold of its stream (the poison
    /// stream's included: version 2 applies it).
    func promotedVersionMatchesStreams(_ promotion: Result<ProjectionVersionSwitch, any Error>) async throws -> InvariantResult {
        let name = "carts version 2, built under faults, was promoted without force; the active version's rows equal the fold"
        guard case .success = promotion else {
            let error = if case .failure(let error) = promotion { "\(error)" } else { "" }
            return InvariantResult(name: name, held: false, detail: "the promotion was refused: \(error)")
        }
        let active = try await CartsReadModel.activeVersion(store: store)
        guard active == 2 else { return InvariantResult(name: name, held: false, detail: "version \(active) is active") }
        let streams = try await cartStreams(includingPoison: true)
        let mismatches = try await CartsReadModel.rowsNotMatchingStreams(streams, store: store, version: active)
        let throughView = try await database.value("count rows through the view", "SELECT count(*) FROM \(schema.carts) WHERE status IS NOT NULL", as: Int64.self)
        return InvariantResult(
            name: name,
            held: mismatches.isEmpty && throughView == Int64(streams.count),
            detail: mismatches.isEmpty
                ? "\(streams.count) streams; \(throughView) rows of version 2 through the view carts"
                : "\(mismatches.count) of \(streams.count) differ: \(mismatches.prefix(5).joined(separator: "; "))"
        )
    }

    private func cartStreams(includingPoison: Bool) async throws -> [(String, String)] {
        try await database.query(
            "list cart streams",
            "SELECT partition, stream_id FROM \(schema.ef_streams) WHERE stream_id LIKE 'cart-%' AND (\(includingPoison) OR stream_id <> \(ChaosInjector.poisonStream))"
        ).map { try $0.decode((String, String).self) }
    }

    /// Every event was applied exactly once by the counting projection.
    func everyEventAppliedOnce() async throws -> InvariantResult {
        let rows = try await database.query("count applications", """
            SELECT count(*) FILTER (WHERE a.applications IS NULL),
                   count(*) FILTER (WHERE a.applications > 1),
                   count(*)
              FROM \(schema.ef_messages) m
              LEFT JOIN \(schema.chaos_applications) a USING (partition, stream_id, stream_position)
             WHERE m.stream_id LIKE 'cart-%'
            """)
        var (missing, repeated, total): (Int64, Int64, Int64) = (0, 0, 0)
        if let row = rows.first { (missing, repeated, total) = try row.decode((Int64, Int64, Int64).self) }
        return InvariantResult(
            name: "every event applied exactly once (no loss, no double application)",
            held: missing == 0 && repeated == 0,
            detail: "\(total) events; \(missing) never applied, \(repeated) applied more than once"
        )
    }

    /// Every message id a writer logged as acknowledged is stored, exactly once.
    func acknowledgedEventsStored(ackLogs: [String]) throws -> (ids: [String], duplicateLines: Int) {
        var ids: [String] = []
        var seen = Set<String>()
        var duplicates = 0
        for path in ackLogs {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { continue }
            for line in text.split(separator: "\n") where !line.isEmpty {
                let id = String(line)
                if seen.insert(id).inserted { ids.append(id) } else { duplicates += 1 }
            }
        }
        return (ids, duplicates)
    }

    func acknowledgedInStore(ackLogs: [String]) async throws -> InvariantResult {
        let (ids, duplicateLines) = try acknowledgedEventsStored(ackLogs: ackLogs)
        var found = 0
        var missingExamples: [String] = []
        var start = 0
        while start < ids.count {
            let chunk = Array(ids[start..<min(start + 5_000, ids.count)])
            let present = Set(try await database.query(
                "find acknowledged ids", "SELECT message_id FROM \(schema.ef_messages) WHERE message_id = ANY(\(chunk)::text[])"
            ).map { try $0.decode(String.self) })
            found += present.count
            missingExamples += chunk.filter { !present.contains($0) }.prefix(5 - min(5, missingExamples.count))
            start += chunk.count
        }
        let storedTwice = try await database.value(
            "count ids stored twice",
            "SELECT count(*) FROM (SELECT partition, message_id FROM \(schema.ef_messages) GROUP BY 1, 2 HAVING count(*) > 1) d",
            as: Int64.self
        )
        let missing = ids.count - found
        return InvariantResult(
            name: "every acknowledged command's events are in the store, none twice",
            held: missing == 0 && storedTwice == 0 && duplicateLines == 0,
            detail: "\(ids.count) acknowledged ids; \(missing) missing\(missingExamples.isEmpty ? "" : " (\(missingExamples.joined(separator: ", ")))"), "
                + "\(storedTwice) stored twice, \(duplicateLines) acknowledged twice"
        )
    }

    /// Every backfill was finished, the ones whose driver the soak killed included.
    func backfillsFinished() async throws -> InvariantResult {
        let rows = try await database.query(
            "count backfills", "SELECT count(*) FILTER (WHERE finished IS NULL), count(*) FROM \(schema.ef_backfills)"
        )
        var (unfinished, total): (Int64, Int64) = (0, 0)
        if let row = rows.first { (unfinished, total) = try row.decode((Int64, Int64).self) }
        return InvariantResult(
            name: "every backfill finished, those whose worker was killed mid-way included",
            held: unfinished == 0,
            detail: "\(total) backfills, \(unfinished) unfinished"
        )
    }

    /// No job is running; the only dead or waiting jobs are the poison stream's.
    func jobsSettled() async throws -> InvariantResult {
        var lines: [String] = []
        var problems = 0
        var poisonDead = 0
        for row in try await database.query(
            "list jobs", "SELECT projection, partition, stream_id, state, lane, attempt FROM \(schema.ef_jobs) ORDER BY id"
        ) {
            let (projection, partition, stream, state, lane, attempts) = try row.decode((String, String, String, String, String, Int32).self)
            let isPoison = stream == ChaosInjector.poisonStream && projection == "carts"
            if isPoison && state == "dead" { poisonDead += 1 }
            if !isPoison || state == "running" { problems += 1 }
            lines.append("\(projection)/\(partition)/\(stream) \(lane) \(state) after \(attempts) attempts")
        }
        return InvariantResult(
            name: "no job left running; only the poison stream's jobs are dead",
            held: problems == 0 && poisonDead > 0,
            detail: lines.isEmpty ? "no jobs left (the poison job was never dead)" : lines.prefix(6).joined(separator: "; ")
        )
    }
}
