import DriftcheckCore
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// Where one request goes.
struct UpstreamTarget: Hashable {
    var scheme: String
    var host: String
    var port: Int
    var isTLS: Bool { scheme == "https" }

    /// The Host header value for this origin.
    var authority: String {
        // Byte search: String.contains(String) goes through Foundation and showed in profiles.
        let hostPart = host.utf8.contains(UInt8(ascii: ":")) ? "[\(host)]" : host
        let defaultPort = isTLS ? 443 : 80
        return port == defaultPort ? hostPart : "\(hostPart):\(port)"
    }
}

/// Receives what an upstream connection produces for the exchange currently using it.
protocol UpstreamDelegate: AnyObject {
    func upstreamRead(_ part: HTTPClientResponsePart)
    func upstreamReadComplete()
    func upstreamWritabilityChanged(_ isWritable: Bool)
    func upstreamFailed(_ error: Error?)
}

/// The last handler of an upstream channel: routes response parts to the exchange using it.
final class UpstreamHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    weak var delegate: UpstreamDelegate?
    var onClose: (() -> Void)?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        delegate?.upstreamRead(unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        delegate?.upstreamReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        delegate?.upstreamWritabilityChanged(context.channel.isWritable)
    }

    func channelInactive(context: ChannelHandlerContext) {
        let delegate = self.delegate
        self.delegate = nil
        delegate?.upstreamFailed(nil)
        onClose?()
        onClose = nil
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        let delegate = self.delegate
        self.delegate = nil
        delegate?.upstreamFailed(error)
        context.close(promise: nil)
    }
}

/// An open HTTP/1.1 connection to an upstream origin.
// Unchecked for the same reason as `UpstreamPool`: it lives on its channel's loop only.
final class UpstreamConnection: @unchecked Sendable {
    let channel: Channel
    let handler: UpstreamHandler
    let target: UpstreamTarget

    /// An HTTP/2 stream rather than a connection: it ends by itself once both sides have.
    let isStream: Bool

    init(channel: Channel, handler: UpstreamHandler, target: UpstreamTarget, isStream: Bool = false) {
        self.channel = channel
        self.handler = handler
        self.target = target
        self.isStream = isStream
    }
}

/// Keep-alive upstream connections of one event loop. Used only on that loop, so the server
/// and upstream channels of an exchange share a thread and never hand data across threads.
// Unchecked because NIO hands it to closures typed @Sendable; every access is on `loop`.
final class UpstreamPool: UpstreamSource, @unchecked Sendable {
    let loop: EventLoop
    let configuration: ProxyConfiguration
    let tlsContext: NIOSSLContext?
    private var idle: [UpstreamTarget: [UpstreamConnection]] = [:]

    init(loop: EventLoop, configuration: ProxyConfiguration, tlsContext: NIOSSLContext?) {
        self.loop = loop
        self.configuration = configuration
        self.tlsContext = tlsContext
    }

    /// An idle keep-alive connection to `target`, if one is open.
    func takeIdle(_ target: UpstreamTarget) -> UpstreamConnection? {
        loop.preconditionInEventLoop()
        // Popping in place: copying the list out of the dictionary would copy it every time.
        while let connection = idle[target]?.popLast() {
            if connection.channel.isActive { return connection }
        }
        return nil
    }

    /// An idle connection to `target`, or a new one.
    func acquire(_ target: UpstreamTarget) -> EventLoopFuture<UpstreamConnection> {
        if let connection = takeIdle(target) { return loop.makeSucceededFuture(connection) }
        return connect(target)
    }

    /// Returns a connection whose exchange ended cleanly.
    func release(_ connection: UpstreamConnection) {
        loop.preconditionInEventLoop()
        guard connection.channel.isActive, idle[connection.target, default: []].count < configuration.maxIdlePerOrigin
        else {
            connection.channel.close(promise: nil)
            return
        }
        connection.handler.delegate = nil
        idle[connection.target, default: []].append(connection)
        connection.handler.onClose = { [weak self, weak connection] in
            guard let self, let connection else { return }
            self.idle[connection.target]?.removeAll { $0 === connection }
        }
    }

    func closeAll() {
        for connection in idle.values.joined() { connection.channel.close(promise: nil) }
        idle.removeAll()
    }

    private func connect(_ target: UpstreamTarget) -> EventLoopFuture<UpstreamConnection> {
        let tls: NIOSSLContext?
        if target.isTLS {
            guard let context = tlsContext else {
                return loop.makeFailedFuture(ProxyError.tlsUnavailable)
            }
            tls = context
        } else {
            tls = nil
        }
        let host = target.host
        let destination = "\(target.authority)"
        return ClientBootstrap(group: loop)
            .connectTimeout(configuration.connectTimeout)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                do {
                    let sync = channel.pipeline.syncOperations
                    if let tls {
                        let serverName = ServiceName.isIPLiteral(host) ? nil : host
                        try sync.addHandler(NIOSSLClientHandler(context: tls, serverHostname: serverName))
                        try sync.addHandler(
                            UpstreamHandshake(promise: channel.eventLoop.makePromise(), destination: destination))
                    }
                    // Every head sent upstream was parsed and validated on the way in (HTTP/1.1 by
                    // llhttp, HTTP/2 by nio-http2) or built by the proxy: validating it again cost
                    // 3.5 % of the event loops' time for small GETs (perf).
                    try sync.addHTTPClientHandlers(enableOutboundHeaderValidation: false)
                    try sync.addHandler(UpstreamHandler())
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
            .connect(host: configuration.address(for: host), port: target.port)
            .flatMap { channel in
                let sync = channel.pipeline.syncOperations
                guard let handler = try? sync.handler(type: UpstreamHandler.self) else {
                    channel.close(promise: nil)
                    return channel.eventLoop.makeFailedFuture(ProxyError.upstreamClosed)
                }
                let connection = UpstreamConnection(channel: channel, handler: handler, target: target)
                guard let handshake = try? sync.handler(type: UpstreamHandshake.self) else {
                    return channel.eventLoop.makeSucceededFuture(connection)
                }
                return handshake.promise.futureResult.map { _ in connection }
            }
    }
}

enum ProxyError: Error, CustomStringConvertible {
    case tlsUnavailable
    case upstreamTimeout
    case upstreamClosed

    var description: String {
        switch self {
        case .tlsUnavailable: return "TLS is not available for https:// upstreams"
        case .upstreamTimeout: return "upstream timed out"
        case .upstreamClosed: return "upstream closed the connection"
        }
    }
}
