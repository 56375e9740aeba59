import DriftcheckCore
import NIOCore
import NIOHTTP1

/// A request head as it reached the proxy: what routing and recording read, read once, and the
/// head itself in the form its wire gave.
struct RequestHead {
    enum Form {
        /// HTTP/1.1: the head as its bytes came, forwarded with only what must change rewritten.
        case wire(HTTP1Head)
        /// An HTTP/2 stream's head, in NIO's HTTP/1 view of it.
        case parsed(HTTPRequestHead)
    }

    let form: Form
    let method: String
    let uri: String
    let version: HTTPVersion
    let isKeepAlive: Bool
    let expectsContinue: Bool
    /// The body's length when the head gives it, to size the capture once.
    let contentLength: Int?

    static func wire(_ head: HTTP1Head) -> RequestHead {
        RequestHead(
            form: .wire(head), method: head.method, uri: head.target, version: head.version,
            isKeepAlive: head.keepAlive, expectsContinue: head.expectsContinue, contentLength: head.contentLength)
    }

    static func parsed(_ head: HTTPRequestHead) -> RequestHead {
        RequestHead(
            form: .parsed(head), method: head.method.rawValue, uri: head.uri, version: head.version,
            isKeepAlive: head.isKeepAlive,
            expectsContinue: head.headers["expect"].contains { $0.lowercased() == "100-continue" },
            contentLength: head.headers.contentLength)
    }

    /// The head in NIO's form, for an HTTP/2 upstream (strings made here, once).
    var parsed: HTTPRequestHead {
        switch form {
        case .wire(let head):
            var headers = head.headers
            // HTTP/2 frames its own bodies.
            headers.remove(name: "transfer-encoding")
            return HTTPRequestHead(
                version: head.version, method: HTTPMethod(rawValue: head.method), uri: head.target, headers: headers)
        case .parsed(let head): return head
        }
    }

    /// The fields as recorded: what the client sent.
    var recordedFields: HeaderFields {
        switch form {
        case .wire(let head): return head.recordedFields
        case .parsed(let head): return head.headers.recorded(version: head.version)
        }
    }

    /// The first value of the field named `lowercased`.
    func first(_ lowercased: String) -> String? {
        switch form {
        case .wire(let head): return head.first(lowercased)
        case .parsed(let head): return head.headers.first(name: lowercased)
        }
    }

    /// Whether its media type starts with `prefix` (lower case); no string is made for it.
    func contentType(startsWith prefix: StaticString) -> Bool {
        switch form {
        case .wire(let head): return head.contentType(startsWith: prefix)
        case .parsed(let head): return head.headers.contentType(startsWith: prefix)
        }
    }
}

/// A response head as it came from the upstream.
struct ResponseHead {
    enum Form {
        case wire(HTTP1Head)
        case parsed(HTTPResponseHead)
    }

    let form: Form
    let status: Int
    /// Whether the upstream keeps its connection after this response.
    let isKeepAlive: Bool
    let contentLength: Int?

    static func wire(_ head: HTTP1Head) -> ResponseHead {
        ResponseHead(
            form: .wire(head), status: head.status, isKeepAlive: head.keepAlive && head.framing != .untilClose,
            contentLength: head.contentLength)
    }

    static func parsed(_ head: HTTPResponseHead) -> ResponseHead {
        ResponseHead(
            form: .parsed(head), status: Int(head.status.code), isKeepAlive: head.isKeepAlive,
            contentLength: head.headers.contentLength)
    }

    var isInterim: Bool { (100..<200).contains(status) }

    var recordedFields: HeaderFields {
        switch form {
        case .wire(let head): return head.recordedFields
        case .parsed(let head): return head.headers.recorded(version: head.version)
        }
    }

    /// A Server-Sent Events stream (`content-type: text/event-stream`). Asked of every response:
    /// no string is made for it.
    var isEventStream: Bool {
        switch form {
        case .wire(let head): return head.contentType(startsWith: "text/event-stream")
        case .parsed(let head): return head.headers.contentType(startsWith: "text/event-stream")
        }
    }
}

extension HTTP1Head {
    /// The first value of the field named `lowercased`.
    func first(_ lowercased: String) -> String? { fields.first { field($0, is: lowercased) }.map(value) }

    /// Whether the first Content-Type starts with `prefix` (lower case), read from the bytes.
    func contentType(startsWith prefix: StaticString) -> Bool {
        guard let field = fields.first(where: { self.field($0, is: "content-type") }),
            field.value.count >= prefix.utf8CodeUnitCount
        else { return false }
        let start = field.value.lowerBound
        return bytes.withUnsafeReadableBytes {
            HTTP1Syntax.equalsIgnoringCase($0, start..<start + prefix.utf8CodeUnitCount, prefix)
        }
    }

    var contentLength: Int? {
        if case .length(let count) = framing { return count }
        return nil
    }

    var recordedFields: HeaderFields { HeaderFields(fields: fields.map { .init(name($0), value($0)) }) }
}

extension HTTPHeaders {
    var contentLength: Int? { first(name: "content-length").flatMap { Int($0) } }

