/// Supplies an application's projections to the library's commands.
///
/// ```swift
/// enum MyProjections: ProjectionsProvider {
///     static func registry() throws -> ProjectionRegistry { ProjectionRegistry([try ordersProjection()]) }
/// }
/// // in your fleet binary's root command (EventFleetCLI): subcommands: [WorkerCommand<MyProjections>.self, ...]
/// ```
public protocol ProjectionsProvider {
    /// The application's projections.
    static func registry() throws -> ProjectionRegistry
}
