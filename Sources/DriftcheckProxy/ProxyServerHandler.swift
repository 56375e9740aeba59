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

/// A response of the proxy's own (an error it answers itself): one line of plain text.
enum ProxyAnswer {
    static func write(_ status: HTTPResponseStatus, message: String, close: Bool, _ context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "text/plain; charset=utf-8")
        headers.add(name: "content-length", value: String(message.utf8.count + 1))
        if close { headers.add(name: "connection", value: "close") }
        let head = HTTPResponseHead(version: .http1_1, status: status, headers: headers)
        context.write(NIOAny(HTTPServerResponsePart.head(head)), promise: nil)
        context.write(
            NIOAny(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: message + "\n")))), promise: nil)
        context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil)), promise: nil)
    }
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

/// The server side of one client connection. `ConnectionStateMachine` decides; this handler
/// performs: it talks to the channels, the upstream connections, the timer and the recorder.
final class ProxyServerHandler: ChannelInboundHandler, RemovableChannelHandler, UpstreamDelegate {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// The recording handlers for `route`, in pipeline order: encoder, decoder, this handler.
    static func pipeline(route: ListenerRoute, services: ProxyServices) -> [RemovableChannelHandler & ChannelHandler] {
        let encoder = HTTPResponseEncoder()
        let decoder = ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes))
        return [
            encoder, decoder, ProxyServerHandler(route: route, services: services, encoder: encoder, decoder: decoder),
        ]
    }

    private var machine: ConnectionStateMachine
    private let services: ProxyServices
    /// The HTTP/1.1 codec, for handing a CONNECT over; nil on an HTTP/2 stream.
    private let encoder: HTTPResponseEncoder?
    private let decoder: ByteToMessageHandler<HTTPRequestDecoder>?

    private var context: ChannelHandlerContext?
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

    init(
        route: ListenerRoute, services: ProxyServices, encoder: HTTPResponseEncoder?,
        decoder: ByteToMessageHandler<HTTPRequestDecoder>?
    ) {
        machine = ConnectionStateMachine(route: route, maxBody: services.configuration.maxBody)
        self.services = services
        self.encoder = encoder
        self.decoder = decoder
    }

    /// The state, for tests.
    var state: ConnectionStateMachine.State { machine.state }
    /// Whether the client's bytes are being read, for tests.
    var isReadingClient: Bool { !readingPaused }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        // An HTTP/2 stream carries one request, so there is no "next request" to hold: a store
        // that is behind holds the stream's request before it goes upstream instead (its flow
        // control window then stays shut, and the client waits).
        if encoder == nil { resume(context) }
    }

    // The handler and its context hold each other; letting go here frees both with the channel.
    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        unpark()
        self.context = nil
    }

    // MARK: Client side

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        perform(machine.clientRead(unwrapInboundIn(data), now: context.eventLoop.now), context)
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
            guard let encoder, let decoder else {
                respond(
                    .methodNotAllowed, message: "driftcheck: CONNECT is not accepted over HTTP/2", close: true, context)
                context.close(promise: nil)
                return
            }
            handOver(
                to: ConnectHandler(address: address, services: services, encoder: encoder, decoder: decoder), context)
        case .respondAndClose(let status, let message):
            respond(status, message: message, close: true, context)
            context.close(promise: nil)
        case .forward(let part, let upstream):
            upstream.channel.write(part, promise: nil)
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
        guard let parserError = error as? HTTPParserError else {
            context.close(promise: nil)
            return
        }
        // The connection ended in the middle of a request: not a malformed one, a client that
        // left (or that we closed for going quiet); `channelInactive` records it so.
        if parserError == .invalidEOFState { return }
        // A malformed request is answered, never forwarded and never recorded.
        let status: HTTPResponseStatus = parserError == .headerOverflow ? .requestHeaderFieldsTooLarge : .badRequest
        switch machine.malformedRequest(status) {
        case .dropAndRespond(let exchange, let upstream, let status):
            drop(exchange, upstream)
            respond(status, message: "driftcheck: malformed request (\(parserError))", close: true, context)
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
            connection.channel.write(HTTPClientRequestPart.head(exchange.routed.upstreamHead), promise: nil)
            for part in exchange.pending { connection.channel.write(part, promise: nil) }
            exchange.pending = []
            connection.channel.flush()
            if sendContinue {
                context.writeAndFlush(
                    wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .continue))), promise: nil)
            }
            armTimeout(exchange, context)
            syncReading(context)
        }
    }

    func upstreamRead(_ part: HTTPClientResponsePart) {
        guard let context else { return }
        switch machine.upstreamRead(part, now: context.eventLoop.now) {
        case .writeHead(let head):
            context.write(wrapOutboundOut(.head(head)), promise: nil)
        case .writeBody(let buffer):
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        case .complete(let exchange, let connection, let response, let reuseUpstream, let keepClient):
            let trailers =
                response.trailers.fields.isEmpty
                ? nil : HTTPHeaders(response.trailers.fields.map { ($0.name, $0.value) })
            context.writeAndFlush(wrapOutboundOut(.end(trailers)), promise: nil)
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
            respond(status, message: "driftcheck: \(exchange.service): \(failure.detail)", close: false, context)
            resume(context)
        case .respond(let status, keepAlive: false):
            respond(status, message: "driftcheck: \(exchange.service): \(failure.detail)", close: true, context)
            context.close(promise: nil)
        }
    }

    private func armTimeout(_ exchange: InFlight, _ context: ChannelHandlerContext) {
        // A pending timer looks at whichever exchange is current when it fires.
        guard timer == nil else { return }
        scheduleTimer(at: exchange.lastUpstreamActivity + services.configuration.upstreamTimeout, context)
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

    // MARK: Responses of the proxy's own

    private func respond(_ status: HTTPResponseStatus, message: String, close: Bool, _ context: ChannelHandlerContext) {
        ProxyAnswer.write(status, message: message, close: close, context)
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

    // MARK: CONNECT

    /// Gives the connection to `handler`: it goes in after this one, which then leaves.
    private func handOver(to handler: ConnectHandler, _ context: ChannelHandlerContext) {
        setReading(context.channel, false, context)
        do {
            try context.pipeline.syncOperations.addHandler(handler, position: .after(self))
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        } catch {
            context.close(promise: nil)
        }
    }
}
