import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// A request for the small client.
public struct ClientRequest: Sendable {
    public enum Body: Sendable {
        case bytes(Data)
        /// `count` bytes generated and streamed, awaiting each write.
        case generated(count: Int)
    }

    public var method: String
    /// The request target as it goes on the request line (origin- or absolute-form).
    public var target: String
    public var headers: [(String, String)]
    public var body: Body

    public init(_ method: String, _ target: String, headers: [(String, String)] = [], body: Body = .bytes(Data())) {
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
    }

    public static func json(_ method: String, _ target: String, _ json: String, headers: [(String, String)] = [])
        -> ClientRequest
    {
        ClientRequest(
            method, target, headers: [("Content-Type", "application/json")] + headers, body: .bytes(Data(json.utf8)))
    }
}

public struct ClientResponse: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    /// The body, kept up to 4 MiB.
    public var body: Data
    public var bodySize: Int

    public var text: String { String(decoding: body, as: UTF8.self) }
    public func header(_ name: String) -> String? {
        headers.first { $0.0.caseInsensitiveCompare(name) == .orderedSame }?.1
    }
}

public struct ClientError: Error, CustomStringConvertible {
    public var description: String
    public init(description: String) { self.description = description }
}

/// A minimal HTTP/1.1 client for loopback servers: the demo's workload and the tests' driver.
public enum LoopbackHTTPClient {
    /// Sends `requests` one after another on one keep-alive connection.
    public static func send(
        _ requests: [ClientRequest], host: String = "127.0.0.1", port: Int, group: EventLoopGroup,
        timeout: TimeAmount = .seconds(60)
    ) async throws -> [ClientResponse] {
        let (stream, continuation) = AsyncStream<Result<ClientResponse, Error>>.makeStream()
        let channel = try await ClientBootstrap(group: group)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                do {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(ResponseCollector(continuation: continuation))
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
            .connect(host: host, port: port).get()
        defer { channel.close(promise: nil) }
        var iterator = stream.makeAsyncIterator()
        var responses: [ClientResponse] = []
        for request in requests {
            var headers = HTTPHeaders(request.headers)
            if headers["host"].isEmpty { headers.add(name: "host", value: "\(host):\(port)") }
            switch request.body {
            case .bytes(let data):
                if !data.isEmpty || ["POST", "PUT", "PATCH"].contains(request.method) {
                    headers.replaceOrAdd(name: "content-length", value: String(data.count))
                }
            case .generated(let count):
                headers.replaceOrAdd(name: "content-length", value: String(count))
            }
            let head = HTTPRequestHead(
                version: .http1_1, method: HTTPMethod(rawValue: request.method), uri: request.target, headers: headers)
            try await channel.writeAndFlush(HTTPClientRequestPart.head(head))
            switch request.body {
            case .bytes(let data):
                if !data.isEmpty {
                    try await channel.writeAndFlush(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: data))))
                }
            case .generated(var count):
                let chunk = ByteBuffer(repeating: UInt8(ascii: "u"), count: 64 * 1024)
                while count > 0 {
                    let size = min(count, chunk.readableBytes)
                    count -= size
                    try await channel.writeAndFlush(
                        HTTPClientRequestPart.body(.byteBuffer(chunk.getSlice(at: 0, length: size)!)))
                }
            }
            try await channel.writeAndFlush(HTTPClientRequestPart.end(nil))
            // A silent server is cut off by closing the connection, which ends the stream.
            let timer = channel.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
            let next = await iterator.next()
            timer.cancel()
            guard let result = next else { throw ClientError(description: "connection closed before a response") }
            responses.append(try result.get())
        }
        return responses
    }

    public static func send(
        _ request: ClientRequest, host: String = "127.0.0.1", port: Int, group: EventLoopGroup,
        timeout: TimeAmount = .seconds(60)
    ) async throws -> ClientResponse {
        try await send([request], host: host, port: port, group: group, timeout: timeout)[0]
    }

    /// Writes raw bytes and returns everything read until the peer closes or `timeout` passes.
    public static func raw(
        _ bytes: [UInt8], host: String = "127.0.0.1", port: Int, group: EventLoopGroup,
        timeout: TimeAmount = .seconds(10)
    ) async throws -> String {
        let connection = try await RawConnection.open(host: host, port: port, group: group)
        try await connection.channel.writeAndFlush(ByteBuffer(bytes: bytes))
        return try await connection.readToEnd(timeout: Double(timeout.nanoseconds) / 1e9)
    }
}

