import Foundation
import Logging
import PostgresNIO
import Prometheus
import ServiceLifecycle
import Synchronization

/// Serves `GET /metrics` (Prometheus text format), `GET /healthz` (liveness: the process runs) and
/// `GET /readyz` (readiness: the service does its work) over plain HTTP/1.1.
///
/// Deliberately small: three read-only endpoints for scrapers and probes, one response per
/// connection, built on the SwiftNIO that postgres-nio already brings. It listens on loopback
/// unless told otherwise, closes a connection that sends no complete request within
/// `idleTimeout`, and closes new connections at once while `maximumConnections` are open: slow or
/// idle clients cannot take the file descriptors the process needs for its database sessions.
public final class MetricsServer: Service, Sendable {
    let port: Int
    let host: String
    let registry: PrometheusCollectorRegistry
    let healthy: @Sendable () -> Bool
    let ready: @Sendable () -> Bool
    let idleTimeout: Duration
    let maximumConnections: Int
    let logger: Logger

    /// - Parameters:
    ///   - port: The TCP port.
    ///   - host: The address to bind: loopback by default; `0.0.0.0` for all interfaces, as a
    ///     container whose port is scraped from outside needs.
    ///   - registry: Where the process's metrics are collected.
    ///   - logger: Where the server logs the address it serves on.
    ///   - idleTimeout: How long a connection may take to send its request.
    ///   - maximumConnections: How many connections may be open at once.
    ///   - healthy: Whether `/healthz` answers 200 (else 503). Keep it independent of the database.
    ///   - ready: Whether `/readyz` answers 200 (else 503), for example ``ReadinessReporting/isReady``.
    public init(
        port: Int, host: String = "127.0.0.1", registry: PrometheusCollectorRegistry, logger: Logger,
        idleTimeout: Duration = .seconds(5), maximumConnections: Int = 32,
        healthy: @escaping @Sendable () -> Bool = { true }, ready: @escaping @Sendable () -> Bool = { true }
    ) {
        self.port = port
        self.host = host
        self.registry = registry
        self.healthy = healthy
        self.ready = ready
        self.idleTimeout = idleTimeout
        self.maximumConnections = maximumConnections
        self.logger = logger
    }

    public func run() async throws {
        let registry = self.registry
        let (healthy, ready) = (self.healthy, self.ready)
        let open = OpenConnections(maximum: maximumConnections)
        let idle = TimeAmount.nanoseconds(Int64(idleTimeout.components.seconds) * 1_000_000_000 + idleTimeout.components.attoseconds / 1_000_000_000)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                guard open.enter() else {
                    return channel.close()
                }
                channel.closeFuture.whenComplete { _ in open.leave() }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers(
                        IdleStateHandler(readTimeout: idle), HTTPResponder(registry: registry, healthy: healthy, ready: ready)
                    )
                }
            }
            .bind(host: host, port: port)
            .get()
        logger.info("serving metrics", metadata: ["eventfleet.address": "\(host):\(port)"])
        try? await gracefulShutdown()
        try await channel.close()
    }
}

/// The server's open connections, against its cap.
private final class OpenConnections: Sendable {
    let maximum: Int
    private let count = Atomic<Int>(0)

    init(maximum: Int) {
        self.maximum = maximum
    }

    /// Counts a new connection in; `false` (and not counted) when the cap is reached.
    func enter() -> Bool {
        if count.wrappingAdd(1, ordering: .relaxed).newValue <= maximum { return true }
        count.wrappingSubtract(1, ordering: .relaxed)
        return false
    }

    func leave() {
        count.wrappingSubtract(1, ordering: .relaxed)
    }
}

/// Reads one request head and answers it; closes the connection when no request came in time.
private final class HTTPResponder: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let registry: PrometheusCollectorRegistry
    let healthy: @Sendable () -> Bool
    let ready: @Sendable () -> Bool
    var request = ""

    init(registry: PrometheusCollectorRegistry, healthy: @escaping @Sendable () -> Bool, ready: @escaping @Sendable () -> Bool) {
        self.registry = registry
        self.healthy = healthy
        self.ready = ready
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        request += buffer.readString(length: buffer.readableBytes) ?? ""
        guard request.contains("\r\n\r\n") || request.utf8.count > 8_192 else { return }
        let line = request.split(separator: "\r\n", maxSplits: 1).first.map(String.init) ?? ""
        let parts = line.split(separator: " ")
        let (status, body, type): (String, [UInt8], String)
        if parts.count >= 2, parts[0] == "GET" {
            switch parts[1].split(separator: "?").first ?? "" {
            case "/metrics":
                (status, body, type) = ("200 OK", registry.emitToBuffer(), "text/plain; version=0.0.4")
            case "/healthz":
                (status, body, type) = healthy() ? ("200 OK", Array("ok\n".utf8), "text/plain") : ("503 Service Unavailable", Array("unhealthy\n".utf8), "text/plain")
            case "/readyz":
                (status, body, type) = ready() ? ("200 OK", Array("ready\n".utf8), "text/plain") : ("503 Service Unavailable", Array("not ready\n".utf8), "text/plain")
            default:
                (status, body, type) = ("404 Not Found", Array("not found\n".utf8), "text/plain")
            }
        } else {
            (status, body, type) = ("405 Method Not Allowed", Array("use GET\n".utf8), "text/plain")
        }
        var response = context.channel.allocator.buffer(capacity: body.count + 128)
        response.writeString("HTTP/1.1 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n")
        response.writeBytes(body)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(response)).whenComplete { _ in channel.close(promise: nil) }
    }
}
