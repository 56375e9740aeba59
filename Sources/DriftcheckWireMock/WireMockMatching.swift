import DriftcheckCore
import Foundation

/// One WireMock value pattern: `equalTo`, `contains`, `matches`, `absent`, `equalToJson`…
indirect enum ValuePattern {
    case equalTo(String, caseInsensitive: Bool)
    case contains(String)
    case doesNotContain(String)
    case matches(NSRegularExpression)
    case doesNotMatch(NSRegularExpression)
    case absent
    case equalToJson(JSONValue, ignoreArrayOrder: Bool, ignoreExtraElements: Bool)
    case matchesJsonPath(String, ValuePattern?)
    case equalToXml(String, XMLMatching.Placeholders)
    case date(DateMatcher)
    case matchesXPath(String, namespaces: [String: String], ValuePattern?)
    case binaryEqualTo(Data)
    case and([ValuePattern])
    case or([ValuePattern])
    case not(ValuePattern)
    /// A matcher the engine cannot evaluate (`equalToXml` before it learns it, an extension):
    /// the mapping is kept, and requests it might answer are not compared.
    case unsupported(String)

    /// `now` resolves date-time matchers' `now` (the engine's clock, read once per load).
    init(_ spec: JSONValue, context: String, now: Date = Date()) throws {
        guard case .object(let members) = spec else {
            throw MatcherError(description: "\(context): expected a matcher object like {\"equalTo\": \"…\"}")
        }
        let flag = { (name: String) -> Bool in
            if case .bool(let value)? = spec[name] { return value }
            return false
        }
        for (key, value) in members {
            switch key {
            case "equalTo":
                self = .equalTo(value.stringValue ?? value.serialized(), caseInsensitive: flag("caseInsensitive"))
                return
            case "contains":
                self = .contains(value.stringValue ?? "")
                return
            case "doesNotContain":
                self = .doesNotContain(value.stringValue ?? "")
                return
            case "matches", "doesNotMatch":
                let pattern = value.stringValue ?? ""
                guard
                    let regex = try? NSRegularExpression(
                        pattern: "^(?:\(pattern))$", options: [.dotMatchesLineSeparators])
                else {
                    throw MatcherError(description: "\(context): invalid regular expression '\(pattern)'")
                }
                self = key == "matches" ? .matches(regex) : .doesNotMatch(regex)
                return
            case "absent":
                self = .absent
                return
            case "equalToJson":
                var expected = value
                if case .string(let text) = value {
                    guard let parsed = try? JSONValue.parse(text) else {
                        throw MatcherError(description: "\(context): equalToJson is not valid JSON")
                    }
                    expected = parsed
                }
                self = .equalToJson(
                    expected, ignoreArrayOrder: flag("ignoreArrayOrder"),
                    ignoreExtraElements: flag("ignoreExtraElements"))
                return
            case "matchesJsonPath":
                if case .string(let expression) = value {
                    self = .matchesJsonPath(expression, nil)
                } else if case .string(let expression)? = value["expression"], case .object(let rest) = value {
                    let inner = JSONValue.object(rest.filter { $0.key != "expression" })
                    self = .matchesJsonPath(expression, try ValuePattern(inner, context: context, now: now))
                } else {
                    throw MatcherError(description: "\(context): matchesJsonPath needs an expression")
                }
                return
            case "before", "after", "equalToDateTime":
                self = .date(try DateMatcher(DateMatcher.Comparison(rawValue: key)!, spec, now: now, context: context))
                return
            case "equalToXml":
                let expected = value.stringValue ?? ""
                guard XMLMatching.Document(expected) != nil else {
                    throw MatcherError(description: "\(context): equalToXml is not well-formed XML")
                }
                var placeholders = XMLMatching.Placeholders(enabled: flag("enablePlaceholders"))
                if case .string(let opening)? = spec["placeholderOpeningDelimiterRegex"] {
                    placeholders.opening = opening
                }
                if case .string(let closing)? = spec["placeholderClosingDelimiterRegex"] {
                    placeholders.closing = closing
                }
                self = .equalToXml(expected, placeholders)
                return
            case "matchesXPath":
                var namespaces: [String: String] = [:]
                if case .object(let pairs)? = spec["xPathNamespaces"] {
                    for (prefix, uri) in pairs { namespaces[prefix] = uri.stringValue ?? "" }
                }
                if case .string(let expression) = value {
                    self = .matchesXPath(expression, namespaces: namespaces, nil)
                } else if case .string(let expression)? = value["expression"], case .object(let rest) = value {
                    let inner = JSONValue.object(rest.filter { $0.key != "expression" })
                    self = .matchesXPath(
                        expression, namespaces: namespaces, try ValuePattern(inner, context: context, now: now))
                } else {
                    throw MatcherError(description: "\(context): matchesXPath needs an expression")
                }
                return
            case "binaryEqualTo":
                self = .binaryEqualTo(Data(base64Encoded: value.stringValue ?? "") ?? Data())
                return
            case "and", "or":
                guard case .array(let items) = value else {
                    throw MatcherError(description: "\(context): \(key) needs a list of matchers")
                }
                let patterns = try items.map { try ValuePattern($0, context: context, now: now) }
                self = key == "and" ? .and(patterns) : .or(patterns)
                return
            case "not":
                self = .not(try ValuePattern(value, context: context, now: now))
                return
            case "caseInsensitive", "ignoreArrayOrder", "ignoreExtraElements", "enablePlaceholders", "actualFormat",
                "expectedOffset", "expectedOffsetUnit", "truncateExpected", "truncateActual", "applyTruncationLast",
                "placeholderOpeningDelimiterRegex", "placeholderClosingDelimiterRegex", "exemptedComparisons",
                "xPathNamespaces":
                continue
            default:
                self = .unsupported(key)
                return
            }
        }
        throw MatcherError(description: "\(context): empty matcher")
    }

    var isAbsent: Bool {
        if case .absent = self { return true }
        return false
    }

    /// The first matcher inside this one that the engine cannot evaluate.
    var unsupported: String? {
        switch self {
        case .unsupported(let name): return name
        case .and(let patterns), .or(let patterns): return patterns.lazy.compactMap(\.unsupported).first
        case .not(let pattern): return pattern.unsupported
        case .matchesJsonPath(_, let inner?), .matchesXPath(_, _, let inner?): return inner.unsupported
        default: return nil
        }
    }

    /// Matching a body whose redacted values may stand for anything: JSON markers equal any
    /// value, and text patterns see stand-ins of the recorded shape.
    func matches(_ value: String, redactedAsWildcard: Bool) -> Bool {
        switch self {
        case .equalToJson(let expected, let ignoreOrder, let ignoreExtra):
            guard let actual = try? JSONValue.parse(value) else { return false }
            return JSONEquivalence.matches(
                expected: expected, actual: actual, ignoreArrayOrder: ignoreOrder, ignoreExtraElements: ignoreExtra,
                redactedAsWildcard: true)
        case .matchesJsonPath(let expression, let inner):
            guard let document = try? JSONValue.parse(value) else { return false }
            let results = JSONPathQuery.evaluate(expression, on: document)
            if let inner {
                return results.contains {
                    if case .string(let text) = $0, RedactionPolicy.isMarker(text) { return true }
                    return inner.matches($0.stringValue ?? $0.serialized())
                }
            }
            // A filter on a redacted field finds nothing: try the field's stand-in.
            return !results.isEmpty
                || !JSONPathQuery.evaluate(expression, on: StandIns.json(document)).isEmpty
        case .and(let patterns): return patterns.allSatisfy { $0.matches(value, redactedAsWildcard: true) }
        case .or(let patterns): return patterns.contains { $0.matches(value, redactedAsWildcard: true) }
        case .not(let pattern): return !pattern.matches(value)
        default:
            return matches(StandIns.text(value))
        }
    }

    func matches(_ value: String?) -> Bool {
        switch self {
        case .absent: return value == nil
        // WireMock evaluates negative patterns against a missing value, and a missing value
        // matches nothing, so it "does not match" (checked against the real jar).
        case .doesNotMatch, .doesNotContain: if value == nil { return true }
        case .and(let patterns): return patterns.allSatisfy { $0.matches(value) }
        case .or(let patterns): return patterns.contains { $0.matches(value) }
        case .not(let pattern): return !pattern.matches(value)
        case .unsupported: return false
        default: break
        }
        guard let value else { return false }
        switch self {
        case .equalTo(let expected, let caseInsensitive):
            return caseInsensitive ? value.caseInsensitiveCompare(expected) == .orderedSame : value == expected
        case .contains(let part): return value.contains(part)
        case .doesNotContain(let part): return !value.contains(part)
        case .matches(let regex):
            return regex.firstMatch(in: value, range: NSRange(value.startIndex..., in: value)) != nil
        case .doesNotMatch(let regex):
            return regex.firstMatch(in: value, range: NSRange(value.startIndex..., in: value)) == nil
        case .equalToJson(let expected, let ignoreOrder, let ignoreExtra):
            guard let actual = try? JSONValue.parse(value) else { return false }
            return JSONEquivalence.matches(
                expected: expected, actual: actual, ignoreArrayOrder: ignoreOrder, ignoreExtraElements: ignoreExtra)
        case .matchesJsonPath(let expression, let inner):
            guard let document = try? JSONValue.parse(value) else { return false }
            let results = JSONPathQuery.evaluate(expression, on: document)
            // A null or an empty list is no match in the plain form, as Jayway answers WireMock.
            guard let inner else { return results.contains { $0 != .null && $0 != .array([]) } }
            return results.contains { inner.matches($0.stringValue ?? $0.serialized()) }
        case .date(let matcher): return matcher.matches(value)
        case .equalToXml(let expected, let placeholders):
            return XMLMatching.equal(expected: expected, actual: value, placeholders: placeholders)
        case .matchesXPath(let expression, let namespaces, let inner):
            guard let values = XMLMatching.xpath(expression, in: value, namespaces: namespaces), !values.isEmpty else {
                return false
            }
            guard let inner else { return true }
            return values.contains { inner.matches($0) }
        case .binaryEqualTo(let data): return Data(value.utf8) == data
        case .absent, .and, .or, .not, .unsupported: return false
        }
    }
}

