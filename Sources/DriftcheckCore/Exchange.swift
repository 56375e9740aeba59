import Foundation

/// An ordered list of HTTP header fields; names compare case-insensitively.
public struct HeaderFields: Sendable, Hashable, Codable, Sequence {
    public struct Field: Sendable, Hashable, Codable {
        public var name: String
        public var value: String
        public init(_ name: String, _ value: String) {
            self.name = name
            self.value = value
        }
    }

    public var fields: [Field]

    public init(_ pairs: [(String, String)] = []) {
        fields = pairs.map { Field($0.0, $0.1) }
    }

    public init(fields: [Field]) { self.fields = fields }

    /// The first value of `name`, if present.
    public subscript(name: String) -> String? {
        fields.first { Self.sameName($0.name, name) }?.value
    }

    /// Every value of `name`, in order.
    public func values(_ name: String) -> [String] {
        fields.filter { Self.sameName($0.name, name) }.map(\.value)
    }

    static func sameName(_ a: String, _ b: String) -> Bool { ASCII.equalsIgnoringCase(a, b) }

    public mutating func add(_ name: String, _ value: String) { fields.append(Field(name, value)) }

    public mutating func remove(_ name: String) {
        fields.removeAll { Self.sameName($0.name, name) }
    }

    public func makeIterator() -> IndexingIterator<[Field]> { fields.makeIterator() }
}

/// A body as stored: at most the capture limit, with the size of the whole body on the wire.
public struct CapturedBody: Sendable, Hashable {
    public var bytes: Data
    /// Bytes seen on the wire, which exceeds `bytes.count` when the body was truncated.
    public var size: Int
    public var isTruncated: Bool { size > bytes.count }

    public init(bytes: Data = Data(), size: Int? = nil) {
        self.bytes = bytes
        self.size = size ?? bytes.count
    }

    public static let empty = CapturedBody()

    /// The same body with other bytes (redacted, decoded): a complete body stays complete,
    /// a truncated one stays truncated.
    public func replacingBytes(_ replacement: Data) -> CapturedBody {
        CapturedBody(bytes: replacement, size: isTruncated ? max(size, replacement.count + 1) : replacement.count)
    }
}

public struct RecordedRequest: Sendable, Hashable {
    public var method: String
    public var scheme: String
    public var host: String
    public var port: Int
    /// The path without the query, as sent (percent-encoding kept).
    public var path: String
    /// The raw query string without `?`, or nil when the target had none.
    public var query: String?
    public var headers: HeaderFields
    public var body: CapturedBody

    public init(
        method: String, scheme: String = "http", host: String, port: Int, path: String,
        query: String? = nil, headers: HeaderFields = HeaderFields(), body: CapturedBody = .empty
    ) {
        self.method = method
        self.scheme = scheme
        self.host = host
        self.port = port
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
    }

    /// `path?query` as it went on the request line.
    public var target: String { query.map { "\(path)?\($0)" } ?? path }
}

public struct RecordedResponse: Sendable, Hashable {
    public var status: Int
    public var headers: HeaderFields
    public var body: CapturedBody
    /// Fields after the body (HTTP/2 trailers: gRPC's `grpc-status` and `grpc-message`).
    public var trailers: HeaderFields

    public init(
        status: Int, headers: HeaderFields = HeaderFields(), body: CapturedBody = .empty,
        trailers: HeaderFields = HeaderFields()
    ) {
        self.status = status
        self.headers = headers
        self.body = body
        self.trailers = trailers
    }
}

/// What came back from upstream: a response, or a failure that is never a contract sample.
public enum ExchangeResult: Sendable, Hashable {
    case response(RecordedResponse)
    case failure(ExchangeFailure)
}

/// Why an exchange has no response. Stored as `kind: detail`, so a store can be queried by kind.
public struct ExchangeFailure: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, CaseIterable {
        /// The upstream could not be reached: refused, unresolvable, TLS refused.
        case connect
        /// The upstream said nothing for longer than the upstream timeout.
        case timeout
        /// The upstream closed or reset the connection before the response was complete.
        case upstreamClosed = "upstream-closed"
        /// The client left before the exchange completed.
        case clientClosed = "client-closed"
        /// Anything else, and failures stored before kinds existed.
        case other
    }

    public var kind: Kind
    public var detail: String

    public init(_ kind: Kind, _ detail: String) {
        self.kind = kind
        self.detail = detail
    }

    /// Reads the stored form; text without a known kind (older stores) is `other`.
    public init(stored text: String) {
        if let colon = text.firstIndex(of: ":"), let kind = Kind(rawValue: String(text[..<colon])) {
            self.init(kind, String(text[text.index(after: colon)...].drop { $0 == " " }))
        } else {
            self.init(.other, text)
        }
    }

    /// `kind: detail`, the form in the store's `failure` column.
    public var stored: String { "\(kind.rawValue): \(detail)" }
    public var description: String { detail }
}

/// One recorded request and what the real service did with it.
public struct Exchange: Sendable, Hashable {
    /// Store row id; nil until stored.
    public var id: Int64?
    public var service: String
    public var request: RecordedRequest
    public var result: ExchangeResult
    public var startedAt: Date
    /// Seconds from the request head to the end of the response.
    public var duration: Double

    public init(
        id: Int64? = nil, service: String, request: RecordedRequest, result: ExchangeResult,
        startedAt: Date, duration: Double
    ) {
        self.id = id
        self.service = service
        self.request = request
        self.result = result
        self.startedAt = startedAt
        self.duration = duration
    }

    public var response: RecordedResponse? {
        if case .response(let response) = result { return response }
        return nil
    }
}
