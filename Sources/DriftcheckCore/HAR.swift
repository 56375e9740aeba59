import Foundation

/// HAR 1.2 (the HTTP Archive format browsers, mitmproxy and proxies write) as the contract
/// file that goes into git.
public enum HAR {
    public struct ReadError: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    static let timestamp = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    // MARK: Writing

    /// A deterministic HAR: same exchanges, same bytes. Text bodies are text, others base64;
    /// driftcheck's own fields (`_service`, sizes beyond the stored bytes) start with `_`.
    /// `endpoint` names each entry's templated endpoint (`_endpoint`), as `list` and reports do.
    public static func encode(
        _ exchanges: [Exchange], creatorVersion: String, descriptorSets: [Data] = [],
        endpoint: (Exchange) -> String? = { _ in nil }
    ) -> String {
        var writer = Writer(creatorVersion: creatorVersion)
        var text = ""
        for exchange in exchanges { text += writer.add(exchange, endpoint: endpoint(exchange)) }
        return text + writer.end(descriptorSets: descriptorSets)
    }

    /// The same bytes as `encode`, written entry by entry: an export holds one page of
    /// exchanges at a time, not the whole file.
    public struct Writer {
        let creatorVersion: String
        public private(set) var entries = 0

        public init(creatorVersion: String) { self.creatorVersion = creatorVersion }

        private func log(_ entries: JSONValue, descriptorSets: [Data] = []) -> JSONValue {
            var members: [(key: String, value: JSONValue)] = [
                ("version", .string("1.2")),
                ("creator", .object([("name", .string("driftcheck")), ("version", .string(creatorVersion))])),
                ("entries", entries),
            ]
            if !descriptorSets.isEmpty { members.append(("_descriptorSets", HAR.descriptorSets(descriptorSets))) }
            return .object([("log", .object(members))])
        }

        /// The text to append for `exchange` (nothing for a failure, which has no HAR form).
        public mutating func add(_ exchange: Exchange, endpoint: String?) -> String {
            guard case .object(var members)? = HAR.entry(exchange) else { return "" }
            if let endpoint { members.append(("_endpoint", .string(endpoint))) }
            let body = "      " + JSONValue.object(members).prettyPrinted(indent: "      ")
            defer { entries += 1 }
            guard entries == 0 else { return ",\n" + body }
            // Everything before the first entry, cut from the document with one placeholder entry.
            let document = log(.array([.object([("_", .null)])])).prettyPrinted()
            let head = document.range(of: "\"entries\": [\n")!.upperBound
            return String(document[..<head]) + body
        }

        /// The text that closes the document; `descriptorSets` (protobuf FileDescriptorSets for
        /// the gRPC calls among the entries) go into `log._descriptorSets`.
        public func end(descriptorSets: [Data] = []) -> String {
            guard entries > 0 else { return log(.array([]), descriptorSets: descriptorSets).prettyPrinted() + "\n" }
            guard !descriptorSets.isEmpty else { return "\n    ]\n  }\n}\n" }
            let sets = HAR.descriptorSets(descriptorSets).prettyPrinted(expandScalarArrays: true, indent: "    ")
            return "\n    ],\n    \"_descriptorSets\": \(sets)\n  }\n}\n"
        }
    }

    // HAR has no place for protobuf schemas: each set in base64, one string per set.
    static func descriptorSets(_ sets: [Data]) -> JSONValue {
        .array(sets.map { .string($0.base64EncodedString()) })
    }

    static func number(_ value: Int) -> JSONValue { .number(String(value)) }

    static func milliseconds(_ seconds: Double) -> JSONValue {
        .number(String(format: "%.3f", seconds * 1000))
    }

    static func headers(_ fields: HeaderFields) -> JSONValue {
        .array(fields.fields.map { .object([("name", .string($0.name)), ("value", .string($0.value))]) })
    }

    /// `text` (and `encoding` when base64) for a body.
    static func text(_ body: CapturedBody) -> [(key: String, value: JSONValue)] {
        if let text = String(data: body.bytes, encoding: .utf8), !text.contains("\u{0}") {
            return [("text", .string(text))]
        }
        return [("text", .string(body.bytes.base64EncodedString())), ("encoding", .string("base64"))]
    }

