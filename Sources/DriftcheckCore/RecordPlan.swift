import Foundation

/// A `HOST:PORT` listen address.
public struct ListenAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `HOST:PORT`, `:PORT` (loopback) or `[::1]:PORT`.
    public static func parse(_ text: String) -> ListenAddress? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port)
        else { return nil }
        var host = HostName.bare(String(text[..<colon]))
        if host.isEmpty { host = "127.0.0.1" }
        return ListenAddress(host: host, port: port)
    }

    public var isLoopback: Bool { ServiceName.isLoopback(host) }
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// An upstream base URL: scheme, host, port and an optional path prefix.
public struct UpstreamURL: Sendable, Hashable, CustomStringConvertible {
    public var scheme: String
    public var host: String
    public var port: Int
    /// Prefix prepended to forwarded paths; empty or starting with `/`, never ending with `/`.
    public var basePath: String

    public init(scheme: String, host: String, port: Int, basePath: String = "") {
        self.scheme = scheme
        self.host = host
        self.port = port
        self.basePath = basePath
    }

    /// Parses an absolute `http://`, `https://` or `h2c://` (cleartext HTTP/2, as gRPC uses
    /// in clusters) URL.
    public static func parse(_ text: String) -> UpstreamURL? {
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(),
            ["http", "https", "h2c"].contains(scheme), let host = components.host, !host.isEmpty
        else { return nil }
        var base = components.percentEncodedPath
        while base.hasSuffix("/") { base.removeLast() }
        return UpstreamURL(
            scheme: scheme, host: host, port: components.port ?? (scheme == "https" ? 443 : 80), basePath: base)
    }

    public var isTLS: Bool { scheme == "https" }
    /// HTTP/2 with prior knowledge, without TLS.
    public var isH2C: Bool { scheme == "h2c" }
    public var description: String {
        let defaultPort = isTLS ? 443 : 80
        let hostPart = host.contains(":") ? "[\(host)]" : host
        return "\(scheme)://\(hostPart)\(port == defaultPort ? "" : ":\(port)")\(basePath)"
    }
}

/// One `--upstream NAME=URL[@HOST:PORT]`.
public struct UpstreamSpec: Sendable, Hashable {
    public var name: String
    public var url: UpstreamURL
    public var listen: ListenAddress?

    public init(name: String, url: UpstreamURL, listen: ListenAddress? = nil) {
        self.name = name
        self.url = url
        self.listen = listen
    }

    /// Why a spec does not parse; the caller names where it came from.
    public enum ParseError: Error, CustomStringConvertible, Sendable, Equatable {
        case missingName
        case invalidName(String)
        case invalidURL(String)

        public var description: String {
            switch self {
            case .missingName: return "expected NAME=URL[@HOST:PORT]"
            case .invalidName(let name): return "'\(name)' is not a valid service name (letters, digits, - _ .)"
            case .invalidURL(let url): return "'\(url)' is not an http:// or https:// URL"
            }
        }
    }

    public static func parse(_ text: String) throws(ParseError) -> UpstreamSpec {
        guard let eq = text.firstIndex(of: "=") else { throw .missingName }
        let name = String(text[..<eq])
        guard ServiceName.isValid(name) else { throw .invalidName(name) }
        var rest = String(text[text.index(after: eq)...])
        var listen: ListenAddress?
        // The listener suffix is the last '@' after the authority, so user@host URLs still parse.
        if let at = rest.lastIndex(of: "@"), let address = ListenAddress.parse(String(rest[rest.index(after: at)...])),
            rest[..<at].contains("://")
        {
            listen = address
            rest = String(rest[..<at])
        }
        guard let url = UpstreamURL.parse(rest) else { throw .invalidURL(rest) }
        return UpstreamSpec(name: name, url: url, listen: listen)
    }
}

/// For wrapped-command mode: which environment variables point at dependencies, and what
/// reverse-proxy listener each gets.
public struct EnvRewritePlan: Sendable, Equatable {
    public struct Target: Sendable, Equatable {
        public var service: String
        /// The upstream origin (no path): one listener serves every variable that points at it.
        public var upstream: UpstreamURL
        public var variables: [String]
    }

    public var targets: [Target]

    /// Plans listeners for every variable whose value is an http(s) URL to a non-loopback
    /// host, or to any host when the variable is named in `forced`. `--upstream` entries that
    /// point at the same origin give their name to the service.
    public static func plan(
        environment: [(String, String)], upstreams: [UpstreamSpec], forced: Set<String>
    ) -> EnvRewritePlan {
        var targets: [Target] = []
        for (name, value) in environment where value.hasPrefix("http://") || value.hasPrefix("https://") {
            guard var url = UpstreamURL.parse(value) else { continue }
            guard forced.contains(name) || !ServiceName.isLoopback(url.host) else { continue }
            url.basePath = ""
            if let index = targets.firstIndex(where: { $0.upstream == url }) {
                targets[index].variables.append(name)
                continue
            }
            let named = upstreams.first {
                $0.url.scheme == url.scheme && $0.url.host == url.host && $0.url.port == url.port
            }
            targets.append(
                Target(service: named?.name ?? ServiceName.forVariable(name), upstream: url, variables: [name]))
        }
        return EnvRewritePlan(targets: targets)
    }

