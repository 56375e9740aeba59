import Foundation

/// The small JSONPath dialect driftcheck speaks: `$`, `.name`, `['odd name']`, `[*]`.
public enum JSONPath {
    /// `["items", "[*]", "discount"]` → `$.items[*].discount`.
    public static func format(_ segments: [String]) -> String {
        segments.reduce("$") { path, segment in segment == "[*]" ? path + "[*]" : appending(segment, to: path) }
    }

    /// `path` with the member `name` added: `.name`, or `['odd name']` when it needs quoting.
    public static func appending(_ name: String, to path: String) -> String {
        // Plain ASCII names are the common case; checking bytes avoids CharacterSet lookups.
        let plain =
            !name.isEmpty
            && name.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte | 0x20 >= 0x61 && byte | 0x20 <= 0x7A) || byte == 0x5F
            }
        if plain { return path + "." + name }
        return path + "['" + name.replacingOccurrences(of: "'", with: "\\'") + "']"
    }

    public struct ParseError: Error, CustomStringConvertible, Sendable {
        public var path: String
        public var description: String { "invalid JSONPath '\(path)': use $.name, $['name'] and [*]" }
    }

    /// The inverse of `format`.
    public static func parseSegments(_ path: String) throws -> [String] {
        guard path.hasPrefix("$") else { throw ParseError(path: path) }
        var segments: [String] = []
        var rest = Substring(path.dropFirst())
        while !rest.isEmpty {
            if rest.hasPrefix("[*]") {
                segments.append("[*]")
                rest = rest.dropFirst(3)
            } else if rest.hasPrefix("['") {
                // The closing quote is searched after the opening one: in "[']" they overlap.
                let nameStart = rest.index(rest.startIndex, offsetBy: 2)
                guard let end = rest[nameStart...].range(of: "']") else { throw ParseError(path: path) }
                segments.append(String(rest[nameStart..<end.lowerBound]))
                rest = rest[end.upperBound...]
            } else if rest.hasPrefix(".") {
                rest = rest.dropFirst()
                let end = rest.firstIndex { $0 == "." || $0 == "[" } ?? rest.endIndex
                guard end > rest.startIndex else { throw ParseError(path: path) }
                segments.append(String(rest[..<end]))
                rest = rest[end...]
            } else {
                throw ParseError(path: path)
            }
        }
        return segments
    }

    /// Whether a concrete path (array positions written `[*]`) falls under `pattern`.
    public static func matches(pattern: [String], path: [String]) -> Bool {
        pattern == path
    }
}
