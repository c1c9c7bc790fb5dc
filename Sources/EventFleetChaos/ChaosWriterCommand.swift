import ArgumentParser
import CartsExample
import EventFleetCLI
import EventFleetCore
import EventFleetPostgres
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// `eventfleet-chaos writer`: a command handler that shops carts until it is stopped, and logs the
/// message id of every event it saw acknowledged (one line each, written after the append returned).
///
/// Each event gets a message id derived from the writer, the cart, the command and its index, so a
/// command retried after an ambiguous failure (the connection died around the commit) is appended
/// once: the store recognises the ids.
struct ChaosWriterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "writer",
        abstract: "Write carts continuously and log each acknowledged message id (for the soak)."
    )

    @OptionGroup var database: DatabaseOptions
    @Option(help: "Tenants to write for, comma-separated.") var tenants: String
    @Option(name: .customLong("writer-id"), help: "A unique name; part of every cart id and message id.") var writerId: String
    @Option(name: .customLong("ack-log"), help: "The file acknowledged message ids are appended to.") var ackLog: String
    @Option(name: .customLong("pause-ms"), help: "Pause between commands, to set the write rate.") var pauseMilliseconds: Int = 10

    func run() async throws {
        let tenants = self.tenants.split(separator: ",").map(String.init)
        guard !tenants.isEmpty else { throw ValidationError("--tenants names no tenant") }
        let fd = open(ackLog, O_WRONLY | O_APPEND | O_CREAT, 0o644)
        guard fd >= 0 else { throw ValidationError("cannot open --ack-log \(ackLog): errno \(errno)") }
        let (writerId, pause) = (self.writerId, Duration.milliseconds(pauseMilliseconds))
        let logger = Logger(label: "eventfleet.chaos.writer")
        try await database.withStore(logger: logger) { store in
            let handler = CartCommandHandler.carts()
            var cart = 0
            while !Task.isCancelled {
                let tenant = tenants[cart % tenants.count]
                let cartId = "\(writerId)-\(cart)"
                for (index, command) in CartCommand.shoppingTrip(tenant: tenant, cartId: cartId, number: cart).enumerated() {
                    let prefix = "\(cartId)/\(index)"
                    let ids: @Sendable ([CartEvent]) -> [String] = { events in events.indices.map { "\(prefix)/\($0)" } }
                    var backoff = Backoff(RetryPolicy(initialDelay: .milliseconds(100), maxDelay: .seconds(2)))
                    while true {
                        do {
                            let result = try await handler.handle(command, streamId: cartStreamId(cartId), in: store, partition: tenant, messageIds: ids)
                            let lines = ids(result.newEvents).map { $0 + "\n" }.joined()
                            _ = lines.withCString { write(fd, $0, strlen($0)) }
                            break
                        } catch is CartError {
                            // Decided nothing (e.g. a retried command whose first try had committed).
                            break
                        } catch where PostgresErrorMapping.isTransient(error) {
                            logger.warning("append failed; retrying the same command", metadata: ["eventfleet.error": "\(error)"])
                            try await Task.sleep(for: backoff.next())
                        }
                    }
                    try await Task.sleep(for: pause)
                }
                cart += 1
            }
        }
    }
}
