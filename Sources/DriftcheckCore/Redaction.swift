import Foundation

/// What is removed from an exchange before it reaches disk. Redacted values keep a marker
/// (`<redacted>` in headers and queries, `"<redacted:TYPE>"` in JSON) so comparison still
/// knows a value was there and of which JSON type.
public struct RedactionPolicy: Sendable, Equatable {
    /// Header names (lower case) whose values are always redacted.
    public var headers: Set<String>
    /// Query and form parameter names (lower case) whose values are redacted.
    public var parameters: Set<String>
    /// JSON member names (normalised: lower case, no `_` or `-`) redacted wherever they occur.
    public var fields: Set<String>
    /// JSONPaths like `$.user.ssn` or `$.items[*].card` redacted exactly there.
    public var fieldPaths: [[String]]

    public static let marker = "<redacted>"
    static let markerStem = "<redacted"

    public static let defaultHeaders: Set<String> = [
        "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key",
        "x-auth-token", "x-access-token", "x-csrf-token", "x-xsrf-token", "x-amz-security-token",
        "private-token", "x-vault-token", "x-goog-api-key", "ocp-apim-subscription-key",
    ]
    public static let defaultParameters: Set<String> = [
        "token", "access_token", "refresh_token", "id_token", "api_key", "apikey", "key",
        "client_secret", "password", "secret", "signature", "sig", "x-amz-signature",
        "x-amz-security-token", "auth", "session", "sessionid",
    ]
    public static let defaultFields: Set<String> = [
        "password", "passwd", "secret", "clientsecret", "token", "accesstoken", "refreshtoken",
        "idtoken", "apikey", "privatekey", "authorization", "sessionid", "cardnumber", "cvv",
    ]

    public init(
        headers: Set<String> = RedactionPolicy.defaultHeaders,
        parameters: Set<String> = RedactionPolicy.defaultParameters,
        fields: Set<String> = RedactionPolicy.defaultFields,
        fieldPaths: [[String]] = []
    ) {
        self.headers = headers
        self.parameters = parameters
        self.fields = fields
        self.fieldPaths = fieldPaths
    }

    /// Adds `--redact-header` names.
    public mutating func addHeader(_ name: String) { headers.insert(name.lowercased()) }

    /// Adds a `--redact-field`: a member name, or a JSONPath starting with `$`.
    public mutating func addField(_ spec: String) throws {
        if spec.hasPrefix("$") {
            fieldPaths.append(try JSONPath.parseSegments(spec))
        } else {
            fields.insert(Self.normalise(spec))
            parameters.insert(spec.lowercased())
        }
    }

    static func normalise(_ name: String) -> String {
        String(name.lowercased().unicodeScalars.filter { $0 != "_" && $0 != "-" })
    }

    static let secretFragments = ["token", "secret", "password", "api-key", "apikey", "credential"]

    // Runs for every header of every exchange: byte comparisons, not Foundation's string search.
    func isSecretHeader(_ name: String) -> Bool {
        let lower = ASCII.lowercased(name)
        if headers.contains(lower) { return true }
        guard lower != "www-authenticate" else { return false }
        return Self.secretFragments.contains { ASCII.contains(lower, $0) }
    }

    func isSecretParameter(_ name: String) -> Bool {
        let lower = name.lowercased()
        return parameters.contains(lower) || fields.contains(Self.normalise(lower))
    }

    // MARK: Applying

    /// Redacts by name (headers, parameters, fields), then removes every value so redacted from
    /// the rest of the exchange too: an echo service or an error message repeats secrets in
    /// places no name rule can know.
    public func redact(_ exchange: Exchange) -> Exchange {
        var secrets = Set<String>()
        var copy = exchange
        copy.request.headers = redact(headers: exchange.request.headers, secrets: &secrets)
        copy.request.query = exchange.request.query.map { redact(query: $0, secrets: &secrets) }
        copy.request.body = redact(body: exchange.request.body, headers: exchange.request.headers, secrets: &secrets)
        var response = exchange.response
        if var redacted = response {
            redacted.headers = redact(headers: redacted.headers, secrets: &secrets)
            redacted.body = redact(body: redacted.body, headers: redacted.headers, secrets: &secrets)
            response = redacted
        }
        // Short values ("en", "1") would erase ordinary data; they are not worth guessing at.
        // Markers from an earlier pass are not secrets: redacting twice changes nothing.
        let scrub = secrets.filter { $0.utf8.count >= 6 && !ASCII.contains($0, Self.markerStem) }
            .sorted { $0.utf8.count > $1.utf8.count }
        guard !scrub.isEmpty else {
            if let response { copy.result = .response(response) }
            return copy
        }
        copy.request.path = Self.scrub(copy.request.path, scrub)
        copy.request.query = copy.request.query.map { Self.scrub($0, scrub) }
        copy.request.headers = Self.scrub(copy.request.headers, scrub)
        copy.request.body = copy.request.body.replacingBytes(Self.scrub(copy.request.body.bytes, scrub))
        if var response {
            response.headers = Self.scrub(response.headers, scrub)
            response.body = response.body.replacingBytes(Self.scrub(response.body.bytes, scrub))
            copy.result = .response(response)
        }
        return copy
    }

