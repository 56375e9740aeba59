import DriftcheckCore
import DriftcheckDemo
import DriftcheckProcess
import DriftcheckProxy
import DriftcheckTestSupport
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

@testable import DriftcheckProxy

/// An upstream that answers each request it reads with the next of its scripted byte strings,
/// and keeps the bytes of every request as they arrived: for what no well-behaved HTTP server
/// library would send (interim answers, bodies delimited by a close, malformed framing).
final class ScriptedUpstream: Sendable {
    struct Answer: Sendable {
        var bytes: String
        /// Close the connection once the answer is written.
        var close = false
    }

    let port: Int
    let channel: Channel
    private let received: NIOLockedValueBox<[String]>

    static func start(_ answers: [Answer]) async throws -> ScriptedUpstream {
        let received = NIOLockedValueBox<[String]>([])
        let next = NIOLockedValueBox(0)
        let channel = try await ServerBootstrap(group: testGroup)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        Handler(answers: answers, next: next, received: received))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return ScriptedUpstream(port: channel.localAddress!.port!, channel: channel, received: received)
    }

    private init(port: Int, channel: Channel, received: NIOLockedValueBox<[String]>) {
        self.port = port
        self.channel = channel
        self.received = received
    }

    /// Each request's bytes, as they arrived.
    var requests: [String] { received.withLockedValue { $0 } }
    var url: String { "http://127.0.0.1:\(port)" }

    func stop() { channel.close(promise: nil) }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let answers: [Answer]
        let next: NIOLockedValueBox<Int>
        let received: NIOLockedValueBox<[String]>
        var framer = HTTP1Framer(role: .request)
        var pending = ByteBuffer()
        var request = ByteBuffer()

        init(answers: [Answer], next: NIOLockedValueBox<Int>, received: NIOLockedValueBox<[String]>) {
            self.answers = answers
            self.next = next
            self.received = received
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = unwrapInboundIn(data)
            pending.writeBuffer(&buffer)
            while let part = try? framer.next(&pending) {
                switch part {
                case .head(let head):
                    var bytes = head.bytes
                    request.writeBuffer(&bytes)
                case .body(var bytes), .framing(var bytes): request.writeBuffer(&bytes)
                case .end(let bytes, _):
                    if var bytes { request.writeBuffer(&bytes) }
                    received.withLockedValue { $0.append(String(buffer: request)) }
                    request.clear()
                    let index = next.withLockedValue { index in
                        defer { index += 1 }
                        return index
                    }
                    guard index < answers.count else {
                        context.close(promise: nil)
                        return
                    }
                    let answer = answers[index]
                    let written = context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: answer.bytes)))
                    if answer.close { written.assumeIsolated().whenComplete { _ in context.close(promise: nil) } }
                }
            }
            pending.discardReadBytes()
        }
    }
}

/// What the proxy sends each side is what the other side sent, but for what must change.
@Suite struct WireFidelityTests {
    func reverse(to upstream: ScriptedUpstream) async throws -> ProxyHarness {
        try await ProxyHarness.start(.reverse(service: "orders", upstream: UpstreamURL.parse(upstream.url)!))
    }

    @Test func theClientsFieldLinesGoUpstreamAsTheyCameLessTheHopByHopOnes() async throws {
        let upstream = try await ScriptedUpstream.start([
            .init(bytes: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        ])
        defer { upstream.stop() }
        let harness = try await reverse(to: upstream)
        defer { harness.remove() }
        let text = try await harness.raw(
            "GET /a?b=1 HTTP/1.1\r\nHost: client.example\r\nX-Mixed-CASE:   padded value  \r\nAccept: */*\r\n"
                + "Connection: close, X-Hop\r\nX-Hop: 1\r\nProxy-Authorization: Basic eDp5\r\nExpect: nothing\r\n"
                + "Keep-Alive: timeout=5\r\nX-Last: \r\n\r\n")
        #expect(text.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(text)")
        #expect(
            upstream.requests == [
                "GET /a?b=1 HTTP/1.1\r\nHost: 127.0.0.1:\(upstream.port)\r\nX-Mixed-CASE: padded value\r\n"
                    + "Accept: */*\r\nX-Last: \r\n\r\n"
            ])
        let stored = try await harness.finish()
        // Recorded as the client sent it.
        #expect(stored.first?.request.headers["x-mixed-case"] == "padded value")
        #expect(stored.first?.request.headers["host"] == "client.example")
    }

