import DriftcheckCore
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import DriftcheckProxy

/// Upstream connections on embedded channels, handed out when the test says so.
final class EmbeddedUpstreams: UpstreamSource {
    let loop: EmbeddedEventLoop
    var idle: [UpstreamConnection] = []
    var requested: [(target: UpstreamTarget, promise: EventLoopPromise<UpstreamConnection>)] = []
    var released: [UpstreamConnection] = []

    init(loop: EmbeddedEventLoop) { self.loop = loop }

    func takeIdle(_ target: UpstreamTarget) -> UpstreamConnection? { idle.popLast() }

    func acquire(_ target: UpstreamTarget) -> EventLoopFuture<UpstreamConnection> {
        let promise = loop.makePromise(of: UpstreamConnection.self)
        requested.append((target, promise))
        return promise.futureResult
    }

    func release(_ connection: UpstreamConnection) { released.append(connection) }

    /// Completes the oldest open acquisition with a new upstream channel.
    func connect() throws -> EmbeddedChannel {
        let (target, promise) = requested.removeFirst()
        let handler = HTTP1UpstreamHandler()
        let channel = EmbeddedChannel(handler: handler, loop: loop)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8080)).wait()
        promise.succeed(UpstreamConnection(channel: channel, handler: handler, target: target))
        return channel
    }

    func fail(_ error: Error) { requested.removeFirst().promise.fail(error) }
}

/// A `ProxyServerHandler` on an embedded client channel, with an embedded loop whose clock the
/// test moves, embedded upstreams and a recorder whose store has room when the test says so.
/// HTTP/1.1 travels as bytes, both ways, as on a socket; an HTTP/2 stream as NIO's parts.
final class Rig {
    let loop = EmbeddedEventLoop()
    let client: EmbeddedChannel
    let handler: ProxyServerHandler
    let stream: Bool
    let upstreams: EmbeddedUpstreams
    let recorder: Recorder
    let recorded = NIOLockedValueBox<[Exchange]>([])
    let room = NIOLockedValueBox(true)
    let resumes = NIOLockedValueBox<[@Sendable () -> Void]>([])
    /// What the upstreams were sent and the client answered, framed as they come out.
    private var sentFramers: [ObjectIdentifier: (HTTP1Framer, ByteBuffer)] = [:]
    private var answerFramer = HTTP1Framer(role: .response)
    private var answerBytes = ByteBuffer()

