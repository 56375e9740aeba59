import DriftcheckCore
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import NIOTLS

/// The TLS server side of HTTPS interception: one server context per intercepted host, made
/// on first use from the host's leaf certificate and kept for the run.
final class Interceptor: Sendable {
    let interception: TLSInterception
    private let contexts = NIOLockedValueBox<[String: NIOSSLContext]>([:])

    init(_ interception: TLSInterception) { self.interception = interception }

    func matches(_ host: String) -> Bool { interception.matches(host) }

    /// The server context for `host`; its certificate also covers `more` (the address a client
    /// reached a service listener at).
    func context(for host: String, more: [String] = []) throws -> NIOSSLContext {
        let names = [HostName.bare(host)] + more.map { HostName.bare($0) }
        let name = names.joined(separator: " ").lowercased()
        if let known = contexts.withLockedValue({ $0[name] }) { return known }
        let credentials = try interception.issuer.credentials(for: names[0], more: Array(names.dropFirst()))
        let chain = try credentials.certificateChainPEM.map {
            NIOSSLCertificateSource.certificate(try NIOSSLCertificate(bytes: Array($0.utf8), format: .pem))
        }
        let key = try NIOSSLPrivateKey(bytes: Array(credentials.privateKeyPEM.utf8), format: .pem)
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain, privateKey: .privateKey(key))
        // A client offering h2 gets it, and the streams are recorded as HTTP/1.1 requests are.
        configuration.applicationProtocols = ["h2", "http/1.1"]
        let context = try NIOSSLContext(configuration: configuration)
        return contexts.withLockedValue { contexts in
            if let raced = contexts[name] { return raced }
            contexts[name] = context
            return context
        }
    }
}

extension Interceptor {
    /// The handlers that terminate a connection's TLS with a certificate for `host` (also
    /// covering `more`) and record what it carries as `service`, sent on to `upstream` over TLS.
    func pipeline(
        host: String, more: [String] = [], service: String, upstream: UpstreamURL, services: ProxyServices
    ) throws -> [ChannelHandler] {
        let tls = try context(for: host, more: more)
        var secure = upstream
        secure.scheme = "https"
        let destination = ListenAddress(host: upstream.host, port: upstream.port).description
        return [
            NIOSSLServerHandler(context: tls),
            InterceptedHandshake(
                destination: destination, route: .reverse(service: service, upstream: secure), services: services),
        ]
    }
}

/// Sits behind the TLS server handler of an intercepted tunnel until its handshake ends, then
/// puts the recording handlers for the protocol the client chose by ALPN in its place: an
/// HTTP/2 server for `h2`, HTTP/1.1 otherwise. A client that refuses the driftcheck certificate
/// (pinning, a trust store of its own) is counted with the reason, so the summary shows what
/// was not recorded and why.
final class InterceptedHandshake: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private let destination: String
    private let route: ListenerRoute
    private let services: ProxyServices
    private var recorder: Recorder { services.recorder }
    private var settled = false

    init(destination: String, route: ListenerRoute, services: ProxyServices) {
        self.destination = destination
        self.route = route
        self.services = services
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if !settled, let tls = event as? TLSUserEvent, case .handshakeCompleted(let negotiated) = tls {
            settled = true
            recorder.intercepted(destination)
            let sync = context.pipeline.syncOperations
            do {
                if negotiated == "h2" {
                    try HTTP2Recording.serve(sync, position: .after(self), route: route, services: services)
                } else {
                    try sync.addHandler(HTTP1ServerHandler(route: route, services: services), position: .after(self))
                }
            } catch {
                context.close(promise: nil)
                return
            }
            context.fireUserInboundEventTriggered(event)
            sync.removeHandler(context: context, promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        guard !settled else {
            context.fireErrorCaught(error)
            return
        }
        settled = true
        recorder.refused(destination, reason: TLSFailure.clientReason(error))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !settled {
            settled = true
            recorder.refused(destination, reason: "the client closed the connection during the TLS handshake")
        }
        context.fireChannelInactive()
    }
}

/// Holds a new upstream connection's future until its TLS handshake ends, so a certificate that
/// does not verify fails the connection (a 502 naming the reason) rather than the request. The
/// promise gives the protocol the upstream chose by ALPN (`h2`, `http/1.1`, or nil).
final class UpstreamHandshake: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    let promise: EventLoopPromise<String?>
    private let destination: String

    init(promise: EventLoopPromise<String?>, destination: String) {
        self.promise = promise
        self.destination = destination
    }

    private var done = false

    private func settle(_ result: Result<String?, Error>, _ context: ChannelHandlerContext) {
        guard !done else { return }
        done = true
        switch result {
        case .failure(let error):
            promise.fail(UpstreamTLSError(destination: destination, reason: TLSFailure.upstreamReason(error)))
        case .success(let negotiated):
            promise.succeed(negotiated)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tls = event as? TLSUserEvent, case .handshakeCompleted(let negotiated) = tls {
            settle(.success(negotiated), context)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        settle(.failure(error), context)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        settle(.failure(ProxyError.upstreamClosed), context)
        context.fireChannelInactive()
    }
}

/// An `https://` upstream whose TLS handshake failed.
struct UpstreamTLSError: Error, CustomStringConvertible {
    var destination: String
    var reason: String
    var description: String { "TLS handshake with \(destination) failed: \(reason)" }
}

/// Words for TLS failures, from BoringSSL's reason codes.
enum TLSFailure {
    static func upstreamReason(_ error: Error) -> String {
        if case ProxyError.upstreamClosed = error { return "the upstream closed the connection" }
        let codes = reasonCodes(error)
        if codes.contains("CERTIFICATE_VERIFY_FAILED") {
            return "its certificate did not verify (expired, another host's, or from a CA not trusted here;"
                + " --upstream-ca adds a CA) [CERTIFICATE_VERIFY_FAILED]"
        }
        return codes.isEmpty ? "\(error)" : codes.joined(separator: ", ")
    }

    static func clientReason(_ error: Error) -> String {
        let codes = reasonCodes(error)
        let list = "[\(codes.joined(separator: ", "))]"
        if codes.contains(where: { $0.hasSuffix("UNKNOWN_CA") }) {
            return "the client does not trust the driftcheck CA \(list)"
        }
        if codes.contains(where: { $0.contains("BAD_CERTIFICATE") || $0.contains("CERTIFICATE_UNKNOWN") }) {
            return "the client rejected the driftcheck certificate (pinning, or a trust store of its own) \(list)"
        }
        if codes.contains(where: { $0 == "HTTP_REQUEST" || $0 == "WRONG_VERSION_NUMBER" }) {
            return "the client did not speak TLS in the tunnel \(list)"
        }
        // A client that refuses the certificate often just breaks off, with or without an alert.
        return "the client broke off the TLS handshake: it does not trust the driftcheck CA, or pins its own"
            + (codes.isEmpty ? "" : " \(list)")
    }

    /// `CERTIFICATE_VERIFY_FAILED` and the like out of a BoringSSL error's description, which
    /// also names source files and numbers nobody needs.
    static func reasonCodes(_ error: Error) -> [String] {
        var codes: [String] = []
        var rest = Substring("\(error)")
        while let marker = rest.range(of: "OPENSSL_internal:") {
            let code = rest[marker.upperBound...].prefix { $0.isUppercase || $0.isNumber || $0 == "_" }
            if !code.isEmpty && !codes.contains(String(code)) { codes.append(String(code)) }
            rest = rest[marker.upperBound...]
        }
        return codes
    }
}
