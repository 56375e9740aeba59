import NIOCore
import NIOHTTP1

#if canImport(Glibc)
    import Glibc
#endif

/// Why bytes are not an HTTP/1.1 message the proxy will forward.
package enum HTTP1FramingError: Error, Equatable, CustomStringConvertible {
    case malformed(String)
    /// The head is longer than the limit (431 for a request).
    case headTooLarge
    /// The connection ended in the middle of a message.
    case truncated

    package var description: String {
        switch self {
        case .malformed(let why): return why
        case .headTooLarge: return "head too large"
        case .truncated: return "connection ended in the middle of a message"
        }
    }
}

/// How a message's body is delimited (RFC 9112 §6.3).
package enum HTTP1BodyFraming: Equatable {
    case none
    case length(Int)
    case chunked
    /// Until the connection closes: a response with neither a length nor the chunked coding.
    case untilClose
}

/// One HTTP/1.1 head as it came on the wire, with what routing and framing need read out of it.
/// Field names and values stay bytes until someone asks for them as strings.
package struct HTTP1Head {
    /// A field line's name and value, as offsets into `bytes` from its reader index.
    package struct Field: Equatable {
        package var name: Range<Int>
        package var value: Range<Int>
    }

    /// The whole head: start line, field lines and the empty line that ends it.
    package let bytes: ByteBuffer
    /// Requests: the method and request target as sent. Responses: empty.
    package var method = ""
    package var target = ""
    /// Responses: the status code. Requests: 0.
    package var status = 0
    package var version = HTTPVersion.http1_1
    package var fields: [Field] = []
    package var framing = HTTP1BodyFraming.none
    package var connectionClose = false
    package var connectionKeepAlive = false
    /// Names the Connection header lists besides close and keep-alive (hop-by-hop for this message).
    package var connectionOptions: [Range<Int>] = []
    package var expectsContinue = false

    /// Whether the sender keeps the connection after this message (RFC 9112 §9.3).
    package var keepAlive: Bool {
        if connectionClose { return false }
        return version.minor >= 1 || connectionKeepAlive
    }

    package func name(_ field: Field) -> String { string(field.name) }
    package func value(_ field: Field) -> String { string(field.value) }

    package func string(_ range: Range<Int>) -> String {
        bytes.getString(at: bytes.readerIndex + range.lowerBound, length: range.count) ?? ""
    }

    /// Whether `field`'s name is `lowercased`, ignoring case.
    package func field(_ field: Field, is lowercased: String) -> Bool {
        guard field.name.count == lowercased.utf8.count else { return false }
        return bytes.withUnsafeReadableBytes { raw in
            var index = field.name.lowerBound
            for byte in lowercased.utf8 {
                if HTTP1Syntax.lower(raw[index]) != byte { return false }
                index += 1
            }
            return true
        }
    }

    /// The fields as name-value pairs, in order.
    package var headers: HTTPHeaders {
        HTTPHeaders(fields.map { (name($0), value($0)) })
    }
}

