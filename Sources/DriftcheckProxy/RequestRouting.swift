import DriftcheckCore
import NIOCore
import NIOHTTP1

/// Where one request head goes, decided from the head and the listener's route alone.
enum RequestRouting {
    /// A request to forward: what to record it as, and where it goes.
    struct Routed {
        var service: String
        var target: UpstreamTarget
        /// The client's head, as it came and as it is recorded.
        var clientHead: RequestHead
        /// The request target sent upstream (origin-form, with the upstream's base path).
        var originForm: String
        var path: String
        var query: String?
        /// The client asked for `100 Continue`; the proxy answers it once the upstream is connected.
        var expectContinue: Bool
        /// How long the upstream may stay silent on this exchange.
        var silence: SilenceLimit = .configured
    }

    /// How long an upstream may stay silent before its exchange fails with a timeout.
    enum SilenceLimit: Equatable {
        /// `--upstream-timeout`.
        case configured
        /// A gRPC call's own deadline (`grpc-timeout`), when longer than the configured limit.
        case atLeast(TimeAmount)
        /// A gRPC call without a deadline: its client waits as long as it takes (a watch stream
        /// quiet for minutes), so the proxy does too; the client ends it by cancelling.
        case none

        /// The limit for an exchange, given the configured one; nil: none.
        func applied(to configured: TimeAmount) -> TimeAmount? {
            switch self {
            case .configured: return configured
            case .atLeast(let deadline): return max(deadline, configured)
            case .none: return nil
            }
        }

        /// A gRPC call (`content-type: application/grpc…`, on an HTTP/2 stream or, rarely, over
        /// HTTP/1.1) states its client's deadline in `grpc-timeout` (gRPC over HTTP/2, "Timeout":
        /// 1–8 digits and a unit H, M, S, m, u or n). An unreadable value counts as none given.
        static func of(_ head: RequestHead) -> SilenceLimit {
            guard head.contentType(startsWith: "application/grpc") else { return .configured }
            guard let text = head.first("grpc-timeout"), (2...9).contains(text.utf8.count),
                text.utf8.dropLast().allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
                let unit = text.utf8.last, let amount = Int64(text.dropLast())
            else { return .none }
            switch unit {
            case UInt8(ascii: "H"): return .atLeast(.hours(amount))
            case UInt8(ascii: "M"): return .atLeast(.minutes(amount))
            case UInt8(ascii: "S"): return .atLeast(.seconds(amount))
            case UInt8(ascii: "m"): return .atLeast(.milliseconds(amount))
            case UInt8(ascii: "u"): return .atLeast(.microseconds(amount))
            case UInt8(ascii: "n"): return .atLeast(.nanoseconds(amount))
            default: return .none
            }
        }
    }

    enum Decision {
        case exchange(Routed)
        /// `CONNECT host:port` on a forward listener.
        case tunnel(ListenAddress)
        /// Answered by the proxy itself, and the connection closed.
        case reject(HTTPResponseStatus, String)
    }

    static func decide(_ head: RequestHead, route: ListenerRoute) -> Decision {
        let uri = head.uri
        if head.method == "CONNECT" {
            guard route == .forward else {
                return .reject(.methodNotAllowed, "driftcheck: CONNECT is only accepted in forward-proxy mode")
            }
            guard let address = ListenAddress.parse(uri), address.port > 0 else {
                return .reject(.badRequest, "driftcheck: CONNECT needs host:port")
            }
            return .tunnel(address)
        }
        let service: String
        let target: UpstreamTarget
        var originForm: String
        let isAbsolute = uri.hasPrefix("http://") || uri.hasPrefix("https://")
        switch route {
        case .reverse(let name, let upstream):
            service = name
            target = UpstreamTarget(scheme: upstream.scheme, host: upstream.host, port: upstream.port)
            originForm = isAbsolute ? Self.originForm(of: uri) ?? "/" : uri
            originForm = upstream.basePath + originForm
        case .forward:
            guard isAbsolute, let url = UpstreamURL.parse(uri) else {
                return .reject(
                    .badRequest, "driftcheck: forward proxy expects absolute-form requests (http://host/path)")
            }
            service = ServiceName.forHost(url.host, port: url.port)
            target = UpstreamTarget(scheme: url.scheme, host: url.host, port: url.port)
            originForm = Self.originForm(of: uri) ?? "/"
        }
        guard originForm.hasPrefix("/") || originForm == "*" else {
            return .reject(.badRequest, "driftcheck: invalid request target")
        }
        let recordedTarget = isAbsolute ? (Self.originForm(of: uri) ?? "/") : uri
        let (path, query) = Self.split(recordedTarget)
        return .exchange(
            Routed(
                service: service, target: target, clientHead: head, originForm: originForm, path: path, query: query,
                expectContinue: head.expectsContinue, silence: .of(head)))
    }

    /// Fields a request does not carry upstream besides the hop-by-hop ones: proxy credentials,
    /// Expect (the proxy answers `100 Continue` itself) and Host (the upstream's own is sent).
    static let droppedUpstream = ["host", "expect", "proxy-authorization"]

    static func isDroppedUpstream(count: Int, _ matches: (String) -> Bool) -> Bool {
        droppedUpstream.contains { $0.utf8.count == count && matches($0) }
    }

    /// The head sent to an HTTP/1.1 upstream for a request that came as HTTP/1.1: the client's
    /// field lines as they came, less the ones above, after the upstream's Host.
    static func upstreamBytes(_ head: HTTP1Head, _ routed: Routed) -> ByteBuffer {
        head.rewritten(
            startLine: "\(head.method) \(routed.originForm) HTTP/1.1", adding: [("Host", routed.target.authority)],
            dropping: { field in
                head.isHopByHop(field) || isDroppedUpstream(count: field.name.count) { head.field(field, is: $0) }
            })
    }

    /// The head sent upstream in NIO's form (to an HTTP/2 upstream, or for a request that came
    /// over HTTP/2): origin-form target, the same fields dropped, Host rewritten.
    static func upstreamHead(_ routed: Routed) -> HTTPRequestHead {
        let head = routed.clientHead.parsed
        var headers = head.headers
        // HTTP/2 forbids hop-by-hop fields but one: `te: trailers`, which gRPC servers require.
        // An HTTP/1.1 client that accepts trailers (`TE: trailers, …`) gets them in its chunked
        // answer, so the promise holds on the upstream hop too.
        let trailersWanted = headers["te"].contains { value in
            value.split(separator: ",").contains {
                ASCII.equalsIgnoringCase(ASCII.trimmed($0.split(separator: ";").first ?? ""), "trailers")
            }
        }
        HopByHop.strip(&headers)
        if trailersWanted { headers.add(name: "te", value: "trailers") }
        for name in droppedUpstream { headers.remove(name: name) }
        headers.add(name: "host", value: routed.target.authority)
        return HTTPRequestHead(version: .http1_1, method: head.method, uri: routed.originForm, headers: headers)
    }

    /// The response head for the client in NIO's form: hop-by-hop fields and the upstream's
    /// framing gone — each client wire frames the body and says whether the connection stays.
    static func clientResponseHead(_ head: HTTPResponseHead, for request: RequestHead) -> HTTPResponseHead {
        var headers = head.headers
        HopByHop.strip(&headers)
        headers.remove(name: "transfer-encoding")
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