/// JSON comparison with WireMock's `equalToJson` options and json-unit placeholders.
enum JSONEquivalence {
    static func matches(
        expected: JSONValue, actual: JSONValue, ignoreArrayOrder: Bool, ignoreExtraElements: Bool,
        redactedAsWildcard: Bool = false
    ) -> Bool {
        if redactedAsWildcard, case .string(let text) = actual, RedactionPolicy.isMarker(text) { return true }
        if case .string(let text) = expected, text.hasPrefix("${json-unit.") {
            switch (text, actual) {
            case ("${json-unit.ignore}", _): return true
            case ("${json-unit.any-string}", .string): return true
            case ("${json-unit.any-number}", .number): return true
            case ("${json-unit.any-boolean}", .bool): return true
            case ("${json-unit.any-string}", _), ("${json-unit.any-number}", _), ("${json-unit.any-boolean}", _):
                return false
            default:
                if text.hasPrefix("${json-unit.regex}"), case .string(let value) = actual {
                    let pattern = String(text.dropFirst("${json-unit.regex}".count))
                    return value.range(of: "^(?:\(pattern))$", options: .regularExpression) != nil
                }
                return false
            }
        }
        switch (expected, actual) {
        case (.object(let want), .object(let have)):
            if !ignoreExtraElements && want.count != have.count { return false }
            return want.allSatisfy { member in
                guard let value = have.first(where: { $0.key == member.key })?.value else { return false }
                return matches(
                    expected: member.value, actual: value, ignoreArrayOrder: ignoreArrayOrder,
                    ignoreExtraElements: ignoreExtraElements, redactedAsWildcard: redactedAsWildcard)
            }
        case (.array(let want), .array(let have)):
            if want.count != have.count && !ignoreExtraElements { return false }
            if want.count > have.count { return false }
            if !ignoreArrayOrder {
                return zip(want, have).allSatisfy {
                    matches(
                        expected: $0, actual: $1, ignoreArrayOrder: ignoreArrayOrder,
                        ignoreExtraElements: ignoreExtraElements, redactedAsWildcard: redactedAsWildcard)
                }
            }
            var remaining = have
            for item in want {
                guard
                    let index = remaining.firstIndex(where: {
                        matches(
                            expected: item, actual: $0, ignoreArrayOrder: ignoreArrayOrder,
                            ignoreExtraElements: ignoreExtraElements, redactedAsWildcard: redactedAsWildcard)
                    })
                else { return false }
                remaining.remove(at: index)
            }
            return true
        default:
            return expected == actual
        }
    }
}

