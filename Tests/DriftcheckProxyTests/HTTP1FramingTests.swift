import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import DriftcheckProxy

/// What a framer made of a byte stream: enough to compare two ways of cutting the same bytes.
struct Framed: Equatable {
    /// One line per head and end; bodies joined between them.
    var events: [String] = []
    /// Every byte the parts carried, in order: must be the input, byte for byte.
    var wire: [UInt8] = []
    var content: [UInt8] = []

    static func of(
        _ text: String, role: HTTP1Framer.Role, cut: Int = .max, answeringHead: Bool = false, closed: Bool = false
    ) throws(HTTP1FramingError) -> Framed {
        var framed = Framed()
        try framed.frame(Array(text.utf8), role: role, cuts: { cut }, answeringHead: answeringHead, closed: closed)
        return framed
    }

    /// Frames `bytes` fed in pieces of the sizes `cuts` gives, adding what comes out.
    mutating func frame(
        _ bytes: [UInt8], role: HTTP1Framer.Role, cuts: () -> Int, answeringHead: Bool = false, closed: Bool = false
    ) throws(HTTP1FramingError) {
        var framer = HTTP1Framer(role: role, maxHead: 1024)
        framer.answeringHead = answeringHead
        var pending = ByteBuffer()
        var offset = 0
        repeat {
            let piece = bytes[offset..<offset + min(max(cuts(), 1), bytes.count - offset)]
            offset += piece.count
            pending.writeBytes(piece)
            while let part = try framer.next(&pending) { add(part) }
            pending.discardReadBytes()
        } while offset < bytes.count
        if closed, let part = try framer.inputClosed(pending) { add(part) }
    }

    mutating func add(_ part: HTTP1Framer.Part) {
        switch part {
        case .head(let head):
            flushContent()
            let start = head.role == .request ? "\(head.method) \(head.target)" : "\(head.status)"
            events.append("head \(start) \(head.version) \(head.framing) keepAlive=\(head.keepAlive)")
            wire += Array(buffer: head.bytes)
        case .body(let buffer):
            content += Array(buffer: buffer)
            wire += Array(buffer: buffer)
        case .framing(let buffer):
            wire += Array(buffer: buffer)
        case .end(let bytes, let trailers):
            flushContent()
            events.append("end" + trailers.map { " \($0.name)=\($0.value)" }.joined())
            if let bytes { wire += Array(buffer: bytes) }
        }
    }

    private mutating func flushContent() {
        if !content.isEmpty { events.append("body \(String(decoding: content, as: UTF8.self))") }
        content = []
    }

    func finished() -> Framed {
        var copy = self
        copy.flushContent()
        return copy
    }
}

extension HTTP1Head {
    fileprivate var role: HTTP1Framer.Role { status == 0 ? .request : .response }
}

@Suite struct HTTP1FramingTests {
    /// Frames `text` whole and cut at every size from 1 byte: the same events and the same bytes.
    func framedAtEveryCut(_ text: String, role: HTTP1Framer.Role, closed: Bool = false) throws -> Framed {
        let whole = try Framed.of(text, role: role, closed: closed).finished()
        #expect(whole.wire == Array(text.utf8), "every byte is forwarded as it came")
        for cut in 1..<text.utf8.count {
            let pieces = try Framed.of(text, role: role, cut: cut, closed: closed).finished()
            #expect(pieces.events == whole.events, "cut every \(cut) bytes")
            #expect(pieces.wire == whole.wire, "cut every \(cut) bytes")
        }
        return whole
    }

