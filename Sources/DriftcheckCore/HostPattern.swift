/// A host glob from `--intercept-tls`: `api.payments.example`, `*.stripe.com`, `*`.
/// `*` stands for any run of characters, dots included; `?` for one. Case does not matter.
/// `*.stripe.com` does not match `stripe.com` itself: name both when both are meant.
public struct HostPattern: Sendable, Equatable, CustomStringConvertible {
    public let description: String
    private let characters: [UInt8]

    /// Parses a pattern; nil when it holds anything a host name (or IP literal) cannot, a port included.
    public init?(_ text: String) {
        let lower = text.lowercased()
        guard !lower.isEmpty, lower.utf8.count <= 255 else { return nil }
        for byte in lower.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."),
                UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "*"), UInt8(ascii: "?"), UInt8(ascii: ":"),
                UInt8(ascii: "["), UInt8(ascii: "]"):
                continue
            default:
                return nil
            }
        }
        // One colon is a port (`api.test:443`), which a host pattern never matches: refuse it
        // rather than match nothing. IPv6 literals have several.
        guard lower.utf8.filter({ $0 == UInt8(ascii: ":") }).count != 1 else { return nil }
        description = lower
        characters = Array(HostName.bare(lower).utf8)
    }

    public func matches(_ host: String) -> Bool {
        Self.glob(characters[...], Array(HostName.bare(host).lowercased().utf8)[...])
    }

    /// Iterative glob with one backtrack point: linear in practice, never exponential.
    private static func glob(_ pattern: ArraySlice<UInt8>, _ text: ArraySlice<UInt8>) -> Bool {
        var p = pattern.startIndex
        var t = text.startIndex
        var star: (pattern: Int, text: Int)?
        while t < text.endIndex {
            if p < pattern.endIndex && (pattern[p] == UInt8(ascii: "?") || pattern[p] == text[t]) {
                p += 1
                t += 1
            } else if p < pattern.endIndex && pattern[p] == UInt8(ascii: "*") {
                star = (p, t)
                p += 1
            } else if let last = star {
                p = last.pattern + 1
                t = last.text + 1
                star = (last.pattern, last.text + 1)
            } else {
                return false
            }
        }
        while p < pattern.endIndex && pattern[p] == UInt8(ascii: "*") { p += 1 }
        return p == pattern.endIndex
    }
}
