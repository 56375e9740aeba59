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

@Suite struct ContentDecodingTests {
    @Test func decodesBrotliSoRedactionSeesInside() throws {
        let json = Data(#"{"user":"ann","password":"br-secret-123456","items":[1,2]}"#.utf8)
        let exchange = Exchange(
            service: "s", request: RecordedRequest(method: "GET", host: "h", port: 80, path: "/"),
            result: .response(
                RecordedResponse(
                    status: 200,
                    headers: HeaderFields([("Content-Type", "application/json"), ("Content-Encoding", "br")]),
                    body: CapturedBody(bytes: try brotli(json)))),
            startedAt: Date(), duration: 0)
        let stored = RedactionPolicy().redact(StoreWriter.decoded(exchange))
        let body = String(decoding: stored.response!.body.bytes, as: UTF8.self)
        #expect(body == #"{"user":"ann","password":"<redacted:string>","items":[1,2]}"#)
        #expect(stored.response?.headers["content-encoding"] == nil)
        #expect(stored.response?.headers["x-driftcheck-decoded"] == "br")
    }

    @Test func refusesABrotliBombAndGarbageAndKeepsATruncatedPrefix() throws {
        let bomb = try brotli(Data(count: 64 << 20), quality: 1)
        #expect(bomb.count < 1 << 20)
        #expect(ContentDecoding.unbrotli(bomb, limit: 16 << 20) == .tooLarge)
        let (headers, body) = ContentDecoding.decode(
            HeaderFields([("Content-Encoding", "br")]), CapturedBody(bytes: bomb), limit: 16 << 20)
        #expect(body.bytes.isEmpty)
        #expect(headers["x-driftcheck-decoded"]?.contains("refused") == true)

        #expect(ContentDecoding.unbrotli(Data("not brotli at all, not at all".utf8), limit: 1 << 20) == .invalid)

        let text = Data((0..<20_000).map { "line \($0)\n" }.joined().utf8)
        let compressed = try brotli(text)
        let cut = CapturedBody(bytes: compressed.prefix(compressed.count / 2), size: compressed.count)
        let (_, prefix) = ContentDecoding.decode(HeaderFields([("Content-Encoding", "br")]), cut, limit: 16 << 20)
        #expect(prefix.isTruncated)
        #expect(text.starts(with: prefix.bytes))
        #expect(prefix.bytes.count > 1000)
    }

    @Test func decodesGzipSoRedactionSeesInside() throws {
        let json = Data(#"{"user":"ann","password":"gz-secret-123456","items":[1,2]}"#.utf8)
        let compressed = try gzip(json)
        let exchange = Exchange(
            service: "s", request: RecordedRequest(method: "GET", host: "h", port: 80, path: "/"),
            result: .response(
                RecordedResponse(
                    status: 200,
                    headers: HeaderFields([("Content-Type", "application/json"), ("Content-Encoding", "gzip")]),
                    body: CapturedBody(bytes: compressed))),
            startedAt: Date(), duration: 0)
        let stored = RedactionPolicy().redact(StoreWriter.decoded(exchange))
        let body = String(decoding: stored.response!.body.bytes, as: UTF8.self)
        #expect(body == #"{"user":"ann","password":"<redacted:string>","items":[1,2]}"#)
        #expect(stored.response?.headers["content-encoding"] == nil)
        #expect(stored.response?.headers["x-driftcheck-decoded"] == "gzip")
    }

    @Test func refusesADecompressionBomb() throws {
        let bomb = try gzip(Data(count: 64 << 20))
        #expect(bomb.count < 1 << 20)
        #expect(ContentDecoding.inflate(bomb, limit: 16 << 20) == .tooLarge)
        let (headers, body) = ContentDecoding.decode(
            HeaderFields([("Content-Encoding", "gzip")]), CapturedBody(bytes: bomb), limit: 16 << 20)
        #expect(body.bytes.isEmpty)
        #expect(headers["x-driftcheck-decoded"]?.contains("refused") == true)
    }

    @Test func aTruncatedStreamDecodesToAPrefixStillMarkedTruncated() throws {
        let text = Data((0..<20_000).map { "line \($0)\n" }.joined().utf8)
        let compressed = try gzip(text)
        let cut = CapturedBody(bytes: compressed.prefix(compressed.count / 2), size: compressed.count)
        let (_, body) = ContentDecoding.decode(HeaderFields([("Content-Encoding", "gzip")]), cut, limit: 16 << 20)
        #expect(body.isTruncated)
        #expect(text.starts(with: body.bytes))
        #expect(body.bytes.count > 1000)
    }

    @Test func garbageIsRefusedNotStored() {
        let (headers, body) = ContentDecoding.decode(
            HeaderFields([("Content-Encoding", "gzip")]), CapturedBody(bytes: Data("not gzip at all".utf8)),
            limit: 1 << 20)
        #expect(body.bytes.isEmpty)
        #expect(headers["x-driftcheck-decoded"]?.contains("not valid") == true)
    }
}
