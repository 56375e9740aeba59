import NIOCore
import NIOHTTP1
import NIOPosix

/// Writes what it reads to its partner channel, pausing its reads while the partner cannot take more.
final class RelayHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    var partner: RelayHandler?
    var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        partner?.context?.write(data, promise: nil)
    }
    func channelReadComplete(context: ChannelHandlerContext) { partner?.context?.flush() }
    func channelInactive(context: ChannelHandlerContext) { partner?.context?.close(promise: nil) }
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        partner?.context?.channel.setOption(ChannelOptions.autoRead, value: context.channel.isWritable)
            .whenComplete { _ in }
    }
    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}

/// Idle upstream connections of one event loop.
// Unchecked: each pool is touched only on its own loop.
final class FloorPool: @unchecked Sendable {
    var idle: [Channel] = []
}

/// Where the HTTP floor forwards to, and its pools (one per loop, made before serving).
struct FloorUpstream: Sendable {
    var address: SocketAddress
    var host: String
    var pools: [ObjectIdentifier: FloorPool]
}

/// The client side of the HTTP floor: forwards each request to a pooled upstream connection.
final class FloorServerHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    var context: ChannelHandlerContext?
    var upstream: Channel?
    var pending: [HTTPClientRequestPart] = []
    var keepAlive = true
    let target: FloorUpstream

    init(target: FloorUpstream) { self.target = target }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(var head):
            keepAlive = head.isKeepAlive
            head.headers.replaceOrAdd(name: "host", value: target.host)
            head.headers.remove(name: "connection")
            send(.head(head), context: context)
        case .body(let body): send(.body(.byteBuffer(body)), context: context)
        case .end(let trailers): send(.end(trailers), context: context)
        }
    }

    private func send(_ part: HTTPClientRequestPart, context: ChannelHandlerContext) {
        if let upstream {
            let flush: Bool
            if case .end = part { flush = true } else { flush = false }
            upstream.write(part, promise: nil)
            if flush { upstream.flush() }
            return
        }
        pending.append(part)
        guard case .head = part else { return }
        let pool = target.pools[ObjectIdentifier(context.eventLoop)]!
        if let channel = pool.idle.popLast(), channel.isActive {
            attach(channel)
            return
        }
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        ClientBootstrap(group: context.eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(FloorUpstreamHandler())
                }
            }
            .connect(to: target.address)
            .whenComplete { result in
                switch result {
                case .success(let channel): bound.value.attach(channel)
                case .failure: bound.value.context?.close(promise: nil)
                }
            }
    }

    private func attach(_ channel: Channel) {
        upstream = channel
        guard let handler = try? channel.pipeline.syncOperations.handler(type: FloorUpstreamHandler.self) else {
            context?.close(promise: nil)
            return
        }
        handler.client = self
        for part in pending { channel.write(part, promise: nil) }
        pending.removeAll()
        channel.flush()
    }

    /// The upstream's answer: to the client, and the upstream connection back to the pool.
    func upstreamRead(_ part: HTTPClientResponsePart) {
        guard let context else { return }
        switch part {
        case .head(var head):
            if !keepAlive { head.headers.replaceOrAdd(name: "connection", value: "close") }
            context.write(
                wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: head.status, headers: head.headers))),
                promise: nil)
        case .body(let body): context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        case .end(let trailers):
            if let upstream {
                target.pools[ObjectIdentifier(context.eventLoop)]!.idle.append(upstream)
                self.upstream = nil
            }
            if keepAlive {
                context.writeAndFlush(wrapOutboundOut(.end(trailers)), promise: nil)
            } else {
                context.writeAndFlush(wrapOutboundOut(.end(trailers))).assumeIsolated().whenComplete { _ in
                    context.close(promise: nil)
                }
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        upstream?.close(promise: nil)
        self.context = nil
    }
    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}

final class FloorUpstreamHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    var client: FloorServerHandler?
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        let client = self.client
        if case .end = part { self.client = nil }
        client?.upstreamRead(part)
    }
    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}
