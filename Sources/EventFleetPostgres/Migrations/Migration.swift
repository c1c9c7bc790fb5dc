/// One versioned schema change, from a numbered SQL file in `Migrations/`.
public struct Migration: Sendable, Hashable {
    /// The number the file name starts with; migrations apply in this order.
    public var version: Int
    /// The file name without number and extension.
    public var name: String
    /// The SQL, applied in one transaction together with the other pending migrations.
    public var sql: String

    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }

    /// The migrations shipped with the library, embedded at build time from `Migrations/`.
    public static var all: [Migration] { EmbeddedMigrations.all }
}

/// Problems with applying migrations.
public enum MigrationError: Error, Sendable, Hashable, CustomStringConvertible {
    /// An applied migration's SQL differs from the file now shipped: the file was edited after it was
    /// applied. Add a new migration instead of changing an applied one.
    case checksumMismatch(version: Int, name: String, applied: String, current: String)
    /// The database recorded a migration with this version under another name.
    case nameMismatch(version: Int, applied: String, current: String)

    public var description: String {
        switch self {
        case .checksumMismatch(let version, let name, let applied, let current):
            "migration \(version) (\(name)) was changed after it was applied: applied checksum \(applied), file checksum \(current); add a new migration instead"
        case .nameMismatch(let version, let applied, let current):
            "migration \(version) was applied as '\(applied)' but the file is now '\(current)'"
        }
    }
}
