import DriftcheckCore
import Foundation

/// Builds the response half of a mapping: status, headers, body from `body`, `jsonBody`,
/// `base64Body` or `bodyFileName`, and `response-template` rendering.
struct ResponseBuilder {
    /// Reads a `bodyFileName`; the engine passes a caching reader.
    var read: (String) -> Result<Data, BodyFileRefused>

    func build(_ spec: JSONValue, for request: IncomingRequest, diagnostics: inout [String]) -> RecordedResponse {
        var status = 200
        if case .number(let text)? = spec["status"], let value = Int(text) { status = value }
        var headers = HeaderFields()
        if case .object(let members)? = spec["headers"] {
            for (name, value) in members {
                if case .array(let values) = value {
                    for item in values { headers.add(name, item.stringValue ?? item.serialized()) }
                } else {
                    headers.add(name, value.stringValue ?? value.serialized())
                }
            }
        }
        var body = Data()
        if let text = spec["body"]?.stringValue {
            body = Data(text.utf8)
        } else if let json = spec["jsonBody"] {
            body = Data(json.serialized().utf8)
        } else if let base64 = spec["base64Body"]?.stringValue {
            body = Data(base64Encoded: base64) ?? Data()
        } else if let file = spec["bodyFileName"]?.stringValue {
            switch read(file) {
            case .success(let data): body = data
            case .failure(let refused):
                diagnostics.append(refused.reason)
                return RecordedResponse(
                    status: 500, headers: headers, body: CapturedBody(bytes: Data(refused.reason.utf8)))
            }
        }
        if spec["fault"] != nil {
            diagnostics.append("fault responses are not simulated; the mapping answers with its status")
        }
        var templated = false
        if case .array(let transformers)? = spec["transformers"] {
            templated = transformers.contains { $0.stringValue == "response-template" }
        }
        if templated {
            let renderer = TemplateRenderer(request: request)
            body = Data(renderer.render(String(decoding: body, as: UTF8.self), diagnostics: &diagnostics).utf8)
            headers = HeaderFields(
                fields: headers.fields.map { .init($0.name, renderer.render($0.value, diagnostics: &diagnostics)) })
        }
        return RecordedResponse(status: status, headers: headers, body: CapturedBody(bytes: body))
    }

}

/// The Handlebars subset WireMock's `response-template` offers most: request attributes,
/// `jsonPath`, `now`, `randomValue`. Anything else renders empty with a diagnostic naming it.
struct TemplateRenderer {
    let request: IncomingRequest

    func render(_ template: String, diagnostics: inout [String]) -> String {
        guard template.contains("{{") else { return template }
        var out = ""
        var rest = Substring(template)
        while let open = rest.range(of: "{{") {
            out += rest[..<open.lowerBound]
            let triple = rest[open.upperBound...].hasPrefix("{")
            let start = triple ? rest.index(after: open.upperBound) : open.upperBound
            guard let close = rest[start...].range(of: triple ? "}}}" : "}}") else {
                out += rest[open.lowerBound...]
                return out
            }
            let expression = rest[start..<close.lowerBound].trimmingCharacters(in: .whitespaces)
            let value = evaluate(expression, diagnostics: &diagnostics)
            out += triple ? value : Self.escapeHTML(value)
            rest = rest[close.upperBound...]
        }
        out += rest
        return out
    }

