import Foundation

/// What a mock did with one replayed request.
public enum MockAnswer: Sendable, Equatable {
    case response(RecordedResponse)
    /// The mock has no answer for this request (no WireMock mapping matched).
    case unmatched(String)
}

/// One recorded exchange and the mock's answer to the same request.
public struct ReplayedExchange: Sendable {
    public var exchange: Exchange
    public var answer: MockAnswer

    public init(exchange: Exchange, answer: MockAnswer) {
        self.exchange = exchange
        self.answer = answer
    }
}

/// Compares mock answers with the real service, from the consumer's point of view.
public struct Differ: Sendable {
    /// Headers whose meaning a consumer acts on.
    public static let meaningfulHeaders = [
        "location", "link", "retry-after", "www-authenticate", "allow", "content-location", "content-encoding",
    ]

    /// Keep the reasons for every difference treated as noise.
    public var explain = false

    public init(explain: Bool = false) { self.explain = explain }

    public struct Result: Sendable {
        public var findings: [Finding]
        public var explanations: [String]
        public var diagnostics: [Diagnostic]
        public var compared: Int
    }

    /// Compares every replayed exchange of one service.
    public func compare(service: String, replayed: [ReplayedExchange]) -> Result {
        var context = Context(service: service, explain: explain)
        var byEndpoint: [String: [ReplayedExchange]] = [:]
        var order: [String] = []
        for item in replayed where item.exchange.response != nil {
            let endpoint = item.exchange.endpoint
            if byEndpoint[endpoint] == nil { order.append(endpoint) }
            byEndpoint[endpoint, default: []].append(item)
        }
        var compared = 0
        for endpoint in order {
            compared += compareEndpoint(endpoint, byEndpoint[endpoint]!, &context)
        }
        return Result(
            findings: context.findings(), explanations: context.explanations, diagnostics: context.diagnostics,
            compared: compared)
    }

    // MARK: Endpoint model

    /// Real-service knowledge about one endpoint.
    final class EndpointModel {
        /// By status code, then by query-parameter names ("" is the union over all of them).
        var shapes: [Int: [String: ShapeNode]] = [:]
        /// JSON paths and header names whose values change between identical real requests.
        var volatile: Set<String> = []
        var headerValues: [String: Set<String>] = [:]
        var headerCounts: [Int: Int] = [:]

        func shape(status: Int, variant: String) -> ShapeNode? {
            guard let byVariant = shapes[status] else { return nil }
            return byVariant[variant] ?? byVariant[""]
        }
    }

    static func variant(of request: RecordedRequest) -> String {
        guard let query = request.query, !query.isEmpty else { return "?" }
        let names = query.split(separator: "&").map {
            $0.split(separator: "=", maxSplits: 1).first.map(String.init) ?? ""
        }
        return "?" + Set(names).sorted().joined(separator: "&")
    }

    static func json(_ body: CapturedBody, headers: HeaderFields) -> JSONValue? {
        guard !body.isTruncated, !body.bytes.isEmpty else { return nil }
        let type = MediaType.of(headers)
        guard MediaType.isJSON(type) || type == nil else { return nil }
        return try? JSONValue.parse(body.bytes)
    }

    func model(for items: [ReplayedExchange], _ context: inout Context) -> EndpointModel {
        let model = EndpointModel()
        var identical: [String: [(Int, JSONValue?, HeaderFields)]] = [:]
        for item in items {
            guard let response = item.exchange.response else { continue }
            let request = item.exchange.request
            let body = Self.json(response.body, headers: response.headers)
            if let body {
                for variant in ["", Self.variant(of: request)] {
                    let node = model.shapes[response.status, default: [:]][variant] ?? ShapeNode()
                    node.add(body)
                    model.shapes[response.status, default: [:]][variant] = node
                }
            } else if response.body.isTruncated {
                context.diagnostics.append(
                    Diagnostic(
                        service: context.service,
                        message:
                            "exchange \(item.exchange.id ?? 0): response body truncated at \(response.body.bytes.count) bytes; body not compared"
                    ))
            }
            let identity = "\(request.method) \(request.target) \(request.body.bytes.hashValue)"
            identical[identity, default: []].append((response.status, body, response.headers))
        }
        // Values that change between identical requests are noise, the way Diffy learns it.
        for group in identical.values where group.count >= 2 {
            var seen: [String: Set<String>] = [:]
            for (status, body, headers) in group {
                if let body { Self.flatten(body, path: [], into: &seen, prefix: "\(status)") }
                for name in Self.meaningfulHeaders {
                    seen["header:\(name)", default: []].insert(headers[name] ?? "")
                }
            }
            for (path, values) in seen where values.count > 1 {
                model.volatile.insert(path.hasPrefix("header:") ? path : String(path.drop { $0 != "$" }))
            }
        }
        return model
    }

