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

    /// Parses an absolute `http://` or `https://` URL.
    public static func parse(_ text: String) -> UpstreamURL? {
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(),
            scheme == "http" || scheme == "https", let host = components.host, !host.isEmpty
        else { return nil }
        var base = components.percentEncodedPath
        while base.hasSuffix("/") { base.removeLast() }
        return UpstreamURL(
            scheme: scheme, host: host, port: components.port ?? (scheme == "https" ? 443 : 80), basePath: base)
    }

    public var isTLS: Bool { scheme == "https" }
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

/// Reads the `KEY=VALUE` files that `telepresence intercept --env-file` and docker write.
public enum EnvFile {
    public struct ParseError: Error, CustomStringConvertible, Sendable, Equatable {
        public var line: Int
        public var reason: String
        public var description: String { "line \(line): \(reason)" }
        public init(line: Int, reason: String) {
            self.line = line
            self.reason = reason
        }
    }

    public static func parse(_ text: String) throws -> [(String, String)] {
        var result: [(String, String)] = []
        for (number, rawLine) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated()
        {
            var line = rawLine.trimmingCharacters(in: CharacterSet(charactersIn: "\r"))
            if line.trimmingCharacters(in: .whitespaces).isEmpty
                || line.trimmingCharacters(in: .whitespaces).hasPrefix("#")
            {
                continue
            }
            if line.hasPrefix("export ") { line = String(line.dropFirst(7)) }
            guard let eq = line.firstIndex(of: "="), eq > line.startIndex else {
                throw ParseError(line: number + 1, reason: "expected KEY=VALUE")
            }
            let key = String(line[..<eq]).trimmingCharacters(in: .whitespaces)
            guard key.unicodeScalars.allSatisfy({ CharacterSet.alphanumerics.contains($0) || $0 == "_" || $0 == "." })
            else {
                throw ParseError(line: number + 1, reason: "'\(key)' is not a variable name")
            }
            var value = String(line[line.index(after: eq)...])
            if value.count >= 2, let first = value.first, first == "\"" || first == "'", value.last == first {
                value = String(value.dropFirst().dropLast())
                if first == "\"" {
                    value = value.replacingOccurrences(of: "\\n", with: "\n").replacingOccurrences(
                        of: "\\\"", with: "\"")
                }
            }
            result.append((key, value))
        }
        return result
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