    @Test func aChunkedBodyTravelsWithItsChunksAndTrailersAndIsRecordedAsItsContent() async throws {
        let upstream = try await ScriptedUpstream.start([
            .init(
                bytes:
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n1;ext=1\r\n!\r\n0\r\nX-Checksum: 42\r\n\r\n"
            )
        ])
        defer { upstream.stop() }
        let harness = try await reverse(to: upstream)
        defer { harness.remove() }
        let body = "3\r\nabc\r\n2\r\nde\r\n0\r\nX-Sum: 5\r\n\r\n"
        let text = try await harness.raw(
            "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + body)
        #expect(upstream.requests.first?.hasSuffix("\r\n\r\n" + body) == true, "\(upstream.requests)")
        #expect(text.hasSuffix("\r\n\r\n2\r\nok\r\n1;ext=1\r\n!\r\n0\r\nX-Checksum: 42\r\n\r\n"), "\(text)")
        let exchange = try #require(try await harness.finish().first)
        #expect(exchange.request.body.bytes == Data("abcde".utf8))
        #expect(exchange.response?.body.bytes == Data("ok!".utf8))
        #expect(exchange.response?.trailers["x-checksum"] == "42")
    }

    @Test func anHTTP10ClientGetsAChunkedResponsesContentAndTheConnectionEnds() async throws {
        let upstream = try await ScriptedUpstream.start([
            .init(
                bytes:
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
            )
        ])
        defer { upstream.stop() }
        let harness = try await reverse(to: upstream)
        defer { harness.remove() }
        // Keep-alive asked for: a body with no length can only end with the connection.
        let text = try await harness.raw("GET /a HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
        #expect(text.hasPrefix("HTTP/1.0 200 OK\r\n"), "\(text)")
        #expect(text.contains("Connection: close\r\n"), "\(text)")
        #expect(!text.lowercased().contains("transfer-encoding"), "\(text)")
        #expect(text.hasSuffix("\r\n\r\nhello world"), "\(text)")
        let exchange = try #require(try await harness.finish().first)
        #expect(exchange.response?.body.bytes == Data("hello world".utf8))
        // The recorded response is what the upstream said.
        #expect(exchange.response?.headers["transfer-encoding"] == "chunked")
    }

    /// ApacheBench's `ab -k`: HTTP/1.0 with keep-alive asked for, which only a response saying
    /// `Connection: keep-alive` grants.
    @Test func anHTTP10ClientAskingForKeepAliveIsToldItIsKept() async throws {
        let upstream = try await ScriptedUpstream.start([
            .init(bytes: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\none"),
            .init(bytes: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo"),
        ])
        defer { upstream.stop() }
        let harness = try await reverse(to: upstream)
        defer { harness.remove() }
        let text = try await harness.raw(
            "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\n\r\n")
        #expect(
            text == "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\none"
                + "HTTP/1.0 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\ntwo")
        #expect(try await harness.finish().count == 2)
    }

    @Test func aResponseDelimitedByTheUpstreamsCloseEndsTheClientsConnectionToo() async throws {
        let upstream = try await ScriptedUpstream.start([
            .init(bytes: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end", close: true)
        ])
        defer { upstream.stop() }
        let harness = try await reverse(to: upstream)
        defer { harness.remove() }
        let text = try await harness.raw("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(text.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(text)")
        #expect(text.contains("Connection: close\r\n"), "\(text)")
        #expect(text.hasSuffix("\r\n\r\nuntil the end"), "\(text)")
        let exchange = try #require(try await harness.finish().first)
        #expect(exchange.response?.body.bytes == Data("until the end".utf8))
    }

    @Test func aResponseToHEADHasNoBodyAndTheConnectionGoesOn() async throws {
        let upstream = try await ScriptedUpstream.start([
            .init(bytes: "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"),
            .init(bytes: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        ])
        defer { upstream.stop() }
        let harness = try await reverse(to: upstream)
        defer { harness.remove() }
        let text = try await harness.raw(
            "HEAD /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(text.components(separatedBy: "HTTP/1.1 200 OK\r\n").count == 3, "\(text)")
        #expect(text.hasSuffix("\r\n\r\nok"), "\(text)")
        let stored = try await harness.finish()
        #expect(stored.map(\.request.method).sorted() == ["GET", "HEAD"])
        #expect(stored.first { $0.request.method == "HEAD" }?.response?.body.size == 0)
    }

    @Test func anInterimResponseIsNotPassedOn() async throws {
        let upstream = try await ScriptedUpstream.start([
            .init(
                bytes:
                    "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
            )
        ])
        defer { upstream.stop() }
        let harness = try await reverse(to: upstream)
        defer { harness.remove() }
        let text = try await harness.raw("GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(text.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(text)")
        #expect(text.hasSuffix("\r\n\r\nok"), "\(text)")
        #expect(try await harness.finish().first?.response?.status == 200)
    }

    @Test func aResponseWithAmbiguousFramingIs502AndAFailure() async throws {
        let upstream = try await ScriptedUpstream.start([
            .init(bytes: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\nok")
        ])
        defer { upstream.stop() }
        let harness = try await reverse(to: upstream)
        defer { harness.remove() }
        let text = try await harness.raw("GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(text.hasPrefix("HTTP/1.1 502 Bad Gateway\r\n"), "\(text)")
        guard case .failure(let failure)? = try await harness.finish().first?.result else {
            Issue.record("no failure stored")
            return
        }
        #expect(failure.kind == .upstreamClosed)
        #expect(failure.detail.contains("both Content-Length and Transfer-Encoding"), "\(failure.detail)")
    }

    @Test func bytesSentRightAfterCONNECTGoThroughTheTunnel() async throws {
        let upstream = try await ScriptedUpstream.start([
            .init(bytes: "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\ninside", close: true)
        ])
        defer { upstream.stop() }
        let harness = try await ProxyHarness.start(.forward)
        defer { harness.remove() }
        // The tunnelled request in the same write as the CONNECT, before the proxy answered it.
        let text = try await harness.raw(
            "CONNECT 127.0.0.1:\(upstream.port) HTTP/1.1\r\nHost: 127.0.0.1:\(upstream.port)\r\n\r\n"
                + "GET /through HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(text.hasPrefix("HTTP/1.1 200 Connection Established\r\n\r\nHTTP/1.1 200 OK\r\n"), "\(text)")
        #expect(text.hasSuffix("inside"), "\(text)")
        #expect(upstream.requests == ["GET /through HTTP/1.1\r\nHost: x\r\n\r\n"])
        #expect(try await harness.finish().isEmpty)
    }
}

/// An HTTP/1.1 client in front of an `h2c://` upstream: the request goes on as an HTTP/2 stream
/// and the answer comes back as HTTP/1.1 bytes. The upstream is nghttpd (nghttp2), a real HTTP/2
/// server.
@Suite struct HTTP1ToHTTP2Tests {
    @Test func anHTTP11ClientGetsAnH2cUpstreamsAnswerAndKeepsItsConnection() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try FileManager.default.createDirectory(atPath: directory.file("www"), withIntermediateDirectories: true)
        _ = try directory.write("www/order.json", #"{"id":42,"status":"paid"}"#)
        // nghttpd binds port 0 without saying which port it got: a free port, tried again if taken.
        var server: ChildProcess?
        var port = 0
        for _ in 0..<3 where server == nil {
            port = try freeLoopbackPort()
            let started = try ChildProcess.spawn(
                ["nghttpd", "--no-tls", "-a", "127.0.0.1", "-d", directory.file("www"), String(port)],
                environment: ProcessInfo.processInfo.environment, outputPath: directory.file("nghttpd.log"))
            let listening = await eventually(timeout: 30) {
                guard let probe = try? await RawConnection.open(port: port, group: testGroup) else { return false }
                probe.close()
                return true
            }
            if listening {
                server = started
            } else {
                started.signalGroup(SIGKILL)
            }
        }
        let nghttpd = try #require(server, "nghttpd did not start")
        defer { nghttpd.signalGroup(SIGKILL) }
        let harness = try await ProxyHarness.start(
            .reverse(service: "orders", upstream: UpstreamURL(scheme: "h2c", host: "127.0.0.1", port: port)))
        defer { harness.remove() }
        let text = try await harness.raw(
            "GET /order.json HTTP/1.1\r\nHost: x\r\n\r\nHEAD /order.json HTTP/1.1\r\nHost: x\r\n\r\n"
                + "GET /missing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        let answers = text.components(separatedBy: "HTTP/1.1 ").dropFirst()
        #expect(answers.count == 3, "\(text)")
        #expect(answers.first?.hasPrefix("200 OK\r\n") == true, "\(text)")
        #expect(answers.first?.lowercased().contains("content-length: 25\r\n") == true, "\(text)")
        #expect(answers.first?.hasSuffix("\r\n\r\n{\"id\":42,\"status\":\"paid\"}") == true, "\(text)")
        #expect(answers.dropFirst().first?.hasSuffix("\r\n\r\n") == true, "a HEAD answer has no body: \(text)")
        #expect(answers.last?.hasPrefix("404 Not Found\r\n") == true, "\(text)")
        let stored = try await harness.finish()
        #expect(stored.count == 3)
        #expect(
            stored.first { $0.request.method == "GET" && $0.request.path == "/order.json" }?.response?.body.bytes
                == Data(#"{"id":42,"status":"paid"}"#.utf8))
    }
}

extension HTTP1ToHTTP2Tests {
    /// hyper-h2 answering without a length, in frames, with trailers (`fixtures/h2/h2c_server.py`):
    /// an HTTP/1.1 client gets chunks and the trailers, an HTTP/1.0 client the content and a close.
    @Test func anH2cAnswerWithoutALengthReachesHTTP1ClientsAsChunksOrUntilClose() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let server = try #require(await HyperH2Server.start(in: directory), "the h2c server did not start")
        defer { server.stop() }
        let harness = try await ProxyHarness.start(
            .reverse(service: "h2", upstream: UpstreamURL(scheme: "h2c", host: "127.0.0.1", port: server.port)))
        defer { harness.remove() }
        let text = try await harness.raw(
            "GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nabcdef"
                + "GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        let answers = text.components(separatedBy: "HTTP/1.").dropFirst().map { "HTTP/1." + $0 }
        #expect(answers.count == 3, "\(text)")
        guard answers.count == 3 else { return }
        #expect(answers[0].lowercased().contains("transfer-encoding: chunked\r\n"), "\(text)")
        #expect(answers[0].hasSuffix("\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\nx-checksum: 42\r\n\r\n"), "\(text)")
        #expect(answers[1].hasSuffix("\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\nx-length: 6\r\n\r\n"), "\(text)")
        #expect(answers[2].hasPrefix("HTTP/1.0 200 OK\r\n"), "\(text)")
        #expect(answers[2].contains("connection: close\r\n"), "\(text)")
        #expect(!answers[2].lowercased().contains("transfer-encoding"), "\(text)")
        #expect(answers[2].hasSuffix("\r\n\r\nhello world"), "\(text)")
        let stored = try await harness.finish()
        #expect(stored.count == 3)
        let echo = try #require(stored.first { $0.request.method == "POST" })
        #expect(echo.request.body.bytes == Data("abcdef".utf8))
        #expect(echo.response?.body.bytes == Data("abcdef".utf8))
        #expect(echo.response?.trailers["x-length"] == "6")
    }
}

extension HTTP1ToHTTP2Tests {
    /// A gRPC call made over HTTP/1.1 (`TE: trailers`, a chunked answer) reaches a real grpcio
    /// server over h2c: `te: trailers`, which grpcio requires, goes on since the proxy passes
    /// trailers to this client; before, grpcio reset the stream.
    @Test func aGRPCCallOverHTTP11GetsItsAnswerAndTrailersFromGrpcio() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let server = try await GRPCServer.start(in: directory)
        defer { server.stop() }
        let harness = try await ProxyHarness.start(
            .reverse(service: "recs", upstream: UpstreamURL(scheme: "h2c", host: "127.0.0.1", port: server.port)))
        defer { harness.remove() }
        // GetRequest { customer_id: "c0" } in gRPC's framing: not compressed, 4 bytes.
        let message = "\u{0}\u{0}\u{0}\u{0}\u{4}\u{a}\u{2}c0"
        let text = try await harness.raw(
            "POST /shop.v1.Recommendations/Get HTTP/1.1\r\nHost: x\r\nContent-Type: application/grpc\r\n"
                + "TE: trailers\r\nConnection: TE, close\r\nContent-Length: 9\r\n\r\n" + message)
        #expect(text.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(text)")
        #expect(text.lowercased().contains("transfer-encoding: chunked\r\n"), "\(text)")
        #expect(text.contains("SKU-c0-1"), "\(text)")
        // The last chunk, then the trailers (grpcio adds an empty grpc-message).
        #expect(text.contains("\r\n0\r\ngrpc-status: 0\r\n") && text.hasSuffix("\r\n\r\n"), "\(text.debugDescription)")
        let stored = try await harness.finish()
        #expect(stored.first?.request.headers["te"] == "trailers")
        #expect(stored.first?.response?.trailers["grpc-status"] == "0")
    }
}

/// A real event-stream origin (`fixtures/sse/sse_server.py`, Python's http.server) quiet for 8 s
/// between two chunks, behind a recorder whose upstream timeout is 5 s: wide enough that a
/// loaded machine still answers each head in time.
@Suite struct EventStreamTests {
    @Test func anEventStreamQuietForLongerThanTheUpstreamTimeoutIsPassedOnWhole() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let log = directory.file("sse.log")
        let server = try ChildProcess.spawn(
            ["python3", Fixtures.path("sse/sse_server.py"), "8"], environment: ProcessInfo.processInfo.environment,
            outputPath: log)
        defer { server.signalGroup(SIGKILL) }
        let port = try #require(await announcedPort(in: log), "the SSE server did not start")
        var configuration = ProxyConfiguration()
        configuration.upstreamTimeout = .seconds(5)
        let harness = try await ProxyHarness.start(
            .reverse(service: "feed", upstream: UpstreamURL(scheme: "http", host: "127.0.0.1", port: port)),
            configuration: configuration)
        defer { harness.remove() }
        let events = try await harness.raw("GET /events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(events.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(events)")
        #expect(events.hasSuffix("9\r\ndata: 1\n\n\r\n9\r\ndata: 2\n\n\r\n0\r\n\r\n"), "\(events)")
        // The same rhythm in a body that is not an event stream is still cut at 5 s.
        let json = try await harness.raw("GET /slow-json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(json.hasSuffix("[1,\r\n"), "\(json)")
        let stored = try await harness.finish()
        #expect(
            stored.first { $0.request.path == "/events" }?.response?.body.bytes == Data("data: 1\n\ndata: 2\n\n".utf8))
        #expect(
            stored.first { $0.request.path == "/slow-json" }?.result
                == .failure(ExchangeFailure(.timeout, "upstream sent nothing for 5000 ms")))
    }
}

@Suite struct HTTP1BodyWritingTests {
    func written(_ parts: [ResponsePart], _ writing: HTTP1BodyWriting) -> String {
        var text = ""
        for part in parts { writing.bytes(part) { text += String(buffer: $0) } }
        return text
    }

    @Test func contentOfUnknownLengthIsWrittenAsChunksWithItsTrailers() {
        let writing = HTTP1BodyWriting.chunked
        let parts: [ResponsePart] = [
            .body(ByteBuffer(string: "hello")), .body(ByteBuffer()),
            .body(ByteBuffer(string: String(repeating: "x", count: 26))),
            .end(nil, ["grpc-status": "0"]),
        ]
        let bytes = written(parts, writing)
        #expect(bytes == "5\r\nhello\r\n1a\r\n\(String(repeating: "x", count: 26))\r\n0\r\ngrpc-status: 0\r\n\r\n")
    }

    @Test func contentOnlyDropsTheFramingAsReceivedKeepsIt() {
        let parts: [ResponsePart] = [
            .framing(ByteBuffer(string: "2\r\n")), .body(ByteBuffer(string: "ok")),
            .framing(ByteBuffer(string: "\r\n")),
            .end(ByteBuffer(string: "0\r\n\r\n"), [:]),
        ]
        #expect(written(parts, .contentOnly) == "ok")
        #expect(
            written(parts, .asReceived)
                == "2\r\nok\r\n0\r\n\r\n")
    }
}
