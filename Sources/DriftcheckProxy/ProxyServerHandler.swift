import DriftcheckCore
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// Where upstream connections come from: the loop's pool, or a test's own.
protocol UpstreamSource: AnyObject {
    /// An idle keep-alive connection to `target`, if one is open.
    func takeIdle(_ target: UpstreamTarget) -> UpstreamConnection?
    /// An idle connection to `target`, or a new one.
    func acquire(_ target: UpstreamTarget) -> EventLoopFuture<UpstreamConnection>
    /// Takes back a connection whose exchange ended cleanly.
    func release(_ connection: UpstreamConnection)
}

/// What the handlers of every client connection share: one per event loop.
// Unchecked: the upstream pool it holds is used on its own loop only, as `UpstreamPool` says.
final class ProxyServices: @unchecked Sendable {
    /// HTTP/1.1 connections.
    let upstreams: UpstreamSource
    /// HTTP/2 connections: for `h2c://` upstreams, and for `http://` and `https://` ones when the
    /// client spoke HTTP/2.
    let http2Upstreams: UpstreamSource?
    let configuration: ProxyConfiguration
    let recorder: Recorder
    let interceptor: Interceptor?
    /// Whether the clients served speak HTTP/2, so that upstreams are spoken to in HTTP/2 too
    /// (h2c for `http://`, h2 by ALPN for `https://`).
    let prefersHTTP2: Bool

    init(
        upstreams: UpstreamSource, http2Upstreams: UpstreamSource? = nil, configuration: ProxyConfiguration,
        recorder: Recorder, interceptor: Interceptor?, prefersHTTP2: Bool = false
    ) {
        self.upstreams = upstreams
        self.http2Upstreams = http2Upstreams
        self.configuration = configuration
        self.recorder = recorder
        self.interceptor = interceptor
        self.prefersHTTP2 = prefersHTTP2
    }

    /// The same services for the streams of an HTTP/2 client.
    lazy var http2Streams = ProxyServices(
        upstreams: upstreams, http2Upstreams: http2Upstreams, configuration: configuration, recorder: recorder,
        interceptor: interceptor, prefersHTTP2: true)

    /// Where connections to `target` come from.
    func source(for target: UpstreamTarget) -> UpstreamSource {
        if let http2Upstreams, target.scheme == "h2c" || (prefersHTTP2 && target.scheme != "h2c") {
            return http2Upstreams
        }
        return upstreams
    }
}

/// The server side of one client connection (HTTP/1.1) or stream (HTTP/2).
/// `ConnectionStateMachine` decides; this handler performs: it talks to the channels, the
/// upstream connections, the timer and the recorder. Its two kinds, `HTTP1ServerHandler` and
/// `HTTP2StreamServerHandler`, read and write their wire.
class ProxyServerHandler: UpstreamDelegate {
    private var machine: ConnectionStateMachine
    let services: ProxyServices
    /// An HTTP/2 stream: one request, no CONNECT.
    private let isStream: Bool

    private(set) var context: ChannelHandlerContext?
    private var readingPaused = false
    /// The client went quiet in the middle of its request body while we were reading it.
    private var clientStalled = false
    private var upstreamPaused = false
    /// The upstream connection of the last exchange, kept for the next request on this client
    /// connection: the keep-alive case then touches no pool and no future.
    private var parked: UpstreamConnection?
    /// One upstream-timeout timer per client connection, re-armed lazily when it fires, instead
    /// of a timer scheduled and cancelled for every request.
    private var timer: Scheduled<Void>?

    init(route: ListenerRoute, services: ProxyServices, isStream: Bool) {
        machine = ConnectionStateMachine(route: route, maxBody: services.configuration.maxBody)
        self.services = services
        self.isStream = isStream
    }

    /// The state, for tests.
    var state: ConnectionStateMachine.State { machine.state }
    /// Whether the client's bytes are being read, for tests.
    var isReadingClient: Bool { !readingPaused }
    var isClosed: Bool { machine.isClosed }

    // MARK: Writing to the client, by wire

    /// Writes a part of the response to `exchange` (no flush).
    func writeResponse(_ part: ResponsePart, of exchange: InFlight, _ context: ChannelHandlerContext) {
        preconditionFailure("written by the wire's handler")
    }

