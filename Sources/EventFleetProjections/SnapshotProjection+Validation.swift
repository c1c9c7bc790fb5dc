import EventFleetPostgres
import PostgresNIO

extension SnapshotProjection {
    /// Checks that the table exists, has every column the projection writes (with `snapshot` as
    /// JSON), a unique constraint on exactly the key columns, and an index on `(partition, stream_id)`.
    ///
    /// - Throws: ``ProjectionError/misconfigured(projection:table:problems:)`` listing every problem.
    public func validate(context: ProjectionContext) async throws {
        let tableName = self.tableName(context).description
        var columnTypes: [String: String] = [:]
        var found = false
        for row in try await context.query("""
            SELECT to_regclass(\(tableName)) IS NOT NULL, a.attname::text, format_type(a.atttypid, a.atttypmod)
              FROM (SELECT 1) AS one
              LEFT JOIN pg_attribute a ON a.attrelid = to_regclass(\(tableName)) AND a.attnum > 0 AND NOT a.attisdropped
            """) {
            let (exists, column, type) = try row.decode((Bool, String?, String?).self)
            found = exists
            if let column, let type { columnTypes[column] = type }
        }
        guard found else {
            throw ProjectionError.misconfigured(projection: name, table: table.description, problems: ["the table does not exist (looked for \(tableName))"])
        }

        var problems: [String] = []
        let required = Self.snapshotColumns + keyColumns.map(\.name) + columns.map(\.name)
        var seen = Set<String>()
        let missing = required.filter { seen.insert($0).inserted && columnTypes[$0] == nil }
        if !missing.isEmpty {
            problems.append("missing columns: \(missing.joined(separator: ", "))")
        }
        if let type = columnTypes["snapshot"], type != "jsonb", type != "json" {
            problems.append("column snapshot is \(type), not jsonb")
        }
        for column in ["last_stream_position", "last_global_position"] {
            if let type = columnTypes[column], type != "bigint" {
                problems.append("column \(column) is \(type), not bigint")
            }
        }

        var uniqueKeys: [Set<String>] = []
        var indexPrefixes: [[String]] = []
        for row in try await context.query("""
            SELECT array(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
                           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                          ORDER BY k.n),
                   i.indisunique
              FROM pg_index i
             WHERE i.indrelid = to_regclass(\(tableName)) AND i.indpred IS NULL AND i.indisvalid
            """) {
            let (columns, unique) = try row.decode(([String], Bool).self)
            if unique { uniqueKeys.append(Set(columns)) }
            indexPrefixes.append(Array(columns.prefix(2)))
        }
        let keySet = Set(keyColumns.map(\.name))
        if !uniqueKeys.contains(keySet) {
            problems.append("no unique constraint on exactly the key columns (\(keyColumns.map(\.name).joined(separator: ", ")))")
        }
        if !indexPrefixes.contains(where: { Set($0) == ["partition", "stream_id"] }) {
            problems.append("no index starting with (partition, stream_id), which every update looks rows up by")
        }
        if !problems.isEmpty {
            throw ProjectionError.misconfigured(projection: name, table: table.description, problems: problems)
        }
    }
}