    static func entry(_ exchange: Exchange) -> JSONValue? {
        guard let response = exchange.response else { return nil }
        let request = exchange.request
        let defaultPort = request.scheme == "https" ? 443 : 80
        let host = HostName.bracketed(request.host)
        let url = "\(request.scheme)://\(host)\(request.port == defaultPort ? "" : ":\(request.port)")\(request.target)"
        var query: [JSONValue] = []
        for (name, value) in QueryString.parameters(request.query) {
            query.append(
                .object([
                    ("name", .string(name)), ("value", .string(value)),
                ]))
        }
        // gRPC exists only over HTTP/2; other exchanges do not say how they travelled.
        let version = JSONValue.string(GRPC.isGRPC(request.headers) ? "HTTP/2" : "HTTP/1.1")
        var requestMembers: [(key: String, value: JSONValue)] = [
            ("method", .string(request.method)), ("url", .string(url)), ("httpVersion", version),
            ("cookies", .array([])), ("headers", headers(request.headers)), ("queryString", .array(query)),
        ]
        if !request.body.bytes.isEmpty {
            requestMembers.append(
                (
                    "postData",
                    .object([("mimeType", .string(request.headers["content-type"] ?? ""))] + text(request.body))
                ))
        }
        requestMembers += [("headersSize", number(-1)), ("bodySize", number(request.body.size))]
        let content: [(key: String, value: JSONValue)] =
            [("size", number(response.body.size)), ("mimeType", .string(response.headers["content-type"] ?? ""))]
            + (response.body.bytes.isEmpty ? [] : text(response.body))
        var responseMembers: [(key: String, value: JSONValue)] = [
            ("status", number(response.status)), ("statusText", .string("")), ("httpVersion", version),
            ("cookies", .array([])), ("headers", headers(response.headers)), ("content", .object(content)),
            ("redirectURL", .string(response.headers["location"] ?? "")), ("headersSize", number(-1)),
            ("bodySize", number(response.body.size)),
        ]
        // HAR has no trailers: HTTP/2's (gRPC's status) travel as a custom field, in header form.
        if !response.trailers.fields.isEmpty { responseMembers.append(("_trailers", headers(response.trailers))) }
        var members: [(key: String, value: JSONValue)] = [
            ("startedDateTime", .string(exchange.startedAt.formatted(timestamp))),
            ("time", milliseconds(exchange.duration)), ("request", .object(requestMembers)),
            ("response", .object(responseMembers)), ("cache", .object([])),
            (
                "timings",
                .object([("send", number(0)), ("wait", milliseconds(exchange.duration)), ("receive", number(0))])
            ),
            ("_service", .string(exchange.service)),
        ]
        if request.body.isTruncated { members.append(("_requestBodyTruncated", .bool(true))) }
        return .object(members)
    }

    // MARK: Reading

    /// Exchanges from a HAR written by driftcheck, a browser's devtools or mitmproxy.
    /// `service` names entries that carry no `_service`; otherwise the host names them.
    public static func decode(_ data: Data, service: String? = nil) throws -> [Exchange] {
        try read(data, service: service).exchanges
    }

    /// A HAR's exchanges and the entries that could not be taken, each with its reason.
    public struct Contents: Sendable {
        public var exchanges: [Exchange]
        /// `entry 3: 'api/x' is a relative URL`… : counted and named, never fatal.
        public var skipped: [String]
        /// Protobuf FileDescriptorSets from `log._descriptorSets` (a driftcheck HAR with gRPC calls).
        public var descriptorSets: [Data] = []
    }

    /// Reads a HAR; an entry that cannot be imported (no response, a relative URL, another
    /// scheme) is skipped and named, as browsers and Fiddler write such entries. Only a file
    /// that is not a HAR at all throws.
    public static func read(_ data: Data, service: String? = nil) throws -> Contents {
        // Fiddler and some Chrome exports begin with a UTF-8 byte-order mark.
        let bytes = data.starts(with: [0xEF, 0xBB, 0xBF]) ? data.dropFirst(3) : data[...]
        let document: JSONValue
        do {
            document = try JSONValue.parse(Data(bytes))
        } catch {
            throw ReadError(description: "not JSON (\(error))")
        }
        guard case .array(let entries)? = document["log"]?["entries"] else {
            throw ReadError(description: "not a HAR file: no log.entries")
        }
        var contents = Contents(exchanges: [], skipped: [])
        if case .array(let sets)? = document["log"]?["_descriptorSets"] {
            contents.descriptorSets = sets.compactMap { string($0).flatMap { Data(base64Encoded: $0) } }
        }
        for (index, entry) in entries.enumerated() {
            switch decodeEntry(entry, index: index, service: service) {
            case .success(let exchange?): contents.exchanges.append(exchange)
            case .success(nil): continue
            case .failure(let error): contents.skipped.append(error.description)
            }
        }
        return contents
    }

