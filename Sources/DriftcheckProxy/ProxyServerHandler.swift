import DriftcheckCore
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// Body bytes kept for the store: the first `limit` bytes and the size of the whole.
struct Capture {
    // Data from the start, so the store gets the bytes without another copy.
    var bytes = Data()
    var size = 0

    mutating func append(_ part: ByteBuffer, limit: Int) {
        size += part.readableBytes
        let room = limit - bytes.count
        guard room > 0 else { return }
        let count = min(room, part.readableBytes)
        part.withUnsafeReadableBytes { raw in
            guard let base = raw.baseAddress else { return }
            bytes.append(base.assumingMemoryBound(to: UInt8.self), count: count)
        }
    }

    /// Sizes the buffer once from Content-Length: growing it by doubling would copy the body
    /// several times and leave up to twice its size allocated while it waits for the store.
    mutating func expect(_ headers: HTTPHeaders, limit: Int) {
        guard let text = headers.first(name: "content-length"), let length = Int(text), length > 0 else { return }
        bytes.reserveCapacity(min(length, limit))
    }

    var captured: CapturedBody { CapturedBody(bytes: bytes, size: size) }
}

/// One request travelling through the proxy.
final class InFlight {
    let service: String
    let target: UpstreamTarget
    let clientHead: HTTPRequestHead
    let upstreamHead: HTTPRequestHead
    let path: String
    let query: String?
    let expectContinue: Bool
    let startedAt = Date()
    let start = NIODeadline.now()
    var requestBody = Capture()
    var responseBody = Capture()
    var requestComplete = false
    var upstream: UpstreamConnection?
    var pending: [HTTPClientRequestPart] = []
    var responseHead: HTTPResponseHead?
    var lastUpstreamActivity = NIODeadline.now()

    init(
        service: String, target: UpstreamTarget, clientHead: HTTPRequestHead, upstreamHead: HTTPRequestHead,
        path: String, query: String?, expectContinue: Bool
    ) {
        self.service = service
        self.target = target
        self.clientHead = clientHead
        self.upstreamHead = upstreamHead
        self.path = path
        self.query = query
        self.expectContinue = expectContinue
    }

    func exchange(result: ExchangeResult) -> Exchange {
        let request = RecordedRequest(
            method: clientHead.method.rawValue, scheme: target.scheme, host: target.host, port: target.port,
            path: path, query: query,
            headers: HeaderFields(fields: clientHead.headers.map { .init($0.name, $0.value) }),
            body: requestBody.captured)
        let elapsed = NIODeadline.now() - start
        return Exchange(
            service: service, request: request, result: result, startedAt: startedAt,
            duration: Double(elapsed.nanoseconds) / 1e9)
    }
}

/// The server side of one client connection: routes each request upstream, streams both
/// bodies with back-pressure, and hands the finished exchange to the recorder.
final class ProxyServerHandler: ChannelInboundHandler, RemovableChannelHandler, UpstreamDelegate {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let route: ListenerRoute
    private let pool: UpstreamPool
    private let configuration: ProxyConfiguration
    private let recorder: Recorder
    private let interceptor: Interceptor?
    private let encoder: HTTPResponseEncoder
    private let decoder: ByteToMessageHandler<HTTPRequestDecoder>

    private var context: ChannelHandlerContext!
    private var current: InFlight?
    private var pipelined: [HTTPServerRequestPart] = []
    private var closing = false
    private var readingPaused = false
    private var upstreamPaused = false
    /// The store is behind: the next request waits until it has room.
    private var waitingForRoom = false
    /// The upstream connection of the last exchange, kept for the next request on this client
    /// connection: the keep-alive case then touches no pool and no future.
    private var parked: UpstreamConnection?
    /// One upstream-timeout timer per client connection, re-armed lazily when it fires, instead
    /// of a timer scheduled and cancelled for every request.
    private var timer: Scheduled<Void>?

    init(
        route: ListenerRoute, pool: UpstreamPool, configuration: ProxyConfiguration, recorder: Recorder,
        interceptor: Interceptor?, encoder: HTTPResponseEncoder, decoder: ByteToMessageHandler<HTTPRequestDecoder>
    ) {
        self.route = route
        self.pool = pool
        self.configuration = configuration
        self.recorder = recorder
        self.interceptor = interceptor
        self.encoder = encoder
        self.decoder = decoder
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    // The handler and its context hold each other; letting go here frees both with the channel.
    // Callbacks that can still arrive (upstream reads, timers, connects) check `current` or
    // `context` first.
    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        unpark()
        self.context = nil
    }

