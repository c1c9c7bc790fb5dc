import Foundation
import PostgresNIO

/// A value for a read-model column, bound as a parameter.
public enum SQLValue: Sendable, Hashable {
    case null
    case text(String)
    case int(Int64)
    case double(Double)
    case bool(Bool)
    /// JSON text, stored into a `jsonb` (or `json`) column.
    case json(String)
    case timestamp(Date)

    /// An `Int`, as ``int(_:)`` holds it.
    public static func int(_ value: Int) -> SQLValue { .int(Int64(value)) }

    /// Encodes any `Encodable` value as ``json(_:)``.
    public static func json<T: Encodable>(encoding value: T, encoder: JSONEncoder = JSONEncoder()) throws -> SQLValue {
        .json(String(decoding: try encoder.encode(value), as: UTF8.self))
    }

    /// Appends the value as a bind and returns its placeholder, cast where PostgreSQL needs a hint.
    func bind(into bindings: inout PostgresBindings) -> String {
        switch self {
        case .null:
            bindings.appendNull()
            return "$\(bindings.count)"
        case .text(let value):
            bindings.append(value)
            return "$\(bindings.count)"
        case .int(let value):
            bindings.append(value)
            return "$\(bindings.count)"
        case .double(let value):
            bindings.append(value)
            return "$\(bindings.count)"
        case .bool(let value):
            bindings.append(value)
            return "$\(bindings.count)"
        case .json(let value):
            bindings.append(value)
            return "$\(bindings.count)::jsonb"
        case .timestamp(let value):
            bindings.append(value)
            return "$\(bindings.count)"
        }
    }
}

extension SQLValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral {
    public init(stringLiteral value: String) { self = .text(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}
