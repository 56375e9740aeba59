import Foundation

/// Query strings and form bodies: `a=1&b=x+y&flag`. The one place that splits and decodes them.
public enum QueryString {
    /// Every `name=value` pair in order, `+` and percent-escapes decoded; `flag` has value "".
    public static func parameters(_ query: String?) -> [(name: String, value: String)] {
        guard let query, !query.isEmpty else { return [] }
        return query.split(separator: "&").compactMap { pair in
            guard !pair.isEmpty else { return nil }
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (decode(parts[0]), parts.count > 1 ? decode(parts[1]) : "")
        }
    }

    /// The parameter names as written (not decoded), in order: what a query "variant" is made of.
    public static func rawNames(_ query: String?) -> [String] {
        guard let query, !query.isEmpty else { return [] }
        return query.split(separator: "&").map { String($0.prefix { $0 != "=" }) }
    }

    public static func decode<S: StringProtocol>(_ text: S) -> String {
        let plain = String(text).replacingOccurrences(of: "+", with: " ")
        return plain.removingPercentEncoding ?? plain
    }
}

/// `Cookie` header values: `a=1; b=2`.
public enum Cookies {
    /// Every `name=value` pair of every header value, in order; pairs without `=` are skipped.
    public static func pairs(_ headerValues: [String]) -> [(name: String, value: String)] {
        headerValues.flatMap { $0.split(separator: ";") }.compactMap { pair in
            let trimmed = ASCII.trimmed(pair)
            guard let eq = trimmed.firstIndex(of: "="), eq > trimmed.startIndex else { return nil }
            return (String(trimmed[..<eq]), String(trimmed[trimmed.index(after: eq)...]))
        }
    }
}

/// Hosts as written in URLs and listen addresses.
public enum HostName {
    /// `[::1]` → `::1`; anything else unchanged.
    public static func bare(_ host: String) -> String {
        host.hasPrefix("[") && host.hasSuffix("]") && host.count >= 2 ? String(host.dropFirst().dropLast()) : host
    }

    /// `::1` → `[::1]` for a URL or a `Host` header; anything else unchanged.
    public static func bracketed(_ host: String) -> String { host.contains(":") ? "[\(host)]" : host }
}
