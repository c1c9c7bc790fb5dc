import EventFleetCore
import Foundation
import PostgresNIO

extension PostgresEventStore {
    public func readAll(after checkpoint: GlobalCheckpoint, options readOptions: ReadAllOptions) async throws -> GlobalLogBatch {
        guard readOptions.batchSize > 0 else {
            throw EventStoreError.invalidArgument(field: "batchSize", reason: "must be positive")
        }
        // One round trip: ef_read_log answers the horizon it read under (docs/DESIGN.md, "The log
        // horizon"), then the events; the checkpoint moves by both.
        let statement = ReadLogStatement(
            checkpoint: checkpoint, partitions: readOptions.scope.partitions, types: readOptions.types,
            limit: Int64(readOptions.batchSize), includePayload: readOptions.includePayload
        )
        let rows = try await database.run("read global log", statement)
        var horizon: LogHorizon?
        var messages: [RecordedMessage] = []
        messages.reserveCapacity(rows.count)
        for row in rows {
            switch row {
            case .horizon(let read): horizon = read
            case .message(let message): messages.append(message)
            }
        }
        guard let horizon else { throw EventStoreError.database(operation: "read global log", sqlState: nil, message: "ef_read_log answered no horizon") }
        return GlobalLogBatch(messages: messages, from: checkpoint, horizon: horizon, limit: readOptions.batchSize)
    }

    /// The appends in flight and the partitions of `scope` they hold back (`ef_log_holds`), oldest
    /// first.
    public func logHolds(scope: PartitionScope) async throws -> [LogHold] {
        let partitions = scope.partitions
        let rows = try await database.query("report log holds", """
            SELECT h.partition, h.partition_key, h.transaction_seconds, h.pid, h.application_name, h.client_addr, h.state
              FROM \(database.schema.ef_log_holds)(\(partitions)::text[]) h
            """)
        return try rows.map { row in
            let (partition, key, age, pid, applicationName, address, state) = try row.decode(
                (String?, Int32, Double, Int32, String?, String?, String?).self
            )
            return LogHold(
                partition: partition, partitionKey: key, age: .milliseconds(Int64(age * 1000)), pid: pid, applicationName: applicationName,
                clientAddress: address, state: state
            )
        }
    }

    /// The global position of the newest committed event (in `scope`, of `types`), or `nil` when
    /// there is none.
    ///
    /// A reader whose checkpoint has reached it, with no event of its held partitions left at or
    /// below it, has processed every event committed before the call. The monitor uses it to show
    /// a consumer's lag.
    public func globalLogHead(scope: PartitionScope = .all, types: [String]? = nil) async throws -> Int64? {
        let partitions = scope.partitions
        return try await database.query("read global log head", """
            SELECT m.global_position FROM \(database.schema.ef_messages) m
             WHERE (\(partitions)::text[] IS NULL OR m.partition = ANY (\(partitions)::text[]))
               AND (\(types)::text[] IS NULL OR m.message_type = ANY (\(types)::text[]))
             ORDER BY m.global_position DESC
             LIMIT 1
            """).first?.decode(Int64.self)
    }

    /// Whether a reader at `checkpoint` has read every committed event (in `scope`, of `types`) at
    /// or below `head`: its position has reached `head`, and its held partitions have no committed
    /// event between their own position and `head`.
    package func covers(_ checkpoint: GlobalCheckpoint, head: Int64, scope: PartitionScope, types: [String]?) async throws -> Bool {
        guard checkpoint.position >= head else { return false }
        guard !checkpoint.held.isEmpty else { return true }
        let partitions = scope.partitions
        let keys = checkpoint.held.map(\.key)
        let positions = checkpoint.held.map(\.position)
        return try await database.query("check a checkpoint against the log's head", """
            SELECT 1 FROM unnest(\(keys)::integer[], \(positions)::bigint[]) AS h(key, position)
             WHERE EXISTS (SELECT 1 FROM \(database.schema.ef_messages) m
                            WHERE hashtext(m.partition) = h.key AND m.global_position > h.position AND m.global_position <= \(head)
                              AND (\(partitions)::text[] IS NULL OR m.partition = ANY (\(partitions)::text[]))
                              AND (\(types)::text[] IS NULL OR m.message_type = ANY (\(types)::text[])))
             LIMIT 1
            """).isEmpty
    }
}
