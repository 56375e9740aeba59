import Foundation

/// A route a mock declares — a WireMock `urlPathTemplate`, `urlPathPattern` or `urlPattern`,
/// later an OpenAPI path or a Pact interaction: it names the endpoint of every recorded request
/// it matches, with a readable template (`/orders/{id}`), never a raw regex.
public struct DeclaredRoute: Sendable {
    /// Upper case, or `ANY`.
    public let method: String
    /// The readable path template, e.g. `/orders/{id}.json`.
    public let template: String
    private let regex: NSRegularExpression
    /// Whether the regex is matched against `path?query` (WireMock's `urlPattern`) or the path.
    private let onTarget: Bool
    /// Literal characters in the template: among several matching routes, the most specific wins.
    let specificity: Int

    /// A route from a template with `{name}` parameters (`urlPathTemplate`, OpenAPI paths).
    public init(method: String, template: String) {
        self.method = method.uppercased()
        self.template = template
        var pattern = ""
        var literal = 0
        var inParameter = false
        for character in template {
            if inParameter {
                if character == "}" { inParameter = false }
            } else if character == "{" {
                inParameter = true
                pattern += "[^/]+"
            } else {
                pattern += NSRegularExpression.escapedPattern(for: String(character))
                literal += 1
            }
        }
        // A template built this way always compiles.
        regex = try! NSRegularExpression(pattern: "^\(pattern)$")
        onTarget = false
        specificity = literal
    }

    /// A route from a regular expression (`urlPathPattern`, or `urlPattern` with `onTarget`);
    /// nil when the expression does not compile.
    public init?(method: String, pattern: String, onTarget: Bool) {
        guard let regex = try? NSRegularExpression(pattern: "^(?:\(pattern))$") else { return nil }
        self.method = method.uppercased()
        self.regex = regex
        self.onTarget = onTarget
        let readable = RouteTemplate.fromRegex(pattern, stripQuery: onTarget)
        template = readable.template
        specificity = readable.literal
    }

    public func matches(method: String, path: String, query: String?) -> Bool {
        guard self.method == "ANY" || self.method == method.uppercased() else { return false }
        let subject = onTarget ? (query.map { "\(path)?\($0)" } ?? path) : path
        return regex.firstMatch(in: subject, range: NSRange(subject.startIndex..., in: subject)) != nil
    }
}

/// Regular expressions made readable: `/orders/[0-9]+\.json` → `/orders/{id}.json`.
public enum RouteTemplate {
    /// The template, and how many literal characters it kept.
    public static func fromRegex(_ pattern: String, stripQuery: Bool = false) -> (template: String, literal: Int) {
        var output = ""
        var literal = 0
        var names: [String] = []
        let characters = Array(pattern)
        var index = 0
        var depth = 0
        func parameter(_ name: String?) {
            if output.hasSuffix("}") { return }
            let ordinal = names.count + 1
            let chosen = name ?? (ordinal == 1 ? "id" : "id\(ordinal)")
            names.append(chosen)
            output += "{\(chosen)}"
        }
        func skipQuantifier() {
            guard index < characters.count else { return }
            switch characters[index] {
            case "*", "+", "?":
                index += 1
            case "{":
                while index < characters.count && characters[index] != "}" { index += 1 }
                index += 1
            default: return
            }
            if index < characters.count && (characters[index] == "?" || characters[index] == "+") { index += 1 }
        }
        func quantified() -> Bool {
            guard index < characters.count else { return false }
            return "*+?{".contains(characters[index])
        }
        while index < characters.count {
            let character = characters[index]
            switch character {
            case "^", "$":
                index += 1
            case "\\":
                guard index + 1 < characters.count else {
                    index += 1
                    continue
                }
                let escaped = characters[index + 1]
                index += 2
                if escaped.isLetter || escaped.isNumber {
                    // \d, \w, \S…: a class, so a parameter.
                    skipQuantifier()
                    parameter(nil)
                } else if quantified() {
                    skipQuantifier()
                } else {
                    output.append(escaped)
                    literal += 1
                }
            case "[":
                index += 1
                if index < characters.count && characters[index] == "^" { index += 1 }
                if index < characters.count && characters[index] == "]" { index += 1 }
                while index < characters.count && characters[index] != "]" {
                    if characters[index] == "\\" { index += 1 }
                    index += 1
                }
                index += 1
                skipQuantifier()
                parameter(nil)
            case "(":
                var name: String?
                let start = index
                depth = 1
                index += 1
                if index + 2 < characters.count && characters[index] == "?" && characters[index + 1] == "<"
                    && characters[index + 2] != "=" && characters[index + 2] != "!"
                {
                    let nameStart = index + 2
                    var nameEnd = nameStart
                    while nameEnd < characters.count && characters[nameEnd] != ">" { nameEnd += 1 }
                    name = String(characters[nameStart..<min(nameEnd, characters.count)])
                }
                while index < characters.count && depth > 0 {
                    if characters[index] == "\\" {
                        index += 2
                        continue
                    }
                    if characters[index] == "(" { depth += 1 }
                    if characters[index] == ")" { depth -= 1 }
                    index += 1
                }
                // A group of plain words, e.g. `(orders)`, is still a literal.
                let inner = String(characters[(start + 1)..<max(start + 1, index - 1)])
                if name == nil, !quantified(), !inner.isEmpty,
                    inner.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "/" })
                {
                    output += inner
                    literal += inner.count
                } else {
                    skipQuantifier()
                    parameter(name.flatMap { $0.isEmpty ? nil : $0 })
                }
            case ".":
                index += 1
                skipQuantifier()
                parameter(nil)
            case "|":
                // An alternation over the whole expression has no one template.
                return ("/{path}", 0)
            default:
                index += 1
                if quantified() {
                    // `s?` or `/+`: an optional character is left out of the template.
                    skipQuantifier()
                } else {
                    if stripQuery && character == "?" { break }
                    output.append(character)
                    literal += 1
                }
            }
            if stripQuery, let question = output.firstIndex(of: "?") {
                output = String(output[..<question])
                break
            }
        }
        if output.isEmpty { output = "/" }
        if !output.hasPrefix("/") { output = "/" + output }
        return (output, literal)
    }
}

