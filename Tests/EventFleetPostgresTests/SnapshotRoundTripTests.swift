import CartsExample
import EventFleetCore
import EventFleetTestSupport
import Foundation
import PostgresNIO
import Testing

/// Snapshot projections store the write model's state as JSONB and keep evolving it later, so the
/// Codable round trip through PostgreSQL must not change what `evolve` computes.
@Suite("Snapshot Codable round trip")
struct SnapshotRoundTripTests {
    @Test("evolve, store as JSONB, load and evolve further equals evolving in memory (200 random carts)")
    func roundTripThroughJSONB() async throws {
        var generator = SplitMix64(seed: 0xEF_2026)
        let histories = (0..<200).map { index in CartHistory.random(cartId: "c\(index)", using: &generator) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let snapshots = try histories.map { history in
            String(decoding: try encoder.encode(history.events[..<history.split].reduce(CartState.initial, CartState.evolve)), as: UTF8.self)
        }
        try await TestDatabase.withSchema(migrate: false) { schema in
            let rows = try await schema.rows(
                "SELECT s::jsonb::text FROM unnest(\(snapshots)::text[]) WITH ORDINALITY AS t(s, n) ORDER BY n", as: String.self
            )
            var index = 0
            for stored in rows {
                let history = histories[index]
                let loaded = try JSONDecoder().decode(CartState.self, from: Data(stored.utf8))
                let resumed = history.events[history.split...].reduce(loaded, CartState.evolve)
                let inMemory = history.events.reduce(CartState.initial, CartState.evolve)
                #expect(resumed == inMemory, "cart \(index) after \(history.split) of \(history.events.count) events")
                index += 1
            }
            #expect(index == histories.count)
        }
        #expect(histories.contains { if case .checkedOut = $0.finalState { true } else { false } })
        #expect(histories.contains { if case .cancelled = $0.finalState { true } else { false } })
        #expect(histories.contains { if case .active(let cart) = $0.finalState { !cart.items.isEmpty } else { false } })
    }
}

/// A cart's events from a random sequence of commands; rejected commands are dropped as the
/// handler would.
struct CartHistory {
    var events: [CartEvent]
    var split: Int
    var finalState: CartState { events.reduce(CartState.initial, CartState.evolve) }

    static func random<G: RandomNumberGenerator>(cartId: String, using generator: inout G) -> CartHistory {
        var state = CartState.initial
        var events: [CartEvent] = []
        let skus = ["SKU-1", "SKU-2", "SKU-3", "SKU-4"]
        for _ in 0..<Int.random(in: 1...30, using: &generator) {
            let command: CartCommand = switch Int.random(in: 0..<20, using: &generator) {
            case 0: .create(tenantId: "t", cartId: cartId, currency: "EUR")
            case 1..<10:
                .addItem(sku: skus.randomElement(using: &generator)!, name: "Item \"ü\"", unitPrice: Int.random(in: 0...999, using: &generator), quantity: Int.random(in: 1...5, using: &generator))
            case 10..<17: .removeItem(sku: skus.randomElement(using: &generator)!, quantity: Int.random(in: 1...3, using: &generator))
            case 17, 18: .checkOut(orderId: "o-\(cartId)")
            default: .cancel(reason: "because")
            }
            let effective = events.isEmpty ? CartCommand.create(tenantId: "t", cartId: cartId, currency: "EUR") : command
            guard let decided = try? CartState.decide(effective, state) else { continue }
            events += decided
            state = decided.reduce(state, CartState.evolve)
        }
        return CartHistory(events: events, split: Int.random(in: 0...events.count, using: &generator))
    }
}