/// A raw TCP conversation for tests of the wire format: send bytes, read until a marker.
public final class RawConnection: Sendable {
    let channel: Channel
    let received: NIOLockedValueBox<(text: String, closed: Bool)>

    private init(channel: Channel, received: NIOLockedValueBox<(text: String, closed: Bool)>) {
        self.channel = channel
        self.received = received
    }

    public static func open(host: String = "127.0.0.1", port: Int, group: EventLoopGroup) async throws -> RawConnection
    {
        let received = NIOLockedValueBox((text: "", closed: false))
        // Bytes are kept on the event loop as they arrive: a task consuming them would wait for
        // a cooperative thread, and on a loaded machine the answer was "not received" while
        // it sat in a stream.
        let channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(RawCollector(received: received))
                }
            }
            .connect(host: host, port: port).get()
        return RawConnection(channel: channel, received: received)
    }

    public func send(_ text: String) async throws {
        try await channel.writeAndFlush(ByteBuffer(string: text))
    }

    /// Everything received up to and including `marker`, consumed from the buffer.
    public func read(until marker: String, timeout: Double = 60) async throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let found: String? = received.withLockedValue { state in
                guard let range = state.text.range(of: marker) else { return nil }
                let head = String(state.text[..<range.upperBound])
                state.text.removeSubrange(..<range.upperBound)
                return head
            }
            if let found { return found }
            if received.withLockedValue({ $0.closed }) { break }
            try await Task.sleep(nanoseconds: 5_000_000)
        }
        throw ClientError(description: "'\(marker)' not received; got: \(received.withLockedValue { $0.text })")
    }

    /// Everything until the peer closes (or `timeout` passes, then closes).
    public func readToEnd(timeout: Double = 60) async throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline, !received.withLockedValue({ $0.closed }) {
            try await Task.sleep(nanoseconds: 5_000_000)
        }
        try? await channel.close()
        return received.withLockedValue { $0.text }
    }

    public var isClosed: Bool { received.withLockedValue { $0.closed } }

    public func close() { channel.close(promise: nil) }
}

private final class ResponseCollector: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    let continuation: AsyncStream<Result<ClientResponse, Error>>.Continuation
    var response: ClientResponse?

    init(continuation: AsyncStream<Result<ClientResponse, Error>>.Continuation) { self.continuation = continuation }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            response = ClientResponse(
                status: Int(head.status.code), headers: head.headers.map { ($0.name, $0.value) }, body: Data(),
                bodySize: 0)
        case .body(let buffer):
            response?.bodySize += buffer.readableBytes
            if (response?.body.count ?? 0) < 4 << 20 { response?.body.append(contentsOf: buffer.readableBytesView) }
        case .end:
            if let response { continuation.yield(.success(response)) }
            response = nil
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if response != nil { continuation.yield(.failure(ClientError(description: "connection closed mid-response"))) }
        continuation.finish()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        continuation.yield(.failure(error))
        context.close(promise: nil)
    }
}

private final class RawCollector: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let received: NIOLockedValueBox<(text: String, closed: Bool)>
    init(received: NIOLockedValueBox<(text: String, closed: Bool)>) { self.received = received }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        received.withLockedValue { $0.text += String(decoding: buffer.readableBytesView, as: UTF8.self) }
    }
    func channelInactive(context: ChannelHandlerContext) { received.withLockedValue { $0.closed = true } }
    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}