/// Endpoint templates for one service, learned from every recorded path and from the routes
/// the mocks declare. The one place that says which endpoint a request belongs to: `list`,
/// every report, exports and `driftcheck.yml` rules all ask it.
public struct EndpointCatalog: Sendable {
    public let declared: [DeclaredRoute]
    /// Recorded path → templated path.
    let learned: [String: String]

    /// Templates by the identifier heuristic alone, for paths nothing was learned about.
    public static let heuristic = EndpointCatalog(declared: [], learned: [:])

    /// Learns templates from `paths` (each recorded path once). `shape` gives the JSON shape of
    /// one recorded answer for a path (see `TemplateLearner.keyPaths`), or nil when it is not
    /// JSON; it is asked only where static-looking path segments need telling apart.
    public static func learn(
        paths: [String], declared: [DeclaredRoute] = [], shape: (String) -> Set<String>? = { _ in nil }
    ) -> EndpointCatalog {
        EndpointCatalog(declared: declared, learned: TemplateLearner.learn(paths: paths, shape: shape))
    }

    /// `METHOD /templated/path`.
    public func endpoint(method: String, path: String, query: String? = nil) -> String {
        let upper = method.utf8.contains { $0 >= 0x61 && $0 <= 0x7A } ? method.uppercased() : method
        return "\(upper) \(templatePath(method: upper, path: path, query: query))"
    }

    public func endpoint(of request: RecordedRequest) -> String {
        endpoint(method: request.method, path: request.path, query: request.query)
    }

    public func templatePath(method: String, path: String, query: String? = nil) -> String {
        if !declared.isEmpty {
            var best: DeclaredRoute?
            for route in declared where route.matches(method: method, path: path, query: query) {
                if best == nil || route.specificity > best!.specificity { best = route }
            }
            if let best { return best.template }
        }
        return learned[path] ?? Endpoint.templatePath(path)
    }
}

/// Path-template inference by cardinality: a position whose values vary across recordings of
/// one shape is a parameter; identifier-like values (numbers, uuids, hashes, dates, versions,
/// with suffixes such as `.json`) always are.
public enum TemplateLearner {
    /// Static siblings needed before they may be one parameter, when their answers share a JSON shape.
    public static let minimumSiblings = 3
    /// Static siblings needed when there is no JSON to compare (files, pages).
    public static let minimumSiblingsWithoutShape = 8
    /// Siblings whose answers are read to compare shapes; the rest follow a sampled sibling.
    public static let shapeSamples = 32

    final class Node {
        var children: [String: Node] = [:]
        /// Recorded paths that end here.
        var paths: [String] = []