    // MARK: Client side

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        let part = unwrapInboundIn(data)
        // A part after a complete request belongs to the next, pipelined request: hold it.
        if waitingForRoom || !pipelined.isEmpty || current?.requestComplete == true {
            pipelined.append(part)
            setReading(context.channel, false)
            return
        }
        handle(part)
    }

    private func handle(_ part: HTTPServerRequestPart) {
        switch part {
        case .head(let head):
            begin(head)
        case .body(let buffer):
            guard let exchange = current else { return }
            exchange.requestBody.append(buffer, limit: configuration.maxBody)
            send(.body(.byteBuffer(buffer)), for: exchange)
        case .end:
            guard let exchange = current else { return }
            exchange.requestComplete = true
            send(.end(nil), for: exchange)
            exchange.upstream?.channel.flush()
            exchange.lastUpstreamActivity = .now()
        }
    }

    private func send(_ part: HTTPClientRequestPart, for exchange: InFlight) {
        if let upstream = exchange.upstream {
            upstream.channel.write(part, promise: nil)
        } else {
            exchange.pending.append(part)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        current?.upstream?.channel.flush()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if let upstream = current?.upstream { setReading(upstream.channel, context.channel.isWritable) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // Only a connection with nothing in flight is idle; a slow upstream is the timeout's job.
        if event is IdleStateHandler.IdleStateEvent, current == nil {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        closing = true
        timer?.cancel()
        timer = nil
        unpark()
        if let exchange = current {
            exchange.upstream?.channel.close(promise: nil)
            finish(
                exchange,
                result: .failure(
                    ExchangeFailure(.clientClosed, "client closed the connection before the exchange completed"))
            )
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        guard let parserError = error as? HTTPParserError else {
            context.close(promise: nil)
            return
        }
        // A malformed request is answered, never forwarded and never recorded.
        if let exchange = current {
            exchange.upstream?.channel.close(promise: nil)
            current = nil
            recorder.exchangeEnded()
            guard exchange.responseHead == nil else {
                context.close(promise: nil)
                return
            }
        }
        let status: HTTPResponseStatus =
            parserError == .headerOverflow ? .requestHeaderFieldsTooLarge : .badRequest
        respondAndClose(status, message: "driftcheck: malformed request (\(parserError))")
    }

    // MARK: Routing

    private func begin(_ head: HTTPRequestHead) {
        if head.method == .CONNECT {
            guard route == .forward else {
                respondAndClose(
                    .methodNotAllowed, message: "driftcheck: CONNECT is only accepted in forward-proxy mode")
                return
            }
            guard let address = ListenAddress.parse(head.uri), address.port > 0 else {
                respondAndClose(.badRequest, message: "driftcheck: CONNECT needs host:port")
                return
            }
            if let interceptor, interceptor.matches(address.host) {
                intercept(address, interceptor)
            } else {
                startTunnel(address)
            }
            return
        }
        let service: String
        let target: UpstreamTarget
        var originForm: String
        let isAbsolute = head.uri.hasPrefix("http://") || head.uri.hasPrefix("https://")
        switch route {
        case .reverse(let name, let upstream):
            service = name
            target = UpstreamTarget(scheme: upstream.scheme, host: upstream.host, port: upstream.port)
            originForm = isAbsolute ? Self.originForm(of: head.uri) ?? "/" : head.uri
            originForm = upstream.basePath + originForm
        case .forward:
            guard isAbsolute, let url = UpstreamURL.parse(head.uri) else {
                respondAndClose(
                    .badRequest, message: "driftcheck: forward proxy expects absolute-form requests (http://host/path)")
                return
            }
            service = ServiceName.forHost(url.host, port: url.port)
            target = UpstreamTarget(scheme: url.scheme, host: url.host, port: url.port)
            originForm = Self.originForm(of: head.uri) ?? "/"
        }
        guard originForm.hasPrefix("/") || originForm == "*" else {
            respondAndClose(.badRequest, message: "driftcheck: invalid request target")
            return
        }
        let recordedTarget = isAbsolute ? (Self.originForm(of: head.uri) ?? "/") : head.uri
        let (path, query) = Self.split(recordedTarget)

        var headers = head.headers
        HopByHop.strip(&headers)
        headers.remove(name: "proxy-authorization")
        let expectContinue = headers["expect"].contains { $0.lowercased() == "100-continue" }
        headers.remove(name: "expect")
        headers.replaceOrAdd(name: "host", value: target.authority)
        let upstreamHead = HTTPRequestHead(version: .http1_1, method: head.method, uri: originForm, headers: headers)

        let exchange = InFlight(
            service: service, target: target, clientHead: head, upstreamHead: upstreamHead, path: path, query: query,
            expectContinue: expectContinue)
        exchange.requestBody.expect(head.headers, limit: configuration.maxBody)
        current = exchange
        recorder.exchangeStarted()
        // The common keep-alive case needs no pause: an idle upstream connection is at hand.
        if let connection = takeParked(target) ?? pool.takeIdle(target) {
            connected(.success(connection), exchange)
            return
        }
        setReading(context.channel, false)
        pool.acquire(target).assumeIsolated().whenComplete { result in
            self.connected(result, exchange)
        }
    }

    private func connected(_ result: Result<UpstreamConnection, Error>, _ exchange: InFlight) {
        guard current === exchange else {
            if case .success(let connection) = result { connection.channel.close(promise: nil) }
            return
        }
        switch result {
        case .failure(let error):
            var timedOut = false
            if case ChannelError.connectTimeout = error { timedOut = true }
            fail(
                exchange, status: timedOut ? .gatewayTimeout : .badGateway,
                failure: ExchangeFailure(
                    timedOut ? .timeout : .connect,
                    "cannot connect to \(exchange.target.scheme)://\(exchange.target.authority): \(error)"))
        case .success(let connection):
            exchange.upstream = connection
            connection.handler.delegate = self
            connection.channel.write(HTTPClientRequestPart.head(exchange.upstreamHead), promise: nil)
            for part in exchange.pending { connection.channel.write(part, promise: nil) }
            exchange.pending = []
            connection.channel.flush()
            if exchange.expectContinue && !exchange.requestComplete {
                context.writeAndFlush(
                    wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .continue))), promise: nil)
            }
            exchange.lastUpstreamActivity = .now()
            armTimeout(exchange)
            if !exchange.requestComplete && !connection.channel.isWritable {
                setReading(context.channel, false)
            } else if !exchange.requestComplete {
                setReading(context.channel, true)
            }
        }
    }

    // MARK: Upstream side

    func upstreamRead(_ part: HTTPClientResponsePart) {
        guard let exchange = current else { return }
        exchange.lastUpstreamActivity = .now()
        switch part {
        case .head(let head):
            exchange.responseHead = head
            exchange.responseBody.expect(head.headers, limit: configuration.maxBody)
            var headers = head.headers
            HopByHop.strip(&headers)
            let version = exchange.clientHead.version
            if version.major == 1 && version.minor == 0 {
                headers.remove(name: "transfer-encoding")
            }
            if !exchange.clientHead.isKeepAlive { headers.add(name: "connection", value: "close") }
            context.write(
                wrapOutboundOut(.head(HTTPResponseHead(version: version, status: head.status, headers: headers))),
                promise: nil)
        case .body(let buffer):
            exchange.responseBody.append(buffer, limit: configuration.maxBody)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        case .end:
            guard let head = exchange.responseHead else { return }
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            if let connection = exchange.upstream {
                connection.handler.delegate = nil
                if exchange.requestComplete && head.isKeepAlive {
                    park(connection)
                } else {
                    connection.channel.close(promise: nil)
                }
            }
            let response = RecordedResponse(
                status: Int(head.status.code),
                headers: HeaderFields(fields: head.headers.map { .init($0.name, $0.value) }),
                body: exchange.responseBody.captured)
            let keepAlive = exchange.clientHead.isKeepAlive && exchange.requestComplete
            finish(exchange, result: .response(response))
            if !keepAlive { closeClient() } else { resume() }
        }
    }

    func upstreamReadComplete() {
        guard current != nil || context != nil else { return }
        context?.flush()
    }

    func upstreamWritabilityChanged(_ isWritable: Bool) {
        guard current?.requestComplete == false else { return }
        setReading(context.channel, isWritable)
    }

    func upstreamFailed(_ error: Error?) {
        guard let exchange = current else { return }
        let reason =
            error.map { "upstream failed: \($0)" } ?? "upstream closed the connection before the response completed"
        fail(exchange, status: .badGateway, failure: ExchangeFailure(.upstreamClosed, reason))
    }

    private func armTimeout(_ exchange: InFlight) {
        // A pending timer looks at whichever exchange is current when it fires.
        guard timer == nil else { return }
        scheduleTimer(at: exchange.lastUpstreamActivity + configuration.upstreamTimeout)
    }

    private func scheduleTimer(at deadline: NIODeadline) {
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
            self.timer = nil
            guard self.context != nil, let exchange = self.current, exchange.upstream != nil else { return }
            let limit = self.configuration.upstreamTimeout
            // Activity since arming moves the deadline instead of rescheduling on every read.
            if NIODeadline.now() - exchange.lastUpstreamActivity < limit {
                self.scheduleTimer(at: exchange.lastUpstreamActivity + limit)
                return
            }
            self.fail(
                exchange, status: .gatewayTimeout,
                failure: ExchangeFailure(.timeout, "upstream sent nothing for \(limit.nanoseconds / 1_000_000) ms"))
        }
    }

    private func takeParked(_ target: UpstreamTarget) -> UpstreamConnection? {
        guard let connection = parked, connection.target == target else { return nil }
        parked = nil
        guard connection.channel.isActive else { return nil }
        return connection
    }

    private func park(_ connection: UpstreamConnection) {
        if upstreamPaused {
            upstreamPaused = false
            connection.channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
            connection.channel.read()
        }
        if let previous = parked { pool.release(previous) }
        parked = connection
    }

    /// Hands the parked connection to the loop's pool when this client connection goes away.
    private func unpark() {
        guard let connection = parked else { return }
        parked = nil
        pool.release(connection)
    }

    /// Ends `exchange` as a failure: the client gets `status` if nothing was sent yet, else the
    /// connection is closed, since a half-sent response cannot be corrected.
    private func fail(_ exchange: InFlight, status: HTTPResponseStatus, failure: ExchangeFailure) {
        let reason = failure.detail
        if let connection = exchange.upstream {
            connection.handler.delegate = nil
            connection.channel.close(promise: nil)
        }
        let headSent = exchange.responseHead != nil
        let requestComplete = exchange.requestComplete
        finish(exchange, result: .failure(failure))
        if headSent {
            closeClient()
        } else if requestComplete && exchange.clientHead.isKeepAlive {
            respond(status, message: "driftcheck: \(exchange.service): \(reason)", close: false)
            resume()
        } else {
            respondAndClose(status, message: "driftcheck: \(exchange.service): \(reason)")
        }
    }

    private func finish(_ exchange: InFlight, result: ExchangeResult) {
        guard current === exchange else { return }
        current = nil
        recorder.finish(exchange.exchange(result: result))
    }

    /// Picks up held pipelined requests and reading once an exchange is over.
    private func resume() {
        guard !closing, context != nil else { return }
        if !waitingForRoom {
            waitingForRoom = !recorder.waitForRoom {
                let loop = context.eventLoop
                let handler = NIOLoopBound(self, eventLoop: loop)
                return { loop.execute { handler.value.roomAvailable() } }
            }
        }
        guard !waitingForRoom else {
            setReading(context.channel, false)
            return
        }
        while !pipelined.isEmpty && current?.requestComplete != true && !closing {
            handle(pipelined.removeFirst())
        }
        if current == nil { setReading(context.channel, true) }
    }

    private func roomAvailable() {
        waitingForRoom = false
        resume()
    }

    // MARK: Responses of the proxy's own

    private func respond(_ status: HTTPResponseStatus, message: String, close: Bool) {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "text/plain; charset=utf-8")
        headers.add(name: "content-length", value: String(message.utf8.count + 1))
        if close { headers.add(name: "connection", value: "close") }
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: message + "\n")))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    private func respondAndClose(_ status: HTTPResponseStatus, message: String) {
        respond(status, message: message, close: true)
        closeClient()
    }

    private func closeClient() {
        closing = true
        pipelined.removeAll()
        context.close(promise: nil)
    }

    private func setReading(_ channel: Channel, _ on: Bool) {
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

    // MARK: CONNECT tunnels

    private func startTunnel(_ address: ListenAddress) {
        closing = true
        setReading(context.channel, false)
        ClientBootstrap(group: context.eventLoop)
            .connectTimeout(configuration.connectTimeout)
            .connect(host: configuration.address(for: address.host), port: address.port)
            .assumeIsolated()
            .whenComplete { result in
                guard self.context != nil else {
                    if case .success(let peer) = result { peer.close(promise: nil) }
                    return
                }
                switch result {
                case .failure(let error):
                    self.closing = false
                    self.respondAndClose(.badGateway, message: "driftcheck: cannot connect to \(address): \(error)")
                case .success(let peer):
                    self.recorder.tunnelled(address.description)
                    self.glue(to: peer)
                }
            }
    }

    private func glue(to peer: Channel) {
        let client = context.channel
        do {
            let sync = client.pipeline.syncOperations
            try GlueHandler.join(sync, at: .after(decoder), to: peer)
            sync.removeHandler(decoder, promise: nil)
            sync.removeHandler(encoder, promise: nil)
            client.writeAndFlush(ByteBuffer(string: "HTTP/1.1 200 Connection Established\r\n\r\n"), promise: nil)
            setReading(client, true)
            // Last: removing this handler lets go of its context.
            sync.removeHandler(context: context, promise: nil)
        } catch {
            peer.close(promise: nil)
            client.close(promise: nil)
        }
    }

    /// Terminates the tunnel's TLS with a certificate for its host and records what it carries:
    /// the connection continues as one to a reverse listener for `https://host:port`.
    private func intercept(_ address: ListenAddress, _ interceptor: Interceptor) {
        let tls: NIOSSLContext
        do {
            tls = try interceptor.context(for: address.host)
        } catch {
            respondAndClose(
                .badGateway, message: "driftcheck: cannot issue a certificate for \(address.host): \(error)")
            return
        }
        // The decoder is still handing out this request's parts: the pipeline changes once it is done.
        closing = true
        setReading(context.channel, false)
        context.eventLoop.assumeIsolated().execute {
            guard self.context != nil else { return }
            self.switchToTLS(address, tls)
        }
    }

    private func switchToTLS(_ address: ListenAddress, _ tls: NIOSSLContext) {
        let client = context.channel
        let encoder = HTTPResponseEncoder()
        let decoder = ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes))
        let upstream = UpstreamURL(scheme: "https", host: address.host, port: address.port, basePath: "")
        let handler = ProxyServerHandler(
            route: .reverse(service: ServiceName.forHost(address.host, port: address.port), upstream: upstream),
            pool: pool, configuration: configuration, recorder: recorder, interceptor: nil, encoder: encoder,
            decoder: decoder)
        do {
            let sync = client.pipeline.syncOperations
            sync.removeHandler(self.encoder, promise: nil)
            client.writeAndFlush(ByteBuffer(string: "HTTP/1.1 200 Connection Established\r\n\r\n"), promise: nil)
            try sync.addHandlers(
                [
                    NIOSSLServerHandler(context: tls),
                    InterceptedHandshake(destination: address.description, recorder: recorder), encoder, decoder,
                    handler,
                ], position: .after(self.decoder))
            // Bytes the client sent after CONNECT (an eager ClientHello) go on to the TLS handler.
            sync.removeHandler(self.decoder, promise: nil)
            setReading(client, true)
            sync.removeHandler(context: context, promise: nil)
        } catch {
            client.close(promise: nil)
        }
    }

    // MARK: Parsing helpers

    static func originForm(of absolute: String) -> String? {
        guard let schemeEnd = absolute.range(of: "://") else { return nil }
        let rest = absolute[schemeEnd.upperBound...]
        guard let slash = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) else { return "/" }
        let form = String(rest[slash...])
        return form.hasPrefix("?") ? "/" + form : form
    }

    static func split(_ target: String) -> (String, String?) {
        guard let question = target.firstIndex(of: "?") else { return (target, nil) }
        return (String(target[..<question]), String(target[target.index(after: question)...]))
    }
}

/// Relays raw bytes between the two channels of a tunnel, with back-pressure.
final class GlueHandler: ChannelDuplexHandler, RemovableChannelHandler {
    /// Adds a glued pair: one at `position` in the client's pipeline, its partner on `peer`.
    static func join(
        _ client: ChannelPipeline.SynchronousOperations, at position: ChannelPipeline.SynchronousOperations.Position,
        to peer: Channel
    ) throws {
        let ours = GlueHandler()
        let theirs = GlueHandler()
        ours.partner = theirs
        theirs.partner = ours
        try peer.pipeline.syncOperations.addHandler(theirs)
        try client.addHandler(ours, position: position)
    }

    typealias InboundIn = NIOAny
    typealias OutboundIn = NIOAny
    typealias OutboundOut = NIOAny

    var partner: GlueHandler?
    private var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        partner?.context?.write(data, promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) { partner?.context?.flush() }

    func channelInactive(context: ChannelHandlerContext) {
        partner?.context?.close(promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if let other = partner?.context?.channel {
            other.setOption(ChannelOptions.autoRead, value: context.channel.isWritable).whenFailure { _ in }
        }
    }
}
