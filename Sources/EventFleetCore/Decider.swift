/// A domain's write model as three pure functions.
///
/// `decide` turns a command and the current state into new events (or throws a domain error),
/// `evolve` applies one event to a state, and `initialState` is the state of a stream with no events.
/// Snapshot projections reuse the same `evolve`, so the read model is the write model's state.
public struct Decider<State: Sendable, Command: Sendable, E: Event>: Sendable {
    public var decide: @Sendable (Command, State) throws -> [E]
    public var evolve: @Sendable (State, E) -> State
    public var initialState: @Sendable () -> State

    public init(
        decide: @escaping @Sendable (Command, State) throws -> [E],
        evolve: @escaping @Sendable (State, E) -> State,
        initialState: @escaping @Sendable () -> State
    ) {
        self.decide = decide
        self.evolve = evolve
        self.initialState = initialState
    }

    /// Folds events into state, starting from ``initialState``.
    public func fold<S: Sequence>(_ events: S) -> State where S.Element == E {
        events.reduce(initialState(), evolve)
    }
}
