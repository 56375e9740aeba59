import DriftcheckCore
import Foundation

/// Mocks from recordings, as WireMock's own recorder writes them: one mapping per distinct
/// request (method, URL, body, and which credential headers it carried) answering what the
/// real service answered. A request recorded several times with different answers becomes a
/// scenario that answers each recorded time in order, then keeps answering the last. Compared
/// against the recordings they came from, such mocks show no drift; they are a starting point.
public enum WireMockExport {
    /// Mappings for one service's exchanges (recorded order), each with a stable file name:
    /// exporting the same recordings twice gives the same files, so a refresh updates them in place.
    public static func mappings(for exchanges: [Exchange], catalog: EndpointCatalog = .heuristic)
        -> [(name: String, mapping: JSONValue)]
    {
        var groups: [String: [Exchange]] = [:]
        var order: [String] = []
        for exchange in exchanges where exchange.response != nil {
            let key = identity(exchange.request)
            if groups[key] == nil { order.append(key) }
            groups[key, default: []].append(exchange)
        }
        // Which credential headers came and went between recordings of the same request.
        var presence: [String: [String: Set<Bool>]] = [:]
        for exchange in exchanges where exchange.response != nil {
            for name in credentialHeaders {
                presence[bare(exchange.request), default: [:]][name, default: []].insert(
                    exchange.request.headers[name] != nil)
            }
        }
        var result: [(name: String, mapping: JSONValue)] = []
        var used: Set<String> = []
        for key in order {
            let items = groups[key]!
            let request = items[0].request
            let decisive = credentialHeaders.filter { (presence[bare(request)]?[$0]?.count ?? 0) > 1 }
            let endpoint = catalog.endpoint(of: request)
            let base = slugify("\(request.method) \(request.path)") + "-" + hex(fnv1a(key)).prefix(8)
            // A scenario cannot count, so each recorded answer is a step of its own (up to a
            // bound; the last step then answers every later request).
            let varies = items.contains { !sameAnswer($0, items[0]) }
            let answers = varies ? Array(items.prefix(scenarioSteps)) : [items[0]]
            let scenario = answers.count > 1 ? base : nil
            for (step, exchange) in answers.enumerated() {
                var members: [(key: String, value: JSONValue)] = [
                    ("name", .string("\(endpoint) — \(request.target)\(scenario == nil ? "" : " (\(step + 1))")")),
                    ("request", requestPattern(request, credentials: decisive)), ("response", response(exchange)),
                ]
                if let scenario {
                    members.append(("scenarioName", .string(scenario)))
                    members.append(("requiredScenarioState", .string(step == 0 ? "Started" : "step-\(step + 1)")))
                    if step + 1 < answers.count { members.append(("newScenarioState", .string("step-\(step + 2)"))) }
                }
                var name = scenario == nil ? base : "\(base)-\(step + 1)"
                while used.contains(name) { name += "-x" }
                used.insert(name)
                result.append((name + ".json", .object(members)))
            }
        }
        return result
    }

    /// Steps one request's scenario keeps at most.
    static let scenarioSteps = 50

    /// Headers whose presence, not value, decides an answer (401 without, 200 with).
    static let credentialHeaders = ["Authorization", "Cookie", "X-Api-Key"]

    /// Method, target, body and credential presence: what tells two recorded requests apart.
    static func identity(_ request: RecordedRequest) -> String {
        let credentials = credentialHeaders.map { request.headers[$0] == nil ? "-" : "+" }.joined()
        return "\(credentials) \(bare(request))"
    }

    static func bare(_ request: RecordedRequest) -> String {
        "\(request.method.uppercased()) \(request.target) \(String(decoding: request.body.bytes, as: UTF8.self))"
    }

    static func sameAnswer(_ a: Exchange, _ b: Exchange) -> Bool {
        guard let x = a.response, let y = b.response else { return false }
        return x.status == y.status && x.body.bytes == y.body.bytes
            && exportedHeaders(x).map(\.value) == exportedHeaders(y).map(\.value)
    }

