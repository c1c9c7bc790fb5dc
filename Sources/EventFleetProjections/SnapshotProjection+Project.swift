import EventFleetCore
import EventFleetPostgres
import Foundation
import PostgresNIO

extension SnapshotProjection {
    public func project(
        streamId: String, partition: String, upTo position: Int64?, batchSize: Int, context: ProjectionContext
    ) async throws -> Int {
        try await project(streams: [StreamTarget(partition: partition, streamId: streamId, upTo: position)], batchSize: batchSize, context: context)[0].applied
    }

    /// Brings many rows forward in three statements whatever their number: one locks the rows, one
    /// reads a page of each stream, one writes every row (updates and inserts).
    public func project(streams targets: [StreamTarget], batchSize: Int, context: ProjectionContext) async throws -> [StreamOutcome] {
        try await project(streams: targets, batchSize: batchSize, fromStart: false, context: context)
    }

    /// Recomputes the rows of `streams` from their first events to their ends, each under its row's
    /// lock, and writes each once: readers see the old row until the transaction commits and then
    /// the new one, at the same position or further, never no row. A stream without a row gets one.
    public func rebuild(streams: [StreamTarget], batchSize: Int, context: ProjectionContext) async throws -> [StreamOutcome] {
        try await project(streams: streams.map { StreamTarget(partition: $0.partition, streamId: $0.streamId) }, batchSize: batchSize, fromStart: true, context: context)
    }

    /// Brings rows forward by a page of each stream from the row's position, or (`fromStart`)
    /// recomputes them from each stream's first event to its end.
    private func project(streams targets: [StreamTarget], batchSize: Int, fromStart: Bool, context: ProjectionContext) async throws -> [StreamOutcome] {
        guard batchSize > 0 else { throw ProjectionError.invalidArgument(field: "batchSize", reason: "must be positive (got \(batchSize))") }
        // One entry per stream, with the furthest target of its duplicates.
        var slot: [StreamKey: Int] = [:]
        var streams: [StreamTarget] = []
        for target in targets {
            let key = StreamKey(partition: target.partition, streamId: target.streamId)
            if let index = slot[key] {
                if let current = streams[index].upTo, let upTo = target.upTo { streams[index].upTo = max(current, upTo) } else { streams[index].upTo = nil }
            } else {
                slot[key] = streams.count
                streams.append(target)
            }
        }
        var outcomes = [StreamOutcome](repeating: StreamOutcome(applied: 0, caughtUp: true), count: streams.count)
        var pending = Array(streams.indices)
        var lostInsertRaces = [Int](repeating: 0, count: streams.count)
        while !pending.isEmpty {
            // Lock the rows so concurrent runners apply each event once; a stream without a row whose
            // insert meets a concurrent one (ON CONFLICT below) goes round again on the committed row.
            let rows = try await lockRows(pending.map { streams[$0] }, context: context)
            var folds: [Fold] = []
            for index in pending {
                let target = streams[index]
                let row = rows[StreamKey(partition: target.partition, streamId: target.streamId)]
                let from = fromStart ? 1 : (row?.position ?? 0) + 1
                if let upTo = target.upTo, upTo < from { continue }
                let state = fromStart ? initialState()
                    : try row.map { try decodeSnapshot($0.snapshot, streamId: target.streamId, partition: target.partition) } ?? initialState()
                folds.append(Fold(index: index, target: target, hasRow: row != nil, state: state, from: from, toEnd: fromStart))
            }
            try await read(&folds, batchSize: batchSize, context: context)

            var updates = RowsDocument()
            var inserts = RowsDocument()
            var inserting: [Int] = []
            for fold in folds {
                // Nothing read, or (without a row) nothing this projection handles yet: no row to write.
                guard let last = fold.last, fold.hasRow || fold.keyEvent != nil else { continue }
                outcomes[fold.index] = StreamOutcome(applied: fold.applied, caughtUp: !fold.pageWasFull)
                if fold.hasRow {
                    try updates.append(updateValues(fold, last: last), trustedColumn: "snapshot", problem: problem(fold.target))
                } else if let keyEvent = fold.keyEvent {
                    inserting.append(fold.index)
                    try inserts.append(
                        insertValues(fold, key: key(keyEvent, fold.target.partition), last: last),
                        trustedColumn: "snapshot", problem: problem(fold.target)
                    )
                }
            }
            pending = []
            guard updates.count + inserts.count > 0 else { break }
            let inserted = try await write(updates: updates, inserts: inserts, context: context)
            for index in inserting where !inserted.contains(StreamKey(partition: streams[index].partition, streamId: streams[index].streamId)) {
                lostInsertRaces[index] += 1
                if lostInsertRaces[index] > 1 {
                    // The insert conflicts, yet no row has this stream: another stream holds the same key.
                    throw ProjectionError.misconfigured(
                        projection: name, table: table.description,
                        problems: ["the key of stream '\(streams[index].streamId)' in partition '\(streams[index].partition)' is already used by another stream's row"]
                    )
                }
                outcomes[index] = StreamOutcome(applied: 0, caughtUp: true)
                pending.append(index)
            }
        }
        return targets.map { outcomes[slot[StreamKey(partition: $0.partition, streamId: $0.streamId)]!] }
    }

