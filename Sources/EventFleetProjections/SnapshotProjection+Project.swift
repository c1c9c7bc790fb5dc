import EventFleetCore
import EventFleetPostgres
import Foundation
import PostgresNIO

extension SnapshotProjection {
    public func project(
        streamId: String, partition: String, upTo position: Int64?, batchSize: Int, context: ProjectionContext
    ) async throws -> Int {
        let connection = context.connection
        var lostInsertRaces = 0
        while true {
            // Lock the row so concurrent runners apply each event once; without a row, a concurrent
            // insert is caught by ON CONFLICT below and the loop starts over on the committed row.
            let locked = PostgresQuery(
                unsafeSQL: """
                    SELECT last_stream_position, snapshot::text FROM \(table.quoted)
                     WHERE partition = $1 AND stream_id = $2 FOR UPDATE
                    """,
                binds: Self.binds(partition, streamId)
            )
            var row: (position: Int64, snapshot: String)?
            for try await (lastPosition, snapshot) in try await connection.checkedQuery(locked, logger: context.logger).decode((Int64, String).self) {
                row = (lastPosition, snapshot)
            }
            var from = (row?.position ?? 0) + 1
            if let position, position < from { return 0 }

            var state = try row.map { try decodeSnapshot($0.snapshot, streamId: streamId, partition: partition) } ?? initialState()
            var keyEvent: RecordedEvent<E>?
            var last: RecordedMessage?
            var applied = 0
            var pageWasFull = false
            // One page, except before the row exists while no handled event has come: those events
            // change nothing, so read on to the first handled one rather than stop short of it.
            repeat {
                let read = try await context.store.readStream(
                    streamId,
                    options: ReadStreamOptions(partition: partition, from: from, to: position, maxCount: batchSize),
                    connection: connection
                )
                guard let first = read.events.first else { break }
                guard first.streamPosition == from else {
                    throw ProjectionError.positionGap(
                        projection: name, streamId: streamId, partition: partition, expected: from, found: first.streamPosition
                    )
                }
                for message in read.events where handles(message.type) {
                    guard let recorded = try message.decode(as: E.self, unknownTypes: .skip) else { continue }
                    keyEvent = keyEvent ?? recorded
                    state = try evolve(state, recorded.event)
                }
                applied += read.events.count
                last = read.events.last
                from = read.events[read.events.count - 1].streamPosition + 1
                pageWasFull = read.events.count == batchSize
            } while row == nil && keyEvent == nil && pageWasFull

            guard let last else { return 0 }
            let snapshot = String(decoding: try JSONEncoder().encode(state), as: UTF8.self)
            if row != nil {
                try await update(streamId: streamId, partition: partition, state: state, snapshot: snapshot, last: last, context: context)
                return applied
            }
            // Nothing this projection handles yet: no row to write.
            guard let keyEvent else { return 0 }
            if try await insert(
                key: key(keyEvent, partition), streamId: streamId, partition: partition, state: state,
                snapshot: snapshot, last: last, context: context
            ) {
                return applied
            }
            lostInsertRaces += 1
            if lostInsertRaces > 1 {
                // The insert conflicts, yet no row has this stream: another stream holds the same key.
                throw ProjectionError.misconfigured(
                    projection: name, table: table.description,
                    problems: ["the key of stream '\(streamId)' in partition '\(partition)' is already used by another stream's row"]
                )
            }
        }
    }

    private func update(
        streamId: String, partition: String, state: State, snapshot: String, last: RecordedMessage, context: ProjectionContext
    ) async throws {
        var bindings = PostgresBindings()
        var assignments = [
            "snapshot = \(SQLValue.json(snapshot).bind(into: &bindings))",
            "last_stream_position = \(SQLValue.int(last.streamPosition).bind(into: &bindings))",
            "last_global_position = \(SQLValue.int(last.globalPosition).bind(into: &bindings))",
        ]
        let mapped = mapToColumns?(state) ?? [:]
        for column in columns where !keyColumns.contains(column) {
            assignments.append("\(column.quoted) = \((mapped[column.name] ?? .null).bind(into: &bindings))")
        }
        let partitionPlaceholder = SQLValue.text(partition).bind(into: &bindings)
        let streamPlaceholder = SQLValue.text(streamId).bind(into: &bindings)
        let sql = """
            UPDATE \(table.quoted) SET \(assignments.joined(separator: ", "))
             WHERE partition = \(partitionPlaceholder) AND stream_id = \(streamPlaceholder)
            """
        for try await _ in try await context.connection.checkedQuery(PostgresQuery(unsafeSQL: sql, binds: bindings), logger: context.logger) {}
    }

    /// Inserts the row; `false` when a concurrent transaction inserted it first.
    private func insert(
        key: [SQLValue], streamId: String, partition: String, state: State, snapshot: String,
        last: RecordedMessage, context: ProjectionContext
    ) async throws -> Bool {
        guard key.count == keyColumns.count else {
            throw ProjectionError.misconfigured(
                projection: name, table: table.description,
                problems: ["the key function returned \(key.count) values for \(keyColumns.count) key columns"]
            )
        }
        var values: [(column: String, value: SQLValue)] = [
            ("stream_id", .text(streamId)),
            ("partition", .text(partition)),
            ("last_stream_position", .int(last.streamPosition)),
            ("last_global_position", .int(last.globalPosition)),
            ("snapshot", .json(snapshot)),
        ]
        for (column, value) in zip(keyColumns, key) where !values.contains(where: { $0.column == column.name }) {
            values.append((column.name, value))
        }
        let mapped = mapToColumns?(state) ?? [:]
        for column in columns where !values.contains(where: { $0.column == column.name }) {
            values.append((column.name, mapped[column.name] ?? .null))
        }
        var bindings = PostgresBindings()
        let placeholders = values.map { $0.value.bind(into: &bindings) }
        let columnList = values.map { "\"\($0.column)\"" }.joined(separator: ", ")
        let sql = """
            INSERT INTO \(table.quoted) (\(columnList)) VALUES (\(placeholders.joined(separator: ", ")))
            ON CONFLICT DO NOTHING RETURNING 1
            """
        var inserted = false
        for try await _ in try await context.connection.checkedQuery(PostgresQuery(unsafeSQL: sql, binds: bindings), logger: context.logger) {
            inserted = true
        }
        return inserted
    }
}
