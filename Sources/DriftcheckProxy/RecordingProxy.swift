import DriftcheckCore
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// Asks the sink for room: true when there is room now; otherwise false, and the sink calls
/// the closure `makeResume` returns (on any thread) once there is. The closure is only made
/// when needed: this runs for every request.
public typealias WaitForRoom = @Sendable (_ makeResume: () -> @Sendable () -> Void) -> Bool

/// Counts exchanges in flight and hands finished ones to the sink.
final class Recorder: Sendable {
    let sink: @Sendable (Exchange) -> Void
    let room: WaitForRoom
    private struct State {
        var active = 0
        /// Called once when no exchange is in flight any more.
        var whenIdle: [@Sendable () -> Void] = []
        var coverage = Coverage()
    }
    private let state = NIOLockedValueBox(State())

    init(sink: @escaping @Sendable (Exchange) -> Void, room: @escaping WaitForRoom) {
        self.sink = sink
        self.room = room
    }

    /// Hands a finished exchange to the sink and ends it: one lock taken per exchange, as before
    /// the coverage count was added.
    func finish(_ exchange: Exchange) {
        sink(exchange)
        ended(service: exchange.service)
    }

    func tunnelled(_ destination: String) {
        state.withLockedValue { $0.coverage.tunnelled[destination, default: 0] += 1 }
    }

    func intercepted(_ destination: String) {
        state.withLockedValue { $0.coverage.intercepted[destination, default: 0] += 1 }
    }

    func refused(_ destination: String, reason: String) {
        state.withLockedValue { state in
            var refusal = state.coverage.refused[destination] ?? Coverage.Refusal(connections: 0, reason: reason)
            refusal.connections += 1
            refusal.reason = reason
            state.coverage.refused[destination] = refusal
        }
    }

    var coverage: Coverage { state.withLockedValue { $0.coverage } }
    func waitForRoom(_ makeResume: () -> @Sendable () -> Void) -> Bool { room(makeResume) }
    func exchangeStarted() { state.withLockedValue { $0.active += 1 } }

    /// An exchange that is not recorded (a malformed request) ended.
    func exchangeEnded() { ended(service: nil) }

    private func ended(service: String?) {
        let waiting = state.withLockedValue { state -> [@Sendable () -> Void] in
            if let service { state.coverage.recorded[service, default: 0] += 1 }
            state.active -= 1
            guard state.active == 0 else { return [] }
            defer { state.whenIdle.removeAll() }
            return state.whenIdle
        }
        for callback in waiting { callback() }
    }

    var inFlight: Int { state.withLockedValue { $0.active } }

    /// Calls `callback` once nothing is in flight: now, or when the last exchange ends.
    func whenIdle(_ callback: @escaping @Sendable () -> Void) {
        let now = state.withLockedValue { state -> Bool in
            if state.active == 0 { return true }
            state.whenIdle.append(callback)
            return false
        }
        if now { callback() }
    }
}

/// Where the proxied traffic went and how: what `record` says at exit, so a user sees what
/// was not captured.
public struct Coverage: Sendable, Equatable {
    /// Exchanges recorded, by service.
    public var recorded: [String: Int] = [:]
    /// CONNECT tunnels passed through unrecorded, by `host:port`.
    public var tunnelled: [String: Int] = [:]
    /// CONNECT tunnels whose TLS was terminated and recorded (`--intercept-tls`), by `host:port`.
    public var intercepted: [String: Int] = [:]
    /// Intercepted tunnels whose client refused the driftcheck certificate, by `host:port`.
    public var refused: [String: Refusal] = [:]

    public struct Refusal: Sendable, Equatable {
        public var connections: Int
        /// The last reason seen.
        public var reason: String
    }

    /// One line per destination, recorded first.
    public var lines: [String] {
        func connections(_ count: Int) -> String { "\(count) connection\(count == 1 ? "" : "s")" }
        return recorded.sorted { $0.key < $1.key }.map {
            "\($0.key): recorded (\($0.value) exchange\($0.value == 1 ? "" : "s"))"
        }
            + intercepted.sorted { $0.key < $1.key }.map {
                "\($0.key): TLS intercepted, recorded as https (\(connections($0.value)))"
            }
            + refused.sorted { $0.key < $1.key }.map {
                "\($0.key): client refused the driftcheck certificate, not recorded (\(connections($0.value.connections)): \($0.value.reason))"
            }
            + tunnelled.sorted { $0.key < $1.key }.map {
                "\($0.key): tunnelled, not recorded (\(connections($0.value)); TLS, HTTP/2 or another protocol, relayed as bytes)"
            }
    }
}

/// Why the proxy could not start.
public struct ProxyStartError: Error, CustomStringConvertible {
    public var description: String
}

/// The recording proxy: listeners in reverse or forward mode on one event loop group.
public final class RecordingProxy: Sendable {
    private let group: EventLoopGroup
    private let configuration: ProxyConfiguration
    private let recorder: Recorder
    private let tlsContext: NIOSSLContext?
    /// For HTTP/2 clients: offers h2 before HTTP/1.1.
    private let http2TLSContext: NIOSSLContext?
    private let interceptor: Interceptor?
    private let pools = NIOLockedValueBox<[ObjectIdentifier: UpstreamPool]>([:])
    private let services = NIOLockedValueBox<[ObjectIdentifier: ProxyServices]>([:])
    private let listeners = NIOLockedValueBox<[Channel]>([])