    static func flatten(_ value: JSONValue, path: [String], into seen: inout [String: Set<String>], prefix: String) {
        switch value {
        case .object(let members):
            for (key, member) in members { flatten(member, path: path + [key], into: &seen, prefix: prefix) }
        case .array(let items):
            for item in items { flatten(item, path: path + ["[*]"], into: &seen, prefix: prefix) }
        default:
            // Array elements share a path; collecting per position would call every list volatile.
            seen["\(prefix)\(JSONPath.format(path))", default: []].insert(value.serialized())
        }
    }

    // MARK: Comparing

    func compareEndpoint(_ endpoint: String, _ items: [ReplayedExchange], _ context: inout Context) -> Int {
        let model = model(for: items, &context)
        var nullUse: [String: NullUse] = [:]
        var compared = 0
        for item in items {
            guard let real = item.exchange.response else { continue }
            let id = item.exchange.id ?? 0
            compared += 1
            let response: RecordedResponse
            switch item.answer {
            case .unmatched(let reason):
                context.add(
                    Finding(
                        service: context.service, endpoint: endpoint, kind: .unmocked, path: "$",
                        message:
                            "the mock has no answer for \(item.exchange.request.method) \(item.exchange.request.target): \(reason)",
                        real: .number(String(real.status)), exchanges: [id]))
                continue
            case .response(let answer):
                response = answer
            }
            if real.status / 100 != response.status / 100 {
                let message =
                    real.status >= 400 && response.status < 400
                    ? "the mock succeeds with \(response.status) where the real service fails with \(real.status)"
                    : "the real service answers \(real.status), the mock \(response.status)"
                context.add(
                    Finding(
                        service: context.service, endpoint: endpoint, kind: .status, path: "status", message: message,
                        real: .number(String(real.status)), mock: .number(String(response.status)), exchanges: [id]))
                continue
            }
            if real.status != response.status {
                context.add(
                    Finding(
                        service: context.service, endpoint: endpoint, kind: .statusCode, path: "status",
                        message: "the real service answers \(real.status), the mock \(response.status)",
                        real: .number(String(real.status)), mock: .number(String(response.status)), exchanges: [id]))
                continue
            }
            let realType = MediaType.of(real.headers)
            let mockType = MediaType.of(response.headers)
            if let realType, !real.body.bytes.isEmpty, realType != mockType {
                context.add(
                    Finding(
                        service: context.service, endpoint: endpoint, kind: .contentType, path: "header:content-type",
                        message: "the real service sends \(realType), the mock \(mockType ?? "no content type")",
                        real: .string(realType), mock: mockType.map(JSONValue.string) ?? .null, exchanges: [id]))
                continue
            }
            compareHeaders(endpoint, id: id, real: real.headers, mock: response.headers, model: model, &context)
            guard let mockBody = Self.json(response.body, headers: response.headers),
                let node = model.shape(status: real.status, variant: Self.variant(of: item.exchange.request))
            else { continue }
            let realBody = Self.json(real.body, headers: real.headers)
            var walker = Walker(
                endpoint: endpoint, id: id, volatile: model.volatile, statusPrefix: "\(real.status)",
                nullUse: nullUse, context: context)
            walker.walk(mockBody, node: node, real: realBody, path: [])
            nullUse = walker.nullUse
            context = walker.context
        }
        for (path, use) in nullUse.sorted(by: { $0.key < $1.key }) {
            let node = use.node
            if node.sendsNull && use.null == 0 && use.values > 0 {
                context.add(
                    Finding(
                        service: context.service, endpoint: endpoint, kind: .nullability, path: path,
                        message: "the real service sometimes sends null here; the mock never does",
                        real: .null, mock: nil, exchanges: use.exchanges.sorted()))
            } else if !node.sendsNull && node.sendsValues && use.values == 0 && use.null > 0 {
                context.add(
                    Finding(
                        service: context.service, endpoint: endpoint, kind: .nullability, path: path,
                        message: "the mock only ever sends null here; the real service sends values",
                        real: node.sample, mock: .null, exchanges: use.exchanges.sorted()))
            }
        }
        return compared
    }

