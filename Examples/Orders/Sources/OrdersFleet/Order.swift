import EventFleetCore

// An order: placed by a customer, lines added while it is open, then paid and shipped.

struct OrderPlaced: EventPayload {
    static let eventType = "OrderPlaced"
    var customer: String
    var currency: String
}

struct OrderLineAdded: EventPayload {
    static let eventType = "OrderLineAdded"
    var sku: String
    var quantity: Int
    var unitPriceCents: Int
}

struct OrderPaid: EventPayload {
    static let eventType = "OrderPaid"
    var amountCents: Int
}

struct OrderShipped: EventPayload {
    static let eventType = "OrderShipped"
    var carrier: String
}

enum OrderEvent: Event {
    case placed(OrderPlaced)
    case lineAdded(OrderLineAdded)
    case paid(OrderPaid)
    case shipped(OrderShipped)

    static let cases: [EventCase<OrderEvent>] = [
        EventCase(OrderPlaced.self, OrderEvent.placed),
        EventCase(OrderLineAdded.self, OrderEvent.lineAdded),
        EventCase(OrderPaid.self, OrderEvent.paid),
        EventCase(OrderShipped.self, OrderEvent.shipped),
    ]

    var payload: any EventPayload {
        switch self {
        case .placed(let event): event
        case .lineAdded(let event): event
        case .paid(let event): event
        case .shipped(let event): event
        }
    }
}

struct OrderLine: Codable, Sendable, Hashable {
    var sku: String
    var quantity: Int
    var unitPriceCents: Int
}

enum OrderStatus: String, Codable, Sendable {
    case none, open, paid, shipped
}

struct Order: Codable, Sendable, Hashable {
    var status = OrderStatus.none
    var customer = ""
    var currency = ""
    var lines: [OrderLine] = []
    var carrier: String?

    var totalCents: Int { lines.reduce(0) { $0 + $1.quantity * $1.unitPriceCents } }

    static func initial() -> Order { Order() }

    static func evolve(_ order: Order, _ event: OrderEvent) -> Order {
        var order = order
        switch event {
        case .placed(let placed):
            order.status = .open
            order.customer = placed.customer
            order.currency = placed.currency
        case .lineAdded(let line):
            order.lines.append(OrderLine(sku: line.sku, quantity: line.quantity, unitPriceCents: line.unitPriceCents))
        case .paid:
            order.status = .paid
        case .shipped(let shipped):
            order.status = .shipped
            order.carrier = shipped.carrier
        }
        return order
    }
}

enum OrderCommand: Sendable {
    case place(customer: String, currency: String)
    case addLine(sku: String, quantity: Int, unitPriceCents: Int)
    case pay
    case ship(carrier: String)
}

enum OrderError: Error, Equatable {
    case alreadyPlaced
    case notPlaced
    case notOpen(OrderStatus)
    case notPaid(OrderStatus)
    case emptyOrder
    case invalidQuantity(Int)
}

extension Order {
    static func decide(_ command: OrderCommand, _ order: Order) throws -> [OrderEvent] {
        switch command {
        case .place(let customer, let currency):
            guard order.status == .none else { throw OrderError.alreadyPlaced }
            return [.placed(OrderPlaced(customer: customer, currency: currency))]
        case .addLine(let sku, let quantity, let unitPriceCents):
            guard order.status != .none else { throw OrderError.notPlaced }
            guard order.status == .open else { throw OrderError.notOpen(order.status) }
            guard quantity > 0 else { throw OrderError.invalidQuantity(quantity) }
            return [.lineAdded(OrderLineAdded(sku: sku, quantity: quantity, unitPriceCents: unitPriceCents))]
        case .pay:
            guard order.status == .open else { throw OrderError.notOpen(order.status) }
            guard !order.lines.isEmpty else { throw OrderError.emptyOrder }
            return [.paid(OrderPaid(amountCents: order.totalCents))]
        case .ship(let carrier):
            guard order.status == .paid else { throw OrderError.notPaid(order.status) }
            return [.shipped(OrderShipped(carrier: carrier))]
        }
    }

    static let decider = Decider<Order, OrderCommand, OrderEvent>(decide: decide, evolve: evolve, initialState: initial)
}
