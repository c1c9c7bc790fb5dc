import EventFleetCore

/// A cart was opened for a tenant, priced in one currency.
public struct CartCreated: EventPayload, Hashable {
    public static let eventType = "CartCreated"
    public var tenantId: String
    public var cartId: String
    public var currency: String

    public init(tenantId: String, cartId: String, currency: String) {
        self.tenantId = tenantId
        self.cartId = cartId
        self.currency = currency
    }
}

/// Units of a product were added. Prices are integers in minor units (cents).
public struct ItemAddedToCart: EventPayload, Hashable {
    public static let eventType = "ItemAddedToCart"
    public var sku: String
    public var name: String
    public var unitPrice: Int
    public var quantity: Int

    public init(sku: String, name: String, unitPrice: Int, quantity: Int) {
        self.sku = sku
        self.name = name
        self.unitPrice = unitPrice
        self.quantity = quantity
    }
}

/// Units of a product were removed.
public struct ItemRemovedFromCart: EventPayload, Hashable {
    public static let eventType = "ItemRemovedFromCart"
    public var sku: String
    public var quantity: Int

    public init(sku: String, quantity: Int) {
        self.sku = sku
        self.quantity = quantity
    }
}

/// The cart became an order.
public struct CartCheckedOut: EventPayload, Hashable {
    public static let eventType = "CartCheckedOut"
    public var orderId: String
    public var total: Int

    public init(orderId: String, total: Int) {
        self.orderId = orderId
        self.total = total
    }
}

/// The cart was abandoned.
public struct CartCancelled: EventPayload, Hashable {
    public static let eventType = "CartCancelled"
    public var reason: String

    public init(reason: String) {
        self.reason = reason
    }
}

/// The events of a cart stream.
public enum CartEvent: Event, Hashable {
    case created(CartCreated)
    case itemAdded(ItemAddedToCart)
    case itemRemoved(ItemRemovedFromCart)
    case checkedOut(CartCheckedOut)
    case cancelled(CartCancelled)

    public static let cases: [EventCase<CartEvent>] = [
        EventCase(CartCreated.self, CartEvent.created),
        EventCase(ItemAddedToCart.self, CartEvent.itemAdded),
        EventCase(ItemRemovedFromCart.self, CartEvent.itemRemoved),
        EventCase(CartCheckedOut.self, CartEvent.checkedOut),
        EventCase(CartCancelled.self, CartEvent.cancelled),
    ]

    public var payload: any EventPayload {
        switch self {
        case .created(let event): event
        case .itemAdded(let event): event
        case .itemRemoved(let event): event
        case .checkedOut(let event): event
        case .cancelled(let event): event
        }
    }

    /// The type names of all cart events.
    public static var eventTypes: [String] { cases.map(\.eventType) }
}