    /// `stream`: the handler of an HTTP/2 stream. `roomAtStart`: whether the store has room when
    /// the handler is added.
    init(
        route: ListenerRoute = .reverse(service: "orders", upstream: UpstreamURL.parse("http://orders.test:8080")!),
        stream: Bool = false, roomAtStart: Bool = true
    ) throws {
        room.withLockedValue { $0 = roomAtStart }
        upstreams = EmbeddedUpstreams(loop: loop)
        let recorded = self.recorded
        let room = self.room
        let resumes = self.resumes
        recorder = Recorder(
            sink: { exchange in recorded.withLockedValue { $0.append(exchange) } },
            room: { makeResume in
                if room.withLockedValue({ $0 }) { return true }
                let resume = makeResume()
                resumes.withLockedValue { $0.append(resume) }
                return false
            })
        var configuration = ProxyConfiguration()
        configuration.upstreamTimeout = .seconds(30)
        let services = ProxyServices(
            upstreams: upstreams, configuration: configuration, recorder: recorder, interceptor: nil)
        self.stream = stream
        if stream {
            let handler = HTTP2StreamServerHandler(route: route, services: services)
            self.handler = handler
            client = EmbeddedChannel(handler: handler, loop: loop)
        } else {
            let handler = HTTP1ServerHandler(route: route, services: services)
            self.handler = handler
            client = EmbeddedChannel(handler: handler, loop: loop)
        }
        try client.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1234)).wait()
    }

    /// A request with hop-by-hop fields; over HTTP/1.1, chunked when it has a body or is left open.
    func request(
        _ method: HTTPMethod = .GET, _ uri: String, body: [String] = [], end: Bool = true,
        headers: [(String, String)] = []
    ) throws {
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: uri)
        head.headers.add(name: "host", value: "127.0.0.1:9001")
        head.headers.add(name: "connection", value: "keep-alive, x-hop")
        head.headers.add(name: "x-hop", value: "1")
        head.headers.add(contentsOf: headers)
        guard !stream else {
            // NIO's HTTP/1 view of an HTTP/2 request with a body and no length.
            if !body.isEmpty { head.headers.add(name: "transfer-encoding", value: "chunked") }
            try client.writeInbound(HTTPServerRequestPart.head(head))
            for part in body { try client.writeInbound(HTTPServerRequestPart.body(ByteBuffer(string: part))) }
            if end { try client.writeInbound(HTTPServerRequestPart.end(nil)) }
            return
        }
        if !body.isEmpty || !end { head.headers.add(name: "transfer-encoding", value: "chunked") }
        try client.writeInbound(HTTP1Encoding.bytes(startLine: "\(method) \(uri) HTTP/1.1", head.headers))
        for part in body { try sendBody(part) }
        if end && (!body.isEmpty || !end) { try endRequest() }
    }

    /// One chunk of a chunked request body.
    func sendBody(_ text: String) throws {
        try client.writeInbound(ByteBuffer(string: String(text.utf8.count, radix: 16) + "\r\n" + text + "\r\n"))
    }

    /// The last chunk of a chunked request.
    func endRequest() throws {
        try client.writeInbound(ByteBuffer(string: "0\r\n\r\n"))
    }

    func respond(_ upstream: EmbeddedChannel, status: HTTPResponseStatus = .ok, body: String = "{}") throws {
        try upstream.writeInbound(
            ByteBuffer(
                string: "HTTP/1.1 \(status.code) \(status.reasonPhrase)\r\nContent-Length: \(body.utf8.count)\r\n\r\n"
                    + body))
    }

    /// A response head promising a body that does not come (yet).
    func respondHeadOnly(_ upstream: EmbeddedChannel) throws {
        try upstream.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"))
    }

    /// What the upstream was sent: heads as "METHOD URI host=… [names]", bodies as their text, "end".
    func sent(_ upstream: EmbeddedChannel) throws -> [String] {
        let key = ObjectIdentifier(upstream)
        var (framer, bytes) = sentFramers[key] ?? (HTTP1Framer(role: .request), ByteBuffer())
        while var buffer = try upstream.readOutbound(as: ByteBuffer.self) { bytes.writeBuffer(&buffer) }
        var parts: [String] = []
        while let part = try framer.next(&bytes) {
            switch part {
            case .head(let head):
                let names = head.fields.map { head.name($0).lowercased() }.joined(separator: ",")
                let host = head.fields.first { head.field($0, is: "host") }.map(head.value) ?? ""
                parts.append("\(head.method) \(head.target) host=\(host) [\(names)]")
            case .body(let buffer): parts.append(String(buffer: buffer))
            case .framing: break
            case .end: parts.append("end")
            }
        }
        sentFramers[key] = (framer, bytes)
        return parts
    }

    /// What the client got: the status, the body's text, "end".
    func answered() throws -> [String] {
        var parts: [String] = []
        guard !stream else {
            while let part = try client.readOutbound(as: HTTPServerResponsePart.self) {
                switch part {
                case .head(let head): parts.append("\(head.status.code)")
                case .body(.byteBuffer(let buffer)): parts.append(String(buffer: buffer))
                case .body: parts.append("file")
                case .end: parts.append("end")
                }
            }
            return parts
        }
        while var buffer = try client.readOutbound(as: ByteBuffer.self) { answerBytes.writeBuffer(&buffer) }
        while let part = try answerFramer.next(&answerBytes) {
            switch part {
            case .head(let head): parts.append("\(head.status)")
            case .body(let buffer): parts.append(String(buffer: buffer))
            case .framing: break
            case .end: parts.append("end")
            }
        }
        return parts
    }

    var stateName: String {
        switch handler.state {
        case .idle: return "idle"
        case .connecting: return "connecting"
        case .streaming: return "streaming"
        case .waitingForRoom: return "waitingForRoom"
        case .tunnelling: return "tunnelling"
        case .closed: return "closed"
        }
    }
}