    /// Handlebars escapes `{{…}}` output; WireMock inherits that.
    static func escapeHTML(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#x27;"
            case "`": out += "&#x60;"
            case "=": out += "&#x3D;"
            default: out.append(character)
            }
        }
        return out
    }

    func evaluate(_ expression: String, diagnostics: inout [String]) -> String {
        let words = Self.tokens(expression)
        guard let head = words.first else { return "" }
        if head.hasPrefix("#") || head.hasPrefix("/") || head.hasPrefix("else") {
            note("block helper '\(head.drop { $0 == "#" || $0 == "/" })'", &diagnostics)
            return ""
        }
        if head.hasPrefix("request.") || head == "request" {
            if words.count == 1 { return attribute(head) ?? "" }
        }
        switch head {
        case "jsonPath":
            guard words.count >= 3 else { return "" }
            let source = attribute(words[1]) ?? ""
            let path = Self.unquote(words[2])
            guard let document = try? JSONValue.parse(source),
                let result = JSONPathQuery.evaluate(path, on: document).first
            else { return "" }
            return result.stringValue ?? result.serialized()
        case "now":
            return ISO8601DateFormatter().string(from: Date())
        case "randomValue":
            let options = Dictionary(
                words.dropFirst().compactMap { word -> (String, String)? in
                    let parts = word.split(separator: "=", maxSplits: 1)
                    return parts.count == 2 ? (String(parts[0]), Self.unquote(String(parts[1]))) : nil
                }, uniquingKeysWith: { $1 })
            let length = Int(options["length"] ?? "") ?? 36
            switch options["type"]?.uppercased() ?? "ALPHANUMERIC" {
            case "UUID": return UUID().uuidString.lowercased()
            case "NUMERIC": return String((0..<length).map { _ in "0123456789".randomElement()! })
            case "ALPHABETIC": return String((0..<length).map { _ in "abcdefghijklmnopqrstuvwxyz".randomElement()! })
            case "HEXADECIMAL": return String((0..<length).map { _ in "0123456789abcdef".randomElement()! })
            default: return String((0..<length).map { _ in "abcdefghijklmnopqrstuvwxyz0123456789".randomElement()! })
            }
        default:
            note("response-template helper '\(head)'", &diagnostics)
            return ""
        }
    }

    private func note(_ what: String, _ diagnostics: inout [String]) {
        let message = "\(what) is not supported by driftcheck's WireMock engine; it renders empty"
        if !diagnostics.contains(message) { diagnostics.append(message) }
    }

    /// `request.path`, `request.pathSegments.[1]`, `request.query.name`, `request.headers.name`…
    func attribute(_ name: String) -> String? {
        var parts = name.split(separator: ".").map { String($0) }
        guard parts.first == "request" else { return nil }
        parts.removeFirst()
        let index = { (list: [String]) -> String? in
            guard parts.count >= 2, parts[1].hasPrefix("["), let n = Int(parts[1].dropFirst().dropLast()) else {
                return list.first
            }
            return list.indices.contains(n) ? list[n] : nil
        }
        switch parts.first {
        case "url": return request.url
        case "method": return request.method
        case "body": return request.bodyText
        case "scheme": return request.scheme
        case "host": return request.host
        case "port": return String(request.port)
        case "baseUrl":
            // The port is left out only where it is the scheme's own, as WireMock writes it.
            let standard =
                (request.scheme == "http" && request.port == 80) || (request.scheme == "https" && request.port == 443)
            return "\(request.scheme)://\(request.host)\(standard ? "" : ":\(request.port)")"
        case "path", "pathSegments":
            // WireMock renders the path and its segments percent-decoded; `url` stays as sent.
            let decoded = request.path.removingPercentEncoding ?? request.path
            let segments = request.path.split(separator: "/").map { $0.removingPercentEncoding ?? String($0) }
            if parts.count >= 2 { return index(segments) }
            return parts.first == "path" ? decoded : segments.joined(separator: "/")
        case "query":
            guard parts.count >= 2 else { return nil }
            let key = Self.unbracket(parts[1])
            parts.removeFirst()
            return index(request.query.filter { $0.0 == key }.map(\.1))
        case "headers":
            guard parts.count >= 2 else { return nil }
            let key = Self.unbracket(parts[1])
            parts.removeFirst()
            return index(request.headers.values(key))
        case "cookies":
            guard parts.count >= 2 else { return nil }
            let key = Self.unbracket(parts[1])
            parts.removeFirst()
            return index(request.cookies.filter { $0.0 == key }.map(\.1))
        default: return nil
        }
    }

    static func unbracket(_ text: String) -> String {
        text.hasPrefix("[") && text.hasSuffix("]") ? String(text.dropFirst().dropLast()) : text
    }

    static func unquote(_ text: String) -> String {
        if text.count >= 2, let first = text.first, first == "'" || first == "\"", text.last == first {
            return String(text.dropFirst().dropLast())
        }
        return text
    }

    /// Splits on spaces outside quotes.
    static func tokens(_ text: String) -> [String] {
        var tokens: [String] = []
        var current = ""
        var quote: Character?
        for c in text {
            if let q = quote {
                current.append(c)
                if c == q { quote = nil }
            } else if c == "'" || c == "\"" {
                quote = c
                current.append(c)
            } else if c == " " {
                if !current.isEmpty { tokens.append(current) }
                current = ""
            } else {
                current.append(c)
            }
        }
        if !current.isEmpty { tokens.append(current) }
        return tokens
    }
}

/// Why a `bodyFileName` was not served: outside `__files/`, or missing. An answer, not an error.
public struct BodyFileRefused: Error, Sendable {
    public var reason: String
    public init(reason: String) { self.reason = reason }
}
