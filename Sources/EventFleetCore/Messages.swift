import Foundation

/// An event to append, in its stored form: a type name and JSON data.
public struct ProposedMessage: Sendable, Hashable {
    /// The type name stored in `message_type`.
    public var type: String
    /// The event data: UTF-8 JSON text of an object.
    public var data: Data
    /// Optional metadata: UTF-8 JSON text of an object.
    public var metadata: Data?
    /// A caller-chosen id, unique per partition. Supplying ids makes a retried append idempotent:
    /// the retry returns the first append's result and stores nothing new.
    public var messageId: String?
    /// The schema version of the data, for upcasting.
    public var schemaVersion: Int32

    public init(type: String, data: Data, metadata: Data? = nil, messageId: String? = nil, schemaVersion: Int32 = 1) {
        self.type = type
        self.data = data
        self.metadata = metadata
        self.messageId = messageId
        self.schemaVersion = schemaVersion
    }

    /// Encodes a typed event.
    /// - Parameters:
    ///   - event: The event.
    ///   - metadata: Optional metadata object.
    ///   - messageId: Optional idempotency id.
    ///   - encoder: The encoder of the data and the metadata.
    /// - Throws: ``EventStoreError/invalidArgument(field:reason:)`` naming `data` or `metadata` when
    ///   `JSONEncoder` refuses either (for example when it nests deeper than
    ///   ``JSONValue/maximumNestingDepth``); an error the payload's own `encode(to:)` throws passes
    ///   through unchanged.
    public init<E: Event>(
        _ event: E,
        metadata: [String: JSONValue]? = nil,
        messageId: String? = nil,
        encoder: JSONEncoder = JSONEncoder()
    ) throws {
        self.type = event.eventType
        do {
            self.data = try event.encodedData(using: encoder)
        } catch let error as EncodingError {
            // Only the encoder's own complaint is replaced; a payload's own error keeps its type.
            throw EventStoreError.invalidArgument(
                field: "data", reason: "event '\(event.eventType)' cannot be encoded as JSON: \(JSONValue.describe(error))"
            )
        }
        if let metadata {
            try JSONValue.checkNesting(of: .object(metadata), field: "metadata")
            do {
                self.metadata = try encoder.encode(metadata)
            } catch {
                throw EventStoreError.invalidArgument(field: "metadata", reason: "cannot be encoded as JSON: \(JSONValue.describe(error))")
            }
        } else {
            self.metadata = nil
        }
        self.messageId = messageId
        self.schemaVersion = 1
    }
}

extension ProposedMessage {
    /// The data and metadata as UTF-8 text, for stores that hand JSON to the database as text.
    ///
    /// Nothing is repaired: invalid UTF-8 would otherwise turn into U+FFFD and store altered data,
    /// so it is an error, and so are NUL bytes (never valid JSON, and PostgreSQL text cannot hold
    /// them) and empty metadata (not JSON; `nil` means none). Metadata must be an object nested at
    /// most ``JSONValue/maximumNestingDepth`` levels, or typed reads would silently see none.
    ///
    /// - Parameter position: The event's 1-based place in its append, for the message.
    /// - Throws: ``EventStoreError/invalidJSON(streamId:partition:reason:)`` naming the event and the field.
    package func jsonText(
        streamId: String, partition: String, position: Int
    ) throws(EventStoreError) -> (data: String, metadata: String?) {
        func text(_ bytes: Data, _ field: String) throws(EventStoreError) -> String {
            let what = "the \(field) of event \(position) ('\(type)')"
            if bytes.isEmpty {
                throw .invalidJSON(streamId: streamId, partition: partition, reason: "\(what) is empty")
            }
            if let offset = bytes.firstIndex(of: 0) {
                throw .invalidJSON(
                    streamId: streamId, partition: partition,
                    reason: "\(what) holds a NUL byte at offset \(offset - bytes.startIndex)"
                )
            }
            guard let text = String(validating: bytes, as: UTF8.self) else {
                throw .invalidJSON(streamId: streamId, partition: partition, reason: "\(what) is not valid UTF-8")
            }
            return text
        }
        let dataText = try text(data, "data")
        guard let metadata else { return (dataText, nil) }
        let metadataText = try text(metadata, "metadata")
        // Typed reads decode metadata as an object: anything else would read back as no metadata.
        let what = "the metadata of event \(position) ('\(type)')"
        let whitespace: Set<UInt8> = [0x20, 0x09, 0x0A, 0x0D]
        guard metadata.first(where: { !whitespace.contains($0) }) == UInt8(ascii: "{") else {
            throw .invalidJSON(streamId: streamId, partition: partition, reason: "\(what) must be a JSON object")
        }
        let depth = JSONValue.nestingDepth(ofJSONText: metadata)
        if depth > JSONValue.maximumNestingDepth {
            throw .invalidJSON(
                streamId: streamId, partition: partition,
                reason: "\(what) nests \(depth) levels deep; the limit is \(JSONValue.maximumNestingDepth)"
            )
        }
        return (dataText, metadataText)
    }
}