/// An incremental HTTP/1.1 framer over raw bytes: it finds each head, validates it strictly
/// enough that it can go upstream unparsed again, and hands the body on in the slices it came in,
/// so that the bytes a client sent are the bytes forwarded.
///
/// Stricter than RFC 9112 where leniency is how requests are smuggled: Content-Length together
/// with Transfer-Encoding, differing lengths, a coding other than chunked last, whitespace before
/// a field's colon, obsolete line folding, bare CR or LF, and control bytes in values are refused.
package struct HTTP1Framer {
    package enum Role {
        case request
        case response
    }

    /// An interim (1xx) response's head is followed by the next head, not by an end.
    package enum Part {
        case head(HTTP1Head)
        /// Message content: forwarded and captured.
        case body(ByteBuffer)
        /// Chunked framing (a chunk's size line, the CRLF after its data): forwarded, not captured.
        case framing(ByteBuffer)
        /// The message is complete. For a chunked one, the last chunk and trailer section as
        /// sent, and the trailer fields.
        case end(ByteBuffer?, HTTPHeaders)
    }

    private enum State {
        /// Waiting for a head; the first `scanned` bytes hold no end of head.
        case head(scanned: Int)
        case body(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers(scanned: Int)
        case untilClose
        case failed
    }

    package let role: Role
    package let maxHead: Int
    private var state = State.head(scanned: 0)
    /// Responses: the request being answered was HEAD, so the response has no body (RFC 9110 §9.3.2).
    package var answeringHead = false

    package init(role: Role, maxHead: Int = 80 * 1024) {
        self.role = role
        self.maxHead = maxHead
    }

    /// The next part in `buffer`, consuming its bytes; nil when more bytes are needed.
    package mutating func next(_ buffer: inout ByteBuffer) throws(HTTP1FramingError) -> Part? {
        do {
            return try step(&buffer)
        } catch {
            state = .failed
            throw error
        }
    }

    /// The connection ended with `pending` not framed: the end of a message delimited by the
    /// close, nil when no message was under way, or `truncated`.
    package mutating func inputClosed(_ pending: ByteBuffer) throws(HTTP1FramingError) -> Part? {
        switch state {
        case .untilClose:
            state = .head(scanned: 0)
            return .end(nil, [:])
        case .failed:
            return nil
        case .head where pending.readableBytes == 0:
            return nil
        default:
            state = .failed
            throw .truncated
        }
    }

    private mutating func step(_ buffer: inout ByteBuffer) throws(HTTP1FramingError) -> Part? {
        switch state {
        case .failed:
            return nil
        case .head(let scanned):
            // Offsets already scanned count from the reader index: skipping lines starts again.
            let from = role == .request && Self.skipEmptyLines(&buffer) ? 0 : scanned
            guard let length = try headLength(buffer, from: from) else { return nil }
            let bytes = buffer.readSlice(length: length)!
            var head = try HTTP1Syntax.parseHead(bytes, role: role)
            if role == .response {
                head.framing = Self.responseFraming(head, answeringHead: answeringHead)
            }
            switch head.framing {
            case .none where role == .response && (100..<200).contains(head.status):
                // An interim response: the final one follows on the same exchange.
                state = .head(scanned: 0)
            case .none: state = .body(remaining: 0)
            case .length(let count): state = .body(remaining: count)
            case .chunked: state = .chunkSize
            case .untilClose: state = .untilClose
            }
            return .head(head)
        case .body(let remaining):
            if remaining == 0 {
                state = .head(scanned: 0)
                return .end(nil, [:])
            }
            guard buffer.readableBytes > 0 else { return nil }
            let count = min(remaining, buffer.readableBytes)
            state = .body(remaining: remaining - count)
            return .body(buffer.readSlice(length: count)!)
        case .untilClose:
            guard buffer.readableBytes > 0 else { return nil }
            return .body(buffer.readSlice(length: buffer.readableBytes)!)
        case .chunkSize:
            guard let line = try Self.line(in: buffer, limit: 4096, what: "chunk size line") else { return nil }
            let size = try HTTP1Syntax.chunkSize(buffer, lineLength: line)
            if size == 0 {
                state = .trailers(scanned: line + 2)
                return try step(&buffer)
            }
            state = .chunkData(remaining: size)
            return .framing(buffer.readSlice(length: line + 2)!)
        case .chunkData(let remaining):
            guard buffer.readableBytes > 0 else { return nil }
            let count = min(remaining, buffer.readableBytes)
            state = count == remaining ? .chunkDataEnd : .chunkData(remaining: remaining - count)
            return .body(buffer.readSlice(length: count)!)
        case .chunkDataEnd:
            guard buffer.readableBytes >= 2 else { return nil }
            guard buffer.getInteger(at: buffer.readerIndex, as: UInt16.self) == 0x0D0A else {
                throw .malformed("chunk data not followed by CRLF")
            }
            state = .chunkSize
            return .framing(buffer.readSlice(length: 2)!)
        case .trailers(let start):
            // The bytes from the last chunk's size line to the end of the trailer section stay in
            // `buffer` until all of them came; `start` is where the trailer section begins.
            let section = buffer.getSlice(at: buffer.readerIndex + start, length: buffer.readableBytes - start)!
            if section.readableBytes >= 2 && section.getInteger(at: section.readerIndex, as: UInt16.self) == 0x0D0A {
                state = .head(scanned: 0)
                return .end(buffer.readSlice(length: start + 2)!, [:])
            }
            let found: Int?
            do {
                found = try headLength(section, from: 0)
            } catch {
                throw .malformed("trailer section too long")
            }
            guard let length = found else { return nil }
            let trailers = try HTTP1Syntax.parseTrailers(section.getSlice(at: section.readerIndex, length: length)!)
            state = .head(scanned: 0)
            return .end(buffer.readSlice(length: start + length)!, trailers)
        }
    }

    /// The length of the head at the start of `buffer` (through its empty line), or nil when it
    /// has not all come yet.
    private mutating func headLength(_ buffer: ByteBuffer, from scanned: Int) throws(HTTP1FramingError) -> Int? {
        // Every LF is looked at once: it must end a CRLF (a bare LF is refused at once, rather than
        // waiting for a CRLF CRLF that an LF-only client never sends), and may end the head.
        let found: Int? = try buffer.withUnsafeReadableBytes { raw throws(HTTP1FramingError) -> Int? in
            guard let base = raw.baseAddress else { return nil }
            var index = scanned
            while index < raw.count, let hit = memchr(base + index, 0x0A, raw.count - index) {
                let lf = base.distance(to: UnsafeRawPointer(hit))
                guard lf > 0 && raw[lf - 1] == 0x0D else { throw .malformed("bare LF: lines must end with CRLF") }
                if lf >= 3 && raw[lf - 2] == 0x0A && raw[lf - 3] == 0x0D { return lf + 1 }
                index = lf + 1
            }
            return nil
        }
        if let found {
            guard found <= maxHead else { throw .headTooLarge }
            return found
        }
        guard buffer.readableBytes <= maxHead else { throw .headTooLarge }
        if case .head = state { state = .head(scanned: buffer.readableBytes) }
        return nil
    }

    /// The length of the line at the start of `buffer`, without its CRLF; nil when incomplete.
    private static func line(in buffer: ByteBuffer, limit: Int, what: String) throws(HTTP1FramingError) -> Int? {
        let found: Int? = try buffer.withUnsafeReadableBytes { raw throws(HTTP1FramingError) -> Int? in
            guard let base = raw.baseAddress else { return nil }
            guard let hit = memchr(base, 0x0A, min(raw.count, limit + 2)) else { return nil }
            let lf = base.distance(to: UnsafeRawPointer(hit))
            guard lf > 0 && raw[lf - 1] == 0x0D else { throw .malformed("bare LF: lines must end with CRLF") }
            return lf - 1
        }
        if let found { return found }
        guard buffer.readableBytes <= limit + 2 else { throw .malformed("\(what) too long") }
        return nil
    }

    /// Skips the empty lines a client may send before a request (RFC 9112 §2.2); whether it did.
    private static func skipEmptyLines(_ buffer: inout ByteBuffer) -> Bool {
        var skipped = false
        while buffer.readableBytes >= 2, buffer.getInteger(at: buffer.readerIndex, as: UInt16.self) == 0x0D0A {
            buffer.moveReaderIndex(forwardBy: 2)
            skipped = true
        }
        return skipped
    }

    private static func responseFraming(_ head: HTTP1Head, answeringHead: Bool) -> HTTP1BodyFraming {
        if answeringHead || (100..<200).contains(head.status) || head.status == 204 || head.status == 304 {
            return .none
        }
        return head.framing
    }
}

/// The grammar of RFC 9112 heads, on bytes.
enum HTTP1Syntax {
    static func lower(_ byte: UInt8) -> UInt8 {
        byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte
    }

    /// tchar (RFC 9110 §5.6.2).
    @inline(__always)
    static func isToken(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
            UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
            UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default: return false
        }
    }

    /// A field value's bytes: HTAB, SP, VCHAR, obs-text.
    static func isValueByte(_ byte: UInt8) -> Bool {
        byte == 0x09 || (byte >= 0x20 && byte != 0x7F)
    }

    static func parseHead(_ bytes: ByteBuffer, role: HTTP1Framer.Role) throws(HTTP1FramingError) -> HTTP1Head {
        // Everything is read into locals of the closure: state captured from outside it would be
        // checked for exclusive access on every write (a fifth of this function's time).
        let result: Result<HTTP1Head, HTTP1FramingError> = bytes.withUnsafeReadableBytes { raw in
            var head = HTTP1Head(bytes: bytes)
            var fields: [HTTP1Head.Field] = []
            fields.reserveCapacity(16)
            var lengths: [Int] = []
            var codings: [Range<Int>] = []
            var sawTransferEncoding = false
            // The head ends with CRLF CRLF: every line ends with CRLF, the last one is empty.
            guard let base = raw.baseAddress else { return .failure(.malformed("empty head")) }
            func lineEnd(_ from: Int) -> Int? {
                guard from < raw.count, let hit = memchr(base + from, 0x0D, raw.count - from) else { return nil }
                let index = base.distance(to: UnsafeRawPointer(hit))
                return index + 1 < raw.count && raw[index + 1] == 0x0A ? index : nil
            }
            guard let firstEnd = lineEnd(0) else { return .failure(.malformed("bare CR in the start line")) }
            if let why = startLine(raw, 0..<firstEnd, role: role, into: &head) { return .failure(.malformed(why)) }
            var lineStart = firstEnd + 2
            while true {
                guard let end = lineEnd(lineStart) else { return .failure(.malformed("bare CR in a field line")) }
                if end == lineStart { break }
                if raw[lineStart] == 0x20 || raw[lineStart] == 0x09 {
                    return .failure(.malformed("obsolete line folding"))
                }
                var colon = lineStart
                while colon < end && isToken(raw[colon]) { colon += 1 }
                guard colon < end, colon > lineStart, raw[colon] == 0x3A else {
                    return .failure(.malformed("invalid field name"))
                }
                var valueStart = colon + 1
                while valueStart < end && (raw[valueStart] == 0x20 || raw[valueStart] == 0x09) { valueStart += 1 }
                var valueEnd = end
                while valueEnd > valueStart && (raw[valueEnd - 1] == 0x20 || raw[valueEnd - 1] == 0x09) {
                    valueEnd -= 1
                }
                var index = valueStart
                while index < valueEnd {
                    guard isValueByte(raw[index]) else {
                        return .failure(.malformed("control character in a field value"))
                    }
                    index += 1
                }
                let name = lineStart..<colon
                let value = valueStart..<valueEnd
                fields.append(HTTP1Head.Field(name: name, value: value))
                // Only the few fields framing needs are looked at, by length first.
                switch colon - lineStart {
                case 6 where equalsIgnoringCase(raw, name, "expect"):
                    if equalsIgnoringCase(raw, value, "100-continue") { head.expectsContinue = true }
                case 10 where equalsIgnoringCase(raw, name, "connection"):
                    for token in tokens(raw, value) {
                        if equalsIgnoringCase(raw, token, "close") {
                            head.connectionClose = true
                        } else if equalsIgnoringCase(raw, token, "keep-alive") {
                            head.connectionKeepAlive = true
                        } else {
                            head.connectionOptions.append(token)
                        }
                    }
                case 14 where equalsIgnoringCase(raw, name, "content-length"):
                    guard let length = decimal(raw, value) else {
                        return .failure(.malformed("invalid Content-Length"))
                    }
                    lengths.append(length)
                case 17 where equalsIgnoringCase(raw, name, "transfer-encoding"):
                    sawTransferEncoding = true
                    codings.append(contentsOf: tokens(raw, value))
                default:
                    break
                }
                lineStart = end + 2
            }
            head.fields = fields
            if sawTransferEncoding {
                guard lengths.isEmpty else { return .failure(.malformed("both Content-Length and Transfer-Encoding")) }
                let chunkedLast = codings.last.map { equalsIgnoringCase(raw, $0, "chunked") } ?? false
                let chunkedEarlier = codings.dropLast().contains { equalsIgnoringCase(raw, $0, "chunked") }
                if chunkedLast && !chunkedEarlier {
                    head.framing = .chunked
                } else if role == .request {
                    return .failure(.malformed("a request's last transfer coding must be chunked, once"))
                } else {
                    head.framing = .untilClose
                }
            } else if let first = lengths.first {
                guard lengths.allSatisfy({ $0 == first }) else {
                    return .failure(.malformed("differing Content-Length values"))
                }
                head.framing = first == 0 ? .none : .length(first)
            } else {
                head.framing = role == .request ? .none : .untilClose
            }
            return .success(head)
        }
        return try result.get()
    }

    /// Reads the start line into `head`; returns why it is malformed, or nil.
    private static func startLine(
        _ raw: UnsafeRawBufferPointer, _ line: Range<Int>, role: HTTP1Framer.Role, into head: inout HTTP1Head
    ) -> String? {
        func version(_ range: Range<Int>) -> HTTPVersion? {
            guard range.count == 8, equalsIgnoringCase(raw, range.lowerBound..<range.lowerBound + 7, "http/1."),
                raw[range.lowerBound] == 0x48
            else { return nil }
            switch raw[range.lowerBound + 7] {
            case 0x30: return .http1_0
            case 0x31: return .http1_1
            default: return nil
            }
        }
        switch role {
        case .request:
            // method SP request-target SP HTTP-version
            var index = line.lowerBound
            while index < line.upperBound && isToken(raw[index]) { index += 1 }
            guard index > line.lowerBound, index < line.upperBound, raw[index] == 0x20 else {
                return "invalid request line"
            }
            let methodEnd = index
            index += 1
            let targetStart = index
            while index < line.upperBound && raw[index] > 0x20 && raw[index] != 0x7F { index += 1 }
            guard index > targetStart, index < line.upperBound, raw[index] == 0x20 else {
                return "invalid request target"
            }
            guard let parsed = version(index + 1..<line.upperBound) else { return "unsupported HTTP version" }
            head.version = parsed
            head.method = string(raw, line.lowerBound..<methodEnd)
            head.target = string(raw, targetStart..<index)
        case .response:
            // HTTP-version SP 3DIGIT SP [ reason-phrase ]
            guard line.count >= 12, let parsed = version(line.lowerBound..<line.lowerBound + 8),
                raw[line.lowerBound + 8] == 0x20
            else { return "invalid status line" }
            var status = 0
            for index in line.lowerBound + 9..<line.lowerBound + 12 {
                guard raw[index] >= 0x30 && raw[index] <= 0x39 else { return "invalid status code" }
                status = status * 10 + Int(raw[index] - 0x30)
            }
            if line.count > 12 {
                guard raw[line.lowerBound + 12] == 0x20 else { return "invalid status line" }
                for index in line.lowerBound + 13..<line.upperBound where !isValueByte(raw[index]) {
                    return "control character in the reason phrase"
                }
            }
            guard status >= 100 else { return "invalid status code" }
            head.version = parsed
            head.status = status
        }
        return nil
    }

    static func parseTrailers(_ bytes: ByteBuffer) throws(HTTP1FramingError) -> HTTPHeaders {
        // A trailer section has the grammar of a head's field lines: parse it behind a dummy start line.
        var withStart = ByteBuffer(string: "HTTP/1.1 200 \r\n")
        var copy = bytes
        withStart.writeBuffer(&copy)
        let head = try parseHead(withStart, role: .response)
        return head.headers
    }

    /// A chunk size line's size: hex digits, then optional chunk extensions (RFC 9112 §7.1.1).
    static func chunkSize(_ buffer: ByteBuffer, lineLength: Int) throws(HTTP1FramingError) -> Int {
        let size: Int? = buffer.withUnsafeReadableBytes { raw in
            var size = 0
            var index = 0
            while index < lineLength {
                let byte = raw[index]
                let digit: Int
                switch byte {
                case 0x30...0x39: digit = Int(byte - 0x30)
                case 0x41...0x46: digit = Int(byte - 0x41 + 10)
                case 0x61...0x66: digit = Int(byte - 0x61 + 10)
                default: digit = -1
                }
                if digit < 0 { break }
                // 15 hex digits stay far below Int.max.
                guard index < 15 else { return nil }
                size = size * 16 + digit
                index += 1
            }
            guard index > 0 else { return nil }
            var rest = index
            while rest < lineLength && (raw[rest] == 0x20 || raw[rest] == 0x09) { rest += 1 }
            if rest < lineLength {
                guard raw[rest] == 0x3B else { return nil }
                for at in rest..<lineLength where !isValueByte(raw[at]) { return nil }
            }
            return size
        }
        guard let size else { throw .malformed("invalid chunk size line") }
        return size
    }

    static func string(_ raw: UnsafeRawBufferPointer, _ range: Range<Int>) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: raw[range]), as: UTF8.self)
    }

    /// The comma-separated elements of a list value, trimmed, empty ones left out.
    static func tokens(_ raw: UnsafeRawBufferPointer, _ range: Range<Int>) -> [Range<Int>] {
        var result: [Range<Int>] = []
        var start = range.lowerBound
        while start <= range.upperBound {
            var end = start
            while end < range.upperBound && raw[end] != 0x2C { end += 1 }
            var low = start
            var high = end
            while low < high && (raw[low] == 0x20 || raw[low] == 0x09) { low += 1 }
            while high > low && (raw[high - 1] == 0x20 || raw[high - 1] == 0x09) { high -= 1 }
            if low < high { result.append(low..<high) }
            start = end + 1
        }
        return result
    }

    static func equalsIgnoringCase(_ raw: UnsafeRawBufferPointer, _ range: Range<Int>, _ lowercased: StaticString)
        -> Bool
    {
        guard range.count == lowercased.utf8CodeUnitCount else { return false }
        let expected = lowercased.utf8Start
        var offset = 0
        while offset < range.count {
            if lower(raw[range.lowerBound + offset]) != expected[offset] { return false }
            offset += 1
        }
        return true
    }

    /// A Content-Length value: digits only, no sign, no list.
    static func decimal(_ raw: UnsafeRawBufferPointer, _ range: Range<Int>) -> Int? {
        guard !range.isEmpty, range.count <= 18 else { return nil }
        var value = 0
        for index in range {
            guard raw[index] >= 0x30 && raw[index] <= 0x39 else { return nil }
            value = value * 10 + Int(raw[index] - 0x30)
        }
        return value
    }
}

