import Foundation
import Logging
import PostgresNIO
import Prometheus
import ServiceLifecycle

/// Serves `GET /metrics` (Prometheus text format) and `GET /healthz` over plain HTTP/1.1.
///
/// Deliberately small: two read-only endpoints for scrapers and probes, one response per
/// connection, built on the SwiftNIO that postgres-nio already brings.
public final class MetricsServer: Service, Sendable {
    let port: Int
    let host: String
    let registry: PrometheusCollectorRegistry
    let healthy: @Sendable () -> Bool
    let logger: Logger

    /// - Parameters:
    ///   - port: The TCP port.
    ///   - host: The address to bind (all interfaces by default, as containers need).
    ///   - registry: Where the process's metrics are collected.
    ///   - logger: Where the server logs the address it serves on.
    ///   - healthy: Whether `/healthz` answers 200 (else 503).
    public init(port: Int, host: String = "0.0.0.0", registry: PrometheusCollectorRegistry, logger: Logger, healthy: @escaping @Sendable () -> Bool = { true }) {
        self.port = port
        self.host = host
        self.registry = registry
        self.healthy = healthy
        self.logger = logger
    }

    public func run() async throws {
        let registry = self.registry
        let healthy = self.healthy
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.addHandler(HTTPResponder(registry: registry, healthy: healthy))
            }
            .bind(host: host, port: port)
            .get()
        logger.info("serving metrics", metadata: ["eventfleet.address": "\(host):\(port)"])
        try? await gracefulShutdown()
        try await channel.close()
    }
}

/// Reads one request head and answers it.
private final class HTTPResponder: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let registry: PrometheusCollectorRegistry
    let healthy: @Sendable () -> Bool
    var request = ""

    init(registry: PrometheusCollectorRegistry, healthy: @escaping @Sendable () -> Bool) {
        self.registry = registry
        self.healthy = healthy
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
