import CartsExample
import EventFleetCore
import Foundation
import Testing

@Suite("Expected versions")
struct ExpectedVersionTests {
    @Test("the CLI words parse", arguments: [
        ("any", ExpectedVersion.any), ("no-stream", .noStream), ("exists", .streamExists),
        ("stream-exists", .streamExists), ("0", .exact(0)), ("42", .exact(42)),
    ])
    func parses(text: String, expected: ExpectedVersion) throws {
        #expect(try ExpectedVersion(parsing: text) == expected)
    }

    @Test("unknown words and negative numbers are rejected naming the field", arguments: ["sometimes", "-1", "", "1.5"])
    func rejects(text: String) {
        #expect {
            try ExpectedVersion(parsing: text)
        } throws: { error in
            if case .invalidArgument(field: "expected-version", _) = error as? EventStoreError { true } else { false }
        }
    }

    @Test("satisfaction")
    func satisfaction() {
        #expect(ExpectedVersion.any.isSatisfied(by: 7))
        #expect(ExpectedVersion.noStream.isSatisfied(by: 0))
        #expect(!ExpectedVersion.noStream.isSatisfied(by: 1))
        #expect(ExpectedVersion.streamExists.isSatisfied(by: 1))
        #expect(!ExpectedVersion.streamExists.isSatisfied(by: 0))
        #expect(ExpectedVersion.exact(3).isSatisfied(by: 3))
        #expect(!ExpectedVersion.exact(3).isSatisfied(by: 4))
    }
}

@Suite("Retry policy")
struct RetryPolicyTests {
    @Test("delays are jittered below a capped exponential ceiling")
    func delaysAreBounded() {
        let policy = RetryPolicy(maxRetries: 10, initialDelay: .milliseconds(10), maxDelay: .milliseconds(80), multiplier: 2)
        for retry in 1...10 {
            let ceiling = min(0.010 * pow(2, Double(retry - 1)), 0.080)
            let delays = (0..<50).map { _ in policy.delay(beforeRetry: retry) }
            #expect(delays.allSatisfy { $0 >= .zero && $0 <= .seconds(ceiling) })
            #expect(Set(delays).count > 1, "jittered, not a fixed delay")
        }
    }
}

@Suite("JSON values")
struct JSONValueTests {
    @Test("objects parse; other JSON and garbage are rejected naming the field")
    func parseObject() throws {
        let object = try JSONValue.parseObject(#"{"a":1,"b":[true,null,"x"],"c":{"d":"e"}}"#, field: "data")
        #expect(object["a"] == .number(1))
        #expect(object["b"] == .array([.bool(true), .null, .string("x")]))
        for bad in ["[1]", "\"text\"", "{oops", ""] {
            #expect {
                try JSONValue.parseObject(bad, field: "data")
            } throws: { error in
                if case .invalidArgument(field: "data", _) = error as? EventStoreError { true } else { false }
            }
        }
    }
}

@Suite("Cart domain")
struct CartDomainTests {
    @Test("items keep insertion order, quantities sum, removal to zero drops the line")
    func evolve() {
        let state = CartState.decider.fold([
            .created(CartCreated(tenantId: "t", cartId: "c", currency: "EUR")),
            .itemAdded(ItemAddedToCart(sku: "B", name: "b", unitPrice: 5, quantity: 1)),
            .itemAdded(ItemAddedToCart(sku: "A", name: "a", unitPrice: 3, quantity: 2)),
            .itemAdded(ItemAddedToCart(sku: "B", name: "b", unitPrice: 5, quantity: 2)),
            .itemRemoved(ItemRemovedFromCart(sku: "A", quantity: 2)),
        ])
        #expect(state.details?.items == [CartItem(sku: "B", name: "b", unitPrice: 5, quantity: 3)])
        #expect(state.details?.total == 15)
    }

    @Test("decide rejects what breaks the rules")
    func decideRules() throws {
        let active = CartState.active(CartDetails(tenantId: "t", cartId: "c", currency: "EUR", items: [CartItem(sku: "A", name: "a", unitPrice: 1, quantity: 1)]))
        #expect(throws: CartError.alreadyCreated) { try CartState.decide(.create(tenantId: "t", cartId: "c", currency: "EUR"), active) }
        #expect(throws: CartError.notEnoughItems(sku: "A", inCart: 1, requested: 2)) { try CartState.decide(.removeItem(sku: "A", quantity: 2), active) }
        #expect(throws: CartError.itemNotInCart(sku: "Z")) { try CartState.decide(.removeItem(sku: "Z", quantity: 1), active) }
        #expect(throws: CartError.invalidQuantity(0)) { try CartState.decide(.addItem(sku: "A", name: "a", unitPrice: 1, quantity: 0), active) }
        let empty = CartState.active(CartDetails(tenantId: "t", cartId: "c", currency: "EUR"))
        #expect(throws: CartError.emptyCart) { try CartState.decide(.checkOut(orderId: "o"), empty) }
        let checkedOut = CartState.checkedOut(CartDetails(tenantId: "t", cartId: "c", currency: "EUR"), orderId: "o", total: 0)
        #expect(throws: CartError.notActive(status: "checked out")) { try CartState.decide(.addItem(sku: "A", name: "a", unitPrice: 1, quantity: 1), checkedOut) }
        #expect(throws: CartError.notCreated) { try CartState.decide(.checkOut(orderId: "o"), .initial) }
    }

    @Test("events encode under their type names and decode back")
    func eventCoding() throws {
        let event = CartEvent.itemAdded(ItemAddedToCart(sku: "S", name: "n", unitPrice: 25, quantity: 2))
        let message = try ProposedMessage(event, metadata: ["correlationId": .string("x")])
        #expect(message.type == "ItemAddedToCart")
        let decoded = try #require(CartEvent.eventCase(for: message.type)).decode(message.data)
        #expect(decoded == event)
        #expect(CartEvent.eventCase(for: "Nope") == nil)
        #expect(CartEvent.eventTypes == ["CartCreated", "ItemAddedToCart", "ItemRemovedFromCart", "CartCheckedOut", "CartCancelled"])
    }
}
