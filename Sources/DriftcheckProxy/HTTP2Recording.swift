import DriftcheckCore
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import NIOSSL

/// HTTP/2 on a reverse listener: a client that opens with the prior-knowledge preface (gRPC
/// clients in and out of clusters) gets an HTTP/2 server whose every stream is one exchange,
/// recorded by the same handler and state machine as an HTTP/1.1 request; each stream goes on
/// as a stream of one HTTP/2 connection per upstream origin and event loop.
enum HTTP2Recording {
    /// Limits a hostile client meets: header lists, concurrent streams, frame glitches.
    static func connectionConfiguration() -> NIOHTTP2Handler.ConnectionConfiguration {
        var configuration = NIOHTTP2Handler.ConnectionConfiguration()
        configuration.initialSettings = [
            // Each open stream may hold one exchange beyond the store's soft bound (as each
            // HTTP/1.1 connection may): nginx allows 128, grpc-go 100.
            HTTP2Setting(parameter: .maxConcurrentStreams, value: 100),
            HTTP2Setting(parameter: .maxHeaderListSize, value: 64 << 10),
            HTTP2Setting(parameter: .initialWindowSize, value: 1 << 20),
        ]
        return configuration
    }

    /// Makes the connection an HTTP/2 server from `position` on.
    static func serve(
        _ sync: ChannelPipeline.SynchronousOperations, position: ChannelPipeline.SynchronousOperations.Position,
        route: ListenerRoute,
        services: ProxyServices
    ) throws {
        let streamServices = services.http2Streams
        let handler = NIOHTTP2Handler(
            mode: .server, eventLoop: sync.eventLoop, connectionConfiguration: connectionConfiguration()
        ) { stream in
            stream.eventLoop.makeCompletedFuture {
                try stream.pipeline.syncOperations.addHandlers([
                    TrailersOnlyResponses(), HTTP2FramePayloadToHTTP1ServerCodec(),
                    ProxyServerHandler(route: route, services: streamServices, encoder: nil, decoder: nil),
                ])
            }
        }
        try sync.addHandlers([FlushConsolidation(), handler], position: position)
    }
}

/// Sits under an HTTP/2 connection's handler and turns the flushes of one event-loop pass into
/// one: the answers to fifty streams read from an upstream in one read are fifty stream flushes
/// on the client's connection, each a `writev` of its own, where one would carry them all (as
/// Netty's FlushConsolidationHandler does). The flush runs once the loop has handled this pass's
/// I/O, before it waits for more.
final class FlushConsolidation: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = NIOAny

    private var scheduled = false

    func flush(context: ChannelHandlerContext) {
        guard !scheduled else { return }
        scheduled = true
        context.eventLoop.assumeIsolated().execute {
            guard self.scheduled else { return }
            self.scheduled = false
            context.flush()
        }
    }

    // What was written goes out before the connection closes (a GOAWAY and its close come
    // in the same pass).
    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if scheduled {
            scheduled = false
            context.flush()
        }
        context.close(mode: mode, promise: promise)
    }
}

/// Keeps gRPC's Trailers-Only answers whole. An upstream that fails a call sends one HEADERS
/// frame with `grpc-status` and END_STREAM; through the HTTP/1-shaped exchange it would leave as
/// HEADERS and then an empty DATA frame ending the stream, which gRPC clients read as a
/// malformed answer. A HEADERS frame that carries `grpc-status` is held, and sent with
/// END_STREAM when nothing but the end follows it.
final class TrailersOnlyResponses: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    private var held: (HTTP2Frame.FramePayload.Headers, EventLoopPromise<Void>?)?

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let payload = unwrapOutboundIn(data)
        if case .headers(let headers) = payload, !headers.endStream, held == nil,
            headers.headers.first(name: "grpc-status") != nil
        {
            held = (headers, promise)
            return
        }
        if let (headers, heldPromise) = held {
            held = nil
            if case .data(let data) = payload, data.endStream, case .byteBuffer(let buffer) = data.data,
                buffer.readableBytes == 0
            {
                var whole = headers
                whole.endStream = true
                heldPromise?.futureResult.cascade(to: promise)
                context.write(wrapOutboundOut(.headers(whole)), promise: heldPromise ?? promise)
                return
            }
            context.write(wrapOutboundOut(.headers(headers)), promise: heldPromise)
        }
        context.write(data, promise: promise)
    }
}

/// HTTP/2 connections to upstream origins, one per origin on this event loop; each exchange is
/// a new stream on it. `h2c://` and `http://` origins are spoken to with prior knowledge;
/// `https://` ones are offered h2 and HTTP/1.1 by ALPN, and an origin that chooses HTTP/1.1 is
/// left to `fallback` (the loop's HTTP/1.1 pool) from then on.
// Unchecked for the same reason as `UpstreamPool`: every access is on `loop`.
final class HTTP2UpstreamPool: UpstreamSource, @unchecked Sendable {
    let loop: EventLoop
    let configuration: ProxyConfiguration
    let tlsContext: NIOSSLContext?
    let fallback: UpstreamSource
    private var connections: [UpstreamTarget: EventLoopFuture<NIOHTTP2Handler.StreamMultiplexer>] = [:]
    /// The open connection behind each entry of `connections`.
    private var channels: [UpstreamTarget: Channel] = [:]
    /// `https://` origins that answered h2 with HTTP/1.1.
    private var http1Origins: Set<UpstreamTarget> = []

