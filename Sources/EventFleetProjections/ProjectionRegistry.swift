import EventFleetCore

/// The projections a consumer or worker runs, in registration order.
///
/// Several projections may handle the same event type; each gets the event, in the order they were
/// registered.
public struct ProjectionRegistry: Sendable {
    public private(set) var projections: [any Projection]

    public init(_ projections: [any Projection] = []) {
        self.projections = projections
    }

    /// Adds a projection after the ones already registered.
    public mutating func register(_ projection: any Projection) {
        projections.append(projection)
    }

    /// Returns a registry with `projection` added.
    public func registering(_ projection: any Projection) -> ProjectionRegistry {
        var copy = self
        copy.register(projection)
        return copy
    }

    /// The projection named `name`.
    ///
    /// - Throws: ``ProjectionError/unknownProjection(_:known:)``.
    public func projection(named name: String) throws -> any Projection {
        guard let projection = projections.first(where: { $0.name == name }) else {
            throw ProjectionError.unknownProjection(name, known: projections.map(\.name))
        }
        return projection
    }

    /// The stream projections (the ones the runner can drive), in order.
    public var streamProjections: [any StreamProjection] {
        projections.compactMap { $0 as? any StreamProjection }
    }

    /// Every type some projection handles, or `nil` when one handles all.
    public var eventTypes: Set<String>? {
        var types = Set<String>()
        for projection in projections {
            guard let handled = projection.eventTypes else { return nil }
            types.formUnion(handled)
        }
        return types
    }
}

extension ProjectionRegistry {
    /// Adds a handler for events of `types`, called in the consumer's transaction.
    public mutating func subscribe(
        to types: [String],
        name: String,
        handler: @escaping @Sendable (RecordedMessage, ProjectionContext) async throws -> Void
    ) {
        register(CustomProjection(name: name, eventTypes: Set(types), handler: handler))
    }

    /// Adds a handler for every event, called in the consumer's transaction.
    public mutating func subscribeToAll(
        name: String,
        handler: @escaping @Sendable (RecordedMessage, ProjectionContext) async throws -> Void
    ) {
        register(CustomProjection(name: name, eventTypes: nil, handler: handler))
    }
}
