/// Supplies an application's own migrations (read-model tables, say), applied after the library's.
public protocol MigrationsProvider {
    /// The component name their versions count under, e.g. `"orders"`.
    static var component: String { get }
    static var migrations: [Migration] { get }
}

/// No application migrations: only the library's.
public enum NoMigrations: MigrationsProvider {
    public static let component = "none"
    public static var migrations: [Migration] { [] }
}
