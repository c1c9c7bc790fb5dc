/// The stream version a writer expects to find when it appends, checked atomically with the append.
///
/// Stream versions count events: a stream with three events is at version 3 and its events sit at
/// stream positions 1, 2 and 3. A stream that does not exist is at version 0.
public enum ExpectedVersion: Sendable, Hashable, CustomStringConvertible {
    /// No check: the events go after whatever the stream holds. Never fails because of contention.
    case any
    /// The stream must not exist yet.
    case noStream
    /// The stream must exist (hold at least one event).
    case streamExists
    /// The stream must be at exactly this version. `.exact(0)` is the same as ``noStream``.
    case exact(Int64)

    /// Whether `currentVersion` satisfies this expectation.
    public func isSatisfied(by currentVersion: Int64) -> Bool {
        switch self {
        case .any: true
        case .noStream: currentVersion == 0
        case .streamExists: currentVersion > 0
        case .exact(let expected): currentVersion == expected
        }
    }

    public var description: String {
        switch self {
        case .any: "any"
        case .noStream: "no-stream"
        case .streamExists: "stream-exists"
        case .exact(let version): String(version)
        }
    }

    /// Parses the CLI spelling: `any`, `no-stream`, `exists` (or `stream-exists`) or a non-negative integer.
    ///
    /// - Throws: ``EventStoreError/invalidArgument(field:reason:)`` naming `expected-version`.
    public init(parsing text: String) throws {
        switch text.lowercased() {
        case "any": self = .any
        case "no-stream", "nostream", "no_stream": self = .noStream
        case "exists", "stream-exists", "streamexists", "stream_exists": self = .streamExists
        default:
            guard let version = Int64(text), version >= 0 else {
                throw EventStoreError.invalidArgument(
                    field: "expected-version",
                    reason: "'\(text)' is not one of any, no-stream, exists or a non-negative integer"
                )
            }
            self = .exact(version)
        }
    }
}
