import EventFleetPostgres
import PostgresNIO

/// A table or column name from configuration: validated, and always quoted when it goes into SQL.
///
/// Names that come from configuration cannot be bound as parameters, so they are restricted to
/// plain identifiers (letters, digits and underscores, not starting with a digit, at most 63 bytes,
/// optionally `schema.table`) and double-quoted, which makes them case-sensitive and inert.
public struct SQLIdentifier: Sendable, Hashable, CustomStringConvertible {
    /// The parts: one for a plain name, two for `schema.table`.
    public let parts: [String]

    /// - Throws: ``ProjectionError/invalidIdentifier(_:kind:reason:)`` when `name` is not a plain identifier.
    public init(_ name: String, kind: String) throws(ProjectionError) {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard (1...2).contains(parts.count) else {
            throw .invalidIdentifier(name, kind: kind, reason: "use name or schema.name")
        }
        for part in parts {
            guard !part.isEmpty else { throw .invalidIdentifier(name, kind: kind, reason: "has an empty part") }
            guard part.utf8.count <= 63 else {
                throw .invalidIdentifier(name, kind: kind, reason: "is longer than PostgreSQL's 63-byte limit")
            }
            guard let first = part.unicodeScalars.first, first == "_" || (first.isASCII && first.properties.isAlphabetic) else {
                throw .invalidIdentifier(name, kind: kind, reason: "must start with a letter or underscore")
            }
            guard part.unicodeScalars.allSatisfy({ $0 == "_" || ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) }) else {
                throw .invalidIdentifier(name, kind: kind, reason: "may hold only letters, digits and underscores")
            }
        }
        self.parts = parts
    }

    /// A name qualified with a configured schema, which is quoted, not validated.
    init(schema: String, name: String) {
        self.parts = [schema, name]
    }

    /// The quoted form for SQL text.
    public var quoted: String { parts.map(SQLName.quote).joined(separator: ".") }

    /// The name as written.
    public var description: String { parts.joined(separator: ".") }

    /// The unqualified name (the last part).
    public var name: String { parts[parts.count - 1] }

    /// The schema when qualified.
    public var schema: String? { parts.count == 2 ? parts[0] : nil }
}

extension SQLIdentifier: QualifiableName {
    package var schemaName: String? { schema }
    package var quotedName: String { SQLName.quote(name) }
}

extension PostgresQuery.StringInterpolation {
    /// Appends a table or column name as SQL text, quoted (it is validated, so it is inert).
    public mutating func appendInterpolation(_ identifier: SQLIdentifier) {
        appendInterpolation(unescaped: identifier.quoted)
    }
}