    public func redact(headers: HeaderFields) -> HeaderFields {
        var secrets = Set<String>()
        return redact(headers: headers, secrets: &secrets)
    }

    func redact(headers: HeaderFields, secrets: inout Set<String>) -> HeaderFields {
        // Most messages carry no secret header: their fields are kept, not copied one by one.
        guard headers.fields.contains(where: { isSecretHeader($0.name) }) else { return headers }
        return HeaderFields(
            fields: headers.fields.map { field in
                guard isSecretHeader(field.name) else { return field }
                let lower = ASCII.lowercased(field.name)
                switch lower {
                case "cookie": return .init(field.name, Self.redactCookie(field.value, secrets: &secrets))
                case "set-cookie": return .init(field.name, Self.redactSetCookie(field.value, secrets: &secrets))
                case "authorization", "proxy-authorization":
                    secrets.insert(field.value)
                    // Keep the scheme: "Bearer" vs "Basic" matters to a consumer, the credential does not.
                    let value = field.value
                    if let space = value.utf8.firstIndex(of: 0x20), space > value.startIndex,
                        value.utf8[..<space].allSatisfy({ ($0 | 0x20) >= 0x61 && ($0 | 0x20) <= 0x7A }),
                        value.utf8.index(after: space) < value.endIndex
                    {
                        let credential = String(value[value.index(after: space)...])
                        secrets.insert(credential)
                        return .init(field.name, value[..<space] + " " + Self.shapeMarker(credential))
                    }
                    return .init(field.name, Self.shapeMarker(value))
                default:
                    secrets.insert(field.value)
                    return .init(field.name, Self.shapeMarker(field.value))
                }
            })
    }

    static func redactCookie(_ value: String, secrets: inout Set<String>) -> String {
        value.split(separator: ";").map { pair -> String in
            let trimmed = ASCII.trimmed(pair)
            guard let eq = trimmed.firstIndex(of: "=") else { return String(trimmed) }
            let value = String(trimmed[trimmed.index(after: eq)...])
            secrets.insert(value)
            return "\(trimmed[..<eq])=\(shapeMarker(value))"
        }.joined(separator: "; ")
    }

    static func redactSetCookie(_ value: String, secrets: inout Set<String>) -> String {
        var parts = value.split(separator: ";", omittingEmptySubsequences: false).map(String.init)
        if let first = parts.first, let eq = first.firstIndex(of: "=") {
            secrets.insert(String(first[first.index(after: eq)...]))
            parts[0] = "\(first[..<eq])=\(marker)"
        } else if !parts.isEmpty {
            secrets.insert(parts[0])
            parts[0] = marker
        }
        return parts.joined(separator: ";")
    }

    /// Redacts secret parameters in `a=1&token=x` (query strings and form bodies).
    public func redact(query: String) -> String {
        var secrets = Set<String>()
        return redact(query: query, secrets: &secrets)
    }

    func redact(query: String, secrets: inout Set<String>) -> String {
        query.split(separator: "&", omittingEmptySubsequences: false).map { pair -> String in
            guard let eq = pair.firstIndex(of: "=") else { return String(pair) }
            let rawName = pair[..<eq]
            let name = (rawName.replacingOccurrences(of: "+", with: " ")).removingPercentEncoding ?? String(rawName)
            guard isSecretParameter(name) else { return String(pair) }
            let rawValue = String(pair[pair.index(after: eq)...])
            secrets.insert(rawValue)
            let decoded = rawValue.replacingOccurrences(of: "+", with: " ").removingPercentEncoding
            if let decoded { secrets.insert(decoded) }
            return "\(rawName)=\(Self.shapeMarker(decoded ?? rawValue))"
        }.joined(separator: "&")
    }