        func merge(_ other: Node) {
            paths += other.paths
            for (key, child) in other.children {
                if let existing = children[key] { existing.merge(child) } else { children[key] = child }
            }
        }

        /// The structure below this node (`/s/{}`: a static word, then a parameter), for
        /// comparing subtrees whose words differ because they are values themselves.
        func skeletons(prefix: String = "", into result: inout Set<String>, budget: inout Int) {
            for (key, child) in children {
                guard budget > 0 else { return }
                budget -= 1
                let path = prefix + "/" + (key.hasPrefix("{\u{0}}") ? "{}" + key.dropFirst(3) : "s")
                result.insert(path)
                child.skeletons(prefix: path, into: &result, budget: &budget)
            }
        }

        /// A recorded path at or below this node that stands for its answers.
        func representative() -> String? {
            if let own = paths.min() { return own }
            for key in children.keys.sorted() {
                if let found = children[key]!.representative() { return found }
            }
            return nil
        }
    }

    static func learn(paths: [String], shape: (String) -> Set<String>?) -> [String: String] {
        let root = Node()
        for path in Set(paths) where path.hasPrefix("/") {
            var node = root
            for segment in segments(path) {
                let key = skeleton(segment).map { "{\u{0}}" + $0 } ?? segment
                if let child = node.children[key] {
                    node = child
                } else {
                    let child = Node()
                    node.children[key] = child
                    node = child
                }
            }
            node.paths.append(path)
        }
        var cache: [String: Set<String>?] = [:]
        let cachedShape = { (path: String) -> Set<String>? in
            if let known = cache[path] { return known }
            let computed = shape(path)
            cache[path] = computed
            return computed
        }
        collapse(root, shape: cachedShape)
        var result: [String: String] = [:]
        assign(root, parts: [], parameters: 0, into: &result)
        return result
    }

    static func segments(_ path: String) -> [String] {
        guard path != "/" && !path.isEmpty else { return [] }
        var parts = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        if parts.first == "" { parts.removeFirst() }
        return parts
    }

    /// The suffix kept after a parameter (`""`, or `.json` for `17.json`), or nil for a static segment.
    static func skeleton(_ segment: String) -> String? {
        if Endpoint.isIdentifier(segment) || isDateOrVersion(segment) { return "" }
        // `17.json`, `3f2a….png`: an identifier with an extension.
        if let dot = segment.lastIndex(of: "."), dot > segment.startIndex {
            let stem = segment[..<dot]
            let suffix = segment[dot...]
            if suffix.count >= 2, suffix.count <= 6, suffix.dropFirst().allSatisfy({ $0.isLetter && $0.isASCII }),
                Endpoint.isIdentifier(stem) || isDateOrVersion(String(stem))
            {
                return String(suffix)
            }
        }
        return nil
    }

    /// `2024-05-01`, `1.2.3`, `v1.4.0` (a bare `v1` stays a static API version).
    static func isDateOrVersion(_ segment: String) -> Bool {
        if StringFormat.of(segment) == .date || StringFormat.of(segment) == .dateTime { return true }
        var text = Substring(segment)
        if text.hasPrefix("v") || text.hasPrefix("V") { text = text.dropFirst() }
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count >= 3 && parts.allSatisfy { !$0.isEmpty && $0.allSatisfy { $0.isASCII && $0.isNumber } }
    }

    /// Merges static siblings that behave as values of one parameter into a parameter child.
    /// What a store's shape function returns for a path that only ever failed (a 404 for an
    /// unknown slug): it may join a parameter its siblings form, but never forms one.
    public static let failuresOnly: Set<String> = ["<failures only>"]