/// An event as stored: its stream, positions and raw JSON.
public struct RecordedMessage: Sendable, Hashable {
    public var streamId: String
    public var partition: String
    /// 1-based position in the stream; positions are dense.
    public var streamPosition: Int64
    /// Position in the global log. Unique and increasing in insertion order, but commits can make
    /// them visible out of order; follow the log with ``EventStore/readAll(after:options:)`` and its
    /// ``GlobalCheckpoint``s.
    public var globalPosition: Int64
    /// The writing transaction's id (`xid8`).
    public var transactionId: UInt64
    public var messageId: String
    public var type: String
    public var data: Data
    public var metadata: Data
    public var schemaVersion: Int32
    public var created: Date

    public init(
        streamId: String, partition: String, streamPosition: Int64, globalPosition: Int64,
        transactionId: UInt64, messageId: String, type: String, data: Data, metadata: Data,
        schemaVersion: Int32, created: Date
    ) {
        self.streamId = streamId
        self.partition = partition
        self.streamPosition = streamPosition
        self.globalPosition = globalPosition
        self.transactionId = transactionId
        self.messageId = messageId
        self.type = type
        self.data = data
        self.metadata = metadata
        self.schemaVersion = schemaVersion
        self.created = created
    }

    /// Decodes the typed event.
    ///
    /// - Returns: The event, or `nil` when the type is unknown and `unknownTypes` is `.skip`.
    /// - Throws: ``EventStoreError/unknownEventType(type:streamId:partition:streamPosition:)`` or
    ///   ``EventStoreError/malformedEvent(type:streamId:partition:streamPosition:reason:)``.
    public func decode<E: Event>(
        as: E.Type,
        unknownTypes: UnknownEventTypePolicy = .fail,
        decoder: JSONDecoder = JSONDecoder()
    ) throws(EventStoreError) -> RecordedEvent<E>? {
        guard let eventCase = E.eventCase(for: type) else {
            switch unknownTypes {
            case .skip: return nil
            case .fail:
                throw .unknownEventType(type: type, streamId: streamId, partition: partition, streamPosition: streamPosition)
            }
        }
        let event: E
        do {
            event = try eventCase.decode(data, using: decoder)
        } catch {
            throw .malformedEvent(
                type: type, streamId: streamId, partition: partition, streamPosition: streamPosition,
                reason: String(describing: error)
            )
        }
        // Most events carry no metadata: "{}" needs no decoder.
        let metadataObject = metadata.elementsEqual("{}".utf8) ? [:] : (try? decoder.decode([String: JSONValue].self, from: metadata)) ?? [:]
        return RecordedEvent(event: event, metadata: metadataObject, message: self)
    }
}

/// What to do with a stored event whose type name the reading code does not know.
public enum UnknownEventTypePolicy: Sendable, Hashable {
    /// Throw ``EventStoreError/unknownEventType(type:streamId:partition:streamPosition:)``.
    case fail
    /// Leave the event out and go on.
    case skip
}

/// A decoded event with its stored context.
public struct RecordedEvent<E: Event>: Sendable {
    public var event: E
    public var metadata: [String: JSONValue]
    /// The stored form, with stream, positions and ids.
    public var message: RecordedMessage

    public init(event: E, metadata: [String: JSONValue], message: RecordedMessage) {
        self.event = event
        self.metadata = metadata
        self.message = message
    }
}
