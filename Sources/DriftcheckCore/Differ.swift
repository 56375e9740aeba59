import Foundation

/// What a mock did with one replayed request.
public enum MockAnswer: Sendable, Equatable {
    case response(RecordedResponse)
    /// The mock has no answer for this request (no WireMock mapping matched).
    case unmatched(String)
    /// A mapping that might answer uses a matcher the engine cannot evaluate: not compared.
    case cannotEvaluate(String)
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
    public var thresholds: EvidenceThresholds
    public var catalog: EndpointCatalog

    public init(
        explain: Bool = false, thresholds: EvidenceThresholds = .standard, catalog: EndpointCatalog? = nil
    ) {
        self.explain = explain
        self.thresholds = thresholds
        self.catalog = catalog ?? .heuristic
    }

    public struct Result: Sendable {
        public var findings: [Finding]
        public var explanations: [String]
        public var diagnostics: [Diagnostic]
        public var compared: Int
    }

    /// Compares every replayed exchange of one service (both passes over an array).
    /// Without a catalog, templates are learned from the paths in `replayed`.
    public func compare(service: String, replayed: [ReplayedExchange]) -> Result {
        let catalog =
            catalog.declared.isEmpty && catalog.learned.isEmpty
            ? EndpointCatalog.learn(paths: replayed.map(\.exchange.request.path)) : catalog
        let analysis = ServiceAnalysis(service: service, explain: explain, thresholds: thresholds)
        for item in replayed { analysis.learn(Differ.prepareLearning(item.exchange, catalog: catalog)) }
        for item in replayed { analysis.judge(Differ.prepareJudging(item, catalog: catalog)) }
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
        /// Real answers, and how many had each status.
        var samples = 0
        var statuses: [Int: Int] = [:]
        /// Distinct requests behind the answers, per status; capped, since only small counts are asked.
        var requests: [Int: Set<Int>] = [:]
        /// Where real `Location`-like headers point (the path without its last segment).
        var linkParents: [String: Set<String>] = [:]

        func shape(status: Int, variant: String) -> ShapeNode? {
            guard let byVariant = shapes[status] else { return nil }
            return byVariant[variant] ?? byVariant[""]
        }

        func distinctRequests(status: Int) -> Int { requests[status]?.count ?? 0 }
    }

    /// Identical requests remembered per endpoint to learn volatility; beyond this many the
    /// endpoint keeps what it learned and memory stays bounded.
    static let identityLimit = 2_000

