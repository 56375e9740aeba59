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

    /// Compares every replayed exchange of one service (both passes over an array).
    public func compare(service: String, replayed: [ReplayedExchange]) -> Result {
        let analysis = ServiceAnalysis(service: service, explain: explain)
        for item in replayed { analysis.learn(item.exchange) }
        for item in replayed { analysis.judge(item) }
        return analysis.finish()
    }

    // MARK: Endpoint model

    /// Real-service knowledge about one endpoint.
    final class EndpointModel {
        /// By status code, then by query-parameter names ("" is the union over all of them).
        var shapes: [Int: [String: ShapeNode]] = [:]
        /// JSON paths and header names whose values change between identical real requests.
        var volatile: Set<String> = []
        /// Per identical request: a signature of each path's values in the first answer.
        var firstAnswers: [Int: [String: Int]] = [:]
        var nullUse: [String: NullUse] = [:]

        func shape(status: Int, variant: String) -> ShapeNode? {
            guard let byVariant = shapes[status] else { return nil }
            return byVariant[variant] ?? byVariant[""]
        }
    }

    /// Identical requests remembered per endpoint to learn volatility; beyond this many the
    /// endpoint keeps what it learned and memory stays bounded.
    static let identityLimit = 2_000

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

    /// Each path's values in one answer, as one hash per path: two answers disagree at a path
    /// when its hashes differ.
    static func signature(_ body: JSONValue?, status: Int, headers: HeaderFields) -> [String: Int] {
        var values: [String: [String]] = [:]
        if let body { flatten(body, path: "$", into: &values) }
        var result = values.mapValues { $0.sorted().hashValue }
        for name in meaningfulHeaders { result["header:\(name)"] = (headers[name] ?? "").hashValue }
        result["status"] = status
        return result
    }

    static func flatten(_ value: JSONValue, path: String, into values: inout [String: [String]]) {
        switch value {
        case .object(let members):
            for (key, member) in members { flatten(member, path: JSONPath.appending(key, to: path), into: &values) }
        case .array(let items):
            for item in items { flatten(item, path: path + "[*]", into: &values) }
        default:
            values[path, default: []].append(value.serialized())
        }
    }

    // MARK: Comparing

    /// The part of learning one exchange that depends on nothing learned before: the comparer
    /// computes it for the next page on another thread while this one is learned.
    public struct PreparedLearning: Sendable {
        public let exchange: Exchange
        public let endpoint: String
        let body: JSONValue?
        let signature: [String: Int]?
        let identity: Int
    }

    public static func prepareLearning(_ exchange: Exchange) -> PreparedLearning {
        guard let response = exchange.response else {
            return PreparedLearning(exchange: exchange, endpoint: "", body: nil, signature: nil, identity: 0)
        }
        let body = json(response.body, headers: response.headers)
        let request = exchange.request
        var hasher = Hasher()
        hasher.combine(request.method)
        hasher.combine(request.target)
        hasher.combine(request.body.bytes)
        return PreparedLearning(
            exchange: exchange, endpoint: exchange.endpoint, body: body,
            signature: signature(body, status: response.status, headers: response.headers),
            identity: hasher.finalize())
    }

    /// The part of judging one mock answer that depends on nothing learned: both bodies parsed.
    public struct PreparedJudging: Sendable {
        let item: ReplayedExchange
        let endpoint: String
        let realBody: JSONValue?
        let mockBody: JSONValue?
    }

    public static func prepareJudging(_ item: ReplayedExchange) -> PreparedJudging {
        var mockBody: JSONValue?
        if case .response(let answer) = item.answer { mockBody = json(answer.body, headers: answer.headers) }
        return PreparedJudging(
            item: item, endpoint: item.exchange.endpoint,
            realBody: item.exchange.response.flatMap { json($0.body, headers: $0.headers) }, mockBody: mockBody)
    }

    /// The analysis of one service in two passes that never hold all exchanges at once:
    /// `learn` every real exchange, then `judge` every mock answer, then `finish`.
    public final class ServiceAnalysis {
        let service: String
        let context: Context
        var models: [String: EndpointModel] = [:]
        var endpointOrder: [String] = []
        var compared = 0

        public init(service: String, explain: Bool) {
            self.service = service
            context = Context(service: service, explain: explain)
        }

        func model(_ endpoint: String) -> EndpointModel {
            if let model = models[endpoint] { return model }
            let model = EndpointModel()
            models[endpoint] = model
            endpointOrder.append(endpoint)
            return model
        }

        /// Pass 1: what the real service sent.
        public func learn(_ exchange: Exchange) { learn(Differ.prepareLearning(exchange)) }

        /// Pass 1 with the per-exchange work (parsing, hashing) already done, on any thread.
        public func learn(_ prepared: PreparedLearning) {
            let exchange = prepared.exchange
            guard let response = exchange.response, let signature = prepared.signature else { return }
            let model = model(prepared.endpoint)
            let request = exchange.request
            let body = prepared.body
            if let body {
                for variant in ["", Differ.variant(of: request)] {
                    let node = model.shapes[response.status, default: [:]][variant] ?? ShapeNode()
                    node.add(body)
                    model.shapes[response.status, default: [:]][variant] = node
                }
            } else if response.body.isTruncated {
                context.diagnostics.append(
                    Diagnostic(
                        service: service,
                        message:
                            "exchange \(exchange.id ?? 0): response body truncated at \(response.body.bytes.count) bytes; body not compared"
                    ))
            }
            // Values that change between identical requests are noise, the way Diffy learns it.
            let identity = prepared.identity
            if let first = model.firstAnswers[identity] {
                guard first["status"] == signature["status"] else { return }
                for (path, hash) in signature where path != "status" && first[path] != nil && first[path] != hash {
                    model.volatile.insert(path)
                }
            } else if model.firstAnswers.count < Differ.identityLimit {
                model.firstAnswers[identity] = signature
            }
        }

        /// Pass 2: one mock answer against the real answer to the same request and the model.
        public func judge(_ item: ReplayedExchange) { judge(Differ.prepareJudging(item)) }

        /// Pass 2 with both bodies already parsed, on any thread.
        public func judge(_ prepared: PreparedJudging) {
            let item = prepared.item
            guard let real = item.exchange.response else { return }
            let endpoint = prepared.endpoint
            let model = model(endpoint)
            let id = item.exchange.id ?? 0
            compared += 1
            let response: RecordedResponse
            switch item.answer {
            case .unmatched(let reason):
                context.add(
                    Finding(
                        service: service, endpoint: endpoint, kind: .unmocked, path: "$",
                        message:
                            "the mock has no answer for \(item.exchange.request.method) \(item.exchange.request.target): \(reason)",
                        real: .number(String(real.status))), id: id)
                return
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
                        service: service, endpoint: endpoint, kind: .status, path: "status", message: message,
                        real: .number(String(real.status)), mock: .number(String(response.status))), id: id)
                return
            }
            if real.status != response.status {
                context.add(
                    Finding(
                        service: service, endpoint: endpoint, kind: .statusCode, path: "status",
                        message: "the real service answers \(real.status), the mock \(response.status)",
                        real: .number(String(real.status)), mock: .number(String(response.status))), id: id)
                return
            }
            let realType = MediaType.of(real.headers)
            let mockType = MediaType.of(response.headers)
            if let realType, !real.body.bytes.isEmpty, realType != mockType {
                context.add(
                    Finding(
                        service: service, endpoint: endpoint, kind: .contentType, path: "header:content-type",
                        message: "the real service sends \(realType), the mock \(mockType ?? "no content type")",
                        real: .string(realType), mock: mockType.map(JSONValue.string) ?? .null), id: id)
                return
            }
            Differ.compareHeaders(endpoint, id: id, real: real.headers, mock: response.headers, model: model, context)
            guard let mockBody = prepared.mockBody,
                let node = model.shape(status: real.status, variant: Differ.variant(of: item.exchange.request))
            else { return }
            let realBody = prepared.realBody
            let walker = Walker(endpoint: endpoint, id: id, volatile: model.volatile, model: model, context: context)
            walker.walk(mockBody, node: node, real: realBody, path: "$")
        }

        /// Endpoint-wide conclusions (nullability) and the findings in order.
        public func finish() -> Result {
            for endpoint in endpointOrder {
                guard let model = models[endpoint] else { continue }
                for (path, use) in model.nullUse.sorted(by: { $0.key < $1.key }) {
                    let node = use.node
                    if node.sendsNull && use.null == 0 && use.values > 0 {
                        context.add(
                            Finding(
                                service: service, endpoint: endpoint, kind: .nullability, path: path,
                                message: "the real service sometimes sends null here; the mock never does",
                                real: .null, mock: nil, exchanges: use.exchanges.sorted()), id: nil)
                    } else if !node.sendsNull && node.sendsValues && use.values == 0 && use.null > 0 {
                        context.add(
                            Finding(
                                service: service, endpoint: endpoint, kind: .nullability, path: path,
                                message: "the mock only ever sends null here; the real service sends values",
                                real: node.sample, mock: .null, exchanges: use.exchanges.sorted()), id: nil)
                    }
                }
            }
            return Result(
                findings: context.findings(), explanations: context.explanations, diagnostics: context.diagnostics,
                compared: compared)
        }
    }

    static func compareHeaders(
        _ endpoint: String, id: Int64, real: HeaderFields, mock: HeaderFields, model: EndpointModel, _ context: Context
    ) {
        for name in Self.meaningfulHeaders {
            guard let realValue = real[name] else { continue }
            let path = "header:\(name)"
            guard let mockValue = mock[name] else {
                context.add(
                    Finding(
                        service: context.service, endpoint: endpoint, kind: .header, path: path,
                        message: "the real service sends \(name); the mock does not", real: .string(realValue),
                        mock: nil), id: id)
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
                        message: "\(name) differs", real: .string(realValue), mock: .string(mockValue)), id: id)
            }
        }
    }

    /// Absolute URLs keep only their path, and ids in paths are templated: hosts and ids differ by design.
    static func normaliseHeader(_ value: String) -> String {
        var text = String(ASCII.trimmed(value))
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
    final class NullUse {
        var null = 0
        var values = 0
        let node: ShapeNode
        var exchanges: Set<Int64> = []
        init(node: ShapeNode) { self.node = node }
    }

    /// Findings by key, each with the set of exchanges that showed it. A class: the walk
    /// mutates it in place instead of copying ever larger arrays.
    final class Context {
        let service: String
        let explain: Bool
        var byKey: [String: Finding] = [:]
        var ids: [String: Set<Int64>] = [:]
        var order: [String] = []
        var explanations: [String] = []
        var explained: Set<String> = []
        var diagnostics: [Diagnostic] = []

        init(service: String, explain: Bool) {
            self.service = service
            self.explain = explain
        }

        func add(_ finding: Finding, id: Int64?) {
            let key = finding.key
            if byKey[key] == nil {
                byKey[key] = finding
                order.append(key)
                ids[key] = Set(finding.exchanges)
            }
            if let id { ids[key]!.insert(id) }
        }

        func explain(_ line: String) {
            guard explain, explained.insert(line).inserted else { return }
            explanations.append("\(service) \(line)")
        }

        func findings() -> [Finding] {
            order.map { key in
                var finding = byKey[key]!
                finding.exchanges = ids[key]!.sorted()
                return finding
            }
        }
    }

    /// Walks one mock body against the endpoint's real shape and the real answer to the same request.
    struct Walker {
        let endpoint: String
        let id: Int64
        let volatile: Set<String>
        let model: EndpointModel
        let context: Context

        func add(_ kind: DriftKind, _ path: String, _ message: String, real: JSONValue?, mock: JSONValue?) {
            context.add(
                Finding(
                    service: context.service, endpoint: endpoint, kind: kind, path: path, message: message, real: real,
                    mock: mock.map(ShapeNode.abbreviated)), id: id)
        }

        func use(_ path: String, _ node: ShapeNode) -> NullUse {
            if let existing = model.nullUse[path] { return existing }
            let created = NullUse(node: node)
            model.nullUse[path] = created
            return created
        }

        func walk(_ mock: JSONValue, node: ShapeNode, real: JSONValue?, path: String) {
            let kind = JSONKind.of(mock)
            let nullUse = use(path, node)
            nullUse.exchanges.insert(id)
            if kind == .null {
                nullUse.null += 1
                return
            }
            nullUse.values += 1
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
                    context.explain("\(endpoint) \(path): keyed by data, compared as a map")
                    for (key, value) in members {
                        walk(value, node: node.mapValues, real: real?[key], path: path + "[*]")
                    }
                    return
                }
                guard node.objectCount > 0 else { return }
                for (key, value) in members {
                    let childPath = JSONPath.appending(key, to: path)
                    guard let child = node.members[key] else {
                        add(
                            .phantomField, childPath, "the mock sends \(childPath), which the real service never sends",
                            real: nil, mock: value)
                        continue
                    }
                    walk(value, node: child, real: real?[key], path: childPath)
                }
                if case .object(let realMembers)? = real {
                    for (key, value) in realMembers where !members.contains(where: { $0.key == key }) {
                        let childPath = JSONPath.appending(key, to: path)
                        add(
                            .missingField, childPath, "the real service sends \(childPath); the mock omits it",
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
                    walk(element, node: itemNode, real: realFirst, path: path + "[*]")
                }
            default:
                compareScalar(mock, node: node, path: path)
            }
        }

        func compareScalar(_ mock: JSONValue, node: ShapeNode, path: String) {
            let formatted = path
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
