import DriftcheckCA
import DriftcheckCore
import Foundation
import NIOCore
import NIOHTTP1

/// Tunables of the recording proxy.
public struct ProxyConfiguration: Sendable {
    /// Body bytes kept per request and per response; longer bodies are stored truncated.
    public var maxBody: Int = 1 << 20
    public var connectTimeout: TimeAmount = .seconds(5)
    /// How long the upstream may stay silent while a response is due before the client gets 504.
    public var upstreamTimeout: TimeAmount = .seconds(30)
    /// How long a client connection may sit without completing a request head before it is closed.
    public var idleTimeout: TimeAmount = .seconds(60)
    /// How long a client on a reverse listener may stay silent before the upstream is asked
    /// whether it speaks first (MySQL, SMTP): then the client is tunnelled to it.
    public var serverFirstWait: TimeAmount = .seconds(1)
    /// Accept self-signed or otherwise unverifiable `https://` upstream certificates.
    public var insecureUpstream = false
    /// More roots to verify `https://` upstreams with, beside the system's (PEM files).
    public var upstreamTrustRoots: [String] = []
    /// `--intercept-tls`: CONNECT tunnels to these hosts are terminated and recorded.
    public var interception: TLSInterception?
    /// Idle upstream connections kept per origin and event loop.
    public var maxIdlePerOrigin = 64
    /// `--resolve HOST=ADDR`: connect to ADDR when a request names HOST (as curl's option);
    /// the Host header and TLS server name keep HOST.
    public var resolve: [String: String] = [:]

    /// The address to connect to for `host`.
    public func address(for host: String) -> String { resolve[host.lowercased()] ?? host }

    public init() {}
}

/// What a listener does with the requests it receives.
public enum ListenerRoute: Sendable, Equatable {
    /// Forward every request to `upstream`, recorded as `service`.
    case reverse(service: String, upstream: UpstreamURL)
    /// Act as an `HTTP_PROXY`: absolute-form requests go where they say; `CONNECT` is tunnelled.
    case forward
}

/// Headers that describe one hop, not the message (RFC 9110 §7.6.1); the proxy never forwards them.
enum HopByHop {
    static let names: [String] = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "proxy-authenticate",
    ]

    /// Removes hop-by-hop fields and every field the Connection header names.
    static func strip(_ headers: inout HTTPHeaders) {
        // Runs twice per exchange, so the common case (no hop-by-hop field, or only
        // `Connection: keep-alive`) must not allocate.
        var connectionTokens: [Substring] = []
        var found = false
        for field in headers where isHopByHop(field.name) {
            found = true
            guard ASCII.equalsIgnoringCase(field.name, "connection") else { continue }
            for token in field.value.utf8.split(separator: 0x2C) {
                let name = ASCII.trimmed(Substring(token))
                if !name.isEmpty && !isHopByHop(name) { connectionTokens.append(name) }
            }
        }
        guard found else { return }
        for name in connectionTokens { headers.remove(name: String(name)) }
        for name in names { headers.remove(name: name) }
    }

    static func isHopByHop<S: StringProtocol>(_ name: S) -> Bool {
        isHopByHop(count: name.utf8.count) { ASCII.equalsIgnoringCase(name, $0) }
    }

    /// Whether a name of `count` bytes is hop-by-hop, `matches` comparing it to a lowercased one.
    static func isHopByHop(count: Int, _ matches: (String) -> Bool) -> Bool {
        // By length first: most header names match no hop-by-hop name's length at all.
        switch count {
        case 2: return matches("te")
        case 7: return matches("trailer") || matches("upgrade")
        case 10: return matches("connection") || matches("keep-alive")
        case 16: return matches("proxy-connection")
        case 18: return matches("proxy-authenticate")
        default: return false
        }
    }
}

/// HTTPS interception: CONNECT tunnels to `hosts` are answered with a certificate from `issuer`,
/// their requests recorded as `https` exchanges and re-encrypted to the real host.
public struct TLSInterception: Sendable {
    public var hosts: [HostPattern]
    public var issuer: LeafIssuer

    public init(hosts: [HostPattern], issuer: LeafIssuer) {
        self.hosts = hosts
        self.issuer = issuer
    }

    public func matches(_ host: String) -> Bool { hosts.contains { $0.matches(host) } }
}