    func writeContinue(_ context: ChannelHandlerContext) {
        preconditionFailure("written by the wire's handler")
    }

    /// Writes and flushes an answer of the proxy's own.
    func writeAnswer(_ status: HTTPResponseStatus, message: String, close: Bool, _ context: ChannelHandlerContext) {
        preconditionFailure("written by the wire's handler")
    }

    /// Gives the connection to the tunnel's handlers after `CONNECT`.
    func handOver(to address: ListenAddress, _ context: ChannelHandlerContext) {
        writeAnswer(.methodNotAllowed, message: "driftcheck: CONNECT is not accepted over HTTP/2", close: true, context)
        context.close(promise: nil)
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        // An HTTP/2 stream carries one request, so there is no "next request" to hold: a store
        // that is behind holds the stream's request before it goes upstream instead (its flow
        // control window then stays shut, and the client waits).
        if isStream { resume(context) }
    }

    // The handler and its context hold each other; letting go here frees both with the channel.
    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        unpark()
        self.context = nil
    }

    /// A part of the client's request, as its wire framed it.
    func clientRead(_ part: RequestPart, _ context: ChannelHandlerContext) {
        perform(machine.clientRead(part, now: context.eventLoop.now), context)
    }

    private func perform(_ action: ConnectionStateMachine.ClientReadAction, _ context: ChannelHandlerContext) {
        switch action {
        case .connect(let exchange):
            services.recorder.exchangeStarted()
            // The common keep-alive case needs no pause: an idle upstream connection is at hand.
            let source = services.source(for: exchange.target)
            if let connection = takeParked(exchange.target) ?? source.takeIdle(exchange.target) {
                perform(machine.upstreamConnected(connection, for: exchange, now: context.eventLoop.now), context)
                return
            }
            syncReading(context)
            source.acquire(exchange.target).assumeIsolated().whenComplete { result in
                guard let context = self.context else {
                    if case .success(let connection) = result { connection.channel.close(promise: nil) }
                    return
                }
                switch result {
                case .success(let connection):
                    self.perform(
                        self.machine.upstreamConnected(connection, for: exchange, now: context.eventLoop.now), context)
                case .failure(let error):
                    self.perform(self.machine.upstreamConnectFailed(error, for: exchange), context)
                }
            }
        case .tunnel(let address):
            setReading(context.channel, false, context)
            handOver(to: address, context)
        case .respondAndClose(let status, let message):
            writeAnswer(status, message: message, close: true, context)
            context.close(promise: nil)
        case .forward(let part, let exchange, let upstream):
            upstream.write(part, of: exchange.routed)
            if case .end = part { upstream.channel.flush() }
            syncReading(context)
        case .hold:
            syncReading(context)
        case .none:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        machine.upstream?.channel.flush()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if let upstream = machine.upstream { setReading(upstream.channel, context.channel.isWritable, context) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // A connection is idle with nothing in flight, or when its client stopped sending a
        // request body we were reading; a slow upstream is the upstream timeout's job.
        if event is IdleStateHandler.IdleStateEvent {
            if machine.current == nil {
                context.close(promise: nil)
                return
            }
            if machine.uploadingTo != nil && !readingPaused {
                clientStalled = true
                context.close(promise: nil)
                return
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        unpark()
        if case .abandon(let exchange, let upstream) = machine.clientClosed() {
            upstream?.handler.delegate = nil
            upstream?.channel.close(promise: nil)
            let idle = services.configuration.idleTimeout.nanoseconds / 1_000_000
            let detail =
                clientStalled
                ? "client sent none of the rest of its request for \(idle) ms"
                : "client closed the connection before the exchange completed"
            record(exchange, .failure(ExchangeFailure(.clientClosed, detail)), context)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    /// The client sent something that is not an HTTP request: answered, never forwarded and
    /// never recorded.
    func malformedRequest(_ error: HTTP1FramingError, _ context: ChannelHandlerContext) {
        let status: HTTPResponseStatus = error == .headTooLarge ? .requestHeaderFieldsTooLarge : .badRequest
        switch machine.malformedRequest(status) {
        case .dropAndRespond(let exchange, let upstream, let status):
            drop(exchange, upstream)
            writeAnswer(status, message: "driftcheck: malformed request (\(error))", close: true, context)
            context.close(promise: nil)
        case .dropAndClose(let exchange, let upstream):
            drop(exchange, upstream)
            context.close(promise: nil)
        case .none:
            break
        }
    }

    private func drop(_ exchange: InFlight?, _ upstream: UpstreamConnection?) {
        upstream?.handler.delegate = nil
        upstream?.channel.close(promise: nil)
        if exchange != nil { services.recorder.exchangeEnded() }
    }

    // MARK: Upstream side

    private func perform(_ action: ConnectionStateMachine.ConnectedAction, _ context: ChannelHandlerContext) {
        switch action {
        case .discard(let connection):
            connection.channel.close(promise: nil)
        case .send(let exchange, let connection, let sendContinue):
            connection.handler.delegate = self
            connection.write(.head(exchange.clientHead), of: exchange.routed)
            for part in exchange.pending { connection.write(part, of: exchange.routed) }
            exchange.pending = []
            connection.channel.flush()
            if sendContinue { writeContinue(context) }
            armTimeout(exchange, context)
            syncReading(context)
        }
    }

    func upstreamRead(_ part: ResponsePart) {
        guard let context else { return }
        switch machine.upstreamRead(part, now: context.eventLoop.now) {
        case .write(let part, let exchange):
            writeResponse(part, of: exchange, context)
        case .complete(let exchange, let connection, let response, let end, let reuseUpstream, let keepClient):
            writeResponse(end, of: exchange, context)
            context.flush()
            connection.handler.delegate = nil
            if reuseUpstream {
                park(connection, context)
            } else if !(connection.isStream && exchange.requestComplete) {
                connection.channel.close(promise: nil)
            }
            record(exchange, .response(response), context)
            if keepClient { resume(context) } else { context.close(promise: nil) }
        case .none:
            break
        }
    }

    func upstreamReadComplete() {
        context?.flush()
    }

    func upstreamWritabilityChanged(_ isWritable: Bool) {
        guard let context else { return }
        syncReading(context)
    }

    func upstreamFailed(_ error: Error?) {
        guard let context else { return }
        perform(machine.upstreamFailed(error), context)
    }

    private func perform(_ action: ConnectionStateMachine.FailureAction, _ context: ChannelHandlerContext) {
        guard case .fail(let exchange, let connection, let failure, let reply) = action else { return }
        connection?.handler.delegate = nil
        connection?.channel.close(promise: nil)
        record(exchange, .failure(failure), context)
        switch reply {
        case .close:
            context.close(promise: nil)
        case .respond(let status, keepAlive: true):
            writeAnswer(status, message: "driftcheck: \(exchange.service): \(failure.detail)", close: false, context)
            resume(context)
        case .respond(let status, keepAlive: false):
            writeAnswer(status, message: "driftcheck: \(exchange.service): \(failure.detail)", close: true, context)
            context.close(promise: nil)
        }
    }

    private func armTimeout(_ exchange: InFlight, _ context: ChannelHandlerContext) {
        // A pending timer looks at whichever exchange is current when it fires.
        guard timer == nil, let limit = exchange.silence.applied(to: services.configuration.upstreamTimeout)
        else { return }
        scheduleTimer(at: exchange.lastUpstreamActivity + limit, context)
    }

    private func scheduleTimer(at deadline: NIODeadline, _ context: ChannelHandlerContext) {
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
            self.timer = nil
            guard let context = self.context else { return }
            switch self.machine.timerFired(
                now: context.eventLoop.now, limit: self.services.configuration.upstreamTimeout,
                upstreamTakesMore: self.machine.uploadingTo?.channel.isWritable ?? false)
            {
            case .rearm(let deadline): self.scheduleTimer(at: deadline, context)
            case .fail(let action): self.perform(action, context)
            case .none: break
            }
        }
    }

    // MARK: Between exchanges

    private func record(_ exchange: InFlight, _ result: ExchangeResult, _ context: ChannelHandlerContext) {
        services.recorder.finish(exchange.exchange(result: result, now: context.eventLoop.now))
    }

    /// Picks up held pipelined requests and reading once an exchange is over, if the store has room.
    private func resume(_ context: ChannelHandlerContext) {
        let loop = context.eventLoop
        let room = services.recorder.waitForRoom {
            let handler = NIOLoopBound(self, eventLoop: loop)
            return { loop.execute { handler.value.roomAvailable() } }
        }
        if !room { machine.storeFull() }
        drainHeld(context)
    }

    private func roomAvailable() {
        guard let context else { return }
        machine.roomAvailable()
        drainHeld(context)
    }

    private func drainHeld(_ context: ChannelHandlerContext) {
        while let part = machine.nextHeld() {
            perform(machine.clientRead(part, fromHeld: true, now: context.eventLoop.now), context)
        }
        syncReading(context)
    }

    private func takeParked(_ target: UpstreamTarget) -> UpstreamConnection? {
        guard let connection = parked, connection.target == target else { return nil }
        parked = nil
        guard connection.channel.isActive else { return nil }
        return connection
    }

    private func park(_ connection: UpstreamConnection, _ context: ChannelHandlerContext) {
        if upstreamPaused {
            upstreamPaused = false
            connection.channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
            connection.channel.read()
        }
        if let previous = parked { services.source(for: previous.target).release(previous) }
        parked = connection
    }

    /// Hands the parked connection to the loop's pool when this client connection goes away.
    private func unpark() {
        guard let connection = parked else { return }
        parked = nil
        services.source(for: connection.target).release(connection)
    }

    // MARK: Flow control

    /// Reads from the client when the state wants its bytes and the upstream can take them.
    private func syncReading(_ context: ChannelHandlerContext) {
        let upstreamWritable = machine.uploadingTo?.channel.isWritable ?? true
        setReading(context.channel, machine.wantsClientReads && upstreamWritable, context)
    }

    private func setReading(_ channel: Channel, _ on: Bool, _ context: ChannelHandlerContext) {
        if channel === context.channel {
            // Toggling autoRead costs a future each time; skip it when nothing changes.
            guard readingPaused == on else { return }
            readingPaused = !on
        } else {
            upstreamPaused = !on
        }
        channel.setOption(ChannelOptions.autoRead, value: on).whenFailure { _ in }
        if on { channel.read() }
    }
}

/// The server side of an HTTP/1.1 client connection: requests framed on the bytes as they came,
/// forwarded with only their heads rewritten; responses likewise.
final class HTTP1ServerHandler: ProxyServerHandler, ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var framer = HTTP1Framer(role: .request)
    /// Bytes read and not framed yet.
    private var inbound: ByteBuffer?
    /// How the body of the response being written goes to this client.
    private var writing = HTTP1BodyWriting.asReceived
    private var handedOver = false

    init(route: ListenerRoute, services: ProxyServices) {
        super.init(route: route, services: services, isStream: false)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        if inbound == nil { inbound = buffer } else { inbound!.writeBuffer(&buffer) }
        do {
            while !handedOver && !isClosed, let part = try framer.next(&inbound!) {
                clientRead(RequestPart(part, RequestHead.wire), context)
            }
        } catch {
            malformedRequest(error, context)
        }
        if inbound?.readableBytes == 0 { inbound = nil }
    }

    override func writeResponse(_ part: ResponsePart, of exchange: InFlight, _ context: ChannelHandlerContext) {
        if case .head(let head) = part {
            context.write(wrapOutboundOut(responseHead(head, exchange)), promise: nil)
            return
        }
        writing.bytes(part) { context.write(wrapOutboundOut($0), promise: nil) }
    }

    /// The head for this client, and how the body follows it: as it came when its framing suits
    /// the client; content only, ending with the connection, when it does not (chunks to an
    /// HTTP/1.0 client, a body delimited by the upstream's close); chunks for an HTTP/2
    /// upstream's body of unknown length.
    private func responseHead(_ head: ResponseHead, _ exchange: InFlight) -> ByteBuffer {
        let request = exchange.clientHead
        let isHTTP10 = request.version.minor == 0
        switch head.form {
        case .wire(let wire):
            switch wire.framing {
            case .chunked where isHTTP10, .untilClose: writing = .contentOnly
            default: writing = .asReceived
            }
            exchange.closesClient = writing == .contentOnly
            let dechunked = wire.framing == .chunked && writing == .contentOnly
            return wire.rewritten(
                startLine: "HTTP/1.\(request.version.minor) \(wire.status) \(wire.reason)",
                adding: Self.connectionField(request, closing: exchange.closesClient).map { [("Connection", $0)] }
                    ?? [],
                dropping: { wire.isHopByHop($0) || (dechunked && wire.field($0, is: "transfer-encoding")) })
        case .parsed(let parsed):
            var response = RequestRouting.clientResponseHead(parsed, for: request)
            let hasLength = response.headers.contains(name: "content-length")
            let hasNoBody =
                request.method == "HEAD" || parsed.status.code < 200 || parsed.status == .noContent
                || parsed.status == .notModified
            if hasLength || hasNoBody {
                writing = .contentOnly
            } else if isHTTP10 {
                writing = .contentOnly
                exchange.closesClient = true
            } else {
                writing = .chunked
                response.headers.add(name: "transfer-encoding", value: "chunked")
            }
            if let connection = Self.connectionField(request, closing: exchange.closesClient) {
                response.headers.add(name: "connection", value: connection)
            }
            return HTTP1Encoding.bytes(
                startLine: HTTP1Encoding.statusLine(request.version, response.status), response.headers)
        }
    }

    /// The Connection field a response to `request` needs: `close` when the connection ends after
    /// it, `keep-alive` when an HTTP/1.0 client asked to keep it (HTTP/1.0 closes by default).
    private static func connectionField(_ request: RequestHead, closing: Bool) -> String? {
        if closing || !request.isKeepAlive { return "close" }
        return request.version.minor == 0 ? "keep-alive" : nil
    }

    override func writeContinue(_ context: ChannelHandlerContext) {
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "HTTP/1.1 100 Continue\r\n\r\n")), promise: nil)
    }

    override func writeAnswer(
        _ status: HTTPResponseStatus, message: String, close: Bool, _ context: ChannelHandlerContext
    ) {
        context.writeAndFlush(
            wrapOutboundOut(ProxyAnswer.bytes(status, message: message, close: close)), promise: nil)
    }

    /// Gives the connection to the tunnel's handler, with the bytes the client sent after
    /// `CONNECT`: it goes in after this one, which then leaves.
    override func handOver(to address: ListenAddress, _ context: ChannelHandlerContext) {
        handedOver = true
        let leftover = inbound?.readableBytes == 0 ? nil : inbound
        inbound = nil
        do {
            try context.pipeline.syncOperations.addHandler(
                ConnectHandler(address: address, services: services, leftover: leftover), position: .after(self))
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        } catch {
            context.close(promise: nil)
        }
    }
}

