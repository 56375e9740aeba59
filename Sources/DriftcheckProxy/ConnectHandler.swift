import DriftcheckCore
import NIOCore
import NIOHTTP1
import NIOPosix

/// Takes over a client connection after `CONNECT host:port`: relays it to the host as a plain
/// tunnel, or — when the host matches `--intercept-tls` — terminates its TLS and records it.
final class ConnectHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private let address: ListenAddress
    private let services: ProxyServices
    /// What the client sent after `CONNECT` before the tunnel was up (an eager ClientHello).
    private var leftover: ByteBuffer?
    private var context: ChannelHandlerContext?

    init(address: ListenAddress, services: ProxyServices, leftover: ByteBuffer?) {
        self.address = address
        self.services = services
        self.leftover = leftover
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        // The HTTP/1.1 handler is still in the middle of its read: the pipeline changes once
        // it is done.
        context.eventLoop.assumeIsolated().execute {
            guard let context = self.context else { return }
            if let interceptor = self.services.interceptor, interceptor.matches(self.address.host) {
                self.intercept(context, interceptor)
            } else {
                self.connect(context)
            }
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    /// Bytes the client sent before the tunnel was up: kept for it.
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if leftover == nil { leftover = bytes } else { leftover!.writeBuffer(&bytes) }
    }

    private func connect(_ context: ChannelHandlerContext) {
        let address = self.address
        let configuration = services.configuration
        ClientBootstrap(group: context.eventLoop)
            .connectTimeout(configuration.connectTimeout)
            .connect(host: configuration.address(for: address.host), port: address.port)
            .assumeIsolated()
            .whenComplete { result in
                guard let context = self.context else {
                    if case .success(let peer) = result { peer.close(promise: nil) }
                    return
                }
                switch result {
                case .failure(let error):
                    self.refuse(context, "cannot connect to \(address): \(error)")
                case .success(let peer):
                    self.services.recorder.tunnelled(address.description)
                    self.glue(context, to: peer)
                }
            }
    }

    private func glue(_ context: ChannelHandlerContext, to peer: Channel) {
        let client = context.channel
        do {
            let sync = client.pipeline.syncOperations
            try GlueHandler.join(sync, at: .after(self), to: peer)
            client.writeAndFlush(ByteBuffer(string: "HTTP/1.1 200 Connection Established\r\n\r\n"), promise: nil)
            // Bytes the client sent after CONNECT go on to the peer.
            if let leftover { peer.writeAndFlush(leftover, promise: nil) }
            leftover = nil
            client.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
            client.read()
            // Last: removing this handler lets go of its context.
            sync.removeHandler(context: context, promise: nil)
        } catch {
            peer.close(promise: nil)
            client.close(promise: nil)
        }
    }

    /// Terminates the tunnel's TLS with a certificate for its host and records what it carries:
    /// the connection continues as one to a reverse listener for `https://host:port`.
    private func intercept(_ context: ChannelHandlerContext, _ interceptor: Interceptor) {
        let handlers: [ChannelHandler]
        do {
            handlers = try interceptor.pipeline(
                host: address.host, service: ServiceName.forHost(address.host, port: address.port),
                upstream: UpstreamURL(scheme: "https", host: address.host, port: address.port), services: services)
        } catch {
            refuse(context, "cannot issue a certificate for \(address.host): \(error)")
            return
        }
        let client = context.channel
        do {
            let sync = client.pipeline.syncOperations
            client.writeAndFlush(ByteBuffer(string: "HTTP/1.1 200 Connection Established\r\n\r\n"), promise: nil)
            try sync.addHandlers(handlers, position: .after(self))
            // Bytes the client sent after CONNECT (an eager ClientHello) go on to the TLS handler.
            if let leftover { context.fireChannelRead(NIOAny(leftover)) }
            leftover = nil
            client.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
            client.read()
            sync.removeHandler(context: context, promise: nil)
        } catch {
            client.close(promise: nil)
        }
    }

    private func refuse(_ context: ChannelHandlerContext, _ reason: String) {
        context.writeAndFlush(
            NIOAny(ProxyAnswer.bytes(.badGateway, message: "driftcheck: \(reason)", close: true)), promise: nil)
        context.close(promise: nil)
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