    func redact(body: CapturedBody, headers: HeaderFields, secrets: inout Set<String>) -> CapturedBody {
        guard !body.bytes.isEmpty else { return body }
        let mediaType = MediaType.of(headers)
        if mediaType == "application/x-www-form-urlencoded" {
            let text = String(decoding: body.bytes, as: UTF8.self)
            return body.replacingBytes(Data(redact(query: text, secrets: &secrets).utf8))
        }
        let looksLikeJSON = mediaType == nil && body.bytes.first.map { $0 == 0x7B || $0 == 0x5B } == true
        guard MediaType.isJSON(mediaType) || looksLikeJSON else { return body }
        // Most bodies name no secret at all; scanning member names is far cheaper than parsing.
        guard !fieldPaths.isEmpty || mayNameAField(body.bytes) else { return body }
        if let value = try? JSONValue.parse(body.bytes) {
            let redacted = redact(json: value, path: [], secrets: &secrets)
            return redacted == value
                ? body : body.replacingBytes(Data(redacted.serialized().utf8))
        }
        // Truncated or malformed JSON cannot be parsed, yet may still hold secrets.
        let text = String(decoding: body.bytes, as: UTF8.self)
        return body.replacingBytes(Data(redactLexically(text, secrets: &secrets).utf8))
    }

    public func redact(json: JSONValue, path: [String] = []) -> JSONValue {
        var secrets = Set<String>()
        return redact(json: json, path: path, secrets: &secrets)
    }

    func redact(json: JSONValue, path: [String], secrets: inout Set<String>) -> JSONValue {
        if fieldPaths.contains(where: { JSONPath.matches(pattern: $0, path: path) }) {
            if case .string(let text) = json, text.hasPrefix(Self.markerStem) { return json }
            Self.collect(json, into: &secrets)
            return .string(Self.typedMarker(json))
        }
        switch json {
        case .object(let members):
            return .object(
                members.map { member in
                    if fields.contains(Self.normalise(member.key)) {
                        if case .string(let text) = member.value, text.hasPrefix(Self.markerStem) { return member }
                        Self.collect(member.value, into: &secrets)
                        return (member.key, .string(Self.typedMarker(member.value)))
                    }
                    return (member.key, redact(json: member.value, path: path + [member.key], secrets: &secrets))
                })
        case .array(let items):
            return .array(items.map { redact(json: $0, path: path + ["[*]"], secrets: &secrets) })
        default:
            return json
        }
    }