/// The JSONPath WireMock mappings use: `$.a.b`, `$.a[0]`, `$.a[*]`, `$['a']`, `..name`,
/// and filters `[?(@.x == 'y')]` with == != < <= > >= or bare existence.
enum JSONPathQuery {
    static func evaluate(_ expression: String, on document: JSONValue) -> [JSONValue] {
        var current = [document]
        var rest = Substring(expression.trimmingCharacters(in: .whitespaces))
        guard rest.hasPrefix("$") else { return [] }
        rest = rest.dropFirst()
        while !rest.isEmpty {
            if rest.hasPrefix("..") {
                rest = rest.dropFirst(2)
                let name = String(rest.prefix { $0 != "." && $0 != "[" })
                rest = rest.dropFirst(name.count)
                current = current.flatMap { descendants($0) }.compactMap { $0[name] }
            } else if rest.hasPrefix(".[") {
                // `$.[?(…)]` is Jayway's spelling of `$[?(…)]`.
                rest = rest.dropFirst()
            } else if rest == ".length()" {
                return current.compactMap { value in
                    switch value {
                    case .array(let items): return .number(String(items.count))
                    case .string(let text): return .number(String(text.count))
                    case .object(let members): return .number(String(members.count))
                    default: return nil
                    }
                }
            } else if rest.hasPrefix(".") {
                rest = rest.dropFirst()
                let name = String(rest.prefix { $0 != "." && $0 != "[" })
                rest = rest.dropFirst(name.count)
                current = name == "*" ? current.flatMap(children) : current.compactMap { $0[name] }
            } else if rest.hasPrefix("[") {
                guard let close = matchingBracket(rest) else { return [] }
                let inside = String(rest[rest.index(after: rest.startIndex)..<close]).trimmingCharacters(
                    in: .whitespaces)
                rest = rest[rest.index(after: close)...]
                current = current.flatMap { select(inside, from: $0) }
            } else {
                return []
            }
        }
        return current
    }

