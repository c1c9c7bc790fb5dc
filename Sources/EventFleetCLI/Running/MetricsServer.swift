import EventFleetCore
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
    /// The channel ``listen()`` bound, until ``run()`` takes it.
    private let listener = Mutex<(any Channel)?>(nil)

    /// - Parameters:
    ///   - port: The TCP port.
    ///   - host: The address to bind: loopback by default; `0.0.0.0` for all interfaces, as a
    ///     container whose port is scraped from outside needs.
    ///   - registry: Where the process's metrics are collected.
    ///   - logger: Where the server logs the address it serves on.
    ///   - idleTimeout: How long a connection may take to send its request.
    ///   - maximumConnections: How many connections may be open at once.
    ///   - healthy: Whether `/healthz` answers 200 (else 503). Keep it independent of the database.
    ///   - ready: Whether `/readyz` answers 200 (else 503), for example `ReadinessReporting.isReady`.
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

    /// Binds the address now rather than when ``run()`` starts, so that a process whose metrics
    /// address is taken stops before its service starts any work; ``run()`` then serves on it.
    ///
    /// - Throws: ``MetricsServerError`` naming the host and port when it cannot listen there.
    package func listen() async throws {
        let channel = try await bind()
        let previous = listener.withLock { listener in
            let previous = listener
            listener = channel
            return previous
        }
        try? await previous?.close()
    }

    /// Serves until graceful shutdown.
    ///
    /// - Throws: ``MetricsServerError`` naming the host and port when it cannot listen there.
    public func run() async throws {
        let channel: any Channel
        if let bound = listener.withLock({ $0.take() }) {
            channel = bound
        } else {
            channel = try await bind()
        }
        logger.info("serving metrics", metadata: ["eventfleet.address": "\(address)"])
        try? await gracefulShutdown()
        try await channel.close()
    }

    /// `host:port`, with an IPv6 host in brackets.
    var address: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    private func bind() async throws -> any Channel {
        let registry = self.registry
        let (healthy, ready) = (self.healthy, self.ready)
        let admission = Admission(maximum: maximumConnections)
        let idle = TimeAmount.milliseconds(idleTimeout.milliseconds)
        do {
            return try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .serverChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(AdmissionHandler(admission: admission))
                    }
                }
                .childChannelInitializer { channel in
                    guard admission.admitted(channel) else {
                        return channel.close()
                    }
                    return channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandlers(
                            IdleStateHandler(readTimeout: idle), HTTPResponder(registry: registry, healthy: healthy, ready: ready)
                        )
                    }
                }
                .bind(host: host, port: port)
                .get()
        } catch let error as IOError where error.errnoCode == EADDRINUSE {
            throw MetricsServerError.addressInUse(address: address)
        } catch let error as IOError {
            throw MetricsServerError.cannotListen(address: address, reason: String(cString: strerror(error.errnoCode)))
        } catch {
            throw MetricsServerError.cannotListen(address: address, reason: "\(error)")
        }
    }
}

/// The metrics server cannot listen on its address, so the process stops before it starts working.
public enum MetricsServerError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Another process (or another server of this one) listens on the port already. `address` is
    /// `host:port`.
    case addressInUse(address: String)
    /// The address cannot be listened on for another `reason`: the host is no address of this
    /// machine, or the port is privileged. `address` is `host:port`.
    case cannotListen(address: String, reason: String)

    public var description: String {
        switch self {
        case .addressInUse(let address):
            "the metrics server cannot listen on \(address): the address is in use (another process holds the port); pick another --metrics-port"
        case .cannotListen(let address, let reason):
            "the metrics server cannot listen on \(address): \(reason); check --metrics-host and --metrics-port"
        }
    }
}

/// The server's open connections against its cap, decided in the order the server accepts them
/// (each connection's own set-up runs later, on an event loop of its own, in no fixed order).
private final class Admission: Sendable {
    let maximum: Int
    private let state = Mutex((open: 0, refused: Set<ObjectIdentifier>()))

    init(maximum: Int) {
        self.maximum = maximum
    }

    /// Counts an accepted connection in until it closes, or refuses it when the cap is reached.
    func decide(_ channel: any Channel) {
        let admit = state.withLock { state in
            guard state.open < maximum else {
                state.refused.insert(ObjectIdentifier(channel))
                return false
            }
            state.open += 1
            return true
        }
        if admit {
            channel.closeFuture.whenComplete { _ in self.state.withLock { $0.open -= 1 } }
        }
    }

    /// Whether `decide` counted the connection in (asked once, when the connection is set up).
    func admitted(_ channel: any Channel) -> Bool {
        state.withLock { $0.refused.remove(ObjectIdentifier(channel)) == nil }
    }
}

/// Sees every accepted connection on the server channel, in order, before it is set up.
private final class AdmissionHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = any Channel
    typealias InboundOut = any Channel

    let admission: Admission

    init(admission: Admission) {
        self.admission = admission
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        admission.decide(unwrapInboundIn(data))
        context.fireChannelRead(data)
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