    /// Whether `bytes` may hold a member whose name is a redacted field. False means no member
    /// name can match; true only means "parse and see". Runs over every JSON body, so it only
    /// looks at the text before each `:` (found with `memchr`) instead of at every byte.
    func mayNameAField(_ bytes: Data) -> Bool {
        bytes.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> Bool in
            guard let base = raw.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return false }
            let count = raw.count
            var offset = 0
            var name: [UInt8] = []
            while offset < count, let hit = memchr(base + offset, 0x3A, count - offset) {
                let colon = UnsafeRawPointer(hit) - UnsafeRawPointer(base)
                offset = colon + 1
                var end = colon - 1
                while end >= 0, base[end] == 0x20 || base[end] == 0x09 || base[end] == 0x0A || base[end] == 0x0D {
                    end -= 1
                }
                guard end >= 1, base[end] == 0x22 else { continue }
                var start = end - 1
                while start >= 0, base[start] != 0x22, end - start < 512 { start -= 1 }
                // A very long name, or one with escapes, is left to the parser.
                guard start >= 0, base[start] == 0x22 else { return true }
                if start > 0 && base[start - 1] == 0x5C { return true }
                name.removeAll(keepingCapacity: true)
                for index in (start + 1)..<end {
                    let byte = base[index]
                    if byte == 0x5C || byte >= 0x80 { return true }
                    if byte == 0x5F || byte == 0x2D { continue }
                    name.append((byte >= 0x41 && byte <= 0x5A) ? byte | 0x20 : byte)
                }
                if fields.contains(String(decoding: name, as: UTF8.self)) { return true }
            }
            return false
        }
    }

    /// The scalar values under a redacted JSON node.
    static func collect(_ value: JSONValue, into secrets: inout Set<String>) {
        switch value {
        case .string(let text): secrets.insert(text)
        case .number(let text): secrets.insert(text)
        case .array(let items): for item in items { collect(item, into: &secrets) }
        case .object(let members): for member in members { collect(member.value, into: &secrets) }
        case .null, .bool: break
        }
    }

    // Scrubbing runs on every part of every exchange that carried a secret (most do, through
    // Authorization), and the secret is almost never there: a memmem check first, and byte
    // replacement when it is, instead of Foundation's string replacement.
    static func scrub(_ text: String, _ secrets: [String]) -> String {
        var result = text
        for secret in secrets {
            var bytes = result
            let replaced = bytes.withUTF8 { replacingAll(in: UnsafeRawBufferPointer($0), secret) }
            if let replaced { result = String(decoding: replaced, as: UTF8.self) }
        }
        return result
    }

    static func scrub(_ headers: HeaderFields, _ secrets: [String]) -> HeaderFields {
        HeaderFields(fields: headers.fields.map { .init($0.name, scrub($0.value, secrets)) })
    }

    static func scrub(_ bytes: Data, _ secrets: [String]) -> Data {
        var result = bytes
        for secret in secrets {
            if let replaced = result.withUnsafeBytes({ replacingAll(in: $0, secret) }) { result = Data(replaced) }
        }
        return result
    }

    /// `haystack` with every occurrence of `secret` replaced by the marker; nil when it has none.
    static func replacingAll(in haystack: UnsafeRawBufferPointer, _ secret: String) -> [UInt8]? {
        var needle = secret
        return needle.withUTF8 { needle -> [UInt8]? in
            guard let base = haystack.baseAddress, let needleBase = needle.baseAddress, needle.count > 0 else {
                return nil
            }
            var output: [UInt8]?
            var offset = 0
            var from = 0
            let last = haystack.count - needle.count
            // memchr for the first byte, memcmp for the rest (memmem is a GNU extension Swift
            // does not see).
            while from <= last,
                let hit = memchr(base + from, Int32(needleBase[0]), last - from + 1)
            {
                let position = UnsafeRawPointer(hit) - base
                guard memcmp(base + position, needleBase, needle.count) == 0 else {
                    from = position + 1
                    continue
                }
                from = position + needle.count
                if output == nil { output = [] }
                output!.append(contentsOf: haystack[offset..<position])
                output!.append(contentsOf: marker.utf8)
                offset = position + needle.count
            }
            guard var result = output else { return nil }
            result.append(contentsOf: haystack[offset...])
            return result
        }
    }

    /// `"<redacted:string~sk_test_~l24>"`, `"<redacted:integer>"`… : the value's JSON type
    /// survives redaction, and a string's visible shape with it.
    public static func typedMarker(_ value: JSONValue) -> String {
        if case .string(let text) = value, RedactionShape.describes(text) {
            return "<redacted:string~\(RedactionShape.of(text))>"
        }
        return "<redacted:\(JSONShape.typeName(value))>"
    }

    /// `<redacted~s-~d5>`: the marker for a redacted text value, keeping its visible shape.
    public static func shapeMarker(_ value: String) -> String {
        // Redacting twice changes nothing.
        if isMarker(value) { return value }
        return RedactionShape.describes(value) ? "<redacted~\(RedactionShape.of(value))>" : marker
    }

    /// Whether `text` is a whole redaction marker.
    public static func isMarker<S: StringProtocol>(_ text: S) -> Bool {
        text.hasPrefix(markerStem) && text.hasSuffix(">")
    }

    /// Whether `text` holds a redaction marker anywhere.
    public static func containsMarker<S: StringProtocol>(_ text: S) -> Bool {
        ASCII.contains(String(text), markerStem)
    }

    /// Replaces the value after every secret member name in text that is not valid JSON.
    func redactLexically(_ text: String, secrets: inout Set<String>) -> String {
        let pattern = #""([^"\\]{1,128})"\s*:\s*("(?:[^"\\]|\\.)*"?|[^,}\]\s]+)"#
        guard let regex = try? NSRegularExpression(pattern: pattern) else { return text }
        let ns = text as NSString
        var result = ""
        var last = 0
        for match in regex.matches(in: text, range: NSRange(location: 0, length: ns.length)) {
            let name = ns.substring(with: match.range(at: 1))
            guard fields.contains(Self.normalise(name)) else { continue }
            let valueRange = match.range(at: 2)
            let value = ns.substring(with: valueRange)
            secrets.insert(value.hasPrefix("\"") ? String(value.dropFirst().prefix { $0 != "\"" }) : value)
            result += ns.substring(with: NSRange(location: last, length: valueRange.location - last))
            result += "\"<redacted:string>\""
            last = valueRange.location + valueRange.length
        }
        result += ns.substring(from: last)
        return result
    }
}

/// Helpers on media types.
public enum MediaType {
    /// The lower-cased media type of a message without parameters, e.g. `application/json`.
    public static func of(_ headers: HeaderFields) -> String? {
        guard let value = headers["content-type"] else { return nil }
        let end = value.utf8.firstIndex(of: 0x3B) ?? value.endIndex
        let type = ASCII.trimmed(value[..<end])
        return type.isEmpty ? nil : ASCII.lowercased(type)
    }

    /// `application/json`, `application/problem+json`, `application/vnd.x+json`…
    public static func isJSON(_ mediaType: String?) -> Bool {
        guard let type = mediaType else { return false }
        return type == "application/json" || type.hasSuffix("+json") || type == "text/json"
    }
}

/// JSON type names used in markers and reports.
public enum JSONShape {
    public static func typeName(_ value: JSONValue) -> String {
        switch value {
        case .null: return "null"
        case .bool: return "boolean"
        case .number(let n): return n.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) ? "number" : "integer"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }
}