    static func matchingBracket(_ text: Substring) -> Substring.Index? {
        var depth = 0
        var quote: Character?
        for index in text.indices {
            let c = text[index]
            if let q = quote {
                if c == q { quote = nil }
                continue
            }
            if c == "'" || c == "\"" {
                quote = c
            } else if c == "[" {
                depth += 1
            } else if c == "]" {
                depth -= 1
                if depth == 0 { return index }
            }
        }
        return nil
    }

    static func children(_ value: JSONValue) -> [JSONValue] {
        switch value {
        case .array(let items): return items
        case .object(let members): return members.map(\.value)
        default: return []
        }
    }

    static func descendants(_ value: JSONValue) -> [JSONValue] {
        [value] + children(value).flatMap(descendants)
    }

    static func select(_ selector: String, from value: JSONValue) -> [JSONValue] {
        if selector == "*" { return children(value) }
        if selector.hasPrefix("?(") && selector.hasSuffix(")") {
            let condition = String(selector.dropFirst(2).dropLast())
            // Jayway filters an array's elements, and an object itself (`$[?(@.draft == true)]`).
            if case .object = value { return test(condition, on: value) ? [value] : [] }
            return children(value).filter { test(condition, on: $0) }
        }
        if (selector.hasPrefix("'") && selector.hasSuffix("'"))
            || (selector.hasPrefix("\"") && selector.hasSuffix("\""))
        {
            // `['a','b']` names several members.
            return selector.split(separator: ",").compactMap { part in
                let name = part.trimmingCharacters(in: .whitespaces)
                return value[String(name.dropFirst().dropLast())]
            }
        }
        guard case .array(let items) = value else { return [] }
        if selector.contains(":") {
            let bounds = selector.split(separator: ":", omittingEmptySubsequences: false).map {
                Int($0.trimmingCharacters(in: .whitespaces))
            }
            let resolve = { (bound: Int) in bound < 0 ? max(0, items.count + bound) : min(bound, items.count) }
            let start = resolve(bounds[0] ?? 0)
            let end = resolve(bounds.count > 1 ? (bounds[1] ?? items.count) : items.count)
            return start < end ? Array(items[start..<end]) : []
        }
        return selector.split(separator: ",").compactMap { part in
            guard let index = Int(part.trimmingCharacters(in: .whitespaces)) else { return nil }
            let position = index < 0 ? items.count + index : index
            return items.indices.contains(position) ? items[position] : nil
        }
    }