    @Test func framesPipelinedRequestsWithAndWithoutBodies() throws {
        let text =
            "GET /orders?id=1 HTTP/1.1\r\nHost: shop\r\n\r\n"
            + "POST /orders HTTP/1.1\r\nHost: shop\r\nContent-Length: 5\r\n\r\nhello"
            + "PUT /x HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"
            + "DELETE /x HTTP/1.0\r\n\r\n"
        let framed = try framedAtEveryCut(text, role: .request)
        #expect(
            framed.events == [
                "head GET /orders?id=1 HTTP/1.1 none keepAlive=true", "end",
                "head POST /orders HTTP/1.1 length(5) keepAlive=true", "body hello", "end",
                "head PUT /x HTTP/1.0 none keepAlive=true", "end",
                "head DELETE /x HTTP/1.0 none keepAlive=false", "end",
            ])
    }

    @Test func framesChunkedBodiesWithExtensionsAndTrailers() throws {
        let text =
            "POST /up HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
            + "5;name=value\r\nhello\r\nA \r\n, world!!!\r\n0\r\nX-Checksum: 42\r\nX-More: a b\r\n\r\n"
            + "GET /next HTTP/1.1\r\n\r\n"
        let framed = try framedAtEveryCut(text, role: .request)
        #expect(
            framed.events == [
                "head POST /up HTTP/1.1 chunked keepAlive=true", "body hello, world!!!", "end X-Checksum=42 X-More=a b",
                "head GET /next HTTP/1.1 none keepAlive=true", "end",
            ])
    }

    @Test func framesAChunkedBodyWithoutTrailers() throws {
        let framed = try framedAtEveryCut(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", role: .response)
        #expect(framed.events == ["head 200 HTTP/1.1 chunked keepAlive=true", "body abc", "end"])
    }

    @Test func framesResponsesByStatusLengthAndClose() throws {
        let text =
            "HTTP/1.1 100 Continue\r\n\r\n"
            + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive, X-Private\r\n\r\nok"
            + "HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n"
            + "HTTP/1.1 304 Not Modified\r\n\r\n"
            + "HTTP/1.1 200\r\nConnection: close\r\n\r\nthe rest, until the connection ends"
        let framed = try framedAtEveryCut(text, role: .response, closed: true)
        #expect(
            framed.events == [
                "head 100 HTTP/1.1 none keepAlive=true",
                "head 200 HTTP/1.1 length(2) keepAlive=true", "body ok", "end",
                "head 204 HTTP/1.1 none keepAlive=true", "end",
                "head 304 HTTP/1.1 none keepAlive=true", "end",
                "head 200 HTTP/1.1 untilClose keepAlive=false", "body the rest, until the connection ends", "end",
            ])
    }

    @Test func aResponseToHEADHasNoBodyWhateverItsLength() throws {
        let framed = try Framed.of(
            "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", role: .response, answeringHead: true
        ).finished()
        #expect(framed.events == ["head 200 HTTP/1.1 none keepAlive=true", "end"])
    }

    @Test func readsWhatRoutingNeedsFromTheHead() throws {
        var framer = HTTP1Framer(role: .request)
        var buffer = ByteBuffer(
            string:
                "\r\nPOST http://shop/x HTTP/1.1\r\nHOST:  shop \r\nExpect: 100-Continue\r\nConnection: Upgrade, CLOSE\r\nX-Empty:\r\n\r\n"
        )
        guard case .head(let head) = try framer.next(&buffer) else {
            Issue.record("no head")
            return
        }
        #expect(head.method == "POST")
        #expect(head.target == "http://shop/x")
        #expect(head.expectsContinue)
        #expect(head.connectionClose && !head.keepAlive)
        #expect(head.connectionOptions.map(head.string) == ["Upgrade"])
        #expect(
            head.headers.map { "\($0.name)=\($0.value)" } == [
                "HOST=shop", "Expect=100-Continue", "Connection=Upgrade, CLOSE", "X-Empty=",
            ])
        #expect(head.fields.contains { head.field($0, is: "host") })
        // The leading empty line a client may send before a request is not part of the head.
        #expect(head.bytes.getString(at: head.bytes.readerIndex, length: 4) == "POST")
    }

    @Test(arguments: [
        ("GARBAGE\r\n\r\n", "invalid request line"),
        ("GET /orders HTTP/9.9\r\nHost: x\r\n\r\n", "unsupported HTTP version"),
        ("GET /orders HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", "invalid field name"),
        (
            "POST /echo HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "both Content-Length and Transfer-Encoding"
        ),
        (
            "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            "both Content-Length and Transfer-Encoding"
        ),
        ("POST /echo HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", "differing Content-Length values"),
        ("POST /echo HTTP/1.1\r\nContent-Length: +5\r\n\r\n", "invalid Content-Length"),
        ("POST /echo HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n", "invalid Content-Length"),
        ("POST /echo HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", "invalid Content-Length"),
        (
            "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            "a request's last transfer coding must be chunked, once"
        ),
        (
            "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "a request's last transfer coding must be chunked, once"
        ),
        (
            "POST /echo HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n",
            "a request's last transfer coding must be chunked, once"
        ),
        ("GET /orders HTTP/1.1\r\nHost: x\r\nX-Evil: a\rb\r\n\r\n", "bare CR in a field line"),
        ("GET /orders HTTP/1.1\r\nHost: x\r\nX-Evil: a\u{0}b\r\n\r\n", "control character in a field value"),
        ("GET /orders HTTP/1.1\r\nHost: x\r\nX-Evil: a\nInjected: b\r\n\r\n", "bare LF: lines must end with CRLF"),
        // LF-only lines are refused at once, not waited on until the head limit.
        ("GET /orders HTTP/1.1\nHost: x\n\n", "bare LF: lines must end with CRLF"),
        ("\nGET /orders HTTP/1.1\r\n\r\n", "bare LF: lines must end with CRLF"),
        ("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc", "bare LF: lines must end with CRLF"),
        ("GET /orders HTTP/1.1\r\nHost: x\r\nX Evil: a\r\n\r\n", "invalid field name"),
        ("GET /orders HTTP/1.1\r\nHost : x\r\n\r\n", "invalid field name"),
        ("GET /orders HTTP/1.1\r\nX-A: a\r\n folded\r\n\r\n", "obsolete line folding"),
        ("GET  /orders HTTP/1.1\r\n\r\n", "invalid request target"),
        ("GET /orders\r\n\r\n", "invalid request target"),
        ("GET /or ders HTTP/1.1\r\n\r\n", "unsupported HTTP version"),
        ("GET /orders HTTP/1.1\n\r\n\r\n", "bare LF: lines must end with CRLF"),
        ("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nZ\r\n", "invalid chunk size line"),
        ("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\r\n", "invalid chunk size line"),
        ("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000\r\n", "invalid chunk size line"),
        ("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3 x\r\n", "invalid chunk size line"),
        ("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n", "chunk data not followed by CRLF"),
    ])
    func refusesWhatCouldBeSmuggledOrMisread(request: String, why: String) {
        #expect(throws: HTTP1FramingError.malformed(why)) { try Framed.of(request, role: .request) }
        // However the bytes are cut.
        #expect(throws: HTTP1FramingError.malformed(why)) { try Framed.of(request, role: .request, cut: 1) }
    }

    @Test(arguments: [
        ("HTTP/1.1 OK\r\n\r\n", "invalid status line"),
        ("HTTP/1.1 20x OK\r\n\r\n", "invalid status code"),
        ("HTTP/1.1 099 Low\r\n\r\n", "invalid status code"),
        ("HTTP/2.0 200 OK\r\n\r\n", "invalid status line"),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
            "both Content-Length and Transfer-Encoding"
        ),
    ])
    func refusesMalformedResponses(response: String, why: String) {
        #expect(throws: HTTP1FramingError.malformed(why)) { try Framed.of(response, role: .response) }
    }

    @Test func aResponseWhoseLastCodingIsNotChunkedRunsUntilClose() throws {
        let framed = try Framed.of(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzipped", role: .response, closed: true
        ).finished()
        #expect(framed.events == ["head 200 HTTP/1.1 untilClose keepAlive=true", "body zipped", "end"])
    }

    @Test func anOversizedHeadIsRefusedBeforeItEnds() {
        // Refused as soon as more than the limit came without an end, not when (if ever) it ends.
        let endless = "GET / HTTP/1.1\r\nX-Big: " + String(repeating: "a", count: 2000)
        #expect(throws: HTTP1FramingError.headTooLarge) { try Framed.of(endless, role: .request, cut: 100) }
        let whole = "GET / HTTP/1.1\r\nX-Big: " + String(repeating: "a", count: 1020) + "\r\n\r\n"
        #expect(throws: HTTP1FramingError.headTooLarge) { try Framed.of(whole, role: .request) }
        #expect(throws: HTTP1FramingError.malformed("trailer section too long")) {
            try Framed.of(
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: " + String(repeating: "a", count: 2000),
                role: .request, cut: 100)
        }
    }

    /// Mutated messages, framed whole and in random pieces: never a trap, the same verdict and
    /// the same parts however the bytes are cut, and every byte handed on is the input's own.
    @Test func mutatedMessagesFrameTheSameHoweverTheyAreCut() {
        var random = SplitMix(seed: 13)
        let seeds = [
            "GET /a?b=1 HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n",
            "POST /b HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.0\r\n\r\n",
            "PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n0\r\nT: 1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 204 No Content\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
            "HTTP/1.0 200 OK\r\n\r\nuntil close",
        ].map { Array($0.utf8) }
        var failures = 0
        for round in 0..<6000 {
            let bytes = random.mutated(seeds[round % seeds.count], edits: 1 + random.next(4), repeats: true)
            let role: HTTP1Framer.Role = bytes.starts(with: Array("HTTP/".utf8)) ? .response : .request
            let closed = random.next(2) == 0
            var whole = Framed()
            var pieces = Framed()
            let wholeResult = Result { () throws(HTTP1FramingError) in
                try whole.frame(bytes, role: role, cuts: { .max }, closed: closed)
            }
            let piecesResult = Result { () throws(HTTP1FramingError) in
                try pieces.frame(bytes, role: role, cuts: { 1 + random.next(9) }, closed: closed)
            }
            let text = String(decoding: bytes, as: UTF8.self).debugDescription
            // Empty lines before a request are skipped; nothing else is left out or made up.
            #expect(isSubsequence(whole.wire, of: bytes), "\(text)")
            #expect(isSubsequence(pieces.wire, of: bytes), "\(text)")
            switch (wholeResult, piecesResult) {
            case (.success, .success):
                #expect(whole.finished().events == pieces.finished().events, "\(text)")
                #expect(whole.wire == pieces.wire, "\(text)")
            case (.failure, .failure):
                failures += 1
            default:
                Issue.record("whole \(wholeResult), in pieces \(piecesResult): \(text)")
            }
        }
        // Most mutations break a message: the test is not only seeing well-formed ones.
        #expect(failures > 1000)
    }

    /// Against llhttp (NIOHTTP1's decoder), on the same mutated requests: every complete request
    /// we frame, llhttp frames the same way (method, target, body) or refuses for a reason that is
    /// not framing — an extension method it does not know, a target our routing refuses too. A
    /// request both accept but frame differently is the root of request smuggling.
    @Test func everyRequestWeFrameLlhttpFramesTheSameOrRefusesForItsMethod() throws {
        var random = SplitMix(seed: 7)
        let seeds = [
            "GET /a?b=1 HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n",
            "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nHost: y\r\n\r\n",
            "PUT /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n0\r\nT: 1\r\n\r\n",
            "POST /d HTTP/1.0\r\nContent-Length: 3\r\nX-A: b\r\n\r\nxyz",
        ].map { Array($0.utf8) }
        var (same, refusedByUs, refusedByThem) = (0, 0, 0)
        for round in 0..<4000 {
            let bytes = random.mutated(seeds[round % seeds.count], edits: 1 + random.next(3), repeats: false)
            let ours = Self.messages(framing: bytes)
            let theirs = Self.messages(decoding: bytes)
            let text = String(decoding: bytes, as: UTF8.self).debugDescription
            // Up to where either stops, both see the same requests.
            let common = min(ours.messages.count, theirs.messages.count)
            #expect(Array(ours.messages.prefix(common)) == Array(theirs.messages.prefix(common)), "\(text)")
            if ours.messages.count > theirs.messages.count {
                // llhttp refused a request we framed whole: only for what is not framing.
                let refused = ours.messages[theirs.messages.count]
                let method = String(refused.split(separator: " ")[0])
                let target = refused.split(separator: " ", maxSplits: 2).dropFirst().first ?? ""
                let extensionMethod = HTTPMethod(rawValue: method) == .RAW(value: method)
                let unroutable = !(target.hasPrefix("/") || target.hasPrefix("http"))
                #expect(theirs.failed && (extensionMethod || unroutable), "we frame what llhttp refuses: \(text)")
                refusedByThem += 1
            } else if ours.failed {
                refusedByUs += 1
            } else {
                same += 1
            }
        }
        // Enough of each that the comparison means something.
        #expect(same > 500 && refusedByUs > 500 && refusedByThem > 0, "\(same), \(refusedByUs), \(refusedByThem)")
    }

    /// The complete requests in `bytes` as "METHOD target body", by our framer, and whether it
    /// refused what followed them.
    static func messages(framing bytes: [UInt8]) -> (messages: [String], failed: Bool) {
        var framer = HTTP1Framer(role: .request)
        var buffer = ByteBuffer(bytes: bytes)
        var messages: [String] = []
        var current = ""
        do {
            while let part = try framer.next(&buffer) {
                switch part {
                case .head(let head): current = "\(head.method) \(head.target) "
                case .body(let body): current += String(buffer: body)
                case .framing: break
                case .end: messages.append(current)
                }
            }
        } catch {
            return (messages, true)
        }
        return (messages, false)
    }

    /// The same, by NIOHTTP1's decoder (llhttp).
    static func messages(decoding bytes: [UInt8]) -> (messages: [String], failed: Bool) {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(HTTPRequestDecoder()))
        defer { _ = try? channel.finish() }
        // What it decoded before an error is still in the channel's inbound buffer.
        let failed = (try? channel.writeInbound(ByteBuffer(bytes: bytes))) == nil
        var messages: [String] = []
        var current = ""
        while let part = try? channel.readInbound(as: HTTPServerRequestPart.self) {
            switch part {
            case .head(let head): current = "\(head.method.rawValue) \(head.uri) "
            case .body(let body): current += String(buffer: body)
            case .end: messages.append(current)
            }
        }
        return (messages, failed)
    }

    func isSubsequence(_ part: [UInt8], of whole: [UInt8]) -> Bool {
        var rest = whole[...]
        for byte in part {
            guard let at = rest.firstIndex(of: byte) else { return false }
            rest = rest[(at + 1)...]
        }
        return true
    }

    @Test func aConnectionEndingMidMessageIsTruncated() {
        for text in [
            "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhel",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhe",
            "GET / HTTP/1.1\r\nHost",
        ] {
            #expect(throws: HTTP1FramingError.truncated, "\(text)") {
                try Framed.of(text, role: .request, closed: true)
            }
        }
    }
}

/// A small deterministic generator (SplitMix64), so a failing round can be run again.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next(_ bound: Int) -> Int {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return bound <= 0 ? 0 : Int((z ^ (z >> 31)) % UInt64(bound))
    }
}

extension SplitMix {
    /// The bytes of HTTP's syntax, and a few that must never pass.
    static let alphabet = Array("\r\n:; 0123456789aAfF,\t-".utf8) + [0, 0x7F, 0xFF]

    /// `bytes` with `edits` random insertions, deletions and replacements (and, with `repeats`,
    /// a run of its own bytes repeated).
    mutating func mutated(_ bytes: [UInt8], edits: Int, repeats: Bool) -> [UInt8] {
        var bytes = bytes
        for _ in 0..<edits {
            let at = next(bytes.count + 1)
            switch next(repeats ? 4 : 3) {
            case 0: bytes.insert(Self.alphabet[next(Self.alphabet.count)], at: at)
            case 1: if at < bytes.count { bytes.remove(at: at) }
            case 2: if at < bytes.count { bytes[at] = Self.alphabet[next(Self.alphabet.count)] }
            default: bytes.insert(contentsOf: bytes[at...].prefix(next(40)), at: at)
            }
        }
        return bytes
    }
}
