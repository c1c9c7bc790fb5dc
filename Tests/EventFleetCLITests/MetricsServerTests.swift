@testable import EventFleetCLI
import Foundation
import PostgresNIO
import Prometheus
import Testing

/// The metrics endpoint's own protection: loopback unless told otherwise, idle connections closed,
/// connections beyond the cap closed at once, so slow clients cannot take the process's descriptors.
@Suite("Metrics server", .timeLimit(.minutes(1)))
struct MetricsServerTests {
    typealias Connection = NIOAsyncChannel<ByteBuffer, ByteBuffer>

    @Test("listens on loopback by default, in the library and on the command line")
    func loopbackByDefault() async throws {
        #expect(try ServiceOptions.parse([]).metricsHost == "127.0.0.1")
        #expect(try ServiceOptions.parse(["--metrics-host", "0.0.0.0"]).metricsHost == "0.0.0.0")
        try await Self.serving { port in
            let listening = try Self.listeningAddresses(port: port)
            #expect(listening == ["0100007F"], "the listening sockets of port \(port): \(listening)")
        }
    }

    @Test("closes a connection that sends no request within the idle timeout")
    func closesIdleConnections() async throws {
        try await Self.serving(idleTimeout: .milliseconds(200)) { port in
            let received = try await Self.connection(to: port) { inbound, _ in try await Self.readToEnd(inbound) }
            #expect(received.isEmpty, "the server answered nothing: \(received)")
        }
    }

    @Test("closes connections beyond its cap at once and keeps serving the others")
    func capsConnections() async throws {
        // An idle timeout far beyond the suite's time limit: only the cap can close the third.
        try await Self.serving(idleTimeout: .seconds(600), maximumConnections: 2) { port in
            try await Self.connection(to: port) { firstIn, firstOut in
                try await Self.connection(to: port) { secondIn, secondOut in
                    // Both are counted before the third: the server accepts connections in order.
                    let third = try await Self.connection(to: port) { inbound, _ in try await Self.readToEnd(inbound) }
                    #expect(third.isEmpty)
                    for (inbound, outbound) in [(firstIn, firstOut), (secondIn, secondOut)] {
                        try await outbound.write(ByteBuffer(string: "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
                        let answer = try await Self.readToEnd(inbound)
                        #expect(answer.hasPrefix("HTTP/1.1 200 OK"), "\(answer)")
                    }
                }
            }
        }
    }

    @Test("/readyz answers what the service reports, /healthz that the process runs")
    func readinessBesideLiveness() async throws {
        try await Self.serving(ready: { false }) { port in
            let ready = try await Self.get("/readyz", port: port)
            #expect(ready.hasPrefix("HTTP/1.1 503"), "\(ready)")
            let live = try await Self.get("/healthz", port: port)
            #expect(live.hasPrefix("HTTP/1.1 200 OK"), "\(live)")
        }
        try await Self.serving(ready: { true }) { port in
            let ready = try await Self.get("/readyz", port: port)
            #expect(ready.hasPrefix("HTTP/1.1 200 OK"), "\(ready)")
        }
    }

    @Test("a port another socket listens on is a typed error naming the address, thrown by listen() before run() serves")
    func portInUse() async throws {
        let (fd, port) = try LaunchAndMetricsTests.listeningSocket()
        defer { close(fd) }
        let server = MetricsServer(port: port, registry: PrometheusCollectorRegistry(), logger: .init(label: "test"))
        let error = await #expect(throws: MetricsServerError.self) { try await server.listen() }
        #expect(error == .addressInUse(address: "127.0.0.1:\(port)"))
        #expect("\(try #require(error))".contains("127.0.0.1:\(port): the address is in use"))
        await #expect(throws: MetricsServerError.addressInUse(address: "127.0.0.1:\(port)")) { try await server.run() }
    }

    static func get(_ path: String, port: Int) async throws -> String {
        try await connection(to: port) { inbound, outbound in
            try await outbound.write(ByteBuffer(string: "GET \(path) HTTP/1.1\r\nHost: x\r\n\r\n"))
            return try await readToEnd(inbound)
        }
    }

    /// Runs a server on a free port for `body`, then stops it.
    static func serving(
        idleTimeout: Duration = .seconds(5), maximumConnections: Int = 32, ready: @escaping @Sendable () -> Bool = { true },
        _ body: (Int) async throws -> Void
    ) async throws {
        let port = try LaunchAndMetricsTests.freePort()
        let server = MetricsServer(
            port: port, registry: PrometheusCollectorRegistry(), logger: .init(label: "test"),
            idleTimeout: idleTimeout, maximumConnections: maximumConnections, ready: ready
        )
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run() }
            defer { group.cancelAll() }
            try await waitForListener(port: port)
            try await body(port)
        }
    }

    /// The local addresses (hex, as `/proc/net/tcp` writes them) of the sockets listening on `port`.
    static func listeningAddresses(port: Int) throws -> [String] {
        let suffix = ":" + String(format: "%04X", port)
        return try String(contentsOfFile: "/proc/net/tcp", encoding: .utf8).split(separator: "\n").dropFirst().compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count > 3, fields[1].hasSuffix(suffix), fields[3] == "0A" else { return nil }
            return String(fields[1].dropLast(suffix.count))
        }
    }

    static func waitForListener(port: Int) async throws {
        let deadline = ContinuousClock.now + .seconds(20)
        while try listeningAddresses(port: port).isEmpty {
            guard ContinuousClock.now < deadline else { throw POSIXError(.ETIMEDOUT) }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Connects to `port` and runs `body` with the connection, which is closed afterwards.
    static func connection<T: Sendable>(
        to port: Int,
        _ body: (NIOAsyncChannelInboundStream<ByteBuffer>, NIOAsyncChannelOutboundWriter<ByteBuffer>) async throws -> T
    ) async throws -> T {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try Connection(wrappingChannelSynchronously: channel) }
            }
        return try await channel.executeThenClose { inbound, outbound in try await body(inbound, outbound) }
    }

    /// Everything the server sends until it closes the connection (the suite's time limit ends a
    /// wait for a server that never does).
    static func readToEnd(_ inbound: NIOAsyncChannelInboundStream<ByteBuffer>) async throws -> String {
        var text = ""
        for try await var buffer in inbound { text += buffer.readString(length: buffer.readableBytes) ?? "" }
        return text
    }
}