    /// `?` and the sorted set of query parameter names: answers are learned per variant.
    static func variant(of request: RecordedRequest) -> String {
        "?" + Set(QueryString.rawNames(request.query)).sorted().joined(separator: "&")
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

    public static func prepareLearning(
        _ recorded: Exchange, catalog: EndpointCatalog, schema: ProtoSchema? = nil
    ) -> PreparedLearning {
        let exchange = GRPC.view(recorded, schema: schema)
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
            exchange: exchange, endpoint: catalog.endpoint(of: exchange.request), body: body,
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

    public static func prepareJudging(
        _ replayed: ReplayedExchange, catalog: EndpointCatalog, schema: ProtoSchema? = nil
    ) -> PreparedJudging {
        var item = replayed
        item.exchange = GRPC.view(item.exchange, schema: schema)
        if case .response(let answer) = item.answer {
            item.answer = .response(GRPC.view(answer, answerTo: replayed.exchange.request, schema: schema))
        }
        var mockBody: JSONValue?
        if case .response(let answer) = item.answer { mockBody = json(answer.body, headers: answer.headers) }
        return PreparedJudging(
            item: item, endpoint: catalog.endpoint(of: item.exchange.request),
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

        let thresholds: EvidenceThresholds

        public init(service: String, explain: Bool, thresholds: EvidenceThresholds = .standard) {
            self.service = service
            self.thresholds = thresholds
            context = Context(service: service, explain: explain)
        }

        func model(_ endpoint: String) -> EndpointModel {
            if let model = models[endpoint] { return model }
            let model = EndpointModel()
            models[endpoint] = model
            endpointOrder.append(endpoint)
            return model
        }

        /// Pass 1 with the per-exchange work (parsing, hashing) already done, on any thread.
        public func learn(_ prepared: PreparedLearning) {
            let exchange = prepared.exchange
            guard let response = exchange.response, let signature = prepared.signature else { return }
            let model = model(prepared.endpoint)
            let request = exchange.request
            let body = prepared.body
            model.samples += 1
            model.statuses[response.status, default: 0] += 1
            for name in Differ.linkHeaders {
                if let value = response.headers[name], model.linkParents[name, default: []].count < 64 {
                    model.linkParents[name, default: []].insert(Differ.parent(Differ.normaliseHeader(value)))
                }
            }
            if model.requests[response.status, default: []].count < 1_000 {
                model.requests[response.status, default: []].insert(prepared.identity)
            }
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
                        real: .number(String(real.status)),
                        evidence: endpointEvidence(model, distinct: model.statuses.count)), id: id)
                return
            case .cannotEvaluate(let reason):
                compared -= 1
                context.notCompared(reason)
                return
            case .response(let answer):
                response = answer
            }
            // A gRPC call's status is named: `UNAVAILABLE (14)`, not its HTTP equivalent.
            let realStatus = GRPC.describe(real.headers) ?? String(real.status)
            // The mock's reason says what a stub got wrong (the real one is the service's own).
            let mockStatus = GRPC.describe(response.headers, reason: true) ?? String(response.status)
            if real.status / 100 != response.status / 100 {
                var message =
                    real.status >= 400 && response.status < 400
                    ? "the mock succeeds with \(mockStatus) where the real service fails with \(realStatus)"
                    : "the real service answers \(realStatus), the mock \(mockStatus)"
                // A mock that refuses what reality accepted may be refusing a stand-in.
                let redacted = StandIns.redactedParts(item.exchange.request)
                if real.status < 400, [401, 403, 404].contains(response.status), !redacted.isEmpty {
                    message +=
                        " (the request carried redacted values, replayed as stand-ins: \(redacted.joined(separator: ", ")); if the mock checks them, give test credentials with --replay-header or replay: in driftcheck.yml)"
                }
                context.add(
                    Finding(
                        service: service, endpoint: endpoint, kind: .status, path: "status", message: message,
                        real: .number(String(real.status)), mock: .number(String(response.status)),
                        evidence: endpointEvidence(model, distinct: model.statuses.count)), id: id)
                return
            }
            if real.status != response.status || real.headers["grpc-status"] != response.headers["grpc-status"] {
                context.add(
                    Finding(
                        service: service, endpoint: endpoint, kind: .statusCode, path: "status",
                        message: "the real service answers \(realStatus), the mock \(mockStatus)",
                        real: .number(String(real.status)), mock: .number(String(response.status)),
                        evidence: endpointEvidence(model, distinct: model.statuses.count)), id: id)
                return
            }
            let realType = MediaType.of(real.headers)
            let mockType = MediaType.of(response.headers)
            if let realType, !real.body.bytes.isEmpty, realType != mockType {
                context.add(
                    Finding(
                        service: service, endpoint: endpoint, kind: .contentType, path: "header:content-type",
                        message: "the real service sends \(realType), the mock \(mockType ?? "no content type")",
                        real: .string(realType), mock: mockType.map(JSONValue.string) ?? .null,
                        evidence: endpointEvidence(model, distinct: nil)), id: id)
                return
            }
            Differ.compareHeaders(
                endpoint, id: id, real: real.headers, mock: response.headers, model: model, context,
                evidence: endpointEvidence(model, distinct: nil))
            // A streamed call answered with more or fewer messages than reality sent.
            if GRPC.isView(real.headers), case .array(let realMessages)? = prepared.realBody,
                case .array(let mockMessages)? = prepared.mockBody, realMessages.count != mockMessages.count
            {
                let fewer = mockMessages.count < realMessages.count
                context.add(
                    Finding(
                        service: service, endpoint: endpoint, kind: fewer ? .missingField : .phantomField,
                        path: "$[\(min(realMessages.count, mockMessages.count))]",
                        message:
                            "the real service sends \(realMessages.count) message\(realMessages.count == 1 ? "" : "s") on this call, the mock \(mockMessages.count)",
                        real: .number(String(realMessages.count)), mock: .number(String(mockMessages.count)),
                        evidence: endpointEvidence(model, distinct: nil)), id: id)
            }
            guard let mockBody = prepared.mockBody,
                let node = model.shape(status: real.status, variant: Differ.variant(of: item.exchange.request))
            else { return }
            let realBody = prepared.realBody
            let walker = Walker(
                endpoint: endpoint, id: id, volatile: model.volatile, model: model, context: context,
                thresholds: thresholds, requests: model.distinctRequests(status: real.status))
            walker.walk(mockBody, node: node, pooled: model.shapes[real.status]?[""], real: realBody, path: "$")
        }

        func endpointEvidence(_ model: EndpointModel, distinct: Int?) -> Evidence {
            Evidence(realSamples: model.samples, realDistinct: distinct, mockSamples: 0)
        }

        /// Endpoint-wide conclusions (nullability) and the findings in order.
        public func finish() -> Result {
            for endpoint in endpointOrder {
                guard let model = models[endpoint] else { continue }
                for (path, use) in model.nullUse.sorted(by: { $0.key < $1.key }) {
                    let node = use.node
                    let evidence = Evidence(
                        realSamples: node.count, realDistinct: node.distinctValues, mockSamples: use.exchanges.count)
                    if node.sendsNull && use.null == 0 && use.values > 0 {
                        // "Sometimes null" is a claim about the real service: it needs enough samples.
                        let sources = path.contains("[*]") ? max(use.requests, node.count) : use.requests
                        guard node.count >= thresholds.minSamples, sources >= thresholds.minRequests else {
                            context.explain(
                                "\(endpoint) \(path): the real service sent null; not enough evidence (\(node.count) sample\(node.count == 1 ? "" : "s"), \(sources) distinct request\(sources == 1 ? "" : "s")) to say the mock should"
                            )
                            continue
                        }
                        context.add(
                            Finding(
                                service: service, endpoint: endpoint, kind: .nullability, path: path,
                                message: "the real service sometimes sends null here; the mock never does",
                                real: .null, mock: nil, exchanges: use.exchanges.sorted(), evidence: evidence), id: nil)
                    } else if !node.sendsNull && node.sendsValues && use.values == 0 && use.null > 0 {
                        context.add(
                            Finding(
                                service: service, endpoint: endpoint, kind: .nullability, path: path,
                                message: "the mock only ever sends null here; the real service sends values",
                                real: node.sample, mock: .null, exchanges: use.exchanges.sorted(), evidence: evidence),
                            id: nil)
                    }
                }
            }
            for reason in context.skippedOrder {
                let count = context.skipped[reason]!
                context.diagnostics.append(
                    Diagnostic(
                        service: service, message: "\(count) exchange\(count == 1 ? "" : "s") not compared: \(reason)"))
            }
            return Result(
                findings: context.findings(), explanations: context.explanations, diagnostics: context.diagnostics,
                compared: compared)
        }
    }