    static func collapse(_ node: Node, shape: (String) -> Set<String>?) {
        let statics = node.children.keys.filter { !$0.hasPrefix("{\u{0}}") }.sorted()
        if statics.count >= minimumSiblings {
            struct Candidate {
                let key: String
                let skeletons: Set<String>
                let shape: Set<String>?
                /// `.json` for `blue-widget.json`: siblings collapse only with the same suffix.
                let suffix: String
            }
            // Thousands of slugs under one node would mean thousands of shape look-ups: past
            // `shapeSamples`, a value-like sibling takes the shape of the first sampled one with
            // the same structure and suffix.
            var sampled: [String: Set<String>?] = [:]
            let candidates = statics.enumerated().map { position, key -> Candidate in
                let child = node.children[key]!
                var skeletons = Set<String>()
                var budget = 64
                child.skeletons(into: &skeletons, budget: &budget)
                let suffix = fileExtension(of: key)
                let group = suffix + "|" + skeletons.sorted().joined(separator: ",")
                let own: Set<String>?
                // A plain word (`search`) is always read: it may be a route among values.
                if position < shapeSamples || sampled[group] == nil || !isValueLike(key) {
                    own = child.representative().flatMap(shape)
                    if sampled[group] == nil { sampled[group] = own }
                } else {
                    own = sampled[group]!
                }
                return Candidate(key: key, skeletons: skeletons, shape: own, suffix: suffix)
            }
            func compatible(_ a: Candidate, _ b: Candidate) -> Bool {
                guard a.suffix == b.suffix, similarity(a.skeletons, b.skeletons) >= 0.5 else { return false }
                switch (a.shape, b.shape) {
                case (let x?, let y?): return similarity(x, y) >= 0.6
                case (nil, nil): return true
                default: return false
                }
            }
            var clusters: [[Candidate]] = []
            for candidate in candidates where candidate.shape != failuresOnly {
                if let index = clusters.firstIndex(where: { compatible($0[0], candidate) }) {
                    clusters[index].append(candidate)
                } else {
                    clusters.append([candidate])
                }
            }
            for cluster in clusters {
                let needed = cluster[0].shape == nil ? minimumSiblingsWithoutShape : minimumSiblings
                guard cluster.count >= needed else { continue }
                let key = "{\u{0}}" + cluster[0].suffix
                let merged = node.children[key] ?? Node()
                for candidate in cluster {
                    merged.merge(node.children.removeValue(forKey: candidate.key)!)
                }
                node.children[key] = merged
            }
            // A failed lookup of a value-like word (`no-such-thing.json`) belongs to the
            // parameter its siblings became; a bare route word (`search`) stays.
            for candidate in candidates where candidate.shape == failuresOnly && isValueLike(candidate.key) {
                guard let parameter = node.children["{\u{0}}" + candidate.suffix],
                    let removed = node.children.removeValue(forKey: candidate.key)
                else { continue }
                parameter.merge(removed)
            }
        }
        for child in node.children.values { collapse(child, shape: shape) }
    }

    /// A short alphabetic extension (`.json`, `.txt`), or "".
    static func fileExtension(of segment: String) -> String {
        guard let dot = segment.lastIndex(of: "."), dot > segment.startIndex else { return "" }
        let suffix = segment[dot...]
        guard suffix.count >= 2, suffix.count <= 6, suffix.dropFirst().allSatisfy({ $0.isLetter && $0.isASCII }) else {
            return ""
        }
        return String(suffix)
    }

    static func isValueLike(_ segment: String) -> Bool {
        let stem = segment.dropLast(fileExtension(of: segment).count)
        return stem.contains { $0 == "-" || $0 == "_" || $0.isNumber }
    }

    static func similarity(_ a: Set<String>, _ b: Set<String>) -> Double {
        if a.isEmpty && b.isEmpty { return 1 }
        return Double(a.intersection(b).count) / Double(a.union(b).count)
    }

    static func assign(_ node: Node, parts: [String], parameters: Int, into result: inout [String: String]) {
        let template = "/" + parts.joined(separator: "/")
        for path in node.paths { result[path] = template }
        for (key, child) in node.children {
            if key.hasPrefix("{\u{0}}") {
                let count = parameters + 1
                let name = count == 1 ? "{id}" : "{id\(count)}"
                assign(child, parts: parts + [name + key.dropFirst(3)], parameters: count, into: &result)
            } else {
                assign(child, parts: parts + [key], parameters: parameters, into: &result)
            }
        }
    }

    /// The JSON shape of an answer for telling routes apart: member paths to depth 4, arrays as `[*]`.
    public static func keyPaths(of body: JSONValue) -> Set<String> {
        var result = Set<String>()
        func walk(_ value: JSONValue, _ path: String, _ depth: Int) {
            guard depth < 4, result.count < 256 else { return }
            switch value {
            case .object(let members):
                for (key, member) in members {
                    let child = path + "." + key
                    result.insert(child)
                    walk(member, child, depth + 1)
                }
            case .array(let items):
                for item in items.prefix(3) { walk(item, path + "[*]", depth + 1) }
            default:
                break
            }
        }
        result.insert(JSONShape.typeName(body))
        walk(body, "$", 0)
        return result
    }
}
