import Foundation

/// The identifier heuristic for one path: `/orders/42` → `/orders/{id}`. `EndpointCatalog` names
/// endpoints; this is the part of its rules that needs no other path.
public enum Endpoint {
    /// The path with every identifier-like segment replaced by a parameter:
    /// `{id}` for the first, `{id2}`, `{id3}`… after it.
    public static func templatePath(_ path: String) -> String {
        guard path != "/" && !path.isEmpty else { return "/" }
        var count = 0
        let segments = path.split(separator: "/", omittingEmptySubsequences: false).map { segment -> String in
            guard isIdentifier(segment) else { return String(segment) }
            count += 1
            return count == 1 ? "{id}" : "{id\(count)}"
        }
        return segments.joined(separator: "/")
    }

    /// Whether a path segment names one resource among many rather than a fixed route word.
    public static func isIdentifier<S: StringProtocol>(_ segment: S) -> Bool {
        // Percent-decoding goes through Foundation: only segments that need it pay for it.
        let decoded =
            segment.utf8.contains(0x25) ? (segment.removingPercentEncoding ?? String(segment)) : String(segment)
        let bytes = Array(decoded.utf8)
        guard !bytes.isEmpty else { return false }
        let isDigit = ASCII.isDigit
        let isHex = ASCII.isHexDigit
        let isLetter = ASCII.isLetter
        if bytes.allSatisfy(isDigit) { return true }
        if bytes.count == 36, StringFormat.of(decoded) == .uuid { return true }
        // Hex digests and object ids: long, hex only, and at least one digit so words like "facade" stay.
        if bytes.count >= 8, bytes.allSatisfy(isHex), bytes.contains(where: isDigit) { return true }
        // Opaque ids (ULIDs, base62 keys, prefixed ids like ord_8f2k…): long, no separators other
        // than - and _, mixing letters and digits.
        let idChars = { (b: UInt8) in isDigit(b) || isLetter(b) || b == 0x2D || b == 0x5F }
        if bytes.count >= 16, bytes.allSatisfy(idChars), bytes.contains(where: isDigit),
            bytes.contains(where: isLetter)
        {
            return true
        }
        // Short prefixed ids: ord_123, user-42.
        if let separator = bytes.lastIndex(where: { $0 == 0x5F || $0 == 0x2D }), separator > 0,
            separator < bytes.count - 1, bytes[(separator + 1)...].allSatisfy(isDigit),
            bytes[..<separator].allSatisfy(isLetter)
        {
            return true
        }
        return false
    }
}

/// How recorded traffic is attributed to a service name.
public enum ServiceName {
    /// Forward-proxy naming: the first DNS label (`orders.shop.svc.cluster.local` → `orders`);
    /// an IP literal or `localhost` keeps `host-port` (`127.0.0.1-8080`).
    public static func forHost(_ host: String, port: Int) -> String {
        let bare = HostName.bare(host)
        if bare.lowercased() == "localhost" || isIPLiteral(bare) {
            return "\(bare.replacingOccurrences(of: ":", with: "_"))-\(port)"
        }
        return String(bare.split(separator: ".").first ?? Substring(bare)).lowercased()
    }

    /// Environment-variable naming: `ORDERS_URL` → `orders`, `PAYMENT_API_BASE_URL` → `payment-api`.
    public static func forVariable(_ name: String) -> String {
        var parts = name.lowercased().split(separator: "_").map(String.init)
        let suffixes: Set<String> = ["url", "uri", "endpoint", "addr", "address", "host", "base", "service", "svc"]
        while parts.count > 1, let last = parts.last, suffixes.contains(last) { parts.removeLast() }
        return parts.joined(separator: "-")
    }

    public static func isIPLiteral(_ host: String) -> Bool {
        if host.contains(":") { return true }
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets.allSatisfy { UInt8($0) != nil }
    }

    public static func isLoopback(_ host: String) -> Bool {
        let bare = HostName.bare(host)
        return bare.lowercased() == "localhost" || bare.hasPrefix("127.") || bare == "::1"
    }

    /// Whether `name` is usable as a service name: it becomes a mocks directory name.
    public static func isValid(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".."
            && name.unicodeScalars.allSatisfy {
                CharacterSet.alphanumerics.contains($0) || $0 == "-" || $0 == "_" || $0 == "."
            }
    }
}