@Suite struct ProxyServerHandlerTests {
    @Test func aRequestGoesFromIdleThroughConnectingAndStreamingBackToIdle() throws {
        let rig = try Rig()
        try rig.request(.GET, "/orders/1?x=1", end: false)
        #expect(rig.stateName == "connecting")
        #expect(!rig.handler.isReadingClient)
        #expect(rig.upstreams.requested.map(\.target.authority) == ["orders.test:8080"])
        try rig.endRequest()
        let upstream = try rig.upstreams.connect()
        #expect(rig.stateName == "streaming")
        // Hop-by-hop fields, and those Connection names, are not forwarded; Host is the upstream's.
        #expect(
            try rig.sent(upstream) == ["GET /orders/1?x=1 host=orders.test:8080 [host,transfer-encoding]", "end"])
        try rig.respond(upstream, body: "{\"id\":1}")
        #expect(try rig.answered() == ["200", "{\"id\":1}", "end"])
        #expect(rig.stateName == "idle")
        #expect(rig.handler.isReadingClient)
        let exchange = try #require(rig.recorded.withLockedValue { $0 }.first)
        #expect(exchange.service == "orders")
        #expect(exchange.request.path == "/orders/1")
        #expect(exchange.request.query == "x=1")
        #expect(exchange.response?.status == 200)
        #expect(exchange.response?.body.bytes == Data("{\"id\":1}".utf8))
        #expect(rig.recorder.inFlight == 0)
        // The next request takes the parked connection: no new acquisition.
        try rig.request(.GET, "/orders/2")
        #expect(rig.stateName == "streaming")
        #expect(rig.upstreams.requested.isEmpty)
        #expect(try rig.sent(upstream) == ["GET /orders/2 host=orders.test:8080 [host]", "end"])
    }

    @Test func bodyPartsBeforeTheUpstreamConnectsGoOutInOrderAfterTheHead() throws {
        let rig = try Rig()
        try rig.request(.POST, "/orders", body: ["{\"a\":", "1}"])
        let upstream = try rig.upstreams.connect()
        #expect(
            try rig.sent(upstream) == [
                "POST /orders host=orders.test:8080 [host,transfer-encoding]", "{\"a\":", "1}", "end",
            ])
        try rig.respond(upstream, status: .created)
        #expect(rig.recorded.withLockedValue { $0 }.first?.request.body.bytes == Data("{\"a\":1}".utf8))
    }

    @Test func aPipelinedRequestWaitsForTheResponseBeforeIt() throws {
        let rig = try Rig()
        try rig.request(.GET, "/first")
        let upstream = try rig.upstreams.connect()
        try rig.request(.GET, "/second")
        #expect(!rig.handler.isReadingClient)
        #expect(try rig.sent(upstream) == ["GET /first host=orders.test:8080 [host]", "end"])
        try rig.respond(upstream, body: "1")
        // The held request goes out on the same, parked connection once the first is answered.
        #expect(try rig.sent(upstream) == ["GET /second host=orders.test:8080 [host]", "end"])
        try rig.respond(upstream, body: "2")
        #expect(try rig.answered() == ["200", "1", "end", "200", "2", "end"])
        #expect(rig.recorded.withLockedValue { $0.map(\.request.path) } == ["/first", "/second"])
        #expect(rig.handler.isReadingClient)
    }

    @Test(arguments: [
        (ChannelError.connectTimeout(.seconds(5)) as Error, 504, ExchangeFailure.Kind.timeout),
        (ChannelError.ioOnClosedChannel as Error, 502, ExchangeFailure.Kind.connect),
    ])
    func aFailedConnectIsAnsweredRecordedAndTheConnectionKept(error: Error, status: Int, kind: ExchangeFailure.Kind)
        throws
    {
        let rig = try Rig()
        try rig.request(.GET, "/orders/1")
        rig.upstreams.fail(error)
        let answer = try rig.answered()
        #expect(answer.first == String(status))
        #expect(answer.dropFirst().first?.contains("cannot connect to http://orders.test:8080") == true)
        #expect(rig.stateName == "idle")
        guard case .failure(let failure)? = rig.recorded.withLockedValue({ $0 }).first?.result else {
            Issue.record("no failure recorded")
            return
        }
        #expect(failure.kind == kind)
        try rig.request(.GET, "/orders/2")
        #expect(rig.stateName == "connecting")
    }

    /// The timeout runs on the loop's clock: the test moves it; nothing waits on the machine.
    @Test func theUpstreamTimeoutRunsOnTheLoopsClock() throws {
        let rig = try Rig()
        try rig.request(.GET, "/slow")
        _ = try rig.upstreams.connect()
        try expectTimeout(rig, "upstream sent nothing for 30000 ms")
        #expect(rig.stateName == "idle")
    }

    /// A 200 MB upload took 45 s on a loaded machine and was cut off with a 504 at 30 s: the
    /// timeout counted from the upstream's last answer bytes, while the upstream was reading.
    @Test func anUploadTheUpstreamKeepsTakingIsNotTimedOut() throws {
        let rig = try Rig()
        try rig.request(.PUT, "/upload", body: ["a"], end: false)
        let upstream = try rig.upstreams.connect()
        for _ in 0..<10 {
            rig.loop.advanceTime(by: .seconds(20))
            try rig.sendBody("b")
        }
        #expect(rig.recorded.withLockedValue { $0 }.isEmpty)
        #expect(try rig.sent(upstream).filter { $0 == "b" }.count == 10)
        try rig.endRequest()
        // From the end of the request on, the upstream's silence counts.
        try expectTimeout(rig, "upstream sent nothing for 30000 ms")
    }

    /// A client that pauses mid-body is not the upstream's fault; one that stops sending it for
    /// the client idle timeout is closed, and the exchange recorded as its doing.
    @Test func aClientPausingItsBodyIsNotAnUpstreamTimeoutButAnIdleClient() throws {
        let rig = try Rig()
        try rig.request(.PUT, "/upload", body: ["a"], end: false)
        let upstream = try rig.upstreams.connect()
        rig.loop.advanceTime(by: .seconds(300))
        #expect(rig.recorded.withLockedValue { $0 }.isEmpty)
        #expect(try rig.answered().isEmpty)
        #expect(rig.stateName == "streaming")
        rig.client.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.read)
        #expect(!rig.client.isActive && !upstream.isActive)
        #expect(
            rig.recorded.withLockedValue { $0 }.first?.result
                == .failure(ExchangeFailure(.clientClosed, "client sent none of the rest of its request for 60000 ms")))
    }

    /// Reading paused because the upstream takes nothing: the client is not idle, the upstream is.
    @Test func aClientHeldBackByTheUpstreamIsNotIdle() throws {
        let rig = try Rig()
        try uploadToAnUpstreamThatTakesNothing(rig)
        rig.client.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.read)
        #expect(rig.client.isActive)
        try expectTimeout(rig, "upstream took none of the request for 30000 ms")
    }

    /// An upstream that stops taking the request body times out like one that sends nothing.
    @Test func anUpstreamThatTakesNoneOfTheBodyTimesOut() throws {
        let rig = try Rig()
        try uploadToAnUpstreamThatTakesNothing(rig)
        try expectTimeout(rig, "upstream took none of the request for 30000 ms")
    }

    /// A request body under way to an upstream that has stopped taking it.
    func uploadToAnUpstreamThatTakesNothing(_ rig: Rig) throws {
        try rig.request(.PUT, "/upload", body: ["a"], end: false)
        let upstream = try rig.upstreams.connect()
        upstream.isWritable = false
        upstream.pipeline.fireChannelWritabilityChanged()
    }

    /// A gRPC call's upstream may stay silent up to the client's own deadline when that is
    /// longer than the configured limit, and as long as the client stays when the call has no
    /// deadline (a watch stream); other requests on an HTTP/2 stream keep the configured limit.
    @Test func aGRPCCallIsTimedByItsClientsDeadline() throws {
        let grpc = [("content-type", "application/grpc")]
        let timed = try Rig(stream: true)
        try timed.request(
            .POST, "/shop.v1.Recommendations/List", body: ["m"], headers: grpc + [("grpc-timeout", "100S")])
        _ = try timed.upstreams.connect()
        timed.loop.advanceTime(by: .seconds(99))
        #expect(timed.recorded.withLockedValue { $0 }.isEmpty && timed.stateName == "streaming")
        timed.loop.advanceTime(by: .seconds(2))
        #expect(
            timed.recorded.withLockedValue { $0 }.first?.result
                == .failure(ExchangeFailure(.timeout, "upstream sent nothing for 100000 ms")))

        let watch = try Rig(stream: true)
        try watch.request(.POST, "/shop.v1.Recommendations/List", body: ["m"], headers: grpc)
        let upstream = try watch.upstreams.connect()
        watch.loop.advanceTime(by: .hours(1))
        #expect(watch.recorded.withLockedValue { $0 }.isEmpty && watch.stateName == "streaming")
        try watch.respond(upstream)
        #expect(watch.recorded.withLockedValue { $0 }.first?.response?.status == 200)

        let plain = try Rig(stream: true)
        try plain.request(.POST, "/orders", body: ["m"], headers: [("grpc-timeout", "100S")])
        _ = try plain.upstreams.connect()
        try expectTimeout(plain, "upstream sent nothing for 30000 ms")
    }

    /// An event stream (`text/event-stream`) is quiet between events for as long as its server
    /// likes: once its head has come, the upstream timeout no longer applies; the client ends it.
    @Test func anEventStreamIsNotTimedOutBetweenEvents() throws {
        let rig = try Rig()
        try rig.request(.GET, "/events")
        let upstream = try rig.upstreams.connect()
        try upstream.writeInbound(
            ByteBuffer(
                string: "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
                    + "Transfer-Encoding: chunked\r\n\r\n9\r\ndata: 1\n\n\r\n"))
        rig.loop.advanceTime(by: .hours(1))
        #expect(rig.recorded.withLockedValue { $0 }.isEmpty && rig.stateName == "streaming")
        try upstream.writeInbound(ByteBuffer(string: "9\r\ndata: 2\n\n\r\n0\r\n\r\n"))
        let recorded = rig.recorded.withLockedValue { $0 }
        #expect(recorded.first?.response?.body.bytes == Data("data: 1\n\ndata: 2\n\n".utf8))
        // Before its head, an event stream's upstream is timed as any other.
        let waiting = try Rig()
        try waiting.request(.GET, "/events")
        _ = try waiting.upstreams.connect()
        try expectTimeout(waiting, "upstream sent nothing for 30000 ms")
    }

    @Test(
        arguments: [
            ("application/grpc", "100S", RequestRouting.SilenceLimit.atLeast(.seconds(100))),
            ("application/grpc+proto", "250m", .atLeast(.milliseconds(250))),
            ("application/grpc", "2H", .atLeast(.hours(2))),
            ("application/grpc", "3M", .atLeast(.minutes(3))), ("Application/GRPC", "7u", .atLeast(.microseconds(7))),
            ("application/grpc", "99999999n", .atLeast(.nanoseconds(99_999_999))), ("application/grpc", nil, .none),
            // More than 8 digits, no digits, an unknown unit, a sign: not a deadline.
            ("application/grpc", "123456789S", .none), ("application/grpc", "S", .none),
            ("application/grpc", "10x", .none),
            ("application/grpc", "-1S", .none), ("application/grpc", "+1S", .none),
            ("application/json", "100S", .configured), (nil, nil, .configured),
        ] as [(String?, String?, RequestRouting.SilenceLimit)])
    func grpcDeadlinesAreRead(contentType: String?, timeout: String?, limit: RequestRouting.SilenceLimit) {
        var head = HTTPRequestHead(version: .http2, method: .POST, uri: "/shop.v1.Recommendations/Get")
        if let contentType { head.headers.add(name: "content-type", value: contentType) }
        if let timeout { head.headers.add(name: "grpc-timeout", value: timeout) }
        #expect(RequestRouting.SilenceLimit.of(.parsed(head)) == limit)
        // The same call over HTTP/1.1, read from its bytes.
        var framer = HTTP1Framer(role: .request)
        var bytes = HTTP1Encoding.bytes(startLine: "POST /shop.v1.Recommendations/Get HTTP/1.1", head.headers)
        guard case .head(let wire)? = try? framer.next(&bytes) else {
            Issue.record("not framed")
            return
        }
        #expect(RequestRouting.SilenceLimit.of(.wire(wire)) == limit)
    }

    /// A deadline shorter than the configured limit leaves that limit: the client gives up first.
    @Test func theLongerOfTheDeadlineAndTheConfiguredLimitApplies() {
        let configured = TimeAmount.seconds(30)
        #expect(RequestRouting.SilenceLimit.configured.applied(to: configured) == configured)
        #expect(RequestRouting.SilenceLimit.atLeast(.seconds(5)).applied(to: configured) == configured)
        #expect(RequestRouting.SilenceLimit.atLeast(.seconds(100)).applied(to: configured) == .seconds(100))
        #expect(RequestRouting.SilenceLimit.none.applied(to: configured) == nil)
    }

    /// Nothing happens until the 30 s limit; then a 504 and the failure recorded as `detail`.
    func expectTimeout(_ rig: Rig, _ detail: String) throws {
        rig.loop.advanceTime(by: .seconds(29))
        #expect(rig.recorded.withLockedValue { $0 }.isEmpty)
        rig.loop.advanceTime(by: .seconds(2))
        #expect(try rig.answered().first == "504")
        #expect(rig.recorded.withLockedValue { $0 }.first?.result == .failure(ExchangeFailure(.timeout, detail)))
    }

    @Test func activityMovesTheDeadlineAndAStallAfterTheHeadClosesTheClient() throws {
        let rig = try Rig()
        try rig.request(.GET, "/slow")
        let upstream = try rig.upstreams.connect()
        rig.loop.advanceTime(by: .seconds(20))
        try rig.respondHeadOnly(upstream)
        // The timer set for t=30 s finds activity at 20 s and looks again at 50 s.
        rig.loop.advanceTime(by: .seconds(20))
        #expect(rig.recorded.withLockedValue { $0 }.isEmpty)
        #expect(rig.client.isActive)
        rig.loop.advanceTime(by: .seconds(11))
        // A response under way cannot be corrected: the client connection is closed.
        #expect(!rig.client.isActive)
        #expect(!upstream.isActive)
        #expect(rig.recorded.withLockedValue { $0 }.first?.response == nil)
    }

    @Test func anUpstreamThatClosesMidResponseClosesTheClientAndIsNoSample() throws {
        let rig = try Rig()
        try rig.request(.GET, "/orders/1")
        let upstream = try rig.upstreams.connect()
        try rig.respondHeadOnly(upstream)
        upstream.close(promise: nil)
        #expect(!rig.client.isActive)
        guard case .failure(let failure)? = rig.recorded.withLockedValue({ $0 }).first?.result else {
            Issue.record("no failure recorded")
            return
        }
        #expect(failure.kind == .upstreamClosed)
    }

    @Test func aClientThatLeavesMidExchangeIsRecordedAsSuchAndItsUpstreamClosed() throws {
        let rig = try Rig()
        try rig.request(.GET, "/orders/1")
        let upstream = try rig.upstreams.connect()
        rig.client.close(promise: nil)
        #expect(rig.stateName == "closed")
        #expect(!upstream.isActive)
        guard case .failure(let failure)? = rig.recorded.withLockedValue({ $0 }).first?.result else {
            Issue.record("no failure recorded")
            return
        }
        #expect(failure.kind == .clientClosed)
        #expect(rig.recorder.inFlight == 0)
    }

    @Test func aFullStoreHoldsTheNextRequestUntilThereIsRoom() throws {
        let rig = try Rig()
        rig.room.withLockedValue { $0 = false }
        try rig.request(.GET, "/first")
        let upstream = try rig.upstreams.connect()
        _ = try rig.sent(upstream)
        try rig.respond(upstream)
        #expect(rig.stateName == "waitingForRoom")
        #expect(!rig.handler.isReadingClient)
        try rig.request(.GET, "/second")
        #expect(try rig.sent(upstream).isEmpty)
        rig.room.withLockedValue { $0 = true }
        for resume in rig.resumes.withLockedValue({ $0 }) { resume() }
        rig.loop.run()
        #expect(try rig.sent(upstream) == ["GET /second host=orders.test:8080 [host]", "end"])
        #expect(rig.stateName == "streaming")
    }

    /// An HTTP/2 stream carries one request: with the store behind, that request is held before
    /// it goes upstream (the stream is not read, so its flow-control window stays shut).
    @Test func anHTTP2StreamsRequestWaitsForRoomBeforeItGoesUpstream() throws {
        let rig = try Rig(stream: true, roomAtStart: false)
        #expect(rig.stateName == "waitingForRoom")
        #expect(!rig.handler.isReadingClient)
        try rig.request(.POST, "/shop.v1.Recommendations/Get", body: ["message"])
        #expect(rig.upstreams.requested.isEmpty)
        rig.room.withLockedValue { $0 = true }
        for resume in rig.resumes.withLockedValue({ $0 }) { resume() }
        rig.loop.run()
        #expect(rig.stateName == "connecting")
        let upstream = try rig.upstreams.connect()
        #expect(
            try rig.sent(upstream) == [
                "POST /shop.v1.Recommendations/Get host=orders.test:8080 [host,transfer-encoding]", "message", "end",
            ])
        // With room, a stream's request goes on at once.
        let open = try Rig(stream: true)
        #expect(open.stateName == "idle" && open.handler.isReadingClient)
    }

    @Test func connectOnAReverseListenerIsRefusedAndTheConnectionClosed() throws {
        let rig = try Rig()
        try rig.client.writeInbound(ByteBuffer(string: "CONNECT x.test:443 HTTP/1.1\r\nHost: x.test:443\r\n\r\n"))
        #expect(try rig.answered().first == "405")
        #expect(!rig.client.isActive)
        #expect(rig.upstreams.requested.isEmpty)
    }

    @Test func aMalformedRequestIsAnsweredAndNeverRecorded() throws {
        let rig = try Rig()
        try rig.request(.POST, "/orders", body: ["{"], end: false)
        let upstream = try rig.upstreams.connect()
        try rig.client.writeInbound(ByteBuffer(string: "zz\r\n"))
        #expect(try rig.answered().first == "400")
        #expect(!rig.client.isActive)
        #expect(!upstream.isActive)
        #expect(rig.recorded.withLockedValue { $0 }.isEmpty)
        #expect(rig.recorder.inFlight == 0)
    }

    @Test func anIdleConnectionIsClosedOnlyWithNothingInFlight() throws {
        let rig = try Rig()
        try rig.request(.GET, "/slow")
        _ = try rig.upstreams.connect()
        rig.client.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.read)
        #expect(rig.client.isActive)
        rig.loop.advanceTime(by: .seconds(31))
        _ = try rig.answered()
        rig.client.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.read)
        #expect(!rig.client.isActive)
    }
}