    func compareHeaders(
        _ endpoint: String, id: Int64, real: HeaderFields, mock: HeaderFields, model: EndpointModel,
        _ context: inout Context
    ) {
        for name in Self.meaningfulHeaders {
            guard let realValue = real[name] else { continue }
            let path = "header:\(name)"
            guard let mockValue = mock[name] else {
                context.add(
                    Finding(
                        service: context.service, endpoint: endpoint, kind: .header, path: path,
                        message: "the real service sends \(name); the mock does not", real: .string(realValue),
                        mock: nil, exchanges: [id]))
                continue
            }
            let same = Self.normaliseHeader(realValue) == Self.normaliseHeader(mockValue)
            if !same && (model.volatile.contains(path) || name == "retry-after") {
                context.explain(
                    "\(endpoint) \(path): '\(realValue)' vs '\(mockValue)' differ, but the value changes between identical real requests"
                )
                continue
            }
            if !same {
                context.add(
                    Finding(
                        service: context.service, endpoint: endpoint, kind: .header, path: path,
                        message: "\(name) differs", real: .string(realValue), mock: .string(mockValue), exchanges: [id])
                )
            }
        }
    }

    /// Absolute URLs keep only their path, and ids in paths are templated: hosts and ids differ by design.
    static func normaliseHeader(_ value: String) -> String {
        var text = value.trimmingCharacters(in: .whitespaces)
        if let scheme = text.range(of: "://") {
            let afterHost = text[scheme.upperBound...].firstIndex(of: "/") ?? text.endIndex
            text = String(text[afterHost...])
        }
        guard text.hasPrefix("/") else { return text }
        let parts = text.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        let path = Endpoint.templatePath(String(parts[0]))
        return parts.count > 1 ? "\(path)?\(parts[1])" : path
    }

    // MARK: Accumulating findings

    /// How often the mock sent null and non-null at one path, for nullability.
    struct NullUse {
        var null = 0
        var values = 0
        var node: ShapeNode
        var exchanges: Set<Int64> = []
    }

    struct Context {
        let service: String
        let explain: Bool
        var byKey: [String: Finding] = [:]
        var order: [String] = []
        var explanations: [String] = []
        var diagnostics: [Diagnostic] = []

        mutating func add(_ finding: Finding) {
            let key = finding.key
            if var existing = byKey[key] {
                for id in finding.exchanges where !existing.exchanges.contains(id) { existing.exchanges.append(id) }
                byKey[key] = existing
            } else {
                byKey[key] = finding
                order.append(key)
            }
        }

        mutating func explain(_ line: String) {
            if explain { explanations.append("\(service) \(line)") }
        }

        func findings() -> [Finding] {
            order.map { key in
                var finding = byKey[key]!
                finding.exchanges.sort()
                return finding
            }
        }
    }

    /// Walks one mock body against the endpoint's real shape and the real answer to the same request.
    struct Walker {
        let endpoint: String
        let id: Int64
        let volatile: Set<String>
        let statusPrefix: String
        var nullUse: [String: NullUse]
        var context: Context

        mutating func add(_ kind: DriftKind, _ path: [String], _ message: String, real: JSONValue?, mock: JSONValue?) {
            context.add(
                Finding(
                    service: context.service, endpoint: endpoint, kind: kind, path: JSONPath.format(path),
                    message: message, real: real, mock: mock.map(ShapeNode.abbreviated), exchanges: [id]))
        }