    /// `value` with its origin replaced by the listener's.
    public static func rewrite(_ value: String, to listener: ListenAddress) -> String {
        guard var components = URLComponents(string: value) else { return value }
        components.scheme = "http"
        components.host = listener.host
        components.port = listener.port
        return components.string ?? value
    }
}

/// The Kubernetes service variables injected into every pod (`PAYMENTS_SERVICE_HOST`,
/// `PAYMENTS_SERVICE_PORT[_NAME]`, `PAYMENTS_PORT=tcp://IP:PORT`, `PAYMENTS_PORT_8080_TCP[_ADDR|_PORT]`):
/// dependencies by definition. Each TCP port of a service gets one listener, and every form
/// naming that port is rewritten to it, consistently.
public struct ServiceVariables: Sendable, Equatable {
    public struct Port: Sendable, Hashable {
        /// The variables' prefix, `PAYMENTS`.
        public var prefix: String
        /// `payments` (`ECHO_SVC` → `echo-svc`).
        public var service: String
        public var host: String
        public var port: Int

        public init(prefix: String, service: String, host: String, port: Int) {
            self.prefix = prefix
            self.service = service
            self.host = host
            self.port = port
        }
    }

    public var ports: [Port]

    /// Services found in `environment`; `KUBERNETES_*` (the API server) only when its prefix
    /// or one of its variables is in `forced`.
    public static func find(in environment: [(String, String)], forced: Set<String> = []) -> ServiceVariables {
        let values = Dictionary(environment, uniquingKeysWith: { _, last in last })
        var ports: [Port] = []
        for (name, host) in environment.sorted(by: { $0.0 < $1.0 }) where name.hasSuffix("_SERVICE_HOST") {
            let prefix = String(name.dropLast("_SERVICE_HOST".count))
            guard !prefix.isEmpty, !host.isEmpty else { continue }
            if prefix == "KUBERNETES" && !forced.contains(prefix)
                && !forced.contains(where: { $0.hasPrefix("KUBERNETES_") })
            {
                continue
            }
            var numbers = Set<Int>()
            // `PREFIX_PORT_8080_TCP`: every TCP port; UDP and SCTP carry no HTTP.
            for key in values.keys where key.hasPrefix(prefix + "_PORT_") && key.hasSuffix("_TCP") {
                let middle = key.dropFirst(prefix.count + 6).dropLast(4)
                if let number = Int(middle) { numbers.insert(number) }
            }
            if let first = values[prefix + "_SERVICE_PORT"].flatMap({ Int($0) }),
                values[prefix + "_PORT"].map({ !$0.hasPrefix("udp://") && !$0.hasPrefix("sctp://") }) ?? true
            {
                numbers.insert(first)
            }
            let service = prefix.lowercased().replacingOccurrences(of: "_", with: "-")
            for number in numbers.sorted() {
                ports.append(Port(prefix: prefix, service: service, host: host, port: number))
            }
        }
        return ServiceVariables(ports: ports)
    }

    /// The new value of every service variable of `port`'s service that names `port`, given
    /// its listener.
    public func rewrites(for port: Port, listener: ListenAddress, in environment: [String: String]) -> [String: String]
    {
        let p = port.prefix
        let number = String(port.port)
        let address = listener.host
        let url = "tcp://\(HostName.bracketed(address)):\(listener.port)"
        var result: [String: String] = [:]
        result[p + "_SERVICE_HOST"] = address
        for (name, value) in environment where name.hasPrefix(p + "_SERVICE_PORT") && value == number {
            result[name] = String(listener.port)
        }
        if let value = environment[p + "_PORT"], value.hasPrefix("tcp://"), value.hasSuffix(":" + number) {
            result[p + "_PORT"] = url
        }
        let base = "\(p)_PORT_\(number)_TCP"
        if environment[base] != nil { result[base] = url }
        if environment[base + "_ADDR"] != nil { result[base + "_ADDR"] = address }
        if environment[base + "_PORT"] != nil { result[base + "_PORT"] = String(listener.port) }
        return result
    }
}

/// `host:port` values that name a cluster service (`INVENTORY_ADDR=inventory:9000`,
/// `…svc.cluster.local:50051`): dependencies reached without a URL.
public enum HostPortValue {
    /// The host and port of `value` when it is `host:port` and the host is a cluster name
    /// (`*.svc`, `*.svc.cluster.local`, `*.cluster.local`, or one of `services`' names),
    /// or any host when `forced`.
    public static func parse(_ value: String, services: Set<String>, forced: Bool) -> (host: String, port: Int)? {
        guard !value.contains("/"), let colon = value.lastIndex(of: ":"),
            let port = Int(value[value.index(after: colon)...]),
            (1...65535).contains(port)
        else { return nil }
        let host = String(value[..<colon]).lowercased()
        guard !host.isEmpty, host.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." }) else {
            return nil
        }
        if forced { return (host, port) }
        let cluster =
            host.hasSuffix(".svc") || host.hasSuffix(".svc.cluster.local") || host.hasSuffix(".cluster.local")
            || (!host.contains(".") && services.contains(host))
        return cluster ? (host, port) : nil
    }
}
