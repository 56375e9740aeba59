import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// A request as the built-in server saw it.
public struct ServerRequest: Sendable {
    public var method: String
    public var uri: String
    public var headers: [(String, String)]
    /// The body, kept up to 4 MiB.
    public var body: Data
    /// Bytes received in all.
    public var bodySize: Int

    public var path: String { String(uri.split(separator: "?", maxSplits: 1).first ?? "/") }
    public func header(_ name: String) -> String? {
        headers.first { $0.0.caseInsensitiveCompare(name) == .orderedSame }?.1
    }
}

/// What the built-in server answers.
public struct ServerResponse: Sendable {
    public enum Body: Sendable {
        case bytes(Data)
        /// `count` bytes generated on the fly and streamed with back-pressure.
        case generated(count: Int)
        /// Never answer.
        case stall
        /// Close the connection without answering.
        case close
        /// Send the head and `count` bytes of a longer chunked body, then close.
        case truncated(count: Int)
    }

    public var status: Int
    public var headers: [(String, String)]
    public var body: Body
    public var delay: TimeAmount

    public init(
        status: Int = 200, headers: [(String, String)] = [], body: Body = .bytes(Data()), delay: TimeAmount = .zero
    ) {
        self.status = status
        self.headers = headers
        self.body = body
        self.delay = delay
    }

    public static func json(_ text: String, status: Int = 200, headers: [(String, String)] = []) -> ServerResponse {
        ServerResponse(
            status: status, headers: [("Content-Type", "application/json")] + headers, body: .bytes(Data(text.utf8)))
    }
}

/// A small HTTP/1.1 server on loopback whose answers come from a routing closure.
public final class LoopbackHTTPServer: Sendable {
    public let port: Int
    private let channel: Channel
    private let requestCount: NIOLockedValueBox<Int>

    public var requestsServed: Int { requestCount.withLockedValue { $0 } }

    public static func start(
        group: EventLoopGroup, host: String = "127.0.0.1", port: Int = 0,
        route: @escaping @Sendable (ServerRequest) -> ServerResponse
    ) async throws -> LoopbackHTTPServer {
        let counter = NIOLockedValueBox(0)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 1024)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                do {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(RouteHandler(route: route, counter: counter))
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
            .bind(host: host, port: port).get()
        return LoopbackHTTPServer(channel: channel, counter: counter)
    }

    private init(channel: Channel, counter: NIOLockedValueBox<Int>) {
        self.channel = channel
        self.port = channel.localAddress?.port ?? 0
        self.requestCount = counter
    }

    public var baseURL: String { "http://127.0.0.1:\(port)" }

    public func stop() async {
        try? await channel.close()
    }
}

private final class RouteHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let route: @Sendable (ServerRequest) -> ServerResponse
    let counter: NIOLockedValueBox<Int>
    var head: HTTPRequestHead?
    var body = Data()
    var bodySize = 0
    var remaining = 0
    var chunk = ByteBuffer(repeating: UInt8(ascii: "x"), count: 64 * 1024)
    var streamingContext: ChannelHandlerContext?

    init(route: @escaping @Sendable (ServerRequest) -> ServerResponse, counter: NIOLockedValueBox<Int>) {
        self.route = route
        self.counter = counter
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = Data()
            bodySize = 0
        case .body(let buffer):
            bodySize += buffer.readableBytes
            if body.count < 4 << 20 { body.append(contentsOf: buffer.readableBytesView) }
        case .end:
            guard let head else { return }
            counter.withLockedValue { $0 += 1 }
            let request = ServerRequest(
                method: head.method.rawValue, uri: head.uri, headers: head.headers.map { ($0.name, $0.value) },
                body: body, bodySize: bodySize)
            let response = route(request)
            if response.delay > .zero {
                context.eventLoop.assumeIsolated().scheduleTask(in: response.delay) {
                    self.respond(context: context, head: head, response: response)
                }
            } else {
                respond(context: context, head: head, response: response)
            }
        }
    }

    func respond(context: ChannelHandlerContext, head: HTTPRequestHead, response: ServerResponse) {
        var headers = HTTPHeaders(response.headers)
        let status = HTTPResponseStatus(statusCode: response.status)
        switch response.body {
        case .stall:
            return
        case .close:
            context.close(promise: nil)
        case .bytes(let data):
            if headers["content-length"].isEmpty { headers.add(name: "content-length", value: String(data.count)) }
            context.write(
                wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))),
                promise: nil)
            if !data.isEmpty {
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: data)))), promise: nil)
            }
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        case .generated(let count):
            headers.add(name: "content-length", value: String(count))
            context.write(
                wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))),
                promise: nil)
            remaining = count
            streamingContext = context
            pump(context)
        case .truncated(let count):
            headers.add(name: "transfer-encoding", value: "chunked")
            context.write(
                wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))),
                promise: nil)
            context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(repeating: 0x61, count: count)))))
                .assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }

    private func pump(_ context: ChannelHandlerContext) {
        while remaining > 0 && context.channel.isWritable {
            let size = min(remaining, chunk.readableBytes)
            remaining -= size
            context.write(wrapOutboundOut(.body(.byteBuffer(chunk.getSlice(at: 0, length: size)!))), promise: nil)
        }
        if remaining == 0 {
            streamingContext = nil
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        } else {
            context.flush()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, streamingContext != nil { pump(context) }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}
