import Foundation

/// The small JSONPath dialect driftcheck speaks: `$`, `.name`, `['odd name']`, `[*]`.
public enum JSONPath {
    /// `["items", "[*]", "discount"]` → `$.items[*].discount`.
    public static func format(_ segments: [String]) -> String {
        var out = "$"
        for segment in segments {
            if segment == "[*]" {
                out += "[*]"
            } else if segment.unicodeScalars.allSatisfy({ CharacterSet.alphanumerics.contains($0) || $0 == "_" }),
                !segment.isEmpty
            {
                out += ".\(segment)"
            } else {
                out += "['\(segment.replacingOccurrences(of: "'", with: "\\'"))']"
            }
        }
        return out
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
                guard let end = rest.range(of: "']") else { throw ParseError(path: path) }
                segments.append(String(rest[rest.index(rest.startIndex, offsetBy: 2)..<end.lowerBound]))
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
