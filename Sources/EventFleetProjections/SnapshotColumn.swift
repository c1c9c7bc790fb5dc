import Foundation

/// A value that fills a read-model column as it is: text, a number, a flag, a time, or `nil` for
/// NULL.
public protocol SQLValueConvertible: Sendable {
    /// The value as bound to the column.
    var sqlValue: SQLValue { get }
}

extension SQLValue: SQLValueConvertible {
    public var sqlValue: SQLValue { self }
}

extension String: SQLValueConvertible {
    public var sqlValue: SQLValue { .text(self) }
}

extension Int: SQLValueConvertible {
    public var sqlValue: SQLValue { .int(Int64(self)) }
}

extension Int64: SQLValueConvertible {
    public var sqlValue: SQLValue { .int(self) }
}

extension Int32: SQLValueConvertible {
    public var sqlValue: SQLValue { .int(Int64(self)) }
}

extension Double: SQLValueConvertible {
    public var sqlValue: SQLValue { .double(self) }
}

extension Bool: SQLValueConvertible {
    public var sqlValue: SQLValue { .bool(self) }
}

extension Date: SQLValueConvertible {
    public var sqlValue: SQLValue { .timestamp(self) }
}

extension Optional: SQLValueConvertible where Wrapped: SQLValueConvertible {
    public var sqlValue: SQLValue { self?.sqlValue ?? .null }
}

/// A column of a snapshot projection's table beside its key and snapshot columns, and how its value
/// comes from the state.
///
/// ```swift
/// columns: [
///     SnapshotColumn("status") { state in state.status.rawValue },   // text
///     SnapshotColumn("total") { state in state.total },              // an Int into a bigint
///     SnapshotColumn("shipped_at") { state in state.shippedAt },     // an optional Date: NULL or a timestamp
///     .json("lines") { state in state.lines },                       // any Encodable into jsonb
/// ]
/// ```
///
/// A closure that throws stops the batch with `ProjectionError.invalidColumnValue`, which names the
/// column, the stream and the partition; nothing of the batch is written.
public struct SnapshotColumn<State>: Sendable {
    /// The column's name (not qualified).
    public let name: String
    let value: @Sendable (State) throws -> SQLValue

    /// A column whose value is a `String`, `Int`, `Int64`, `Int32`, `Double`, `Bool`, `Date`, an
    /// optional of one (`nil` writes NULL), or an ``SQLValue``.
    ///
    /// - Parameters:
    ///   - name: The column's name.
    ///   - value: Its value from the state after the stream's events so far.
    public init<Value: SQLValueConvertible>(_ name: String, _ value: @escaping @Sendable (State) throws -> Value) {
        self.name = name
        self.value = { state in try value(state).sqlValue }
    }

    /// A `jsonb` (or `json`) column holding any `Encodable` value, encoded with a default
    /// `JSONEncoder`.
    ///
    /// - Parameters:
    ///   - name: The column's name.
    ///   - value: Its value from the state after the stream's events so far.
    public static func json<Value: Encodable & Sendable>(_ name: String, _ value: @escaping @Sendable (State) throws -> Value) -> SnapshotColumn {
        SnapshotColumn(name) { state in try SQLValue.json(encoding: value(state)) }
    }
}
