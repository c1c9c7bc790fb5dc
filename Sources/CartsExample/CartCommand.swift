import EventFleetCore

/// What a user can ask of a cart.
public enum CartCommand: Sendable, Hashable {
    case create(tenantId: String, cartId: String, currency: String)
    case addItem(sku: String, name: String, unitPrice: Int, quantity: Int)
    case removeItem(sku: String, quantity: Int)
    case checkOut(orderId: String)
    case cancel(reason: String)
}

/// Why `decide` refused a command.
public enum CartError: Error, Sendable, Hashable, CustomStringConvertible {
    case alreadyCreated
    case notCreated
    case notActive(status: String)
    case invalidQuantity(Int)
    case invalidPrice(Int)
    case itemNotInCart(sku: String)
    case notEnoughItems(sku: String, inCart: Int, requested: Int)
    case emptyCart

    public var description: String {
        switch self {
        case .alreadyCreated: "the cart already exists"
        case .notCreated: "the cart does not exist"
        case .notActive(let status): "the cart is \(status)"
        case .invalidQuantity(let quantity): "quantity must be positive (got \(quantity))"
        case .invalidPrice(let price): "unit price must not be negative (got \(price))"
        case .itemNotInCart(let sku): "\(sku) is not in the cart"
        case .notEnoughItems(let sku, let inCart, let requested): "cannot remove \(requested) of \(sku): the cart holds \(inCart)"
        case .emptyCart: "an empty cart cannot be checked out"
        }
    }
}

extension CartState {
    /// Decides the events a command produces, or throws ``CartError``.
    public static func decide(_ command: CartCommand, _ state: CartState) throws -> [CartEvent] {
        switch (command, state) {
        case (.create(let tenantId, let cartId, let currency), .initial):
            return [.created(CartCreated(tenantId: tenantId, cartId: cartId, currency: currency))]
        case (.create, _):
            throw CartError.alreadyCreated
        case (_, .initial):
            throw CartError.notCreated
        case (_, .checkedOut):
            throw CartError.notActive(status: "checked out")
        case (_, .cancelled):
            throw CartError.notActive(status: "cancelled")
        case (.addItem(let sku, let name, let unitPrice, let quantity), .active):
            guard quantity > 0 else { throw CartError.invalidQuantity(quantity) }
            guard unitPrice >= 0 else { throw CartError.invalidPrice(unitPrice) }
            return [.itemAdded(ItemAddedToCart(sku: sku, name: name, unitPrice: unitPrice, quantity: quantity))]
        case (.removeItem(let sku, let quantity), .active(let cart)):
            guard quantity > 0 else { throw CartError.invalidQuantity(quantity) }
            guard let item = cart.items.first(where: { $0.sku == sku }) else { throw CartError.itemNotInCart(sku: sku) }
            guard item.quantity >= quantity else {
                throw CartError.notEnoughItems(sku: sku, inCart: item.quantity, requested: quantity)
            }
            return [.itemRemoved(ItemRemovedFromCart(sku: sku, quantity: quantity))]
        case (.checkOut(let orderId), .active(let cart)):
            guard !cart.items.isEmpty else { throw CartError.emptyCart }
            return [.checkedOut(CartCheckedOut(orderId: orderId, total: cart.total))]
        case (.cancel(let reason), .active):
            return [.cancelled(CartCancelled(reason: reason))]
        }
    }

    /// The cart domain as a decider.
    public static let decider = Decider<CartState, CartCommand, CartEvent>(
        decide: CartState.decide, evolve: CartState.evolve, initialState: CartState.initialState
    )
}

/// The command handler of the cart domain, as the demo and the tests use it.
public typealias CartCommandHandler = DeciderCommandHandler<CartState, CartCommand, CartEvent>

extension DeciderCommandHandler where State == CartState, Command == CartCommand, E == CartEvent {
    /// A handler for carts with stream type `cart`.
    public static func carts(retry: RetryPolicy = RetryPolicy()) -> CartCommandHandler {
        CartCommandHandler(decider: CartState.decider, options: .init(retry: retry, streamType: "cart"))
    }
}

extension CartCommand {
    /// A cart's life, for the demo and the soak's writers: shop, change your mind, then check out or
    /// (every fourth cart) abandon it. `number` varies the items, quantities and currency.
    public static func shoppingTrip(tenant: String, cartId: String, number: Int) -> [CartCommand] {
        var commands: [CartCommand] = [.create(tenantId: tenant, cartId: cartId, currency: number.isMultiple(of: 2) ? "USD" : "EUR")]
        for item in 0..<(2 + number % 4) {
            commands.append(.addItem(sku: "SKU-\(100 + item)", name: "Item \(item)", unitPrice: 5 + item * 10, quantity: 1 + (number + item) % 3))
        }
        commands.append(.removeItem(sku: "SKU-100", quantity: 1))
        commands.append(number.isMultiple(of: 4) ? .cancel(reason: "changed my mind") : .checkOut(orderId: "order-\(cartId)"))
        return commands
    }
}

/// Stream ids of carts: `cart-<cartId>`.
public func cartStreamId(_ cartId: String) -> String { "cart-\(cartId)" }