        mutating func walk(_ mock: JSONValue, node: ShapeNode, real: JSONValue?, path: [String]) {
            let formatted = JSONPath.format(path)
            let kind = JSONKind.of(mock)
            if kind == .null {
                nullUse[formatted, default: NullUse(node: node)].null += 1
                nullUse[formatted, default: NullUse(node: node)].exchanges.insert(id)
                return
            }
            nullUse[formatted, default: NullUse(node: node)].values += 1
            nullUse[formatted, default: NullUse(node: node)].exchanges.insert(id)
            let classes = node.valueClasses
            if !classes.isEmpty && !classes.contains(kind.compatibilityClass) {
                add(
                    .type, path,
                    "the real service sends \(classes.map(\.rawValue).sorted().joined(separator: " or ")), the mock \(kind.rawValue)",
                    real: node.sample, mock: mock)
                return
            }
            switch mock {
            case .object(let members):
                if node.isMap {
                    if context.explain { context.explain("\(endpoint) \(formatted): keyed by data, compared as a map") }
                    for (key, value) in members {
                        walk(value, node: node.mapValues, real: real?[key], path: path + ["[*]"])
                    }
                    return
                }
                guard node.objectCount > 0 else { return }
                for (key, value) in members {
                    guard let child = node.members[key] else {
                        add(
                            .phantomField, path + [key],
                            "the mock sends \(JSONPath.format(path + [key])), which the real service never sends",
                            real: nil, mock: value)
                        continue
                    }
                    walk(value, node: child, real: real?[key], path: path + [key])
                }
                if case .object(let realMembers)? = real {
                    for (key, value) in realMembers where !members.contains(where: { $0.key == key }) {
                        add(
                            .missingField, path + [key],
                            "the real service sends \(JSONPath.format(path + [key])); the mock omits it",
                            real: ShapeNode.abbreviated(value), mock: nil)
                    }
                }
            case .array(let elements):
                guard let itemNode = node.items else { return }
                let realFirst: JSONValue?
                if case .array(let realItems)? = real { realFirst = realItems.first } else { realFirst = nil }
                for element in elements {
                    // Element i of the mock need not match element i of reality; the first real
                    // element stands for the shape that missing fields are judged by.
                    walk(element, node: itemNode, real: realFirst, path: path + ["[*]"])
                }
            default:
                compareScalar(mock, node: node, path: path)
            }
        }

        mutating func compareScalar(_ mock: JSONValue, node: ShapeNode, path: [String]) {
            let formatted = JSONPath.format(path)
            let serialized = mock.serialized()
            if case .string(let text) = mock, !text.hasPrefix("<redacted:") {
                if let format = node.consistentFormat {
                    let mockFormat = StringFormat.of(text)
                    if mockFormat != format {
                        add(
                            .format, path, "the real service sends \(format.rawValue) strings here, the mock '\(text)'",
                            real: node.sample, mock: mock)
                    } else if node.sample != mock {
                        context.explain(
                            "\(endpoint) \(formatted): \(format.rawValue) values differ by nature; only the format is compared"
                        )
                    }
                    return
                }
                if let set = node.closedSet, !set.contains(serialized) {
                    add(
                        .enumValue, path,
                        "the mock sends \(serialized), outside the real values \(set.sorted().joined(separator: ", "))",
                        real: node.sample, mock: mock)
                    return
                }
            }
            guard let stable = node.stableValue else {
                if volatile.contains(formatted) {
                    context.explain(
                        "\(endpoint) \(formatted): the value changes between identical real requests; not compared")
                }
                return
            }
            guard stable != serialized else { return }
            if volatile.contains(formatted) {
                context.explain(
                    "\(endpoint) \(formatted): \(stable) vs \(serialized) differ, but the value changes between identical real requests"
                )
                return
            }
            if case .number(let text) = mock, let real = try? JSONValue.parse(stable), real == .number(text) { return }
            add(
                .value, path, "the real service always sends \(stable) here, the mock \(serialized)",
                real: try? JSONValue.parse(stable), mock: mock)
        }
    }
}
