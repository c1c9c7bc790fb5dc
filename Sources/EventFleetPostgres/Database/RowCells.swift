import PostgresNIO

/// Reads a row's cells in order, each with a decoder specialized for its type.
///
/// postgres-nio decodes a row into a tuple through parameter packs, which stay generic at run time:
/// every cell of every row then looks up type metadata, which shows in a worker's profile, most of it
/// in the hot statements' rows (stream pages, log pages, claims). The statements that return many
/// rows decode them with this instead.
@usableFromInline
package struct RowCells {
    @usableFromInline var cells: PostgresRow.Iterator
    @usableFromInline let statement: StaticString

    /// - Parameter statement: Names the statement in the error for a row with too few columns.
    @inlinable
    package init(_ row: PostgresRow, statement: StaticString) {
        self.cells = row.makeIterator()
        self.statement = statement
    }

    /// The next cell as a `T`.
    @inlinable
    package mutating func next<T: PostgresDecodable>(_: T.Type = T.self) throws -> T {
        guard let cell = cells.next() else {
            throw missingColumn(T.self)
        }
        return try cell.decode(T.self)
    }

    @usableFromInline
    func missingColumn(_ type: Any.Type) -> any Error {
        RowCellsError.missingColumn(statement: "\(statement)", expectedType: "\(type)")
    }
}

/// A row had fewer columns than its statement's decoding reads: the SQL and its decoding disagree.
package enum RowCellsError: Error, CustomStringConvertible {
    case missingColumn(statement: String, expectedType: String)

    package var description: String {
        switch self {
        case .missingColumn(let statement, let type):
            "a row of \(statement) ended before its \(type) column: the statement's SQL and its decoding disagree"
        }
    }
}