    /// A filter condition: comparisons joined by `&&` and `||` (no parentheses inside).
    static func test(_ condition: String, on item: JSONValue) -> Bool {
        let trimmed = condition.trimmingCharacters(in: .whitespaces)
        if let or = topLevel(trimmed, "||") {
            return test(String(trimmed[..<or.lowerBound]), on: item)
                || test(String(trimmed[or.upperBound...]), on: item)
        }
        if let and = topLevel(trimmed, "&&") {
            return test(String(trimmed[..<and.lowerBound]), on: item)
                && test(String(trimmed[and.upperBound...]), on: item)
        }
        if trimmed.hasPrefix("(") && trimmed.hasSuffix(")") {
            return test(String(trimmed.dropFirst().dropLast()), on: item)
        }
        for op in [
            " nin ", " in ", " size ", " empty ", " anyof ", " noneof ", " subsetof ", "=~", "==", "!=", "<=", ">=",
            "<", ">",
        ] {
            guard let range = topLevel(trimmed, op) else { continue }
            let left = trimmed[..<range.lowerBound].trimmingCharacters(in: .whitespaces)
            let right = trimmed[range.upperBound...].trimmingCharacters(in: .whitespaces)
            let actual = operand(left, item)
            switch op.trimmingCharacters(in: .whitespaces) {
            case "=~":
                guard case .string(let text)? = actual, right.hasPrefix("/"), let close = right.lastIndex(of: "/"),
                    close > right.startIndex
                else { return false }
                let pattern = String(right[right.index(after: right.startIndex)..<close])
                let options: NSRegularExpression.Options = right[close...].contains("i") ? [.caseInsensitive] : []
                guard let regex = try? NSRegularExpression(pattern: "^(?:\(pattern))$", options: options) else {
                    return false
                }
                return regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
            case "in", "nin":
                guard case .array(let options)? = try? JSONValue.parse(right.replacingOccurrences(of: "'", with: "\""))
                else { return false }
                let found = actual.map { value in options.contains { same(value, $0) } } ?? false
                return op.contains("nin") ? !found : found
            case "anyof", "noneof", "subsetof":
                guard case .array(let options)? = try? JSONValue.parse(right.replacingOccurrences(of: "'", with: "\"")),
                    case .array(let values)? = actual
                else { return false }
                switch op.trimmingCharacters(in: .whitespaces) {
                case "anyof": return values.contains { value in options.contains { same(value, $0) } }
                case "noneof": return !values.contains { value in options.contains { same(value, $0) } }
                default: return values.allSatisfy { value in options.contains { same(value, $0) } }
                }
            case "size":
                guard let size = Int(right) else { return false }
                switch actual {
                case .array(let items)?: return items.count == size
                case .string(let text)?: return text.count == size
                default: return false
                }
            case "empty":
                let empty: Bool
                switch actual {
                case .array(let items)?: empty = items.isEmpty
                case .string(let text)?: empty = text.isEmpty
                default: return false
                }
                return empty == (right == "true")
            default:
                let expected = operand(right, item)
                guard let actual, let expected else { return op == "!=" && (actual == nil) != (expected == nil) }
                switch op {
                case "==": return same(actual, expected)
                case "!=": return !same(actual, expected)
                default:
                    let ordered: ComparisonResult?
                    if case .number(let a) = actual, case .number(let b) = expected, let x = Double(a),
                        let y = Double(b)
                    {
                        ordered = x < y ? .orderedAscending : x > y ? .orderedDescending : .orderedSame
                    } else if case .string(let a) = actual, case .string(let b) = expected {
                        ordered = a < b ? .orderedAscending : a > b ? .orderedDescending : .orderedSame
                    } else {
                        ordered = nil
                    }
                    guard let ordered else { return false }
                    switch op {
                    case "<": return ordered == .orderedAscending
                    case "<=": return ordered != .orderedDescending
                    case ">": return ordered == .orderedDescending
                    default: return ordered != .orderedAscending
                    }
                }
            }
        }
        if trimmed.hasPrefix("!") { return !test(String(trimmed.dropFirst()), on: item) }
        guard trimmed.hasPrefix("@") || trimmed.hasPrefix("$") else { return false }
        return operand(trimmed, item) != nil
    }

    /// `@.x` (the item), `$.x` (the item too: filters here see no outer document), or a literal.
    static func operand(_ text: String, _ item: JSONValue) -> JSONValue? {
        if text.hasPrefix("@") || text.hasPrefix("$") {
            var path = "$" + text.dropFirst()
            if path.hasSuffix(".length()") {
                path = String(path.dropLast(".length()".count))
                switch evaluate(path, on: item).first {
                case .array(let items)?: return .number(String(items.count))
                case .string(let text)?: return .number(String(text.count))
                default: return nil
                }
            }
            return evaluate(path, on: item).first
        }
        if (text.hasPrefix("'") && text.hasSuffix("'") && text.count >= 2)
            || (text.hasPrefix("\"") && text.hasSuffix("\"") && text.count >= 2)
        {
            return .string(String(text.dropFirst().dropLast()))
        }
        return (try? JSONValue.parse(text)) ?? .string(text)
    }

    /// Numbers equal by value (`1` and `1.0`), everything else structurally.
    static func same(_ a: JSONValue, _ b: JSONValue) -> Bool {
        if case .number(let x) = a, case .number(let y) = b, let p = Double(x), let q = Double(y) { return p == q }
        return a == b
    }

    /// The first occurrence of `token` outside quotes, brackets and regex literals.
    static func topLevel(_ text: String, _ token: String) -> Range<String.Index>? {
        var quote: Character?
        var depth = 0
        var index = text.startIndex
        while index < text.endIndex {
            let c = text[index]
            if let q = quote {
                if c == q { quote = nil }
            } else if c == "'" || c == "\"" {
                quote = c
            } else if c == "/" && text[..<index].trimmingCharacters(in: .whitespaces).hasSuffix("=~") {
                quote = "/"
            } else if c == "(" || c == "[" {
                depth += 1
            } else if c == ")" || c == "]" {
                depth -= 1
            } else if depth == 0, text[index...].hasPrefix(token) {
                return index..<text.index(index, offsetBy: token.count)
            }
            index = text.index(after: index)
        }
        return nil
    }
}

/// The request half of a mapping.
struct RequestMatcher {
    enum URLRule {
        case any
        case url(String)
        case urlPath(String)
        case urlPattern(NSRegularExpression)
        case urlPathPattern(NSRegularExpression)
        case urlPathTemplate([String])
    }