/// Events that do not fit the state are answered explicitly, never acted on.
@Suite struct ConnectionStateMachineTests {
    let route = ListenerRoute.reverse(service: "orders", upstream: UpstreamURL.parse("http://orders.test:8080")!)
    let now = NIODeadline.uptimeNanoseconds(1_000_000_000)
    let head = RequestHead.parsed(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/a"))

    func connection() -> UpstreamConnection {
        let handler = UpstreamHandler()
        return UpstreamConnection(
            channel: EmbeddedChannel(handler: handler), handler: handler,
            target: UpstreamTarget(scheme: "http", host: "orders.test", port: 8080))
    }

    @Test func upstreamEventsWithNoExchangeAreIgnored() {
        var machine = ConnectionStateMachine(route: route, maxBody: 1024)
        guard case .none = machine.upstreamRead(.end(nil, [:]), now: now) else {
            Issue.record("an upstream part in idle was acted on")
            return
        }
        guard case .none = machine.upstreamFailed(nil) else {
            Issue.record("an upstream failure in idle was acted on")
            return
        }
        guard case .none = machine.timerFired(now: now, limit: .seconds(1), upstreamTakesMore: true) else {
            Issue.record("a timer in idle was acted on")
            return
        }
        #expect(machine.isIdle)
    }

    @Test func aConnectionForAnExchangeThatIsOverIsDiscarded() {
        var machine = ConnectionStateMachine(route: route, maxBody: 1024)
        guard case .connect(let exchange) = machine.clientRead(.head(head), now: now) else {
            Issue.record("a head did not start an exchange")
            return
        }
        _ = machine.clientClosed()
        guard case .discard = machine.upstreamConnected(connection(), for: exchange, now: now) else {
            Issue.record("a late connection was used")
            return
        }
        guard case .none = machine.upstreamConnectFailed(ChannelError.ioOnClosedChannel, for: exchange) else {
            Issue.record("a late connect failure was acted on")
            return
        }
    }

    @Test func partsAfterCloseAndStrayBodiesAreDropped() {
        var machine = ConnectionStateMachine(route: route, maxBody: 1024)
        guard case .none = machine.clientRead(.body(ByteBuffer(string: "x")), now: now) else {
            Issue.record("a body with no head was acted on")
            return
        }
        _ = machine.clientClosed()
        guard case .none = machine.clientRead(.head(head), now: now) else {
            Issue.record("a head after close was acted on")
            return
        }
        guard case .none = machine.malformedRequest(.badRequest) else {
            Issue.record("a parser error after close was acted on")
            return
        }
        #expect(machine.isClosed)
    }

    @Test func aResponseEndWithoutAHeadIsNotARecordedResponse() {
        var machine = ConnectionStateMachine(route: route, maxBody: 1024)
        guard case .connect(let exchange) = machine.clientRead(.head(head), now: now) else {
            Issue.record("a head did not start an exchange")
            return
        }
        _ = machine.upstreamConnected(connection(), for: exchange, now: now)
        guard case .none = machine.upstreamRead(.end(nil, [:]), now: now) else {
            Issue.record("an end without a head completed the exchange")
            return
        }
    }

    @Test func connectIsATunnelOnlyOnAForwardListener() {
        var forward = ConnectionStateMachine(route: .forward, maxBody: 1024)
        let connect = RequestHead.parsed(HTTPRequestHead(version: .http1_1, method: .CONNECT, uri: "api.test:443"))
        guard case .tunnel(let address) = forward.clientRead(.head(connect), now: now) else {
            Issue.record("CONNECT on a forward listener is no tunnel")
            return
        }
        #expect(address == ListenAddress(host: "api.test", port: 443))
        var reverse = ConnectionStateMachine(route: route, maxBody: 1024)
        guard
            case .respondAndClose(.methodNotAllowed, _) = reverse.clientRead(
                .head(connect), now: now)
        else {
            Issue.record("CONNECT on a reverse listener was not refused")
            return
        }
    }
}
