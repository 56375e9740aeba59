import DriftcheckProxy
import Foundation
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

    /// An idle pooled connection of `loop`, or a new one with `handlers` (made on the channel's loop).
    func connection(
        on loop: EventLoop, _ handlers: @escaping @Sendable () throws -> [ChannelHandler]
    ) -> EventLoopFuture<Channel> {
        if let channel = pools[ObjectIdentifier(loop)]!.idle.popLast(), channel.isActive {
            return loop.makeSucceededFuture(channel)
        }
        return ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandlers(handlers()) }
            }
            .connect(to: address)
    }

    func release(_ channel: Channel) {
        pools[ObjectIdentifier(channel.eventLoop)]!.idle.append(channel)
    }
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
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        target.connection(on: context.eventLoop) {
            [HTTPRequestEncoder(), ByteToMessageHandler(HTTPResponseDecoder()), FloorUpstreamHandler()]
        }.whenComplete { result in
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
                target.release(upstream)
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

/// The client side of the raw floor: requests framed on their bytes by driftcheck's own
/// `HTTP1Framer`, heads rewritten line by line, bodies forwarded in the buffers they came in.
final class RawServerHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    var context: ChannelHandlerContext?
    var upstream: Channel?
    var framer = HTTP1Framer(role: .request)
    var inbound: ByteBuffer?
    var pending: [ByteBuffer] = []
    var keepAlive = true
    let target: FloorUpstream

    init(target: FloorUpstream) { self.target = target }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        if inbound != nil { inbound!.writeBuffer(&buffer) } else { inbound = buffer }
        do {
            while let part = try framer.next(&inbound!) {
                switch part {
                case .head(let head):
                    keepAlive = head.keepAlive
                    let authority = target.host
                    send(
                        head.rewritten(
                            startLine: "\(head.method) \(head.target) HTTP/1.1", adding: [("Host", authority)],
                            dropping: { head.isHopByHop($0) || head.field($0, is: "host") }), context: context)
                case .body(let bytes), .framing(let bytes): send(bytes, context: context)
                case .end(let bytes, _):
                    if let bytes { send(bytes, context: context) }
                    upstream?.flush()
                }
            }
        } catch {
            context.close(promise: nil)
        }
        if inbound!.readableBytes == 0 { inbound = nil }
    }

    private func send(_ bytes: ByteBuffer, context: ChannelHandlerContext) {
        if let upstream {
            upstream.write(bytes, promise: nil)
            return
        }
        pending.append(bytes)
        guard pending.count == 1 else { return }
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        target.connection(on: context.eventLoop) { [RawUpstreamHandler()] }.whenComplete { result in
            switch result {
            case .success(let channel): bound.value.attach(channel)
            case .failure: bound.value.context?.close(promise: nil)
            }
        }
    }

    private func attach(_ channel: Channel) {
        upstream = channel
        guard let handler = try? channel.pipeline.syncOperations.handler(type: RawUpstreamHandler.self) else {
            context?.close(promise: nil)
            return
        }
        handler.client = self
        for bytes in pending { channel.write(bytes, promise: nil) }
        pending.removeAll()
        channel.flush()
    }

    /// The upstream's answer: to the client, and the upstream connection back to the pool at its end.
    func upstreamRead(_ part: HTTP1Framer.Part) {
        guard let context else { return }
        switch part {
        case .head(let head):
            let close = !keepAlive
            context.write(
                wrapOutboundOut(
                    head.rewritten(
                        startLine: "HTTP/1.1 \(head.status) \(head.reason)",
                        adding: close ? [("Connection", "close")] : [], dropping: head.isHopByHop)), promise: nil)
        case .body(let bytes), .framing(let bytes): context.write(wrapOutboundOut(bytes), promise: nil)
        case .end(let bytes, _):
            if let bytes { context.write(wrapOutboundOut(bytes), promise: nil) }
            if let upstream {
                target.release(upstream)
                self.upstream = nil
            }
            if keepAlive {
                context.flush()
            } else {
                context.writeAndFlush(wrapOutboundOut(ByteBuffer())).assumeIsolated().whenComplete { _ in
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

final class RawUpstreamHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    var client: RawServerHandler?
    var framer = HTTP1Framer(role: .response)
    var inbound: ByteBuffer?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        if inbound != nil { inbound!.writeBuffer(&buffer) } else { inbound = buffer }
        do {
            while let part = try framer.next(&inbound!) {
                let client = self.client
                if case .end = part { self.client = nil }
                client?.upstreamRead(part)
            }
        } catch {
            context.close(promise: nil)
        }
        if inbound!.readableBytes == 0 { inbound = nil }
    }
    func channelReadComplete(context: ChannelHandlerContext) { client?.context?.flush() }
    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}

/// The framer's own cost per exchange: what raw-http adds to the relay, without sockets.
enum FramerTiming {
    static let request = ByteBuffer(
        string: "GET /order.json HTTP/1.1\r\nHost: 127.0.0.1:18902\r\nUser-Agent: wrk\r\n\r\n")
    static let response = ByteBuffer(
        string: "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Tue, 01 Dec 2026 02:22:22 GMT\r\n"
            + "Content-Type: application/json\r\nContent-Length: 112\r\nLast-Modified: Mon, 30 Nov 2026 23:29:03 GMT\r\n"
            + "Connection: keep-alive\r\nETag: \"6b0e06bf-70\"\r\nAccept-Ranges: bytes\r\n\r\n"
            + String(repeating: "x", count: 112))

    static func run(rounds: Int) -> String {
        var requests = HTTP1Framer(role: .request)
        var responses = HTTP1Framer(role: .response)
        var bytes = 0
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<rounds {
            var buffer = request
            while let part = try? requests.next(&buffer) {
                if case .head(let head) = part {
                    bytes +=
                        head.rewritten(
                            startLine: "\(head.method) \(head.target) HTTP/1.1", adding: [("Host", "127.0.0.1:18901")],
                            dropping: { head.isHopByHop($0) || head.field($0, is: "host") }
                        ).readableBytes
                }
            }
            buffer = response
            while let part = try? responses.next(&buffer) {
                if case .head(let head) = part {
                    bytes +=
                        head.rewritten(
                            startLine: "HTTP/1.1 \(head.status) \(head.reason)", dropping: head.isHopByHop
                        ).readableBytes
                }
            }
        }
        let nanoseconds = Double(DispatchTime.now().uptimeNanoseconds - start) / Double(rounds)
        return String(
            format: "%.0f ns per request and response framed and rewritten (%d bytes out)", nanoseconds, bytes)
    }
}
