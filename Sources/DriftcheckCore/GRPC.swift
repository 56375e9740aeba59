import Foundation

/// gRPC as the differ sees it. A call is recorded as one HTTP/2 exchange: `POST
/// /package.Service/Method`, length-prefixed protobuf messages as bodies, the status in
/// `grpc-status` (a trailer, or a header in a Trailers-Only answer). `view` turns such an answer
/// into what every other comparison works on: an HTTP-equivalent status and a JSON array of
/// the messages, so missing, phantom and retyped fields, values and statuses are found by the
/// same rules as for JSON APIs.
public enum GRPC {
    /// The media type of a gRPC answer after `view`: JSON, and marked as a gRPC view.
    public static let viewMediaType = "application/grpc+json"

    public static func isGRPC(_ headers: HeaderFields) -> Bool {
        guard let type = MediaType.of(headers) else { return false }
        return type == "application/grpc"
            || type.hasPrefix("application/grpc+")
                && type != viewMediaType
    }

    public static func isView(_ headers: HeaderFields) -> Bool { MediaType.of(headers) == viewMediaType }

    static let names = [
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
        "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
        "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
    ]

    /// The HTTP status Google's API guidelines give each code: failures stay failures, and
    /// `status` (OK or not) and `status-code` (which failure) keep their meaning.
    static let httpEquivalents = [
        200, 499, 500, 400, 504, 404, 409, 403, 429, 400, 409, 400, 501, 500, 503, 500, 401,
    ]

    public static func statusName(_ code: Int) -> String {
        names.indices.contains(code) ? names[code] : "code \(code)"
    }

    /// The call's status: the `grpc-status` trailer, else the header of a Trailers-Only answer.
    public static func status(of response: RecordedResponse) -> Int? {
        (response.trailers["grpc-status"] ?? response.headers["grpc-status"]).flatMap { Int($0) }
    }

    /// The messages of a body: each a compressed flag and its bytes; nil when the framing is broken.
    public static func messages(_ body: Data) -> [(compressed: Bool, bytes: Data)]? {
        var messages: [(Bool, Data)] = []
        var index = body.startIndex
        while index < body.endIndex {
            guard body.endIndex - index >= 5 else { return nil }
            let flag = body[index]
            let length = body[(index + 1)..<(index + 5)].reduce(0) { $0 << 8 | Int($1) }
            let start = index + 5
            guard flag <= 1, body.endIndex - start >= length else { return nil }
            messages.append((flag == 1, Data(body[start..<(start + length)])))
            index = start + length
        }
        return messages
    }

    /// `response` as the differ compares it (unchanged when it is not gRPC); messages of
    /// `messageType` are decoded with `schema`, others without one.
    public static func view(
        _ response: RecordedResponse, messageType: String? = nil, schema: ProtoSchema? = nil
    ) -> RecordedResponse {
        guard isGRPC(response.headers) else { return response }
        var view = response
        // A proxy's own error (502 and the like) is an HTTP answer, not a call's status.
        if response.status == 200 || status(of: response) != nil {
            let code = status(of: response) ?? 2
            view.status = httpEquivalents.indices.contains(code) ? httpEquivalents[code] : 500
            view.headers.remove("grpc-status")
            view.headers.add("grpc-status", String(code))
        }
        view.headers.remove("content-type")
        view.headers.add("content-type", viewMediaType)
        guard !response.body.isTruncated, let messages = messages(response.body.bytes) else {
            // Broken or cut framing: the bytes are not compared as messages.
            view.body = CapturedBody(bytes: Data(), size: response.body.size + 1)
            return view
        }
        let decoded: [JSONValue] = messages.map { message in
            if message.compressed { return .string("<compressed message>") }
            if let schema, let messageType { return schema.json(message.bytes, type: messageType) ?? .null }
            return ProtobufWire.json(message.bytes) ?? .null
        }
        let bytes = Data(JSONValue.array(decoded).serialized().utf8)
        view.body = CapturedBody(bytes: bytes)
        return view
    }

    /// `exchange` with its answer seen through `view`, decoded by the method's output type when
    /// `schema` knows the method.
    public static func view(_ exchange: Exchange, schema: ProtoSchema? = nil) -> Exchange {
        guard let response = exchange.response, isGRPC(response.headers) else { return exchange }
        var copy = exchange
        copy.result = .response(view(response, answerTo: exchange.request, schema: schema))
        return copy
    }

