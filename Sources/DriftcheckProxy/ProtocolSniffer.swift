import DriftcheckCore
import NIOCore
import NIOPosix

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

    private let upstream: UpstreamURL
    private let configuration: ProxyConfiguration
    private let recorder: Recorder
    /// The HTTP/1.1 handlers to take out when the connection becomes a tunnel.
    private let httpHandlers: [RemovableChannelHandler]
    private var buffered: ByteBuffer?

    init(
        upstream: UpstreamURL, configuration: ProxyConfiguration, recorder: Recorder,
        httpHandlers: [RemovableChannelHandler]
    ) {
        self.upstream = upstream
        self.configuration = configuration
        self.recorder = recorder
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
        case .tls, .http2:
            tunnel(context, first: incoming)
        }
    }

    private func tunnel(_ context: ChannelHandlerContext, first: ByteBuffer) {
        let client = context.channel
        client.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in }
        let recorder = self.recorder
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
