import EventFleetCore
import Foundation
import PostgresNIO

extension PostgresEventStore {
    @discardableResult
    public func appendToStream(_ streamId: String, messages: [ProposedMessage], options appendOptions: AppendOptions) async throws -> AppendResult {
        try await appendToStream(streamId, messages: messages, options: appendOptions, connection: nil)
    }

    /// Appends inside the caller's transaction on `connection`, so the events commit (or roll back)
    /// together with the caller's other writes.
    ///
    /// - Parameters:
    ///   - streamId: The stream.
    ///   - messages: The events, in order.
    ///   - appendOptions: Partition, expected version, stream type and metadata.
    ///   - connection: A connection with an open transaction, or `nil` to use the pool.
    /// - Throws: As ``appendToStream(_:messages:options:)``.
    @discardableResult
    public func appendToStream(
        _ streamId: String, messages: [ProposedMessage], options appendOptions: AppendOptions, connection: PostgresConnection?
    ) async throws -> AppendResult {
        try appendOptions.validate(streamId: streamId, messages: messages)
        let partition = appendOptions.partition
        let idsSupplied = messages.first?.messageId != nil
        let ids = messages.map { $0.messageId ?? UUID().uuidString.lowercased() }
        let types = messages.map(\.type)
        var data: [String] = []
        // An empty string stands for "no metadata": postgres-nio binds arrays of non-optional elements.
        var metadata: [String] = []
        for (index, message) in messages.enumerated() {
            let text = try message.jsonText(streamId: streamId, partition: partition, position: index + 1)
            data.append(text.data)
            metadata.append(text.metadata ?? "")
        }
        let schemaVersions = messages.map(\.schemaVersion)
        let streamMetadata: String?
        do {
            streamMetadata = try appendOptions.streamMetadata.map { String(decoding: try JSONEncoder().encode($0), as: UTF8.self) }
        } catch {
            throw EventStoreError.invalidArgument(field: "streamMetadata", reason: "cannot be encoded as JSON: \(JSONValue.describe(error))")
        }
        let (kind, expected) = Self.encode(appendOptions.expectedVersion)

        var arguments = AppendArguments(
            partition: partition, streamId: streamId, streamType: appendOptions.streamType, streamMetadata: streamMetadata,
            expectedKind: kind, expectedVersion: expected, idsSupplied: idsSupplied, ids: ids, types: types, data: data,
            metadata: metadata, schemaVersions: schemaVersions, notifyChannel: options.notifyChannel
        )
        let row: AppendOutcome
        do {
            if let connection {
                row = try await Self.outcome(of: Database.Connection(connection: connection, database: database).run(AppendStatement(arguments: arguments)))
            } else {
                // postgres-nio ends a statement's rows at CommandComplete, but a statement outside a
                // transaction block commits later, at Sync: a crash in between would lose an append
                // the caller saw succeed. The procedure commits before it answers, so its answer is
                // the acknowledgement of a durable append, in one round trip. It does not notify:
                // `AppendNotifier` does, after.
                arguments.notifyChannel = nil
                row = try await Self.outcome(of: database.run("append", CommittedAppendStatement(arguments: arguments, schema: database.schema.name)))
            }
        } catch {
            throw mapAppendError(error, streamId: streamId, partition: partition, ids: ids)
        }
        let (outcome, current, next, lastGlobal, created) = row
        if connection == nil, outcome == "appended" { await notifier?.notify(payloads: CollectionOfOne(partition)) }
        switch outcome {
        case "appended", "duplicate":
            let version = next ?? current
            return AppendResult(
                nextExpectedVersion: version, lastGlobalPosition: lastGlobal ?? 0, createdNewStream: created ?? false,
                token: PositionToken(partition: partition, streamId: streamId, streamPosition: version, globalPosition: lastGlobal ?? 0)
            )
        case "conflict":
            throw EventStoreError.versionConflict(
                streamId: streamId, partition: partition, expected: appendOptions.expectedVersion, actual: current
            )
        case "message_id_conflict":
            throw EventStoreError.messageIdConflict(
                streamId: streamId, partition: partition, messageIds: ids,
                reason: "the ids were already used for other events"
            )
        default:
            throw EventStoreError.database(operation: "append", sqlState: nil, message: "unexpected append outcome '\(outcome)'")
        }
    }

    /// The one row the append statements answer with.
    private static func outcome(of rows: [AppendOutcome]) throws -> AppendOutcome {
        guard let row = rows.first else {
            throw EventStoreError.database(operation: "append", sqlState: nil, message: "ef_append_to_stream returned no row")
        }
        return row
    }

    private static func encode(_ version: ExpectedVersion) -> (Int16, Int64) {
        switch version {
        case .any: (0, 0)
        case .noStream: (1, 0)
        case .streamExists: (2, 0)
        case .exact(let version): (3, version)
        }
    }

    private func mapAppendError(_ error: any Error, streamId: String, partition: String, ids: [String]) -> any Error {
        let mapped = PostgresErrorMapping.map(error, operation: "append", target: database.target)
        guard case .database(_, let sqlState?, let message) = mapped as? EventStoreError else { return mapped }
        switch sqlState {
        case "22P02", "22P05", "22021", "22025", "22030", "22032", "54001":
            // Invalid JSON text, an untranslatable character such as \u0000, invalid escapes, too deep.
            return EventStoreError.invalidJSON(streamId: streamId, partition: partition, reason: message)
        case "23505":
            return EventStoreError.messageIdConflict(
                streamId: streamId, partition: partition, messageIds: ids,
                reason: "a concurrent append used the same message ids"
            )
        default:
            return mapped
        }
    }
}