    static func compareHeaders(
        _ endpoint: String, id: Int64, real: HeaderFields, mock: HeaderFields, model: EndpointModel, _ context: Context,
        evidence: Evidence
    ) {
        for name in Self.meaningfulHeaders {
            guard let realValue = real[name] else { continue }
            let path = "header:\(name)"
            guard let mockValue = mock[name] else {
                context.add(
                    Finding(
                        service: context.service, endpoint: endpoint, kind: .header, path: path,
                        message: "the real service sends \(name); the mock does not", real: .string(realValue),
                        mock: nil, evidence: evidence), id: id)
                continue
            }
            let same = Self.normaliseHeader(realValue) == Self.normaliseHeader(mockValue)
            // A Location that names a new resource each time still points under one parent.
            if !same, model.volatile.contains(path), let parents = model.linkParents[name],
                !parents.contains(Self.parent(Self.normaliseHeader(mockValue)))
            {
                context.add(
                    Finding(
                        service: context.service, endpoint: endpoint, kind: .header, path: path,
                        message:
                            "\(name) points under \(Self.parent(Self.normaliseHeader(mockValue))); the real service's under \(parents.sorted().joined(separator: ", "))",
                        real: .string(realValue), mock: .string(mockValue), evidence: evidence), id: id)
                continue
            }
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
                        message: "\(name) differs", real: .string(realValue), mock: .string(mockValue),
                        evidence: evidence), id: id)
            }
        }
    }

    /// The element of `items` that `element` (at `index` of its own list) stands for: the one at
    /// the same index when it has no member the element lacks, else the one sharing the most
    /// member values, then names, among the elements near that index.
    static func counterpart(of element: JSONValue, at index: Int, in items: [JSONValue]) -> JSONValue? {
        guard !items.isEmpty else { return nil }
        guard case .object(let members) = element else { return index < items.count ? items[index] : nil }
        let names = Set(members.map(\.key))
        if index < items.count, case .object(let same) = items[index], same.allSatisfy({ names.contains($0.key) }) {
            return items[index]
        }
        var best: (score: (Int, Int), item: JSONValue)?
        let window = max(0, min(index, items.count - 1) - 32)...min(items.count - 1, index + 32)
        for candidate in items[window] {
            guard case .object(let other) = candidate else { continue }
            var equal = 0
            var common = 0
            for (key, value) in other where names.contains(key) {
                common += 1
                if members.first(where: { $0.key == key })?.value == value { equal += 1 }
            }
            let score = (equal, common)
            if best == nil || score > best!.score { best = (score, candidate) }
        }
        return best?.item
    }

    /// Headers that point at a resource.
    static let linkHeaders = ["location", "content-location"]

    /// `/a/b/c?x` → `/a/b`.
    static func parent(_ path: String) -> String {
        let bare = path.prefix { $0 != "?" }
        guard let slash = bare.lastIndex(of: "/"), slash != bare.startIndex else {
            return bare.hasPrefix("/") ? "/" : ""
        }
        return String(bare[..<slash])
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
        /// Distinct real requests behind the endpoint's answers with this status.
        var requests = 0
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

        /// Exchanges left out of the comparison, by reason, in the order first seen.
        var skipped: [String: Int] = [:]
        var skippedOrder: [String] = []

        func notCompared(_ reason: String) {
            if skipped[reason] == nil { skippedOrder.append(reason) }
            skipped[reason, default: 0] += 1
        }

        func explain(_ line: String) {
            guard explain, explained.insert(line).inserted else { return }
            explanations.append("\(service) \(line)")
        }

        func findings() -> [Finding] {
            order.map { key in
                var finding = byKey[key]!
                finding.exchanges = ids[key]!.sorted()
                if finding.evidence != nil, finding.kind != .nullability {
                    finding.evidence!.mockSamples = finding.exchanges.count
                }
                return finding
            }
        }
    }

    /// Walks one mock body against the endpoint's real shape and the real answer to the same request.
    struct Walker {
        /// The variant's closed set of values, else the one pooled over every variant.
        func closedSet(_ node: ShapeNode, _ pooled: ShapeNode?) -> (Set<String>, ShapeNode)? {
            if let set = node.closedSet(thresholds) { return (set, node) }
            if let pooled, pooled !== node, let set = pooled.closedSet(thresholds) { return (set, pooled) }
            return nil
        }

        let endpoint: String
        let id: Int64
        let volatile: Set<String>
        let model: EndpointModel
        let context: Context
        let thresholds: EvidenceThresholds
        /// Distinct real requests behind the shape being walked.
        let requests: Int

        func add(
            _ kind: DriftKind, _ path: String, _ message: String, real: JSONValue?, mock: JSONValue?, node: ShapeNode?
        ) {
            context.add(
                Finding(
                    service: context.service, endpoint: endpoint, kind: kind, path: path, message: message, real: real,
                    mock: mock.map(ShapeNode.abbreviated),
                    evidence: Evidence(
                        realSamples: node?.count ?? 0, realDistinct: node?.distinctValues, mockSamples: 0)), id: id)
        }

        func use(_ path: String, _ node: ShapeNode) -> NullUse {
            if let existing = model.nullUse[path] { return existing }
            let created = NullUse(node: node)
            created.requests = requests
            model.nullUse[path] = created
            return created
        }

        /// Independent sources behind the samples at `path`: distinct requests, or inside an
        /// array each element, since the rows of one list are separate records.
        func sources(_ path: String, _ node: ShapeNode) -> Int {
            path.contains("[*]") ? max(requests, node.count) : requests
        }

        /// Whether a statistical claim at `path` has enough behind it; says why not under --explain.
        func enough(_ samples: Int, _ needed: Int, _ node: ShapeNode, _ path: String, _ claim: String) -> Bool {
            let independent = sources(path, node)
            if samples >= needed && independent >= thresholds.minRequests { return true }
            context.explain(
                "\(endpoint) \(path): not enough evidence (\(samples) sample\(samples == 1 ? "" : "s"), \(independent) distinct request\(independent == 1 ? "" : "s")) to claim \(claim)"
            )
            return false
        }

        /// `pooled` is the same path in the union over query variants: a closed set of values is
        /// a property of the field, whichever variant asked for it.
        func walk(_ mock: JSONValue, node: ShapeNode, pooled: ShapeNode?, real: JSONValue?, path: String) {
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
                    real: node.sample, mock: mock, node: node)
                return
            }
            switch mock {
            case .object(let members):
                if node.isMap {
                    context.explain("\(endpoint) \(path): keyed by data, compared as a map")
                    for (key, value) in members {
                        walk(
                            value, node: node.mapValues, pooled: pooled?.mapValues, real: real?[key], path: path + "[*]"
                        )
                    }
                    return
                }
                guard node.objectCount > 0 else { return }
                for (key, value) in members {
                    let childPath = JSONPath.appending(key, to: path)
                    guard let child = node.members[key] else {
                        add(
                            .phantomField, childPath, "the mock sends \(childPath), which the real service never sends",
                            real: nil, mock: value, node: nil)
                        continue
                    }
                    walk(value, node: child, pooled: pooled?.members[key], real: real?[key], path: childPath)
                }
                if case .object(let realMembers)? = real {
                    // The real answer to this very request had the field.
                    for (key, value) in realMembers where !members.contains(where: { $0.key == key }) {
                        let childPath = JSONPath.appending(key, to: path)
                        add(
                            .missingField, childPath, "the real service sends \(childPath); the mock omits it",
                            real: ShapeNode.abbreviated(value), mock: nil, node: node.members[key])
                    }
                } else if real == nil {
                    // No paired real object (array elements of another length): only fields the
                    // real service always sends, over enough samples, are missed.
                    for key in node.memberOrder where !members.contains(where: { $0.key == key }) {
                        guard node.isRequired(key), node.objectCount >= thresholds.minSamples,
                            sources(path, node) >= thresholds.minRequests
                        else { continue }
                        let childPath = JSONPath.appending(key, to: path)
                        add(
                            .missingField, childPath, "the real service always sends \(childPath); the mock omits it",
                            real: node.members[key]?.sample, mock: nil, node: node.members[key])
                    }
                }
            case .array(let elements):
                guard let itemNode = node.items else { return }
                var realItems: [JSONValue]?
                if case .array(let items)? = real { realItems = items }
                for (index, element) in elements.enumerated() {
                    // Each mock element is judged against its counterpart in the real list (the
                    // element most like it), so a list of differently shaped items, or the same
                    // items in another order, is no drift.
                    let counterpart = realItems.flatMap { Differ.counterpart(of: element, at: index, in: $0) }
                    walk(element, node: itemNode, pooled: pooled?.items, real: counterpart, path: path + "[*]")
                }
            default:
                compareScalar(mock, node: node, pooled: pooled, path: path)
            }
        }

        func compareScalar(_ mock: JSONValue, node: ShapeNode, pooled: ShapeNode?, path: String) {
            let serialized = mock.serialized()
            if case .string(let text) = mock, !RedactionPolicy.isMarker(text) {
                if let format = node.consistentFormat {
                    guard enough(node.stringCount, thresholds.minSamples, node, path, "a \(format.rawValue) format")
                    else {
                        return
                    }
                    let mockFormat = StringFormat.of(text)
                    if mockFormat != format {
                        add(
                            .format, path, "the real service sends \(format.rawValue) strings here, the mock '\(text)'",
                            real: node.sample, mock: mock, node: node)
                    } else if node.sample != mock {
                        context.explain(
                            "\(endpoint) \(path): \(format.rawValue) values differ by nature; only the format is compared"
                        )
                    }
                    return
                }
                if let (set, from) = closedSet(node, pooled), sources(path, from) >= thresholds.minRequests,
                    !set.contains(serialized)
                {
                    add(
                        .enumValue, path,
                        "the mock sends \(serialized), outside the real values \(set.sorted().joined(separator: ", "))",
                        real: from.sample, mock: mock, node: from)
                    return
                }
            }
            guard let stable = node.stableValue(thresholds), sources(path, node) >= thresholds.minRequests else {
                if volatile.contains(path) {
                    context.explain(
                        "\(endpoint) \(path): the value changes between identical real requests; not compared")
                } else if node.distinctValues == 1, node.sample.map({ $0.serialized() != serialized }) ?? false {
                    _ = enough(node.count, max(2, thresholds.minSamples), node, path, "the value is always the same")
                }
                return
            }
            guard stable != serialized else { return }
            if volatile.contains(path) {
                context.explain(
                    "\(endpoint) \(path): \(stable) vs \(serialized) differ, but the value changes between identical real requests"
                )
                return
            }
            if case .number(let text) = mock, let real = try? JSONValue.parse(stable), real == .number(text) { return }
            add(
                .value, path, "the real service always sends \(stable) here, the mock \(serialized)",
                real: try? JSONValue.parse(stable), mock: mock, node: node)
        }
    }
}
