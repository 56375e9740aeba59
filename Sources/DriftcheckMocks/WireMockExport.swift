import DriftcheckCore
import Foundation

/// Mock refresh: WireMock mappings written from recordings, one per templated endpoint.
public enum WireMockExport {
    /// Mappings for one service's exchanges, each with a stable file name. Exporting the same
    /// recordings twice gives the same files, so a refresh updates them in place.
    public static func mappings(for exchanges: [Exchange]) -> [(name: String, mapping: JSONValue)] {
        var groups: [String: [Exchange]] = [:]
        var order: [String] = []
        for exchange in exchanges where exchange.response != nil {
            let key = exchange.endpoint
            if groups[key] == nil { order.append(key) }
            groups[key, default: []].append(exchange)
        }
        var result: [(name: String, mapping: JSONValue)] = []
        var used: Set<String> = []
        func unique(_ base: String) -> String {
            var name = base
            var counter = 2
            while used.contains(name) {
                name = "\(base)-\(counter)"
                counter += 1
            }
            used.insert(name)
            return name + ".json"
        }
        for endpoint in order.sorted() {
            let items = groups[endpoint]!
            let method = items[0].request.method
            let template = Endpoint.templatePath(items[0].request.path)
            // Split by query-parameter names only where they change the response's shape.
            var byVariant: [String: [Exchange]] = [:]
            for item in items { byVariant[variant(item.request), default: []].append(item) }
            let shapes = Set(byVariant.values.map { topLevelKeys($0.last!) })
            let split = byVariant.count > 1 && shapes.count > 1
            let parts = split ? byVariant.sorted { $0.key < $1.key } : [("", items)]
            for (variantKey, members) in parts {
                let statuses = Dictionary(grouping: members, by: { $0.response!.status })
                let majority = statuses.max { a, b in
                    a.value.count != b.value.count ? a.value.count < b.value.count : a.key > b.key
                }!
                let representative = majority.value.last!
                var request: [(key: String, value: JSONValue)] = [("method", .string(method))]
                if template.contains("{") {
                    request.append(("urlPathPattern", .string(pattern(for: template))))
                } else {
                    request.append(("urlPath", .string(template)))
                }
                if split && variantKey != "?" {
                    let names = variantKey.dropFirst().split(separator: "&").map(String.init)
                    request.append(
                        ("queryParameters", .object(names.map { ($0, .object([("matches", .string(".*"))])) })))
                }
                var slug = slugify("\(method) \(template)")
                if split { slug += variantKey == "?" ? "--plain" : "--" + slugify(String(variantKey.dropFirst())) }
                result.append(
                    (
                        unique(slug),
                        .object([
                            ("name", .string("\(method) \(template)\(split && variantKey != "?" ? variantKey : "")")),
                            ("priority", .number(split && variantKey != "?" ? "4" : "5")),
                            ("request", .object(request)), ("response", response(representative)),
                        ])
                    ))
                // Answers that differ from the endpoint's usual one (a 404 for an unknown id, a
                // 401 without credentials) get exact mappings of their own.
                var seen: Set<String> = []
                for exchange in members where exchange.response!.status != majority.key {
                    let key = "\(exchange.request.target) \(exchange.request.body.bytes.hashValue)"
                    guard seen.insert(key).inserted else { continue }
                    var exact: [(key: String, value: JSONValue)] = [
                        ("method", .string(method)), ("url", .string(exchange.request.target)),
                    ]
                    var headerMatchers: [(key: String, value: JSONValue)] = []
                    for name in ["Authorization", "Cookie", "X-Api-Key"] {
                        let here = exchange.request.headers[name] != nil
                        guard here != (representative.request.headers[name] != nil) else { continue }
                        headerMatchers.append(
                            (name, here ? .object([("matches", .string(".*"))]) : .object([("absent", .bool(true))])))
                    }
                    if !headerMatchers.isEmpty { exact.append(("headers", .object(headerMatchers))) }
                    if let body = try? JSONValue.parse(exchange.request.body.bytes),
                        !exchange.request.body.bytes.isEmpty
                    {
                        exact.append(("bodyPatterns", .array([.object([("equalToJson", body)])])))
                    }
                    let status = exchange.response!.status
                    result.append(
                        (
                            unique(slugify("\(method) \(exchange.request.path)") + "--\(status)"),
                            .object([
                                ("name", .string("\(method) \(exchange.request.target) → \(status)")),
                                ("priority", .number("1")), ("request", .object(exact)),
                                ("response", response(exchange)),
                            ])
                        ))
                }
            }
        }
        return result
    }

    static func variant(_ request: RecordedRequest) -> String {
        guard let query = request.query, !query.isEmpty else { return "?" }
        let names = Set(query.split(separator: "&").map { String($0.split(separator: "=", maxSplits: 1).first ?? "") })
        return "?" + names.sorted().joined(separator: "&")
    }

    static func topLevelKeys(_ exchange: Exchange) -> String {
        guard let response = exchange.response, case .object(let members)? = try? JSONValue.parse(response.body.bytes)
        else {
            return "\(exchange.response?.status ?? 0)"
        }
        return members.map(\.key).sorted().joined(separator: ",")
    }

    /// `/orders/{id}/lines/{id2}` → `/orders/[^/]+/lines/[^/]+`.
    static func pattern(for template: String) -> String {
        template.split(separator: "/", omittingEmptySubsequences: false).map { segment -> String in
            segment.hasPrefix("{") && segment.hasSuffix("}")
                ? "[^/]+" : NSRegularExpression.escapedPattern(for: String(segment))
        }.joined(separator: "/")
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
        return slug.isEmpty ? "root" : slug
    }

    /// The recorded answer as a WireMock response: its status, the headers a consumer acts on,
    /// and the body as `jsonBody`, text or base64. Cookies and other secrets stay out.
    static func response(_ exchange: Exchange) -> JSONValue {
        let response = exchange.response!
        var headers: [(key: String, value: JSONValue)] = []
        for name in ["content-type"] + Differ.meaningfulHeaders {
            if let field = response.headers.fields.first(where: { $0.name.lowercased() == name }) {
                headers.append((field.name, .string(field.value)))
            }
        }
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
