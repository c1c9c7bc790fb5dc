import EventFleetCore

/// One product line of a cart.
public struct CartItem: Codable, Sendable, Hashable {
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

/// What every cart past creation knows.
public struct CartDetails: Codable, Sendable, Hashable {
    public var tenantId: String
    public var cartId: String
    public var currency: String
    /// Items in the order they were first added; one line per SKU.
    public var items: [CartItem]

    public init(tenantId: String, cartId: String, currency: String, items: [CartItem] = []) {
        self.tenantId = tenantId
        self.cartId = cartId
        self.currency = currency
        self.items = items
    }

    /// Sum of unit price × quantity, in minor units.
    public var total: Int { items.reduce(0) { $0 + $1.unitPrice * $1.quantity } }
}

/// The state of a cart: it starts empty, is active while shopping, and ends checked out or cancelled.
public enum CartState: Codable, Sendable, Hashable {
    case initial
    case active(CartDetails)
    case checkedOut(CartDetails, orderId: String, total: Int)
    case cancelled(CartDetails, reason: String)

    /// The cart's details once it has been created.
    public var details: CartDetails? {
        switch self {
        case .initial: nil
        case .active(let details), .checkedOut(let details, _, _), .cancelled(let details, _): details
        }
    }

    /// The state of a cart with no events.
    public static func initialState() -> CartState { .initial }

    /// Applies one event. Events that do not fit the state (which `decide` never produces) leave it as is.
    public static func evolve(_ state: CartState, _ event: CartEvent) -> CartState {
        switch (state, event) {
        case (.initial, .created(let created)):
            return .active(CartDetails(tenantId: created.tenantId, cartId: created.cartId, currency: created.currency))
        case (.active(var cart), .itemAdded(let added)):
            if let index = cart.items.firstIndex(where: { $0.sku == added.sku }) {
                cart.items[index].quantity += added.quantity
            } else {
                cart.items.append(CartItem(sku: added.sku, name: added.name, unitPrice: added.unitPrice, quantity: added.quantity))
            }
            return .active(cart)
        case (.active(var cart), .itemRemoved(let removed)):
            if let index = cart.items.firstIndex(where: { $0.sku == removed.sku }) {
                cart.items[index].quantity -= removed.quantity
                if cart.items[index].quantity <= 0 { cart.items.remove(at: index) }
            }
            return .active(cart)
        case (.active(let cart), .checkedOut(let checkedOut)):
            return .checkedOut(cart, orderId: checkedOut.orderId, total: checkedOut.total)
        case (.active(let cart), .cancelled(let cancelled)):
            return .cancelled(cart, reason: cancelled.reason)
        default:
            return state
        }
    }
}
