import PostgresNIO

/// The schema EventFleet's tables and routines live in, as it qualifies their names in statements.
///
/// Names are qualified in the statements themselves rather than through the connections'
/// `search_path`: a connection pooler refuses or drops that startup parameter, and a `SET` on a
/// pooled server connection would leak to its next client. Without a schema, names stay
/// unqualified and the server's `search_path` finds them.
///
/// ```swift
/// let query: PostgresQuery = "SELECT count(*) FROM \(schema.ef_jobs) WHERE state = 'ready'"
/// ```
@dynamicMemberLookup
package struct Schema: Sendable, Hashable {
    /// The schema's name as configured, `nil` for the server's `search_path`.
    package let name: String?

    package init(name: String?) {
        self.name = name
    }

    /// EventFleet's object `name` (a table, sequence or routine of its migrations), qualified.
    package subscript(dynamicMember name: String) -> SQLName {
        SQLName(schema: self.name, name: name)
    }

    /// A table a user configured (`carts` or `other_schema.carts`): qualified with this schema unless
    /// it names its own.
    package func qualifying(_ table: some QualifiableName) -> SQLName {
        SQLName(schema: table.schemaName ?? name, quotedName: table.quotedName)
    }

    /// The schema of the statement being prepared: postgres-nio reads a prepared statement's SQL
    /// from its type, so `NamedStatement` finds the schema here (see `Database.run`).
    @TaskLocal static var current = Schema(name: nil)
}

/// A name for SQL text: quoted where it came from configuration, qualified with its schema.
package struct SQLName: Sendable, Hashable, CustomStringConvertible {
    package let description: String

    init(schema: String?, name: String) {
        self.init(schema: schema, quotedName: name)
    }

    init(schema: String?, quotedName: String) {
        description = schema.map { "\(SQLName.quote($0)).\(quotedName)" } ?? quotedName
    }

    /// `identifier` in double quotes, with its double quotes doubled.
    package static func quote(_ identifier: String) -> String {
        "\"" + identifier.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}

/// A user-configured name that a ``Schema`` can qualify (``EventFleetProjections/SQLIdentifier``).
package protocol QualifiableName {
    /// The schema it names itself, if any.
    var schemaName: String? { get }
    /// The name without its schema, quoted for SQL text.
    var quotedName: String { get }
}

extension PostgresQuery.StringInterpolation {
    /// Appends a qualified name as SQL text (not as a bound value).
    package mutating func appendInterpolation(_ name: SQLName) {
        appendInterpolation(unescaped: name.description)
    }
}