    /// `sink` receives every finished exchange, on an event loop: it must not block. When
    /// `waitForRoom` says the sink is behind, a client connection reads its next request only
    /// once there is room again: clients slow down instead of exchanges being lost.
    public init(
        group: EventLoopGroup, configuration: ProxyConfiguration = ProxyConfiguration(),
        waitForRoom: @escaping WaitForRoom = { _ in true }, sink: @escaping @Sendable (Exchange) -> Void
    ) {
        self.group = group
        self.configuration = configuration
        recorder = Recorder(sink: sink, room: waitForRoom)
        tlsContext = try? NIOSSLContext(configuration: Self.upstreamTLS(configuration))
        http2TLSContext = try? NIOSSLContext(
            configuration: Self.upstreamTLS(configuration, offering: ["h2", "http/1.1"]))
        interceptor = configuration.interception.map(Interceptor.init)
    }

    /// Loads the TLS settings of `configuration` (the `upstreamTrustRoots` files): a caller checks
    /// them before starting, since a proxy whose settings do not load cannot reach `https://`.
    public static func checkTLS(_ configuration: ProxyConfiguration) throws(ProxyStartError) {
        do {
            _ = try NIOSSLContext(configuration: upstreamTLS(configuration))
        } catch {
            throw ProxyStartError(description: "cannot load the upstream trust roots: \(error)")
        }
    }

    /// TLS towards `https://` upstreams: full verification against the system's roots and
    /// `upstreamTrustRoots`, unless `insecureUpstream`; `offering` by ALPN.
    static func upstreamTLS(_ configuration: ProxyConfiguration, offering protocols: [String] = ["http/1.1"])
        -> TLSConfiguration
    {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.additionalTrustRoots = configuration.upstreamTrustRoots.map { .file($0) }
        tls.applicationProtocols = protocols
        if configuration.insecureUpstream { tls.certificateVerification = .none }
        return tls
    }

    /// Exchanges started and not yet finished.
    public var inFlight: Int { recorder.inFlight }

    /// Every destination reached so far, and how.
    public var coverage: Coverage { recorder.coverage }

    /// What the connections of `loop` share: made once per loop, not per connection.
    private func services(for loop: EventLoop) -> ProxyServices {
        services.withLockedValue { services in
            if let known = services[ObjectIdentifier(loop)] { return known }
            let http1 = pool(for: loop)
            let made = ProxyServices(
                upstreams: http1,
                http2Upstreams: HTTP2UpstreamPool(
                    loop: loop, configuration: configuration, tlsContext: http2TLSContext, fallback: http1),
                configuration: configuration, recorder: recorder, interceptor: interceptor)
            services[ObjectIdentifier(loop)] = made
            return made
        }
    }

    private func pool(for loop: EventLoop) -> UpstreamPool {
        pools.withLockedValue { pools in
            if let pool = pools[ObjectIdentifier(loop)] { return pool }
            let pool = UpstreamPool(loop: loop, configuration: configuration, tlsContext: tlsContext)
            pools[ObjectIdentifier(loop)] = pool
            return pool
        }
    }

    /// Starts a listener; returns the bound address (the real port when `address.port` is 0).
    public func listen(on address: ListenAddress, route: ListenerRoute) async throws -> ListenAddress {
        let configuration = self.configuration
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 1024)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [self] channel in
                do {
                    let sync = channel.pipeline.syncOperations
                    let services = services(for: channel.eventLoop)
                    let handlers = [HTTP1ServerHandler(route: route, services: services)]
                    try sync.addHandler(IdleStateHandler(readTimeout: configuration.idleTimeout))
                    if case .reverse(let service, let upstream) = route {
                        try sync.addHandler(
                            ProtocolSniffer(
                                service: service, upstream: upstream, services: services, httpHandlers: handlers))
                    }
                    for handler in handlers { try sync.addHandler(handler) }
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
        let channel: Channel
        do {
            channel = try await bootstrap.bind(host: address.host, port: address.port).get()
        } catch {
            throw ProxyStartError(description: "cannot listen on \(address): \(error)")
        }
        listeners.withLockedValue { $0.append(channel) }
        let port = channel.localAddress?.port ?? address.port
        return ListenAddress(host: address.host, port: port)
    }

    /// Stops accepting connections, then waits up to `timeout` for exchanges in flight.
    /// Returns false when some were still running at the deadline.
    public func shutdown(timeout: TimeAmount = .seconds(10)) async -> Bool {
        let channels = listeners.withLockedValue { channels in
            defer { channels.removeAll() }
            return channels
        }
        for channel in channels { try? await channel.close() }
        // Whichever comes first: the last exchange ending, or the deadline.
        let recorder = self.recorder
        let loop = group.next()
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            let resumed = NIOLockedValueBox(false)
            let finish: @Sendable () -> Void = {
                if resumed.withLockedValue({ first in
                    defer { first = true }
                    return !first
                }) {
                    done.resume()
                }
            }
            let deadline = loop.scheduleTask(in: timeout) { finish() }
            recorder.whenIdle {
                deadline.cancel()
                finish()
            }
        }
        let drained = recorder.inFlight == 0
        let allPools = pools.withLockedValue { Array($0.values) }
        for pool in allPools {
            try? await pool.loop.submit { pool.closeAll() }.get()
        }
        return drained
    }
}
