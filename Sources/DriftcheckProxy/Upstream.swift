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
    func upstreamRead(_ part: ResponsePart)
    func upstreamReadComplete()
    func upstreamWritabilityChanged(_ isWritable: Bool)
    func upstreamFailed(_ error: Error?)
}

/// What the last handler of an upstream channel does whatever its wire: routes what the
/// connection produces to the exchange using it.
class UpstreamReceiver {
    weak var delegate: UpstreamDelegate?
    var onClose: (() -> Void)?

    func channelReadComplete(context: ChannelHandlerContext) {
        delegate?.upstreamReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        delegate?.upstreamWritabilityChanged(context.channel.isWritable)
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        failed(error)
        context.close(promise: nil)
    }

    func closed() {
        let delegate = self.delegate
        self.delegate = nil
        delegate?.upstreamFailed(nil)
        onClose?()
        onClose = nil
    }

    func failed(_ error: Error) {
        let delegate = self.delegate
        self.delegate = nil
        delegate?.upstreamFailed(error)
    }
}

/// The last handler of an HTTP/1.1 upstream connection: frames responses on the bytes as they
/// come, so that they go to an HTTP/1.1 client without being decoded and encoded again.
final class HTTP1UpstreamHandler: UpstreamReceiver, ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private var framer = HTTP1Framer(role: .response)
    private var inbound: ByteBuffer?

    /// The request being answered is HEAD: its response has no body whatever its head says.
    func answering(method: String) {
        framer.answeringHead = method == "HEAD"
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        guard delegate != nil else {
            // Bytes on a connection no exchange is using: nothing can frame them any more.
            context.close(promise: nil)
            return
        }
        if inbound == nil { inbound = buffer } else { inbound!.writeBuffer(&buffer) }
        do {
            while let delegate, let part = try framer.next(&inbound!) {
                delegate.upstreamRead(ResponsePart(part, ResponseHead.wire))
            }
        } catch {
            failed(error)
            context.close(promise: nil)
        }
        if inbound?.readableBytes == 0 { inbound = nil }
        // Bytes after the end of the response no request asked for: the connection cannot be
        // used again.
        if delegate == nil && inbound != nil { context.close(promise: nil) }
    }

    override func channelInactive(context: ChannelHandlerContext) {
        // A response delimited by the connection's close ends here.
        if let delegate, let part = try? framer.inputClosed(inbound ?? ByteBuffer()) {
            delegate.upstreamRead(ResponsePart(part, ResponseHead.wire))
        }
        closed()
    }
}

/// The last handler of an HTTP/2 upstream stream: its parts, in NIO's HTTP/1 view, to the exchange.
final class UpstreamHandler: UpstreamReceiver, ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): delegate?.upstreamRead(.head(.parsed(head)))
        case .body(let buffer): delegate?.upstreamRead(.body(buffer))
        case .end(let trailers): delegate?.upstreamRead(.end(nil, trailers ?? [:]))
        }
    }
}

/// An open connection to an upstream origin: HTTP/1.1 bytes, or an HTTP/2 stream.
// Unchecked for the same reason as `UpstreamPool`: it lives on its channel's loop only.
final class UpstreamConnection: @unchecked Sendable {
    let channel: Channel
    let handler: UpstreamReceiver
    let target: UpstreamTarget
    /// How the body of the request being sent is written, on an HTTP/1.1 connection.
    private var writing = HTTP1BodyWriting.asReceived

    /// An HTTP/2 stream rather than a connection: it ends by itself once both sides have.
    var isStream: Bool { !(handler is HTTP1UpstreamHandler) }

    init(channel: Channel, handler: UpstreamReceiver, target: UpstreamTarget) {
        self.channel = channel
        self.handler = handler
        self.target = target
    }

    /// Writes a part of `exchange`'s request (no flush).
    func write(_ part: RequestPart, of routed: RequestRouting.Routed) {
        guard let http1 = handler as? HTTP1UpstreamHandler else {
            switch part {
            case .head: channel.write(HTTPClientRequestPart.head(RequestRouting.upstreamHead(routed)), promise: nil)
            case .body(let buffer): channel.write(HTTPClientRequestPart.body(.byteBuffer(buffer)), promise: nil)
            case .framing: break
            case .end(_, let trailers):
                channel.write(HTTPClientRequestPart.end(trailers.isEmpty ? nil : trailers), promise: nil)
            }
            return
        }
        switch part {
        case .head(let head):
            http1.answering(method: head.method)
            guard case .wire(let wire) = head.form else {
                writeHTTP2Head(routed)
                return
            }
            writing = .asReceived
            channel.write(RequestRouting.upstreamBytes(wire, routed), promise: nil)
        default:
            writing.bytes(part) { channel.write($0, promise: nil) }
        }
    }

    /// A request that came over HTTP/2, to an HTTP/1.1 upstream: the length it gives, or chunks
    /// when a body may come (NIO's HTTP/1 encoder made the same choice).
    private func writeHTTP2Head(_ routed: RequestRouting.Routed) {
        var head = RequestRouting.upstreamHead(routed)
        let bodiless: [HTTPMethod] = [.GET, .HEAD, .DELETE, .OPTIONS, .TRACE]
        let chunked =
            !head.headers.contains(name: "content-length")
            && (head.headers.contains(name: "transfer-encoding") || !bodiless.contains(head.method))
        head.headers.remove(name: "transfer-encoding")
        if chunked { head.headers.add(name: "transfer-encoding", value: "chunked") }
        writing = chunked ? .chunked : .contentOnly
        channel.write(
            HTTP1Encoding.bytes(startLine: "\(head.method.rawValue) \(head.uri) HTTP/1.1", head.headers), promise: nil)
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
                    try sync.addHandler(HTTP1UpstreamHandler())
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
            .connect(host: configuration.address(for: host), port: target.port)
            .flatMap { channel in
                let sync = channel.pipeline.syncOperations
                guard let handler = try? sync.handler(type: HTTP1UpstreamHandler.self) else {
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