    /// Whether the first Content-Type starts with `prefix` (lower case).
    func contentType(startsWith prefix: StaticString) -> Bool {
        guard let type = first(name: "content-type") else { return false }
        let expected = UnsafeBufferPointer(start: prefix.utf8Start, count: prefix.utf8CodeUnitCount)
        return type.utf8.count >= expected.count
            && zip(type.utf8, expected).allSatisfy { ($0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0) == $1 }
    }

    /// The fields as recorded from a message of `version`.
    func recorded(version: HTTPVersion) -> HeaderFields {
        // HTTP/2 has no Transfer-Encoding: NIO's HTTP/1 view of a stream adds `chunked` to a body
        // without a length, which the sender never sent.
        let invented = version.major == 2 ? "transfer-encoding" : ""
        return HeaderFields(fields: filter { $0.name.lowercased() != invented }.map { .init($0.name, $0.value) })
    }
}

/// One part of a message on its way through the proxy. Bodies travel in the buffers they came in.
enum MessagePart<Head> {
    case head(Head)
    /// Content: forwarded and captured.
    case body(ByteBuffer)
    /// HTTP/1.1 chunked framing, forwarded only to an HTTP/1.1 hop that keeps the framing.
    case framing(ByteBuffer)
    /// The end: the bytes that ended it on an HTTP/1.1 wire (the last chunk and trailer section),
    /// and its trailers.
    case end(ByteBuffer?, HTTPHeaders)

    init(_ part: HTTP1Framer.Part, _ head: (HTTP1Head) -> Head) {
        switch part {
        case .head(let wire): self = .head(head(wire))
        case .body(let bytes): self = .body(bytes)
        case .framing(let bytes): self = .framing(bytes)
        case .end(let bytes, let trailers): self = .end(bytes, trailers)
        }
    }
}

typealias RequestPart = MessagePart<RequestHead>
typealias ResponsePart = MessagePart<ResponseHead>

/// How the body of a message goes on an HTTP/1.1 connection.
enum HTTP1BodyWriting: Equatable {
    /// Body, framing and end as they came (same framing on both hops).
    case asReceived
    /// Content re-framed as chunks (a body that came without HTTP/1.1 framing, of unknown length).
    case chunked
    /// Content only: a length the head gives, or until the connection closes.
    case contentOnly

    /// Hands `write` the bytes for `part` of a message written this way, in order.
    // A closure rather than an array: this runs for every body part, and an array allocates.
    func bytes<Head>(_ part: MessagePart<Head>, _ write: (ByteBuffer) -> Void) {
        switch (self, part) {
        case (_, .head): break
        case (.chunked, .body(let content)):
            guard content.readableBytes > 0 else { return }
            write(ByteBuffer(string: String(content.readableBytes, radix: 16) + "\r\n"))
            write(content)
            write(Self.crlf)
        case (_, .body(let content)): write(content)
        case (.asReceived, .framing(let bytes)): write(bytes)
        case (_, .framing): break
        case (.asReceived, .end(let bytes, _)): if let bytes { write(bytes) }
        case (.chunked, .end(_, let trailers)):
            var last = ByteBuffer(string: "0\r\n")
            for (name, value) in trailers { last.writeString("\(name): \(value)\r\n") }
            last.writeStaticString("\r\n")
            write(last)
        case (.contentOnly, .end): break
        }
    }

    private static let crlf = ByteBuffer(string: "\r\n")
}

/// Heads in NIO's form written as HTTP/1.1 bytes.
enum HTTP1Encoding {
    static func bytes(startLine: String, _ headers: HTTPHeaders) -> ByteBuffer {
        var out = ByteBuffer()
        out.writeString(startLine)
        out.writeStaticString("\r\n")
        for (name, value) in headers {
            out.writeString(name)
            out.writeStaticString(": ")
            out.writeString(value)
            out.writeStaticString("\r\n")
        }
        out.writeStaticString("\r\n")
        return out
    }

    static func statusLine(_ version: HTTPVersion, _ status: HTTPResponseStatus) -> String {
        "HTTP/\(version.major).\(version.minor) \(status.code) \(status.reasonPhrase)"
    }
}

/// The proxy's own answers (errors it answers itself): one line of plain text.
enum ProxyAnswer {
    static func head(_ status: HTTPResponseStatus, message: String, close: Bool) -> HTTPResponseHead {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "text/plain; charset=utf-8")
        headers.add(name: "content-length", value: String(message.utf8.count + 1))
        if close { headers.add(name: "connection", value: "close") }
        return HTTPResponseHead(version: .http1_1, status: status, headers: headers)
    }

    static func body(_ message: String) -> ByteBuffer { ByteBuffer(string: message + "\n") }

    /// The answer as HTTP/1.1 bytes.
    static func bytes(_ status: HTTPResponseStatus, message: String, close: Bool) -> ByteBuffer {
        let head = head(status, message: message, close: close)
        var out = HTTP1Encoding.bytes(startLine: HTTP1Encoding.statusLine(.http1_1, status), head.headers)
        out.writeString(message + "\n")
        return out
    }
}