    var method: String
    var url: URLRule
    /// The route a pattern or template declares; nil for exact URLs and for none.
    var route: DeclaredRoute?
    /// The path an exact `url`/`urlPath` names.
    var exactPath: String?
    var pathParameters: [(String, ValuePattern)] = []
    var queryParameters: [(String, ValuePattern)] = []
    var headers: [(String, ValuePattern)] = []
    var cookies: [(String, ValuePattern)] = []
    var bodyPatterns: [ValuePattern] = []
    /// Request keys the engine cannot evaluate (`customMatcher`, an extension's own keys).
    var unsupported: [String] = []
    var multipartPatterns: [MultipartPattern] = []

    /// One entry of `multipartPatterns`: ANY part (the default) or ALL parts must pass its header
    /// and body patterns. `name` is only a label, as in WireMock.
    struct MultipartPattern {
        var all: Bool
        var headers: [(String, ValuePattern)]
        var bodyPatterns: [ValuePattern]

        func matches(_ parts: [IncomingRequest.Part]) -> Bool {
            let passes = { (part: IncomingRequest.Part) -> Bool in
                headers.allSatisfy { name, pattern in RequestMatcher.anyMatches(pattern, part.headers.values(name)) }
                    && bodyPatterns.allSatisfy { $0.matches(part.body) }
            }
            return all ? !parts.isEmpty && parts.allSatisfy(passes) : parts.contains(where: passes)
        }
    }

    static let knownKeys: Set<String> = [
        "method", "url", "urlPath", "urlPattern", "urlPathPattern", "urlPathTemplate", "pathParameters",
        "queryParameters", "headers", "cookies", "bodyPatterns", "basicAuth", "basicAuthCredentials",
        "multipartPatterns",
    ]

    init(_ request: JSONValue, now: Date = Date()) throws {
        method = (request["method"]?.stringValue ?? "ANY").uppercased()
        let regex = { (pattern: String) throws -> NSRegularExpression in
            guard let compiled = try? NSRegularExpression(pattern: "^(?:\(pattern))$") else {
                throw MatcherError(description: "invalid URL regular expression '\(pattern)'")
            }
            return compiled
        }
        if let url = request["url"]?.stringValue {
            self.url = .url(url)
            exactPath = String(url.prefix { $0 != "?" })
        } else if let path = request["urlPath"]?.stringValue {
            url = .urlPath(path)
            exactPath = path
        } else if let pattern = request["urlPattern"]?.stringValue {
            url = .urlPattern(try regex(pattern))
            route = DeclaredRoute(method: method, pattern: pattern, onTarget: true)
        } else if let pattern = request["urlPathPattern"]?.stringValue {
            url = .urlPathPattern(try regex(pattern))
            route = DeclaredRoute(method: method, pattern: pattern, onTarget: false)
        } else if let template = request["urlPathTemplate"]?.stringValue {
            url = .urlPathTemplate(template.split(separator: "/", omittingEmptySubsequences: false).map(String.init))
            route = DeclaredRoute(method: method, template: template)
        } else {
            url = .any
            route = DeclaredRoute(method: method, template: "/{path}")
        }
        pathParameters = try Self.patterns(request["pathParameters"], "pathParameters", now: now)
        queryParameters = try Self.patterns(request["queryParameters"], "queryParameters", now: now)
        headers = try Self.patterns(request["headers"], "headers", now: now)
        cookies = try Self.patterns(request["cookies"], "cookies", now: now)
        if case .array(let patterns)? = request["bodyPatterns"] {
            bodyPatterns = try patterns.map { try ValuePattern($0, context: "bodyPatterns", now: now) }
        }
        // WireMock 2 names it basicAuthCredentials, 3 basicAuth: an exact Basic Authorization header.
        if let credentials = request["basicAuthCredentials"] ?? request["basicAuth"] {
            guard case .string(let username)? = credentials["username"],
                case .string(let password)? = credentials["password"]
            else {
                throw MatcherError(description: "basicAuthCredentials needs username and password")
            }
            let token = Data("\(username):\(password)".utf8).base64EncodedString()
            // WireMock compares the whole value case-insensitively (`BASIC YWXP…` matches).
            headers.append(("Authorization", .equalTo("Basic \(token)", caseInsensitive: true)))
        }
        if case .array(let patterns)? = request["multipartPatterns"] {
            multipartPatterns = try patterns.enumerated().map { index, spec in
                let context = "multipartPatterns[\(index)]"
                var bodies: [ValuePattern] = []
                if case .array(let list)? = spec["bodyPatterns"] {
                    bodies = try list.map { try ValuePattern($0, context: context, now: now) }
                }
                return MultipartPattern(
                    all: spec["matchingType"]?.stringValue?.uppercased() == "ALL",
                    headers: try Self.patterns(spec["headers"], context + ".headers", now: now), bodyPatterns: bodies)
            }
        }
        if case .object(let members) = request {
            unsupported = members.map(\.key).filter { !Self.knownKeys.contains($0) }.sorted()
        }
    }

