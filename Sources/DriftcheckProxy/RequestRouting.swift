import DriftcheckCore
import NIOHTTP1

/// Where one request head goes, decided from the head and the listener's route alone.
enum RequestRouting {
    /// A request to forward: what to record it as and the head to send upstream.
    struct Routed {
        var service: String
        var target: UpstreamTarget
        /// The client's head, as recorded.
        var clientHead: HTTPRequestHead
        /// The head sent upstream: origin-form target, hop-by-hop fields gone, Host rewritten.
        var upstreamHead: HTTPRequestHead
        var path: String
        var query: String?
        /// The client asked for `100 Continue`; the proxy answers it once the upstream is connected.
        var expectContinue: Bool
    }

    enum Decision {
        case exchange(Routed)
        /// `CONNECT host:port` on a forward listener.
        case tunnel(ListenAddress)
        /// Answered by the proxy itself, and the connection closed.
        case reject(HTTPResponseStatus, String)
    }

    static func decide(_ head: HTTPRequestHead, route: ListenerRoute) -> Decision {
        if head.method == .CONNECT {
            guard route == .forward else {
                return .reject(.methodNotAllowed, "driftcheck: CONNECT is only accepted in forward-proxy mode")
            }
            guard let address = ListenAddress.parse(head.uri), address.port > 0 else {
                return .reject(.badRequest, "driftcheck: CONNECT needs host:port")
            }
            return .tunnel(address)
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
                return .reject(
                    .badRequest, "driftcheck: forward proxy expects absolute-form requests (http://host/path)")
            }
            service = ServiceName.forHost(url.host, port: url.port)
            target = UpstreamTarget(scheme: url.scheme, host: url.host, port: url.port)
            originForm = Self.originForm(of: head.uri) ?? "/"
        }
        guard originForm.hasPrefix("/") || originForm == "*" else {
            return .reject(.badRequest, "driftcheck: invalid request target")
        }
        let recordedTarget = isAbsolute ? (Self.originForm(of: head.uri) ?? "/") : head.uri
        var clientHead = head
        // HTTP/2 has no Transfer-Encoding: NIO's HTTP/1 view of a stream adds `chunked` to a
        // body without a length, which the client never sent.
        if head.version.major == 2 { clientHead.headers.remove(name: "transfer-encoding") }
        let (path, query) = Self.split(recordedTarget)

        var headers = head.headers
        // HTTP/2 forbids hop-by-hop fields but one: `te: trailers`, which gRPC servers require.
        let trailersWanted = head.version.major == 2 && headers["te"].contains { $0.lowercased() == "trailers" }
        HopByHop.strip(&headers)
        if trailersWanted { headers.add(name: "te", value: "trailers") }
        headers.remove(name: "proxy-authorization")
        let expectContinue = headers["expect"].contains { $0.lowercased() == "100-continue" }
        headers.remove(name: "expect")
        headers.replaceOrAdd(name: "host", value: target.authority)
        return .exchange(
            Routed(
                service: service, target: target, clientHead: clientHead,
                upstreamHead: HTTPRequestHead(
                    version: .http1_1, method: head.method, uri: originForm, headers: headers),
                path: path, query: query, expectContinue: expectContinue))
    }

    /// The response head for the client: hop-by-hop fields gone, framing fitted to its version.
    static func clientResponseHead(_ head: HTTPResponseHead, for request: HTTPRequestHead) -> HTTPResponseHead {
        var headers = head.headers
        HopByHop.strip(&headers)
        if request.version.major == 1 && request.version.minor == 0 { headers.remove(name: "transfer-encoding") }
        if !request.isKeepAlive { headers.add(name: "connection", value: "close") }
        return HTTPResponseHead(version: request.version, status: head.status, headers: headers)
    }

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