    /// An answer to `request` seen through `view`.
    public static func view(_ response: RecordedResponse, answerTo request: RecordedRequest, schema: ProtoSchema?)
        -> RecordedResponse
    {
        let type = schema?.methods[request.path]?.output
        return view(response, messageType: type, schema: type == nil ? nil : schema)
    }

    // MARK: WireMock's gRPC extension

    /// A recorded call as WireMock's gRPC extension shows it to its stubs: the first request
    /// message as JSON (by the method's input type), `application/json`; nil when `schema`
    /// does not know the method.
    public static func jsonRequest(_ request: RecordedRequest, schema: ProtoSchema) -> RecordedRequest? {
        guard isGRPC(request.headers), let method = schema.methods[request.path],
            let first = messages(request.body.bytes)?.first, !first.compressed,
            let json = schema.json(first.bytes, type: method.input, printingDefaults: false)
        else { return nil }
        var copy = request
        copy.headers.remove("content-type")
        copy.headers.add("content-type", "application/json")
        copy.body = CapturedBody(bytes: Data(json.serialized().utf8))
        return copy
    }

    /// A recorded unary call as a gRPC-extension stub records it: the request message and the
    /// answer as JSON, the status as `grpc-status-name`. Nil for a call of several messages
    /// either way (the extension answers one message), a compressed one, or one `schema` does
    /// not know.
    public static func stubExchange(_ exchange: Exchange, schema: ProtoSchema) -> Exchange? {
        guard let response = exchange.response, let method = schema.methods[exchange.request.path],
            messages(exchange.request.body.bytes)?.count == 1,
            let request = jsonRequest(exchange.request, schema: schema),
            let answers = messages(response.body.bytes), answers.allSatisfy({ !$0.compressed })
        else { return nil }
        let code = status(of: response) ?? 2
        guard code == 0 ? answers.count == 1 : answers.isEmpty else { return nil }
        var headers = HeaderFields([("content-type", "application/json"), ("grpc-status-name", statusName(code))])
        if let reason = response.trailers["grpc-message"] ?? response.headers["grpc-message"], !reason.isEmpty {
            headers.add("grpc-status-reason", reason)
        }
        let body = answers.first.flatMap { schema.json($0.bytes, type: method.output) }
        var copy = exchange
        copy.request = request
        copy.result = .response(
            RecordedResponse(
                status: 200, headers: headers, body: CapturedBody(bytes: Data((body?.serialized() ?? "").utf8))))
        return copy
    }

    /// A stub's JSON answer to `request` as the gRPC call a client receives from WireMock's
    /// gRPC extension, already in the differ's view: the status from `grpc-status-name` (OK
    /// when absent); for OK, the JSON turned into the method's output message as protobuf's
    /// parser does (zero values for what the stub leaves out), or, when it cannot be — a field
    /// the message lacks, a value of the wrong kind — the call fails with UNKNOWN, as the
    /// extension's does.
    public static func viewOfStubAnswer(_ answer: RecordedResponse, to request: RecordedRequest, schema: ProtoSchema)
        -> RecordedResponse
    {
        let name = answer.headers["grpc-status-name"]?.uppercased() ?? "OK"
        var code = names.firstIndex(of: name) ?? 2
        var reason = answer.headers["grpc-status-reason"]
        var messages: [JSONValue] = []
        if code == 0, let type = schema.methods[request.path]?.output {
            do {
                // An empty body is an empty message.
                let json = answer.body.bytes.isEmpty ? .object([]) : try JSONValue.parse(answer.body.bytes)
                let bytes = try schema.message(fromJSON: json, type: type)
                messages = [schema.json(bytes, type: type) ?? .null]
            } catch {
                code = 2
                reason = "the stub's answer is not a \(type.dropFirst()) message: \(error)"
            }
        }
        var headers = HeaderFields([("content-type", viewMediaType), ("grpc-status", String(code))])
        if let reason { headers.add("grpc-message", reason) }
        return RecordedResponse(
            status: httpEquivalents[code], headers: headers,
            body: CapturedBody(bytes: Data(JSONValue.array(messages).serialized().utf8)))
    }