    /// Every part the engine cannot evaluate, for a diagnostic when the mapping loads.
    var unsupportedParts: [String] {
        var parts = unsupported
        for (group, patterns) in [
            ("pathParameters", pathParameters), ("queryParameters", queryParameters), ("headers", headers),
            ("cookies", cookies),
        ] {
            for (name, pattern) in patterns {
                if let unknown = pattern.unsupported { parts.append("\(group).\(name) (\(unknown))") }
            }
        }
        for (index, pattern) in bodyPatterns.enumerated() {
            if let unknown = pattern.unsupported { parts.append("bodyPatterns[\(index)] (\(unknown))") }
        }
        return parts
    }

    static func patterns(_ spec: JSONValue?, _ context: String, now: Date) throws -> [(String, ValuePattern)] {
        guard case .object(let members)? = spec else { return [] }
        return try members.map { ($0.key, try ValuePattern($0.value, context: "\(context).\($0.key)", now: now)) }
    }

    /// How one request fared against this matcher.
    struct Outcome {
        var matched: Bool
        /// The first part that did not match (`headers.Authorization`), for near-miss messages.
        var failedOn: String?
        /// Parts that failed only on a redacted value and so counted as matched.
        var redacted: [String] = []
        /// Parts the engine cannot evaluate; the rest matched, so the mapping might answer.
        var undecided: [String] = []
    }

    func matches(_ request: IncomingRequest) -> Bool { evaluate(request).matched }

    /// Matches `request`; a part that fails only because the recorded value was redacted counts
    /// as matched, since the real service accepted the real value.
    func evaluate(_ request: IncomingRequest) -> Outcome {
        var outcome = Outcome(matched: false)
        if method != "ANY" && method != request.method {
            outcome.failedOn = "method"
            return outcome
        }
        if !urlMatches(request, &outcome) {
            outcome.failedOn = outcome.failedOn ?? "url"
            return outcome
        }
        let groups: [(String, [(String, ValuePattern)], (String) -> [String])] = [
            ("queryParameters", queryParameters, { name in request.query.filter { $0.0 == name }.map(\.1) }),
            ("headers", headers, { name in request.headers.values(name) }),
            ("cookies", cookies, { name in request.cookies.filter { $0.0 == name }.map(\.1) }),
        ]
        for (group, patterns, values) in groups {
            for (name, pattern) in patterns {
                let found = values(name)
                if Self.anyMatches(pattern, found) { continue }
                if let unknown = pattern.unsupported {
                    outcome.undecided.append("\(group).\(name) (\(unknown))")
                    continue
                }
                if !pattern.isAbsent, found.contains(where: RedactionPolicy.containsMarker) {
                    outcome.redacted.append("\(group).\(name)")
                    continue
                }
                outcome.failedOn = "\(group).\(name)"
                return outcome
            }
        }
        for (index, pattern) in bodyPatterns.enumerated() {
            let matched: Bool
            if case .binaryEqualTo(let data) = pattern {
                matched = request.body == data
            } else {
                matched = pattern.matches(request.bodyText)
            }
            if matched { continue }
            if let unknown = pattern.unsupported {
                outcome.undecided.append("bodyPatterns[\(index)] (\(unknown))")
                continue
            }
            if RedactionPolicy.containsMarker(request.bodyText),
                pattern.matches(request.bodyText, redactedAsWildcard: true)
            {
                outcome.redacted.append("bodyPatterns[\(index)]")
                continue
            }
            outcome.failedOn = "bodyPatterns[\(index)]"
            return outcome
        }
        if !multipartPatterns.isEmpty {
            // A request that is not multipart matches no multipart pattern.
            guard let parts = request.parts else {
                outcome.failedOn = "multipartPatterns"
                return outcome
            }
            for (index, pattern) in multipartPatterns.enumerated() where !pattern.matches(parts) {
                outcome.failedOn = "multipartPatterns[\(index)]"
                return outcome
            }
        }
        outcome.undecided += unsupported
        outcome.matched = outcome.undecided.isEmpty
        return outcome
    }

