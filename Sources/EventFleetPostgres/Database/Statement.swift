import PostgresNIO

/// A statement EventFleet runs often, with its SQL, binds and row decoding in one type.
///
/// ``Database`` runs it as a named statement, prepared once per connection (PostgreSQL then parses
/// and plans it once per connection rather than at every call), or as an unnamed one, parsed at
/// every call (what a transaction-mode pooler needs), as the configuration says.
package protocol Statement: Sendable {
    associatedtype Row: Sendable

    /// The SQL, with EventFleet's names qualified by `schema`.
    static func sql(_ schema: Schema) -> String
    /// The types of the binds, in order.
    static var bindingDataTypes: [PostgresDataType] { get }
    func makeBindings() throws -> PostgresBindings
    func decodeRow(_ row: PostgresRow) throws -> Row
}

/// A ``Statement`` as postgres-nio prepares it: one prepared statement per statement type and
/// schema, on each connection.
struct NamedStatement<Wrapped: Statement>: PostgresPreparedStatement {
    typealias Row = Wrapped.Row

    static var name: String {
        "eventfleet.\(Wrapped.self)" + (Schema.current.name.map { "@" + $0 } ?? "")
    }

    static var sql: String { Wrapped.sql(Schema.current) }
    static var bindingDataTypes: [PostgresDataType] { Wrapped.bindingDataTypes }

    let statement: Wrapped

    func makeBindings() throws -> PostgresBindings { try statement.makeBindings() }
    func decodeRow(_ row: PostgresRow) throws -> Row { try statement.decodeRow(row) }
}
