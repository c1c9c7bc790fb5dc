import CartsExample
import EventFleetCore
import EventFleetPostgres
import Synchronization

/// Concurrent command handlers that take carts on a shopping trip
/// (`CartCommand.shoppingTrip(tenant:cartId:number:)`): created, changed, and checked out or
/// abandoned.
struct DemoWriters: Sendable {
    let store: PostgresEventStore
    /// Names the run's carts, so that runs on one database do not touch each other's streams.
    let runId: String
    /// Counts the events appended.
    let appended: EventCounter

    /// Writes carts `numbers` of every tenant with `writers` concurrent handlers.
    ///
    /// - Returns: The (partition, stream) of every cart written.
    func write(tenants: [String], numbers: Range<Int>, writers: Int) async throws -> [(String, String)] {
        let handler = CartCommandHandler.carts()
        let work = tenants.flatMap { tenant in numbers.map { (tenant, $0) } }
        let cursor = EventCounter()
        return try await withThrowingTaskGroup(of: [(String, String)].self) { group in
            for _ in 0..<min(writers, work.count) {
                group.addTask {
                    var done: [(String, String)] = []
                    while true {
                        let index = cursor.take()
                        guard index < work.count else { return done }
                        let (tenant, number) = work[index]
                        let cartId = "\(runId)-\(number)"
                        let stream = cartStreamId(cartId)
                        for command in CartCommand.shoppingTrip(tenant: tenant, cartId: cartId, number: number) {
                            do {
                                let result = try await handler.handle(command, streamId: stream, in: store, partition: tenant)
                                appended.add(result.newEvents.count)
                            } catch is CartError {
                                continue
                            }
                        }
                        done.append((tenant, stream))
                    }
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
    }
}

/// A shared count: events appended so far, or the next cart to write.
final class EventCounter: Sendable {
    private let value = Mutex(0)

    var count: Int { value.withLock { $0 } }

    func add(_ events: Int) {
        value.withLock { $0 += events }
    }

    /// The current value, then counts one up.
    func take() -> Int {
        value.withLock { value in
            defer { value += 1 }
            return value
        }
    }
}