    /// The request as WireMock should match it. Redacted values match any value: real WireMock
    /// receives stand-ins on replay, and a mock's user sends real credentials.
    static func requestPattern(_ request: RecordedRequest, credentials: [String]) -> JSONValue {
        var members: [(key: String, value: JSONValue)] = [("method", .string(request.method.uppercased()))]
        if let query = request.query, RedactionPolicy.containsMarker(query) {
            members.append(("urlPath", .string(request.path)))
            var parameters: [(key: String, value: JSONValue)] = []
            for (name, value) in QueryString.parameters(query) {
                guard !parameters.contains(where: { $0.key == name }) else { continue }
                parameters.append(
                    (
                        name,
                        RedactionPolicy.containsMarker(value)
                            ? .object([("matches", .string(".*"))]) : .object([("equalTo", .string(value))])
                    ))
            }
            members.append(("queryParameters", .object(parameters)))
        } else {
            members.append(("url", .string(request.target)))
        }
        // Credentials that decided the answer (recorded with and without them) match by presence.
        if !credentials.isEmpty {
            let matchers: [(key: String, value: JSONValue)] = credentials.map { name in
                (
                    name,
                    request.headers[name] == nil
                        ? .object([("absent", .bool(true))]) : .object([("matches", .string(".*"))])
                )
            }
            members.append(("headers", .object(matchers)))
        }
        let body = request.body.bytes
        if !body.isEmpty && !request.body.isTruncated {
            if let json = try? JSONValue.parse(body) {
                members.append(("bodyPatterns", .array([.object([("equalToJson", placeholders(json))])])))
            } else if let text = String(data: body, encoding: .utf8) {
                let pattern: JSONValue =
                    RedactionPolicy.containsMarker(text)
                    ? .object([("matches", .string(wildcardPattern(text)))]) : .object([("equalTo", .string(text))])
                members.append(("bodyPatterns", .array([pattern])))
            } else {
                members.append(
                    ("bodyPatterns", .array([.object([("binaryEqualTo", .string(body.base64EncodedString()))])])))
            }
        }
        return .object(members)
    }

    /// Redacted JSON values become json-unit placeholders of their type.
    static func placeholders(_ value: JSONValue) -> JSONValue {
        switch value {
        case .string(let text) where RedactionPolicy.isMarker(text):
            switch JSONKind.of(value) {
            case .string: return .string("${json-unit.any-string}")
            case .integer, .number: return .string("${json-unit.any-number}")
            case .boolean: return .string("${json-unit.any-boolean}")
            default: return .string("${json-unit.ignore}")
            }
        case .object(let members): return .object(members.map { ($0.key, placeholders($0.value)) })
        case .array(let items): return .array(items.map(placeholders))
        default: return value
        }
    }

    /// A regular expression equal to `text` where each redaction marker may be any text.
    static func wildcardPattern(_ text: String) -> String {
        var pattern = ""
        var rest = Substring(text)
        while let start = rest.range(of: "<redacted"), let end = rest[start.upperBound...].firstIndex(of: ">") {
            pattern += NSRegularExpression.escapedPattern(for: String(rest[..<start.lowerBound])) + ".*"
            rest = rest[rest.index(after: end)...]
        }
        return pattern + NSRegularExpression.escapedPattern(for: String(rest))
    }

    /// 64-bit FNV-1a: stable across runs, unlike `hashValue`.
    static func fnv1a(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return hash
    }

    static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    static func slugify(_ text: String) -> String {
        var slug = ""
        for character in text.lowercased() {
            if character.isLetter && character.isASCII || character.isNumber && character.isASCII {
                slug.append(character)
            } else if !slug.hasSuffix("-") {
                slug.append("-")
            }
        }
        while slug.hasSuffix("-") { slug.removeLast() }
        return slug.isEmpty ? "root" : String(slug.prefix(80))
    }

    /// Content-Type and the headers a consumer acts on; cookies and other secrets stay out.
    static func exportedHeaders(_ response: RecordedResponse) -> [(key: String, value: JSONValue)] {
        var headers: [(key: String, value: JSONValue)] = []
        // grpc-status-name and -reason: how a gRPC-extension stub says how the call ended.
        for name in ["content-type"] + Differ.meaningfulHeaders + ["grpc-status-name", "grpc-status-reason"] {
            if let field = response.headers.fields.first(where: { $0.name.lowercased() == name }) {
                headers.append((field.name, .string(field.value)))
            }
        }
        return headers
    }

    /// The recorded answer as a WireMock response: its status, the headers a consumer acts on,
    /// and the body as `jsonBody`, text or base64.
    static func response(_ exchange: Exchange) -> JSONValue {
        let response = exchange.response!
        let headers = exportedHeaders(response)
        var members: [(key: String, value: JSONValue)] = [("status", .number(String(response.status)))]
        if !headers.isEmpty { members.append(("headers", .object(headers))) }
        if !response.body.bytes.isEmpty {
            if MediaType.isJSON(MediaType.of(response.headers)), let json = try? JSONValue.parse(response.body.bytes) {
                members.append(("jsonBody", json))
            } else if let text = String(data: response.body.bytes, encoding: .utf8) {
                members.append(("body", .string(text)))
            } else {
                members.append(("base64Body", .string(response.body.bytes.base64EncodedString())))
            }
        }
        return .object(members)
    }
}
