import EventFleetCore

// A product's stock: one stream per SKU, which every order of that product reserves from. Many
// commands address the same stream at once, so its handler is pessimistic: it locks the stream,
// reads, decides and appends in one transaction, and concurrent commands queue instead of failing.

struct StockReceived: EventPayload {
    static let eventType = "StockReceived"
    var quantity: Int
}

struct StockReserved: EventPayload {
    static let eventType = "StockReserved"
    var reservation: String
    var quantity: Int
}

enum StockEvent: Event {
    case received(StockReceived)
    case reserved(StockReserved)

    static let cases: [EventCase<StockEvent>] = [
        EventCase(StockReceived.self, StockEvent.received),
        EventCase(StockReserved.self, StockEvent.reserved),
    ]

    var payload: any EventPayload {
        switch self {
        case .received(let event): event
        case .reserved(let event): event
        }
    }
}

enum StockCommand: Sendable {
    case receive(quantity: Int)
    case reserve(reservation: String, quantity: Int)
}

enum StockError: Error, Equatable {
    case outOfStock(available: Int, requested: Int)
}

struct Stock: Codable, Sendable, Hashable {
    var available = 0
    var reservations = 0

    static func initial() -> Stock { Stock() }

    static func evolve(_ stock: Stock, _ event: StockEvent) -> Stock {
        var stock = stock
        switch event {
        case .received(let received): stock.available += received.quantity
        case .reserved(let reserved):
            stock.available -= reserved.quantity
            stock.reservations += 1
        }
        return stock
    }

    static func decide(_ command: StockCommand, _ stock: Stock) throws -> [StockEvent] {
        switch command {
        case .receive(let quantity):
            return [.received(StockReceived(quantity: quantity))]
        case .reserve(let reservation, let quantity):
            guard stock.available >= quantity else { throw StockError.outOfStock(available: stock.available, requested: quantity) }
            return [.reserved(StockReserved(reservation: reservation, quantity: quantity))]
        }
    }

    static let decider = Decider<Stock, StockCommand, StockEvent>(decide: decide, evolve: evolve, initialState: initial)
}
