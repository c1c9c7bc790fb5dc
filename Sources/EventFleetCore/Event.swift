import Foundation
import Synchronization

/// The data of one kind of event, stored under a stable type name.
///
/// ```swift
/// struct CartCreated: EventPayload {
///     static let eventType = "CartCreated"
///     var tenantId: String
///     var cartId: String
///     var currency: String
/// }
/// ```
public protocol EventPayload: Codable, Sendable {
    /// The name stored in `message_type`. Keep it stable: renaming it orphans stored events.
    static var eventType: String { get }
}

/// A domain's events as one Swift type, usually an enum with one case per ``EventPayload``.
///
/// The enum maps to and from the stored (type name, data) pair through `Codable`:
///
/// ```swift
/// enum CartEvent: Event {
///     case created(CartCreated)
///     case itemAdded(ItemAddedToCart)
///
///     static let cases: [EventCase<CartEvent>] = [
///         EventCase(CartCreated.self, CartEvent.created),
///         EventCase(ItemAddedToCart.self, CartEvent.itemAdded),
///     ]
///
///     var payload: any EventPayload {
///         switch self {
///         case .created(let event): event
///         case .itemAdded(let event): event
///         }
///     }
/// }
/// ```
public protocol Event: Sendable {
    /// One entry per payload type this event type can hold.
    static var cases: [EventCase<Self>] { get }
    /// The payload of this value; its type's ``EventPayload/eventType`` is the stored type name.
    var payload: any EventPayload { get }
}

extension Event {
    /// The stored type name of this event.
    public var eventType: String { type(of: payload).eventType }

    /// Encodes the payload as JSON.
    public func encodedData(using encoder: JSONEncoder = JSONEncoder()) throws -> Data {
        try encoder.encode(payload)
    }

    /// The case that decodes `eventType`, or `nil` when this type does not know the name.
    public static func eventCase(for eventType: String) -> EventCase<Self>? {
        EventCaseIndex<Self>.shared.cases[eventType]
    }
}

/// One payload type of an ``Event`` and how it embeds into the event type.
public struct EventCase<E: Event>: Sendable {
    /// The stored type name.
    public let eventType: String
    private let decodeBody: @Sendable (Data, JSONDecoder) throws -> E

    /// - Parameters:
    ///   - payload: The payload type.
    ///   - embed: Wraps a payload into the event type, usually the enum case constructor.
    public init<P: EventPayload>(_ payload: P.Type, _ embed: @escaping @Sendable (P) -> E) {
        self.eventType = P.eventType
        self.decodeBody = { data, decoder in embed(try decoder.decode(P.self, from: data)) }
    }

    /// Decodes the stored JSON of this case.
    public func decode(_ data: Data, using decoder: JSONDecoder = JSONDecoder()) throws -> E {
        try decodeBody(data, decoder)
    }
}

/// A lookup table from type name to case, built once per event type.
private final class EventCaseIndex<E: Event>: Sendable {
    let cases: [String: EventCase<E>]

    private init() {
        var cases: [String: EventCase<E>] = [:]
        for eventCase in E.cases where cases[eventCase.eventType] == nil {
            cases[eventCase.eventType] = eventCase
        }
        self.cases = cases
    }

    static var shared: EventCaseIndex<E> {
        // Generic types cannot have stored statics, so the index is cached per type in a lock-protected box.
        EventCaseIndexCache.index(for: E.self) { EventCaseIndex<E>() }
    }
}

private enum EventCaseIndexCache {
    private static let storage = Mutex<[ObjectIdentifier: any Sendable]>([:])

    static func index<T: Sendable>(for type: Any.Type, make: () -> T) -> T {
        storage.withLock { values in
            if let value = values[ObjectIdentifier(type)] as? T { return value }
            let value = make()
            values[ObjectIdentifier(type)] = value
            return value
        }
    }
}
