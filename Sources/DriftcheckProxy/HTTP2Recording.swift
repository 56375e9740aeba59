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
        let idleTimeout = services.configuration.idleTimeout
        let idle = IdleHTTP2Connection()
        let handler = NIOHTTP2Handler(
            mode: .server, eventLoop: sync.eventLoop, connectionConfiguration: connectionConfiguration(),
            streamDelegate: idle
        ) { stream in
            stream.eventLoop.makeCompletedFuture {
                try stream.pipeline.syncOperations.addHandlers([
                    // Silence both ways: a call whose server streams answers lives on while its
                    // client says nothing; a call where neither side has spoken ends.
                    IdleStateHandler(allTimeout: idleTimeout),
                    TrailersOnlyResponses(), HTTP2FramePayloadToHTTP1ServerCodec(),
                    HTTP2StreamServerHandler(route: route, services: streamServices),
                ])
            }
        }
        try sync.addHandlers([FlushConsolidation(), CloseAfterGoAway(), handler, idle], position: position)
    }
}

/// Ends an HTTP/2 connection that has had no open stream for the idle timeout, with a GOAWAY
/// (NO_ERROR) first, as an HTTP/1.1 connection without a request in flight is closed. The
/// connection's `IdleStateHandler` (first in its pipeline, counting what the client sends)
/// fires; streams are counted here, on the connection's loop, as NIOHTTP2 reports them.
// Unchecked: NIOHTTP2 requires a Sendable delegate; the handler is only touched on its loop.
final class IdleHTTP2Connection: ChannelInboundHandler, NIOHTTP2StreamDelegate, @unchecked Sendable {
    typealias InboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    private var openStreams = 0
    private var lastStream = HTTP2StreamID(0)

    func streamCreated(_ id: HTTP2StreamID, channel: Channel) {
        openStreams += 1
        lastStream = max(lastStream, id)
    }

    func streamClosed(_ id: HTTP2StreamID, channel: Channel) { openStreams -= 1 }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is IdleStateHandler.IdleStateEvent, openStreams == 0 else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        let goAway = HTTP2Frame(
            streamID: .rootStream, payload: .goAway(lastStreamID: lastStream, errorCode: .noError, opaqueData: nil))
        context.writeAndFlush(wrapOutboundOut(goAway)).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }
}

/// Closes the connection once a GOAWAY with an error code has gone out: after a connection error
/// an endpoint sends GOAWAY and then closes the TCP connection (RFC 9113 §5.4.1). NIOHTTP2Handler
/// sends the GOAWAY but reports connection and stream errors alike through `errorCaught`, so this
/// handler, under it, reads the frames it writes instead. A GOAWAY with NO_ERROR (a graceful
/// shutdown) leaves the connection to finish its streams.
final class CloseAfterGoAway: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    /// The bytes a client sends before its first frame ("PRI * HTTP/2.0…", RFC 9113 §3.4).
    static let clientPreface = 24

    private var frames: FrameReader

    /// `prefix`: bytes written before the first frame (a client's connection preface).
    init(passing prefix: Int = 0) { frames = FrameReader(passing: prefix) }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let sawErrorGoAway: Bool
        switch unwrapOutboundIn(data) {
        case .byteBuffer(let buffer): sawErrorGoAway = frames.read(buffer.readableBytesView)
        case .fileRegion(let region):
            frames.skip(region.readableBytes)
            sawErrorGoAway = false
        }
        guard sawErrorGoAway else {
            context.write(data, promise: promise)
            return
        }
        // Closed once the GOAWAY has reached the socket (or could not), so the peer reads why.
        let written = promise ?? context.eventLoop.makePromise()
        context.write(data, promise: written)
        written.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }
}

/// Follows the frames of an HTTP/2 byte stream, written in pieces of any size, far enough to see
/// the error code of each GOAWAY frame.
struct FrameReader {
    /// The frame header being read, and for a GOAWAY the first 8 bytes of its payload.
    private var head: [UInt8] = []
    /// Bytes of the current frame's payload (or of what comes before the first frame) still to pass.
    private var remaining: Int

    init(passing prefix: Int = 0) { remaining = prefix }

    private static let headerSize = 9
    private static let goAway: UInt8 = 0x7

    /// Reads the next bytes of the stream; true when they complete a GOAWAY whose error code is
    /// not NO_ERROR.
    mutating func read(_ bytes: ByteBufferView) -> Bool {
        var found = false
        var rest = bytes[...]
        while !rest.isEmpty {
            if remaining > 0 {
                let count = min(remaining, rest.count)
                rest = rest.dropFirst(count)
                remaining -= count
                continue
            }
            let wanted = isGoAwayHeader ? Self.headerSize + 8 : Self.headerSize
            let count = min(wanted - head.count, rest.count)
            head.append(contentsOf: rest.prefix(count))
            rest = rest.dropFirst(count)
            guard head.count == wanted else { continue }
            let length = Int(head[0]) << 16 | Int(head[1]) << 8 | Int(head[2])
            if wanted == Self.headerSize && isGoAwayHeader && length >= 8 { continue }
            if wanted > Self.headerSize {
                let code = head[13...16].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
                if code != 0 { found = true }
                remaining = length - 8
            } else {
                remaining = length
            }
            head.removeAll(keepingCapacity: true)
        }
        return found
    }

    /// Passes `count` bytes whose content does not matter here.
    mutating func skip(_ count: Int) {
        var left = count
        if remaining > 0 {
            let passed = min(remaining, left)
            remaining -= passed
            left -= passed
        }
        // Bytes of a header are never sent as a file region; should they be, the stream is lost.
        if left > 0 { head.removeAll() }
    }

    private var isGoAwayHeader: Bool { head.count >= Self.headerSize && head[3] == Self.goAway }
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
                return UpstreamConnection(channel: stream, handler: handler, target: target)
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
                        try channel.pipeline.syncOperations.addHandlers([
                            FlushConsolidation(), CloseAfterGoAway(passing: CloseAfterGoAway.clientPreface),
                        ])
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