    /// One stream's fold in progress.
    struct Fold {
        var index: Int
        var target: StreamTarget
        var hasRow: Bool
        var state: State
        var from: Int64
        var keyEvent: RecordedEvent<E>?
        var last: RecordedMessage?
        var applied = 0
        var pageWasFull = false
        /// Whether another page is to be read in this call.
        var readsOn = true
        /// Whether every page to the stream's end is read in this call (a rebuild writes the row once).
        var toEnd: Bool

        init(index: Int, target: StreamTarget, hasRow: Bool, state: State, from: Int64, toEnd: Bool) {
            self.index = index
            self.target = target
            self.hasRow = hasRow
            self.state = state
            self.from = from
            self.toEnd = toEnd
        }
    }

    /// Locks the rows of `streams` (in key order, as every runner does, so they cannot deadlock)
    /// and returns their positions and snapshots.
    private func lockRows(_ streams: [StreamTarget], context: ProjectionContext) async throws -> [StreamKey: (position: Int64, snapshot: String)] {
        var bindings = PostgresBindings(capacity: 2)
        bindings.append(streams.map(\.partition))
        bindings.append(streams.map(\.streamId))
        let query = PostgresQuery(
            unsafeSQL: """
                SELECT ef_row.partition, ef_row.stream_id, ef_row.last_stream_position, ef_row.snapshot::text
                  FROM \(tableName(context)) AS ef_row
                 WHERE (ef_row.partition, ef_row.stream_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
                 ORDER BY ef_row.partition, ef_row.stream_id
                   FOR UPDATE OF ef_row
                """,
            binds: bindings
        )
        var rows: [StreamKey: (position: Int64, snapshot: String)] = [:]
        for row in try await context.database.query(query) {
            var cells = RowCells(row, statement: "lock read-model rows")
            let key = StreamKey(partition: try cells.next(), streamId: try cells.next())
            rows[key] = (try cells.next(), try cells.next())
        }
        return rows
    }

    /// Folds a page of each stream. Before a row exists, events of types this projection does not
    /// handle change nothing, so such a stream reads on to its first handled event rather than stop
    /// short of it.
    private func read(_ folds: inout [Fold], batchSize: Int, context: ProjectionContext) async throws {
        let decoder = JSONDecoder()
        while true {
            let reading = folds.indices.filter { folds[$0].readsOn }
            guard !reading.isEmpty else { return }
            let pages = try await context.store.readStreams(
                reading.map { StreamRange(partition: folds[$0].target.partition, streamId: folds[$0].target.streamId, from: folds[$0].from, to: folds[$0].target.upTo) },
                maxCountPerStream: batchSize, connection: context.connection
            )
            for (position, index) in reading.enumerated() {
                try apply(pages[position], to: &folds[index], batchSize: batchSize, decoder: decoder)
            }
        }
    }

    private func apply(_ page: [RecordedMessage], to fold: inout Fold, batchSize: Int, decoder: JSONDecoder) throws {
        guard let first = page.first else {
            fold.readsOn = false
            fold.pageWasFull = false
            return
        }
        guard first.streamPosition == fold.from else {
            throw ProjectionError.positionGap(
                projection: name, streamId: fold.target.streamId, partition: fold.target.partition, expected: fold.from, found: first.streamPosition
            )
        }
        for message in page where handles(message.type) {
            guard let recorded = try message.decode(as: E.self, unknownTypes: .skip, decoder: decoder) else { continue }
            fold.keyEvent = fold.keyEvent ?? recorded
            fold.state = try evolve(fold.state, recorded.event)
        }
        fold.applied += page.count
        fold.last = page[page.count - 1]
        fold.from = page[page.count - 1].streamPosition + 1
        fold.pageWasFull = page.count == batchSize
        fold.readsOn = fold.pageWasFull && (fold.toEnd || (!fold.hasRow && fold.keyEvent == nil))
    }

