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

@Suite struct ContentDecodingTests {
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