// MARK: Heads rewritten for the next hop

extension HTTP1Head {
    /// Whether `field` belongs to this connection only (RFC 9110 §7.6.1): a hop-by-hop name, or
    /// one the Connection header lists.
    package func isHopByHop(_ field: Field) -> Bool {
        if HopByHop.isHopByHop(count: field.name.count, { self.field(field, is: $0) }) { return true }
        guard !connectionOptions.isEmpty else { return false }
        return bytes.withUnsafeReadableBytes { raw in
            connectionOptions.contains { option in
                option.count == field.name.count
                    && zip(raw[option], raw[field.name]).allSatisfy { HTTP1Syntax.lower($0) == HTTP1Syntax.lower($1) }
            }
        }
    }

    /// This head with a new start line and `adding` first, without the fields `dropping` names:
    /// the kept field lines are copied as they came.
    package func rewritten(startLine: String, adding: [(String, String)] = [], dropping: (Field) -> Bool)
        -> ByteBuffer
    {
        var out = ByteBuffer()
        out.reserveCapacity(bytes.readableBytes + 64)
        out.writeString(startLine)
        out.writeStaticString("\r\n")
        for (name, value) in adding {
            out.writeString(name)
            out.writeStaticString(": ")
            out.writeString(value)
            out.writeStaticString("\r\n")
        }
        let kept = fields.filter { !dropping($0) }
        bytes.withUnsafeReadableBytes { raw in
            for field in kept {
                // name ":" SP value CRLF, normalised to one space whatever the sender put there.
                out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[field.name]))
                out.writeStaticString(": ")
                out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[field.value]))
                out.writeStaticString("\r\n")
            }
        }
        out.writeStaticString("\r\n")
        return out
    }

    /// The status line's reason phrase, as sent.
    package var reason: String {
        let end = fields.first.map { $0.name.lowerBound - 2 } ?? bytes.readableBytes - 4
        return end > 13 ? string(13..<end) : ""
    }
}