    private func snapshotText(_ state: State) throws -> String {
        String(decoding: try JSONEncoder().encode(state), as: UTF8.self)
    }

    /// The columns every row write sets.
    private func snapshotValues(_ fold: Fold, last: RecordedMessage) throws -> [(column: String, value: SQLValue)] {
        [
            ("partition", .text(fold.target.partition)),
            ("stream_id", .text(fold.target.streamId)),
            ("last_stream_position", .int(last.streamPosition)),
            ("last_global_position", .int(last.globalPosition)),
            ("snapshot", .json(try snapshotText(fold.state))),
        ]
    }

    private func updateValues(_ fold: Fold, last: RecordedMessage) throws -> [(column: String, value: SQLValue)] {
        var values = try snapshotValues(fold, last: last)
        let mapped = try self.values(of: fold.state, streamId: fold.target.streamId, partition: fold.target.partition)
        for column in updatedColumns {
            values.append((column.name, mapped[column.name] ?? .null))
        }
        return values
    }

    private func insertValues(_ fold: Fold, key: [SQLValue], last: RecordedMessage) throws -> [(column: String, value: SQLValue)] {
        guard key.count == keyColumns.count else {
            throw ProjectionError.misconfigured(
                projection: name, table: table.description,
                problems: ["the key function returned \(key.count) values for \(keyColumns.count) key columns"]
            )
        }
        var values = try snapshotValues(fold, last: last)
        for (column, value) in zip(keyColumns, key) where !values.contains(where: { $0.column == column.name }) {
            values.append((column.name, value))
        }
        let mapped = try self.values(of: fold.state, streamId: fold.target.streamId, partition: fold.target.partition)
        for column in columns where !values.contains(where: { $0.column == column.name }) {
            values.append((column.name, mapped[column.name] ?? .null))
        }
        return values
    }

    private func problem(_ target: StreamTarget) -> (String, String) -> ProjectionError {
        { [name, table] column, reason in
            .invalidColumnValue(
                projection: name, table: table.description, column: column, streamId: target.streamId, partition: target.partition, reason: reason
            )
        }
    }

    /// Updates the existing rows and inserts the new ones in one statement; PostgreSQL converts each
    /// JSON value to its column's type. Returns the streams whose insert went in (the others met a
    /// concurrent insert of the same row, or another stream's key).
    private func write(updates: RowsDocument, inserts: RowsDocument, context: ProjectionContext) async throws -> Set<StreamKey> {
        let assignments = (["last_stream_position", "last_global_position", "snapshot"] + updatedColumns.map(\.name))
            .map { "\"\($0)\" = ef_new.\"\($0)\"" }
            .joined(separator: ", ")
        let columnList = insertedColumns.map { "\"\($0)\"" }.joined(separator: ", ")
        let table = tableName(context)
        var bindings = PostgresBindings(capacity: 2)
        bindings.append(updates.text)
        bindings.append(inserts.text)
        let query = PostgresQuery(
            unsafeSQL: """
                WITH updated AS (
                    UPDATE \(table) AS ef_row SET \(assignments)
                      FROM json_populate_recordset(NULL::\(table), $1::json) AS ef_new
                     WHERE ef_row.partition = ef_new.partition AND ef_row.stream_id = ef_new.stream_id
                )
                INSERT INTO \(table) (\(columnList))
                SELECT \(columnList) FROM json_populate_recordset(NULL::\(table), $2::json)
                ON CONFLICT DO NOTHING
                RETURNING partition, stream_id
                """,
            binds: bindings
        )
        var inserted = Set<StreamKey>()
        for row in try await context.database.query(query) {
            var cells = RowCells(row, statement: "write read-model rows")
            inserted.insert(StreamKey(partition: try cells.next(), streamId: try cells.next()))
        }
        return inserted
    }
}
