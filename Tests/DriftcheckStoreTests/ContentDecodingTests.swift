import DriftcheckCore
import DriftcheckTestSupport
import Foundation
import Testing

@testable import DriftcheckStore

/// Compresses with the gzip command: an independent encoder.
func gzip(_ data: Data) throws -> Data {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    let input = directory.file("in")
    try data.write(to: URL(fileURLWithPath: input))
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/gzip")
    process.arguments = ["-c", input]
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return output
}

/// Compresses with Python's brotli module (PyPI `brotli`, Google's encoder): independent of our decoder.
func brotli(_ data: Data, quality: Int = 5) throws -> Data {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [
        "python3", "-c",
        "import brotli, sys; sys.stdout.buffer.write(brotli.compress(sys.stdin.buffer.read(), quality=\(quality)))",
    ]
    let input = Pipe()
    let output = Pipe()
    process.standardInput = input
    process.standardOutput = output
    try process.run()
    // Written from another thread: a large input would fill the pipe while we wait to read.
    let writer = Thread {
        input.fileHandleForWriting.write(data)
        try? input.fileHandleForWriting.close()
    }
    writer.start()
    let compressed = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { throw CocoaError(.fileReadUnknown) }
    return compressed
}

/// An independent encoder for each encoding the writer decodes.
func encode(_ data: Data, as encoding: String) throws -> Data {
    encoding == "br" ? try brotli(data, quality: 1) : try gzip(data)
}

@Suite struct ContentDecodingTests {
    @Test(arguments: ["gzip", "br"]) func decodesSoRedactionSeesInside(encoding: String) throws {
        let json = Data(#"{"user":"ann","password":"zipped-secret-123456","items":[1,2]}"#.utf8)
        let exchange = Exchange(
            service: "s", request: RecordedRequest(method: "GET", host: "h", port: 80, path: "/"),
            result: .response(
                RecordedResponse(
                    status: 200,
                    headers: HeaderFields([("Content-Type", "application/json"), ("Content-Encoding", encoding)]),
                    body: CapturedBody(bytes: try encode(json, as: encoding)))),
            startedAt: Date(), duration: 0)
        let stored = ExchangeSanitizer(redaction: RedactionPolicy()).sanitize(exchange)
        let body = String(decoding: stored.response!.body.bytes, as: UTF8.self)
        #expect(normalizedMarkers(body) == #"{"user":"ann","password":"<redacted:string>","items":[1,2]}"#)
        #expect(stored.response?.headers["content-encoding"] == nil)
        #expect(stored.response?.headers["x-driftcheck-decoded"] == encoding)
    }

    @Test(arguments: ["gzip", "br"]) func refusesADecompressionBomb(encoding: String) throws {
        let bomb = try encode(Data(count: 64 << 20), as: encoding)
        #expect(bomb.count < 1 << 20)
        let direct =
            encoding == "br"
            ? ContentDecoding.unbrotli(bomb, limit: 16 << 20) : ContentDecoding.inflate(bomb, limit: 16 << 20)
        #expect(direct == .tooLarge)
        let (headers, body) = ContentDecoding.decode(
            HeaderFields([("Content-Encoding", encoding)]), CapturedBody(bytes: bomb), limit: 16 << 20)
        #expect(body.bytes.isEmpty)
        #expect(headers["x-driftcheck-decoded"]?.contains("refused") == true)
    }

    @Test(arguments: ["gzip", "br"]) func aTruncatedStreamDecodesToAPrefixStillMarkedTruncated(encoding: String)
        throws
    {
        let text = Data((0..<20_000).map { "line \($0)\n" }.joined().utf8)
        let compressed = try encode(text, as: encoding)
        let cut = CapturedBody(bytes: compressed.prefix(compressed.count / 2), size: compressed.count)
        let (_, body) = ContentDecoding.decode(HeaderFields([("Content-Encoding", encoding)]), cut, limit: 16 << 20)
        #expect(body.isTruncated)
        #expect(text.starts(with: body.bytes))
        #expect(body.bytes.count > 1000)
    }

    @Test(arguments: ["gzip", "br"]) func garbageIsRefusedNotStored(encoding: String) {
        let (headers, body) = ContentDecoding.decode(
            HeaderFields([("Content-Encoding", encoding)]), CapturedBody(bytes: Data("not compressed at all".utf8)),
            limit: 1 << 20)
        #expect(body.bytes.isEmpty)
        #expect(headers["x-driftcheck-decoded"]?.contains("not valid") == true)
    }
}

@Suite struct GRPCDecompressionTests {
    /// gzip'd messages written by Python's zlib, an independent encoder.
    static func gzip(_ text: String) throws -> Data {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("out.gz")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", "-c", "import gzip,sys; open(sys.argv[1],'wb').write(gzip.compress(sys.argv[2].encode()))", path,
            text,
        ]
        try process.run()
        process.waitUntilExit()
        return try Data(contentsOf: URL(fileURLWithPath: path))
    }

    static func frame(_ bytes: Data, compressed: Bool) -> Data {
        Data([compressed ? 1 : 0]) + withUnsafeBytes(of: UInt32(bytes.count).bigEndian) { Data($0) } + bytes
    }

    @Test func compressedMessagesAreDecodedOneByOne() throws {
        let plain = Data([0x0A, 0x02]) + Data("c0".utf8)
        let body =
            Self.frame(try Self.gzip("\u{0A}\u{05}SKU-1"), compressed: true) + Self.frame(plain, compressed: false)
        let response = RecordedResponse(
            status: 200, headers: HeaderFields([("content-type", "application/grpc"), ("grpc-encoding", "gzip")]),
            body: CapturedBody(bytes: body), trailers: HeaderFields([("grpc-status", "0")]))
        let decoded = GRPCDecompression.decoded(response)
        #expect(decoded.headers["grpc-encoding"] == nil)
        let messages = try #require(GRPC.messages(decoded.body.bytes))
        #expect(messages.map(\.compressed) == [false, false])
        #expect(messages.map(\.bytes) == [Data([0x0A, 0x05]) + Data("SKU-1".utf8), plain])
        // Through the sanitizer too, as the recorder stores it.
        let exchange = Exchange(
            service: "recs", request: RecordedRequest(method: "POST", host: "r", port: 80, path: "/s/M"),
            result: .response(response), startedAt: Date(), duration: 0)
        #expect(ExchangeSanitizer.decoded(exchange).response?.body.bytes == decoded.body.bytes)
        // A message that is not gzip leaves the answer as it came.
        let broken = RecordedResponse(
            status: 200, headers: response.headers,
            body: CapturedBody(bytes: Self.frame(Data("nope".utf8), compressed: true)))
        #expect(GRPCDecompression.decoded(broken) == broken)
    }
}