    static func string(_ value: JSONValue?) -> String? {
        if case .string(let text)? = value { return text }
        return nil
    }

    static func int(_ value: JSONValue?) -> Int? {
        // Found by the HAR fuzz target: Int(1e300) traps, so out-of-range numbers read as absent.
        if case .number(let text)? = value { return Int(text) ?? Double(text).flatMap { Int(exactly: $0.rounded()) } }
        return nil
    }

    static func headerFields(_ value: JSONValue?) -> HeaderFields {
        guard case .array(let items)? = value else { return HeaderFields() }
        // HTTP/2 pseudo-headers (:authority, :path) describe the request line, not headers.
        return HeaderFields(
            fields: items.compactMap { item in
                guard let name = string(item["name"]), let value = string(item["value"]), !name.hasPrefix(":") else {
                    return nil
                }
                return .init(name, value)
            })
    }

    static func body(_ container: JSONValue?, declaredSize: Int?) -> CapturedBody {
        guard let container, let text = string(container["text"]) else { return CapturedBody() }
        let bytes: Data
        if string(container["encoding"]) == "base64" {
            bytes = Data(base64Encoded: text) ?? Data()
        } else {
            bytes = Data(text.utf8)
        }
        let size = max(declaredSize ?? bytes.count, bytes.count)
        return CapturedBody(bytes: bytes, size: size)
    }

    static func decodeEntry(_ entry: JSONValue, index: Int, service: String?) -> Result<Exchange?, ReadError> {
        guard let request = entry["request"], let method = string(request["method"]),
            let urlText = string(request["url"])
        else {
            return .failure(ReadError(description: "entry \(index): no request.method or request.url"))
        }
        guard let response = entry["response"], case .object = response else {
            return .failure(ReadError(description: "entry \(index): no response"))
        }
        guard let components = URLComponents(string: urlText), let scheme = components.scheme?.lowercased(),
            let host = components.host
        else {
            return .failure(ReadError(description: "entry \(index): '\(urlText)' is a relative URL"))
        }
        guard scheme == "http" || scheme == "https" else {
            return .failure(ReadError(description: "entry \(index): the \(scheme): scheme is not HTTP"))
        }
        // Devtools write status 0 for requests that never got an answer: not a contract sample.
        guard let status = int(response["status"]), status > 0 else { return .success(nil) }
        let port = components.port ?? (scheme == "https" ? 443 : 80)
        let path = components.percentEncodedPath.isEmpty ? "/" : components.percentEncodedPath
        let recordedRequest = RecordedRequest(
            method: method.uppercased(), scheme: scheme, host: host, port: port, path: path,
            query: components.percentEncodedQuery, headers: headerFields(request["headers"]),
            body: body(request["postData"], declaredSize: int(request["bodySize"]).flatMap { $0 >= 0 ? $0 : nil }))
        let content = response["content"]
        let recordedResponse = RecordedResponse(
            status: status, headers: headerFields(response["headers"]),
            body: body(content, declaredSize: int(content?["size"]).flatMap { $0 >= 0 ? $0 : nil }),
            trailers: headerFields(response["_trailers"]))
        let started = string(entry["startedDateTime"]).flatMap {
            (try? Date($0, strategy: timestamp)) ?? (try? Date($0, strategy: Date.ISO8601FormatStyle()))
        }
        let time: Double
        if case .number(let text)? = entry["time"], let value = Double(text) { time = value / 1000 } else { time = 0 }
        return .success(
            Exchange(
                service: string(entry["_service"]) ?? service ?? ServiceName.forHost(host, port: port),
                request: recordedRequest, result: .response(recordedResponse),
                startedAt: started ?? Date(timeIntervalSince1970: 0),
                duration: time))
    }
}
