/// Supplies an application's own migrations (read-model tables, say), applied after the library's.
public protocol MigrationsProvider {
    /// The component name their versions count under, e.g. `"orders"`.
    static var component: String { get }
    static var migrations: [Migration] { get }
    /// The application's routines, each kept in a file of its own (none by default).
    static var routines: [Routine] { get }
}

extension MigrationsProvider {
    public static var routines: [Routine] { [] }
}

/// No application migrations: only the library's.
public enum NoMigrations: MigrationsProvider {
    public static let component = "none"
    public static var migrations: [Migration] { [] }
}
