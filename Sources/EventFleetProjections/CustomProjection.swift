import EventFleetCore
import Logging
import PostgresNIO

/// A projection written as a handler: it gets each event and the transaction-bound connection.
///
/// ```swift
/// let audit = CustomProjection(name: "audit", eventTypes: ["CartCheckedOut"]) { message, context in
///     let audit = try context.table("audit")
///     try await context.execute("INSERT INTO \(audit) (stream_id, position) VALUES (\(message.streamId), \(message.streamPosition))")
/// }
/// ```
///
/// > Important: The consumer delivers each event once in effect: the handler's writes commit with the
/// > checkpoint or not at all. Effects outside the transaction (HTTP calls, ...) may repeat after a crash.
public struct CustomProjection: Projection {
    public let name: String
    public let eventTypes: Set<String>?
    private let handler: @Sendable (RecordedMessage, ProjectionContext) async throws -> Void
    private let validator: (@Sendable (ProjectionContext) async throws -> Void)?

    /// - Parameters:
    ///   - name: A stable name.
    ///   - eventTypes: The types it handles; `nil` for all.
    ///   - validate: Optional start-up check of the database.
    ///   - handler: Called once per event in global-log order.
    public init(
        name: String,
        eventTypes: Set<String>? = nil,
        validate: (@Sendable (ProjectionContext) async throws -> Void)? = nil,
        handler: @escaping @Sendable (RecordedMessage, ProjectionContext) async throws -> Void
    ) {
        self.name = name
        self.eventTypes = eventTypes
        self.validator = validate
        self.handler = handler
    }

    public func validate(context: ProjectionContext) async throws {
        try await validator?(context)
    }

    public func handle(_ messages: [RecordedMessage], context: ProjectionContext) async throws {
        for message in messages {
            try await handler(message, context)
        }
    }
}