    /// The connection's ALPN said HTTP/1.1.
    private struct ChoseHTTP1: Error {}

    init(loop: EventLoop, configuration: ProxyConfiguration, tlsContext: NIOSSLContext?, fallback: UpstreamSource) {
        self.loop = loop
        self.configuration = configuration
        self.tlsContext = tlsContext
        self.fallback = fallback
    }

    // Streams are not reused: an exchange always opens a new one.
    func takeIdle(_ target: UpstreamTarget) -> UpstreamConnection? {
        http1Origins.contains(target) ? fallback.takeIdle(target) : nil
    }

    func acquire(_ target: UpstreamTarget) -> EventLoopFuture<UpstreamConnection> {
        loop.preconditionInEventLoop()
        if http1Origins.contains(target) { return fallback.acquire(target) }
        let connection = connections[target] ?? connect(target)
        connections[target] = connection
        return connection.flatMap { multiplexer in
            multiplexer.createStreamChannel { stream in
                stream.eventLoop.makeCompletedFuture {
                    try stream.pipeline.syncOperations.addHandlers([
                        HTTP2FramePayloadToHTTP1ClientCodec(httpProtocol: target.isTLS ? .https : .http),
                        UpstreamHandler(),
                    ])
                }
            }.flatMapThrowing { stream in
                let handler = try stream.pipeline.syncOperations.handler(type: UpstreamHandler.self)
                return UpstreamConnection(channel: stream, handler: handler, target: target, isStream: true)
            }
        }.flatMapError { error in
            // A connection that cannot open streams (gone, or after GOAWAY) is not asked again.
            self.connections[target] = nil
            if error is ChoseHTTP1 {
                self.http1Origins.insert(target)
                return self.fallback.acquire(target)
            }
            return self.loop.makeFailedFuture(error)
        }
    }

    // A finished stream has closed itself; closing it again could only reset it (RST_STREAM
    // CANCEL), and servers count resets against a connection (rapid-reset protection).
    func release(_ connection: UpstreamConnection) {
        if !connection.isStream { fallback.release(connection) }
    }

    func closeAll() {
        for channel in channels.values { channel.close(promise: nil) }
        channels.removeAll()
        connections.removeAll()
    }

    private func connect(_ target: UpstreamTarget) -> EventLoopFuture<NIOHTTP2Handler.StreamMultiplexer> {
        if target.isTLS && tlsContext == nil { return loop.makeFailedFuture(ProxyError.tlsUnavailable) }
        let tls = target.isTLS ? tlsContext : nil
        let promise = loop.makePromise(of: NIOHTTP2Handler.StreamMultiplexer.self)
        let host = target.host
        let destination = target.authority
        ClientBootstrap(group: loop)
            .connectTimeout(configuration.connectTimeout)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard let tls else { return }
                    let sync = channel.pipeline.syncOperations
                    let serverName = ServiceName.isIPLiteral(host) ? nil : host
                    try sync.addHandler(NIOSSLClientHandler(context: tls, serverHostname: serverName))
                    try sync.addHandler(
                        UpstreamHandshake(promise: channel.eventLoop.makePromise(), destination: destination))
                }
            }
            .connect(host: configuration.address(for: target.host), port: target.port)
            .flatMap { channel -> EventLoopFuture<Channel> in
                guard let handshake = try? channel.pipeline.syncOperations.handler(type: UpstreamHandshake.self)
                else { return channel.eventLoop.makeSucceededFuture(channel) }
                return handshake.promise.futureResult.flatMapThrowing { negotiated in
                    guard negotiated == "h2" else {
                        channel.close(promise: nil)
                        throw ChoseHTTP1()
                    }
                    return channel
                }
            }
            .whenComplete { result in
                switch result {
                case .failure(let error):
                    promise.fail(error)
                case .success(let channel):
                    do {
                        try channel.pipeline.syncOperations.addHandler(FlushConsolidation())
                        let multiplexer = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                            mode: .client, connectionConfiguration: HTTP2Recording.connectionConfiguration(),
                            streamConfiguration: NIOHTTP2Handler.StreamConfiguration()
                        ) { pushed in
                            // Upstreams may not push: such a stream is closed at once.
                            pushed.close()
                        }
                        self.channels[target] = channel
                        channel.closeFuture.whenComplete { _ in
                            self.loop.execute { self.forget(target, channel) }
                        }
                        promise.succeed(multiplexer)
                    } catch {
                        channel.close(promise: nil)
                        promise.fail(error)
                    }
                }
            }
        return promise.futureResult
    }

    /// A closed connection leaves the pool, unless a newer one has taken its place.
    private func forget(_ target: UpstreamTarget, _ channel: Channel) {
        guard channels[target] === channel else { return }
        channels[target] = nil
        connections[target] = nil
    }
}