/// The server side of one HTTP/2 stream, in NIO's HTTP/1 view of it.
final class HTTP2StreamServerHandler: ProxyServerHandler, ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    init(route: ListenerRoute, services: ProxyServices) {
        super.init(route: route, services: services, isStream: true)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): clientRead(.head(.parsed(head)), context)
        case .body(let buffer): clientRead(.body(buffer), context)
        case .end(let trailers): clientRead(.end(nil, trailers ?? [:]), context)
        }
    }

    override func writeResponse(_ part: ResponsePart, of exchange: InFlight, _ context: ChannelHandlerContext) {
        switch part {
        case .head(let head):
            let response: HTTPResponseHead
            switch head.form {
            case .parsed(let parsed): response = parsed
            case .wire(let wire):
                response = HTTPResponseHead(
                    version: .http1_1, status: HTTPResponseStatus(statusCode: wire.status, reasonPhrase: wire.reason),
                    headers: wire.headers)
            }
            context.write(
                wrapOutboundOut(.head(RequestRouting.clientResponseHead(response, for: exchange.clientHead))),
                promise: nil)
        case .body(let buffer):
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        case .framing:
            break
        case .end(_, let trailers):
            context.write(wrapOutboundOut(.end(trailers.isEmpty ? nil : trailers)), promise: nil)
        }
    }

    override func writeContinue(_ context: ChannelHandlerContext) {
        context.writeAndFlush(
            wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .continue))), promise: nil)
    }

    override func writeAnswer(
        _ status: HTTPResponseStatus, message: String, close: Bool, _ context: ChannelHandlerContext
    ) {
        context.write(wrapOutboundOut(.head(ProxyAnswer.head(status, message: message, close: close))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ProxyAnswer.body(message)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }
}
