import Foundation

/// A JSON value, for metadata and other free-form JSON the store carries.
public enum JSONValue: Sendable, Hashable, Codable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value):
            try Self.checkEncodingDepth(encoder)
            try container.encode(value)
        case .object(let value):
            try Self.checkEncodingDepth(encoder)
            try container.encode(value)
        }
    }

    /// The deepest nesting of arrays and objects the library encodes: a little below the limits of
    /// Foundation's `JSONEncoder` (511 levels) and `JSONDecoder` (512), so whatever is accepted can
    /// be written and read back.
    ///
    /// Deeper values could never be decoded again, and `JSONEncoder` overflows the stack on a few
    /// thousand levels, ending the process, so they are refused with an error instead.
    public static let maximumNestingDepth = 500

    /// How deeply arrays and objects nest in this value: 0 for a scalar, 1 for `[]` or `{}`.
    ///
    /// Computed without recursion, so any depth can be measured safely.
    public var nestingDepth: Int {
        var deepest = 0
        var pending: [(value: JSONValue, depth: Int)] = [(self, 0)]
        while let next = pending.popLast() {
            let depth = next.depth
            switch next.value {
            case .array(let elements):
                deepest = max(deepest, depth + 1)
                pending.append(contentsOf: elements.map { (value: $0, depth: depth + 1) })
            case .object(let members):
                deepest = max(deepest, depth + 1)
                pending.append(contentsOf: members.values.map { (value: $0, depth: depth + 1) })
            case .null, .bool, .number, .string:
                continue
            }
        }
        return deepest
    }

    /// How deeply arrays and objects nest in JSON text, found by scanning brackets outside strings
    /// rather than by parsing, so any depth can be measured safely. Meaningless for invalid JSON.
    package static func nestingDepth(ofJSONText bytes: some Sequence<UInt8>) -> Int {
        var depth = 0
        var deepest = 0
        var inString = false
        var escaped = false
        for byte in bytes {
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""):
                inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                deepest = max(deepest, depth)
            case UInt8(ascii: "]"), UInt8(ascii: "}"):
                depth -= 1
            default:
                break
            }
        }
        return deepest
    }

    /// Refuses a value nested deeper than ``maximumNestingDepth``.
    ///
    /// - Throws: ``EventStoreError/invalidArgument(field:reason:)`` naming `field`.
    package static func checkNesting(of value: JSONValue, field: String) throws(EventStoreError) {
        let depth = value.nestingDepth
        if depth > maximumNestingDepth {
            throw .invalidArgument(
                field: field, reason: "nests \(depth) levels deep; the limit is \(maximumNestingDepth)"
            )
        }
    }

    /// Stops the encoder's recursion before it can exhaust the stack. The error carries a short
    /// placeholder, not the value: describing a deep value recurses as deeply as encoding it.
    private static func checkEncodingDepth(_ encoder: any Encoder) throws {
        let depth = encoder.codingPath.count
        if depth >= maximumNestingDepth {
            throw EncodingError.invalidValue(
                "JSON nested more than \(maximumNestingDepth) levels deep",
                EncodingError.Context(
                    codingPath: [],
                    debugDescription: "JSON nests deeper than \(maximumNestingDepth) levels (the limit is JSONValue.maximumNestingDepth)"
                )
            )
        }
    }

    /// Parses JSON text that must hold an object.
    ///
    /// - Throws: ``EventStoreError/invalidArgument(field:reason:)`` naming `field` when the text is not
    ///   valid JSON or not an object.
    public static func parseObject(_ text: String, field: String) throws -> [String: JSONValue] {
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
        } catch {
            throw EventStoreError.invalidArgument(field: field, reason: "is not valid JSON (\(Self.describe(error)))")
        }
        guard case .object(let object) = value else {
            throw EventStoreError.invalidArgument(field: field, reason: "must be a JSON object")
        }
        return object
    }

    /// A short, readable reason for a JSON encoding or decoding error.
    package static func describe(_ error: any Error) -> String {
        if case EncodingError.invalidValue(_, let context) = error {
            return context.debugDescription
        }
        if case DecodingError.dataCorrupted(let context) = error {
            return (context.underlyingError.map { "\($0.localizedDescription)" }) ?? context.debugDescription
        }
        return "\(error)"
    }
}
