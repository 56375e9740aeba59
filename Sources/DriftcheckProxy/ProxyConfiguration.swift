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
    /// Accept self-signed or otherwise unverifiable `https://` upstream certificates.
    public var insecureUpstream = false
    /// Idle upstream connections kept per origin and event loop.
    public var maxIdlePerOrigin = 64

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
    static let names: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "proxy-authenticate",
    ]

    /// Removes hop-by-hop fields and every field the Connection header names.
    static func strip(_ headers: inout HTTPHeaders) {
        // Runs twice per exchange; most messages carry no hop-by-hop field at all.
        guard headers.contains(where: { names.contains($0.name.lowercased()) }) else { return }
        let named = headers["connection"].flatMap { $0.split(separator: ",") }.map {
            $0.trimmingCharacters(in: .whitespaces).lowercased()
        }
        for name in named where !name.isEmpty { headers.remove(name: name) }
        for name in names { headers.remove(name: name) }
    }
}