    private func urlMatches(_ request: IncomingRequest, _ outcome: inout Outcome) -> Bool {
        let regexMatches = { (regex: NSRegularExpression, text: String) in
            regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
        }
        switch url {
        case .any: return true
        case .url(let expected):
            if request.url == expected { return true }
            guard RedactionPolicy.containsMarker(request.url), Self.wildcardMatches(request.url, expected) else {
                return false
            }
            outcome.redacted.append("url")
            return true
        case .urlPath(let expected): return request.path == expected
        case .urlPattern(let regex):
            if regexMatches(regex, request.url) { return true }
            guard RedactionPolicy.containsMarker(request.url), regexMatches(regex, StandIns.text(request.url)) else {
                return false
            }
            outcome.redacted.append("urlPattern")
            return true
        case .urlPathPattern(let regex): return regexMatches(regex, request.path)
        case .urlPathTemplate(let template):
            let segments = request.path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            guard segments.count == template.count else { return false }
            var values: [String: String] = [:]
            for (pattern, segment) in zip(template, segments) {
                if pattern.hasPrefix("{") && pattern.hasSuffix("}") {
                    guard !segment.isEmpty else { return false }
                    values[String(pattern.dropFirst().dropLast())] = segment.removingPercentEncoding ?? segment
                } else if pattern != segment {
                    return false
                }
            }
            for (name, pattern) in pathParameters where !pattern.matches(values[name]) {
                outcome.failedOn = "pathParameters.\(name)"
                return false
            }
            return true
        }
    }

    /// Whether `expected` equals `recorded` when each redaction marker in it may stand for any text.
    static func wildcardMatches(_ recorded: String, _ expected: String) -> Bool {
        var pattern = "^"
        var rest = Substring(recorded)
        while let start = rest.range(of: "<redacted"), let end = rest[start.upperBound...].firstIndex(of: ">") {
            pattern += NSRegularExpression.escapedPattern(for: String(rest[..<start.lowerBound])) + ".*"
            rest = rest[rest.index(after: end)...]
        }
        pattern += NSRegularExpression.escapedPattern(for: String(rest)) + "$"
        guard let regex = try? NSRegularExpression(pattern: pattern, options: [.dotMatchesLineSeparators]) else {
            return false
        }
        return regex.firstMatch(in: expected, range: NSRange(expected.startIndex..., in: expected)) != nil
    }

    static func anyMatches(_ pattern: ValuePattern, _ values: [String]) -> Bool {
        if values.isEmpty { return pattern.matches(nil) }
        if pattern.isAbsent { return false }
        return values.contains { pattern.matches($0) }
    }
}

extension JSONValue {
    var stringValue: String? {
        switch self {
        case .string(let text): return text
        case .number(let text): return text
        case .bool(let value): return value ? "true" : "false"
        default: return nil
        }
    }
}

/// A request as WireMock sees it: decoded query parameters, cookies, text body.
struct IncomingRequest {
    var method: String
    var scheme: String
    var host: String
    var port: Int
    var url: String
    var path: String
    var query: [(String, String)]
    var headers: HeaderFields
    var cookies: [(String, String)]
    var body: Data
    var bodyText: String
    /// The parts of a `multipart/*` body; nil for any other.
    var parts: [Part]?

    struct Part {
        var headers: HeaderFields
        var body: String
    }

    /// Parts between `--boundary` lines, each with its headers and body.
    static func multipart(_ text: String, contentType: String?) -> [Part]? {
        guard let contentType, contentType.lowercased().hasPrefix("multipart/"),
            let range = contentType.range(of: "boundary=", options: .caseInsensitive)
        else { return nil }
        var boundary = contentType[range.upperBound...].prefix { $0 != ";" }.trimmingCharacters(in: .whitespaces)
        if boundary.hasPrefix("\""), boundary.hasSuffix("\""), boundary.count >= 2 {
            boundary = String(boundary.dropFirst().dropLast())
        }
        guard !boundary.isEmpty else { return nil }
        var parts: [Part] = []
        for chunk in text.components(separatedBy: "--" + boundary).dropFirst() {
            if chunk.hasPrefix("--") { break }
            var piece = Substring(chunk)
            // "\r\n" is one Character in Swift: one newline either way.
            if piece.first?.isNewline == true { piece = piece.dropFirst() }
            if piece.last?.isNewline == true { piece = piece.dropLast() }
            let split = piece.range(of: "\r\n\r\n") ?? piece.range(of: "\n\n")
            let head = split.map { piece[..<$0.lowerBound] } ?? ""
            let body = split.map { String(piece[$0.upperBound...]) } ?? String(piece)
            var headers = HeaderFields()
            for line in head.split(whereSeparator: \.isNewline) {
                guard let colon = line.firstIndex(of: ":") else { continue }
                headers.add(
                    String(line[..<colon]).trimmingCharacters(in: .whitespaces),
                    String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces))
            }
            parts.append(Part(headers: headers, body: body))
        }
        return parts
    }

    init(_ request: RecordedRequest) {
        method = request.method.uppercased()
        scheme = request.scheme
        host = request.host
        port = request.port
        url = request.target
        path = request.path
        query = QueryString.parameters(request.query)
        headers = request.headers
        cookies = Cookies.pairs(request.headers.values("cookie"))
        body = request.body.bytes
        bodyText = String(decoding: request.body.bytes, as: UTF8.self)
        parts = Self.multipart(bodyText, contentType: request.headers["content-type"])
    }
}

struct MatcherError: Error {
    var description: String
}
