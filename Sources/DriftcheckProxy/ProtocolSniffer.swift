import DriftcheckCore
import NIOCore
import NIOPosix

/// First handler on a reverse listener: looks at a connection's first bytes. HTTP/1.1 goes on
/// to the recording pipeline; a TLS ClientHello or an HTTP/2 prior-knowledge preface (a
/// service that reaches `PAYMENTS_SERVICE_HOST:443` over TLS, a gRPC client) and any other
/// protocol (Redis, PostgreSQL behind a `host:port` variable) are relayed to the upstream
/// untouched as a plain TCP tunnel — counted in the coverage summary, not recorded — instead
/// of failing in an HTTP/1.1 parser. When a client stays silent for `serverFirstWait`, a
/// connection to the upstream is opened: if the upstream speaks first (MySQL, SMTP), the
/// client is tunnelled to it; if the client speaks first after all, the probe is closed. An
/// HTTP/2 server's SETTINGS on accepting is not such a greeting: its clients speak first too.
final class ProtocolSniffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    /// What the first bytes say.
    enum Verdict: Equatable {
        case http1
        case tls
        case http2
        /// Neither: relayed as bytes.
        case other
        /// Too few bytes to tell yet.
        case undecided
    }

    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    static func verdict(_ bytes: some Collection<UInt8>) -> Verdict {
        guard let first = bytes.first else { return .undecided }
        if first == 0x16 { return .tls }
        let prefix = Array(bytes.prefix(preface.count))
        if prefix == Array(preface.prefix(prefix.count)) {
            return prefix.count == preface.count ? .http2 : .undecided
        }
        // HTTP/1.1 starts with a method, upper-case letters as every client sends them, then a space.
        var length = 0
        for byte in bytes {
            if byte == UInt8(ascii: " ") { return length > 0 ? .http1 : .other }
            let isMethodByte =
                (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) || byte == UInt8(ascii: "-")
                || byte == UInt8(ascii: "_")
            guard isMethodByte, length < 32 else { return .other }
            length += 1
        }
        return .undecided
    }

    /// Whether `greeting` is an HTTP/2 server's connection preface: a SETTINGS frame (type 4,
    /// no flags, stream 0, whole 6-byte settings). HTTP/2 servers send it as soon as they
    /// accept, before the client's preface, but wait for the client all the same.
    static func isHTTP2ServerPreface(_ greeting: ByteBuffer) -> Bool {
        guard let header = greeting.getBytes(at: greeting.readerIndex, length: 9) else { return false }
        let length = Int(header[0]) << 16 | Int(header[1]) << 8 | Int(header[2])
        return header[3] == 4 && header[4] == 0 && header[5...8].allSatisfy { $0 == 0 } && length % 6 == 0
    }

    private let service: String
    private let upstream: UpstreamURL
    private let services: ProxyServices
    /// The HTTP/1.1 handlers to take out when the connection becomes a tunnel.
    private let httpHandlers: [RemovableChannelHandler]
    /// `host:port` of the upstream, as the coverage summary names it.
    private var destination: String { ListenAddress(host: upstream.host, port: upstream.port).description }
    private var buffered: ByteBuffer?
    private var serverFirst: Scheduled<Void>?
    /// A connection to the upstream opened while the client is silent: if the upstream speaks
    /// on it first, the protocol is one where the server speaks first.
    private var probe: Channel?
    private var decided = false
    private var context: ChannelHandlerContext?

    init(service: String, upstream: UpstreamURL, services: ProxyServices, httpHandlers: [RemovableChannelHandler]) {
        self.service = service
        self.upstream = upstream
        self.services = services
        self.httpHandlers = httpHandlers
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { waitForClient(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        waitForClient(context)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        serverFirst?.cancel()
        serverFirst = nil
        probe?.close(promise: nil)
        probe = nil
        self.context = nil
    }

    /// A client silent for `serverFirstWait` may be waiting for the server to speak first —
    /// or be an HTTP client that connected early. Only the upstream can tell: ask it.
    private func waitForClient(_ context: ChannelHandlerContext) {
        // An h2c upstream speaks HTTP/2, where the client speaks first.
        guard serverFirst == nil, upstream.scheme != "h2c" else { return }
        serverFirst = context.eventLoop.assumeIsolated().scheduleTask(in: services.configuration.serverFirstWait) {
            self.serverFirst = nil
            guard !self.decided, self.buffered == nil, self.context != nil else { return }
            self.openProbe(context.eventLoop)
        }
    }

    private func openProbe(_ loop: EventLoop) {
        let configuration = services.configuration
        let heard = NIOLoopBound(self, eventLoop: loop)
        ClientBootstrap(group: loop)
            .connectTimeout(configuration.connectTimeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        GreetingProbe { peer, greeting in heard.value.upstreamSpoke(peer, greeting) })
                }
            }
            .connect(host: configuration.address(for: upstream.host), port: upstream.port)
            .assumeIsolated()
            .whenComplete { result in
                guard case .success(let peer) = result else { return }
                if self.decided || self.context == nil {
                    peer.close(promise: nil)
                } else {
                    self.probe = peer
                }
            }
    }

    /// The upstream spoke before the client: relay the connection as bytes, greeting first.
    private func upstreamSpoke(_ peer: Channel, _ greeting: ByteBuffer) {
        guard !decided, let context, !Self.isHTTP2ServerPreface(greeting) else {
            if probe === peer { probe = nil }
            peer.close(promise: nil)
            return
        }
        decided = true
        probe = nil
        let client = context.channel
        do {
            let sync = client.pipeline.syncOperations
            for handler in httpHandlers { sync.removeHandler(handler, promise: nil) }
            _ = try peer.pipeline.syncOperations.removeHandler(
                peer.pipeline.syncOperations.handler(type: GreetingProbe.self))
            try GlueHandler.join(sync, at: .after(self), to: peer)
            client.writeAndFlush(greeting, promise: nil)
            services.recorder.tunnelled(destination)
            sync.removeHandler(context: context, promise: nil)
        } catch {
            peer.close(promise: nil)
            client.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !decided else { return }
        serverFirst?.cancel()
        serverFirst = nil
        probe?.close(promise: nil)
        probe = nil
        var incoming = unwrapInboundIn(data)
        if var earlier = buffered {
            earlier.writeBuffer(&incoming)
            incoming = earlier
            buffered = nil
        }
        switch Self.verdict(incoming.readableBytesView) {
        case .undecided:
            buffered = incoming
        case .http1:
            decided = true
            context.fireChannelRead(wrapInboundOut(incoming))
            context.pipeline.syncOperations.removeHandler(self, promise: nil)
        case .tls where services.interceptor?.matches(upstream.host) == true:
            decided = true
            intercept(context, first: incoming)
        case .http2:
            decided = true
            serveHTTP2(context, first: incoming)
        case .tls, .other:
            decided = true
            tunnel(context, first: incoming)
        }
    }

    /// h2c with prior knowledge: an HTTP/2 server in place of the HTTP/1.1 handler, once it has
    /// left: it must not see HTTP/2 frames.
    private func serveHTTP2(_ context: ChannelHandlerContext, first: ByteBuffer) {
        let sync = context.pipeline.syncOperations
        let removals = httpHandlers.map { handler -> EventLoopFuture<Void> in
            let promise = context.eventLoop.makePromise(of: Void.self)
            sync.removeHandler(handler, promise: promise)
            return promise.futureResult
        }
        EventLoopFuture.andAllComplete(removals, on: context.eventLoop).assumeIsolated().whenComplete { _ in
            do {
                try HTTP2Recording.serve(
                    sync, position: .after(self), route: .reverse(service: self.service, upstream: self.upstream),
                    services: self.services)
                context.fireChannelRead(self.wrapInboundOut(first))
                context.fireChannelReadComplete()
                sync.removeHandler(context: context, promise: nil)
            } catch {
                context.close(promise: nil)
            }
        }
    }

    /// TLS to a service listener whose dependency matches `--intercept-tls`: terminated with a
    /// certificate for the dependency's name and for the address the client reached, recorded,
    /// and re-encrypted to the dependency.
    private func intercept(_ context: ChannelHandlerContext, first: ByteBuffer) {
        guard let interceptor = services.interceptor else { return }
        let local = context.channel.localAddress?.ipAddress
        do {
            let handlers = try interceptor.pipeline(
                host: upstream.host, more: local.map { [$0] } ?? [], service: service, upstream: upstream,
                services: services)
            let sync = context.pipeline.syncOperations
            for handler in httpHandlers { sync.removeHandler(handler, promise: nil) }
            try sync.addHandlers(handlers, position: .after(self))
            context.fireChannelRead(wrapInboundOut(first))
            sync.removeHandler(context: context, promise: nil)
        } catch {
            services.recorder.refused(destination, reason: "cannot intercept: \(error)")
            context.close(promise: nil)
        }
    }

    private func tunnel(_ context: ChannelHandlerContext, first: ByteBuffer) {
        let client = context.channel
        client.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in }
        let recorder = services.recorder
        let configuration = services.configuration
        let destination = self.destination
        let handlers = httpHandlers
        let loop = context.eventLoop
        ClientBootstrap(group: loop)
            .connectTimeout(configuration.connectTimeout)
            .connect(host: configuration.address(for: upstream.host), port: upstream.port)
            .assumeIsolated()
            .whenComplete { result in
                switch result {
                case .failure:
                    client.close(promise: nil)
                case .success(let peer):
                    do {
                        let sync = client.pipeline.syncOperations
                        for handler in handlers { sync.removeHandler(handler, promise: nil) }
                        try GlueHandler.join(sync, at: .after(self), to: peer)
                        if first.readableBytes > 0 { peer.writeAndFlush(first, promise: nil) }
                        sync.removeHandler(self, promise: nil)
                        recorder.tunnelled(destination)
                        client.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
                    } catch {
                        peer.close(promise: nil)
                        client.close(promise: nil)
                    }
                }
            }
    }
}

/// On a probe connection to an upstream: reports the first bytes the upstream sends.
final class GreetingProbe: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private let heard: (Channel, ByteBuffer) -> Void

    init(_ heard: @escaping (Channel, ByteBuffer) -> Void) { self.heard = heard }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        heard(context.channel, unwrapInboundIn(data))
    }
}
