/// Supplies an application's projections to the library's commands.
///
/// ```swift
/// enum MyProjections: ProjectionsProvider {
///     static func registry() throws -> ProjectionRegistry { ProjectionRegistry([try ordersProjection()]) }
/// }
/// // in your fleet binary's root command (EventFleetCLI): subcommands: [WorkerCommand<MyProjections>.self, ...]
/// ```
///
/// A provider whose binary runs more than one version of a projection (a worker pool per version,
/// from one binary) declares ``Options``: command-line options of its own, parsed by the commands
/// that run projections (`worker`, `backfill`, `project`, `projections rebuild`), which call
/// ``registry(options:)`` with them.
public protocol ProjectionsProvider {
    /// The provider's own options (for example `--carts-version`); ``NoProjectionsOptions`` for none.
    /// EventFleetCLI's commands need it to be `ParsableArguments` of swift-argument-parser.
    associatedtype Options: ProjectionsProviderOptions = NoProjectionsOptions

    /// The application's projections.
    static func registry() throws -> ProjectionRegistry

    /// The application's projections as `options` pick them; ``registry()`` unless a provider says otherwise.
    static func registry(options: Options) throws -> ProjectionRegistry
}

extension ProjectionsProvider {
    public static func registry(options: Options) throws -> ProjectionRegistry {
        try registry()
    }
}

/// A provider's own command-line options (see ``ProjectionsProvider/Options``).
public protocol ProjectionsProviderOptions: Sendable {
    /// The options as command-line arguments, for `launch` to start workers with.
    var arguments: [String] { get }
}

/// The options of a provider that has none.
public struct NoProjectionsOptions: ProjectionsProviderOptions, Hashable {
    public init() {}

    public var arguments: [String] { [] }
}
