import DriftcheckCore
import NIOCore
import NIOPosix
import NIOSSL

/// First handler on a reverse listener: looks at a connection's first bytes. HTTP/1.1 goes on
/// to the recording pipeline; a TLS ClientHello or an HTTP/2 prior-knowledge preface (a
/// service that reaches `PAYMENTS_SERVICE_HOST:443` over TLS, a gRPC client) is relayed to the
/// upstream untouched as a plain TCP tunnel — counted in the coverage summary, not recorded —
/// instead of failing in an HTTP/1.1 parser.
final class ProtocolSniffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    /// What the first bytes say.
    enum Verdict: Equatable {
        case http1
        case tls
        case http2
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
        return .http1
    }

    private let service: String
    private let upstream: UpstreamURL
    private let services: ProxyServices
    /// The HTTP/1.1 handlers to take out when the connection becomes a tunnel.
    private let httpHandlers: [RemovableChannelHandler]
    private var buffered: ByteBuffer?

    init(service: String, upstream: UpstreamURL, services: ProxyServices, httpHandlers: [RemovableChannelHandler]) {
        self.service = service
        self.upstream = upstream
        self.services = services
        self.httpHandlers = httpHandlers
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
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
            context.fireChannelRead(wrapInboundOut(incoming))
            context.pipeline.syncOperations.removeHandler(self, promise: nil)
        case .tls where services.interceptor?.matches(upstream.host) == true:
            intercept(context, first: incoming)
        case .tls, .http2:
            tunnel(context, first: incoming)
        }
    }

    /// TLS to a service listener whose dependency matches `--intercept-tls`: terminated with a
    /// certificate for the dependency's name and for the address the client reached, recorded,
    /// and re-encrypted to the dependency.
    private func intercept(_ context: ChannelHandlerContext, first: ByteBuffer) {
        guard let interceptor = services.interceptor else { return }
        let local = context.channel.localAddress?.ipAddress
        let destination = "\(HostName.bracketed(upstream.host)):\(upstream.port)"
        do {
            let tls = try interceptor.context(for: upstream.host, more: local.map { [$0] } ?? [])
            let sync = context.pipeline.syncOperations
            for handler in httpHandlers { sync.removeHandler(handler, promise: nil) }
            var secure = upstream
            secure.scheme = "https"
            let handlers: [ChannelHandler] =
                [
                    NIOSSLServerHandler(context: tls),
                    InterceptedHandshake(destination: destination, recorder: services.recorder),
                ] + ProxyServerHandler.pipeline(route: .reverse(service: service, upstream: secure), services: services)
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
        let destination = "\(HostName.bracketed(upstream.host)):\(upstream.port)"
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
                        peer.writeAndFlush(first, promise: nil)
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