    /// The call's status for people: `UNAVAILABLE (14)`.
    /// With `reason`, a failure's `grpc-message` follows: `UNKNOWN (2): the stub's answer…`.
    public static func describe(_ headers: HeaderFields, reason: Bool = false) -> String? {
        guard isView(headers), let code = headers["grpc-status"].flatMap({ Int($0) }) else { return nil }
        guard reason, code != 0, let message = headers["grpc-message"], !message.isEmpty else {
            return "\(statusName(code)) (\(code))"
        }
        return "\(statusName(code)) (\(code)): \(message.prefix(200))"
    }
}

/// Protobuf's wire format read without a schema: each field under `#` and its number (`#3`:
/// a bare number would read as a map keyed by data), varints as
/// numbers, fixed 64-bit values that look like doubles as doubles, length-delimited values as
/// text when they are printable, else as a nested message when they parse as one, else base64.
/// A field seen more than once becomes an array.
public enum ProtobufWire {
    /// Nesting deeper than this is left as bytes: a hostile message cannot exhaust the stack.
    static let maximumDepth = 32

    public static func json(_ bytes: Data) -> JSONValue? {
        fields(Array(bytes), depth: 0).map(object)
    }

    /// One field's value as the wire carries it.
    public enum Value: Sendable {
        case varint(UInt64)
        case fixed64(UInt64)
        case fixed32(UInt32)
        case bytes([UInt8], depth: Int)
    }

    static func object(_ fields: [(Int, Value)]) -> JSONValue {
        var order: [Int] = []
        var grouped: [Int: [JSONValue]] = [:]
        for (number, value) in fields {
            if grouped[number] == nil { order.append(number) }
            grouped[number, default: []].append(json(value))
        }
        return .object(
            order.map { number in
                let values = grouped[number]!
                return (key: "#\(number)", value: values.count == 1 ? values[0] : .array(values))
            })
    }

    static func json(_ value: Value) -> JSONValue {
        switch value {
        case .varint(let number): return .number(String(number))
        case .fixed32(let bits):
            let float = Float(bitPattern: bits)
            return plausible(Double(float)) ? .number(String(Double(float))) : .number(String(bits))
        case .fixed64(let bits):
            let double = Double(bitPattern: bits)
            return plausible(double) ? .number(String(double)) : .number(String(bits))
        case .bytes(let bytes, let depth):
            if bytes.isEmpty { return .string("") }
            if let text = String(validating: bytes, as: UTF8.self), text.unicodeScalars.allSatisfy(printable) {
                return .string(text)
            }
            if depth < maximumDepth, let nested = fields(bytes, depth: depth + 1), !nested.isEmpty {
                return object(nested)
            }
            return .string("base64:" + Data(bytes).base64EncodedString())
        }
    }

    static func plausible(_ value: Double) -> Bool {
        value == 0 || (value.isFinite && abs(value) >= 1e-9 && abs(value) < 1e15)
    }

    static func printable(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value >= 0x20 || scalar == "\t" || scalar == "\n" || scalar == "\r"
    }

    /// The fields of a message in wire order, or nil when `bytes` is not one.
    public static func fields(_ bytes: [UInt8], depth: Int) -> [(Int, Value)]? {
        var result: [(Int, Value)] = []
        var index = 0
        func varint() -> UInt64? {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while index < bytes.count, shift < 64 {
                let byte = bytes[index]
                index += 1
                value |= UInt64(byte & 0x7F) << shift
                if byte & 0x80 == 0 { return value }
                shift += 7
            }
            return nil
        }
        while index < bytes.count {
            guard let key = varint() else { return nil }
            let number = key >> 3
            guard number > 0, number < 1 << 29 else { return nil }
            switch key & 7 {
            case 0:
                guard let value = varint() else { return nil }
                result.append((Int(number), .varint(value)))
            case 1:
                guard bytes.count - index >= 8 else { return nil }
                let value = bytes[index..<index + 8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                index += 8
                result.append((Int(number), .fixed64(value)))
            case 2:
                guard let length = varint(), length <= UInt64(bytes.count - index) else { return nil }
                let end = index + Int(length)
                result.append((Int(number), .bytes(Array(bytes[index..<end]), depth: depth)))
                index = end
            case 5:
                guard bytes.count - index >= 4 else { return nil }
                let value = bytes[index..<index + 4].reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
                index += 4
                result.append((Int(number), .fixed32(value)))
            default:
                // Groups (3, 4) are long deprecated; 6 and 7 do not exist.
                return nil
            }
        }
        return result
    }
}
