import EventFleetMigrations

/// One versioned schema change: a numbered SQL file, applied once, in order.
///
/// Applied migrations never change: a later change is a new migration with the next number. The
/// runner refuses to run when the text of an applied one differs from the file's.
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

    /// The library's table migrations (`Migrations/tables/` of the package).
    public static var all: [Migration] {
        LibrarySchema.tables.map { Migration(version: $0.version, name: $0.name, sql: String(decoding: $0.sql, as: UTF8.self)) }
    }
}

/// A function or procedure kept in a file of its own, applied after the numbered migrations in the
/// same transaction whenever its text changed, so its file always holds its current definition.
///
/// The file uses `CREATE OR REPLACE`. A change of the routine's parameters or return type needs a
/// new name or an explicit `DROP` in the file: `CREATE OR REPLACE` with other parameters silently
/// creates a second routine of the same name, which the runner refuses
/// (``MigrationError/overloadedRoutine(name:definitions:)``). A routine whose file is removed is
/// dropped.
public struct Routine: Sendable, Hashable {
    /// The routine's name, which is also its file's name.
    public var name: String
    public var sql: String

    public init(name: String, sql: String) {
        self.name = name
        self.sql = sql
    }

    /// The library's routines (`Migrations/routines/` of the package).
    public static var all: [Routine] {
        LibrarySchema.routines.map { Routine(name: $0.name, sql: String(decoding: $0.sql, as: UTF8.self)) }
    }
}

/// Problems with applying migrations. Nothing is applied when one occurs.
public enum MigrationError: Error, Sendable, Hashable, CustomStringConvertible {
    /// An applied migration's SQL differs from the file now shipped: the file was edited after it was
    /// applied. Add a new migration instead of changing an applied one.
    case checksumMismatch(version: Int, name: String, applied: String, current: String)
    /// The database recorded a migration with this version under another name.
    case nameMismatch(version: Int, applied: String, current: String)
    /// The database was migrated by an EventFleet build from before the schema was squashed into its
    /// current migrations; it cannot be migrated forward and must be created afresh.
    case schemaBeforeSquash(component: String, appliedMigration: String)
    /// After the routines were applied, several routines carry this name: a routine's file changed
    /// its parameters or return type with `CREATE OR REPLACE`, which adds a routine instead of
    /// replacing it.
    case overloadedRoutine(name: String, definitions: Int)
    /// The configuration names a `schema` the database does not have, and only migrating creates
    /// it: a command other than `migrate` met it before any migration ran there, or the URL
    /// misspells the schema.
    case schemaNotFound(schema: String)
    /// The migrations' `schema` does not exist and the migrating role may not create it (`reason`
    /// says why): it lacks the `CREATE` privilege on the database, as the migrator of
    /// `deploy/roles.sql` does, whose schema that file creates.
    case cannotCreateSchema(schema: String, reason: String)

    public var description: String {
        switch self {
        case .schemaNotFound(let schema):
            "the schema '\(schema)' (schema= in the database URL) does not exist: run `migrate` first, which creates it, or correct the URL"
        case .cannotCreateSchema(let schema, let reason):
            "cannot create the schema '\(schema)' (schema= in the database URL): \(reason); create it as a role that may (deploy/roles.sql creates it, owned by the migrator) or grant the migrating role CREATE on the database"
        case .checksumMismatch(let version, let name, let applied, let current):
            "migration \(version) (\(name)) was changed after it was applied: applied checksum \(applied), file checksum \(current); add a new migration instead"
        case .nameMismatch(let version, let applied, let current):
            "migration \(version) was applied as '\(applied)' but the file is now '\(current)'"
        case .schemaBeforeSquash(let component, let applied):
            "the \(component) schema of this database was migrated by an EventFleet build from before its migrations were squashed (it has applied '\(applied)'); it cannot be migrated forward: recreate the database (or the schema) and migrate again"
        case .overloadedRoutine(let name, let definitions):
            "\(definitions) routines are named \(name): its file changed the parameters or the return type with CREATE OR REPLACE, which adds a routine; give the new one another name or DROP the old one in the file"
        }
    }
}
