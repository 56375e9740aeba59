import DriftcheckCore
import DriftcheckMocks
import DriftcheckProcess
import DriftcheckReplay
import DriftcheckTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Replay sends exactly the recorded request: an echo server that returns the bytes it received
/// shows everything the mock sees.
@Suite(.serialized) struct ReplayFidelityTests {
    struct Echoed {
        var requestLine: String
        var headers: [(String, String)]
        var body: Data
    }

    static func echo(_ response: RecordedResponse) throws -> Echoed {
        let document = try JSONValue.parse(response.body.bytes)
        guard case .string(let head)? = document["head"], case .string(let body)? = document["body"] else {
            throw EchoError()
        }
        var lines = head.components(separatedBy: "\r\n").filter { !$0.isEmpty }
        let requestLine = lines.removeFirst()
        let headers = lines.map { line -> (String, String) in
            let colon = line.firstIndex(of: ":")!
            return (
                String(line[..<colon]), String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
            )
        }
        return Echoed(requestLine: requestLine, headers: headers, body: Data(base64Encoded: body) ?? Data())
    }

    struct EchoError: Error {}

    @Test func theMockReceivesExactlyTheRecordedRequest() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let port = try freeLoopbackPort()
        let server = try ChildProcess.spawn(
            ["python3", Fixtures.path("echo/raw_echo.py"), String(port)],
            environment: ProcessInfo.processInfo.environment, outputPath: directory.file("echo.log"))
        defer { server.signalGroup(SIGKILL) }
        let client = CurlClient(service: "echo", baseURL: "http://127.0.0.1:\(port)", timeout: 30)
        #expect(
            await eventually(timeout: 30) {
                (try? client.send(RecordedRequest(method: "GET", host: "", port: 0, path: "/ready")))?.status == 200
            })
        var binary = Data((0..<4096).map { UInt8($0 % 256) })
        binary.append(contentsOf: [0, 0, 13, 10])
        let large = Data((0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        let json = Data(#"{"sku":"A-1","qty":2,"note":"ünïcödé"}"#.utf8)
        let form = Data("user=ann&remember=on&next=%2Fhome".utf8)
        let requests: [RecordedRequest] = [
            RecordedRequest(
                method: "GET", host: "orders", port: 80, path: "/orders/7.json",
                query: "b=2&a=1&x=%20y&flag",
                headers: HeaderFields([("X-Trace-Id", "abc"), ("accept-language", "en"), ("User-Agent", "svc/1.0")])),
            RecordedRequest(
                method: "POST", host: "orders", port: 80, path: "/orders",
                headers: HeaderFields([
                    ("Content-Type", "application/json"), ("Accept", "application/json"),
                    ("Content-Length", String(json.count)),
                ]), body: CapturedBody(bytes: json)),
            RecordedRequest(
                method: "POST", host: "orders", port: 80, path: "/login",
                headers: HeaderFields([("Content-Type", "application/x-www-form-urlencoded")]),
                body: CapturedBody(bytes: form)),
            RecordedRequest(
                method: "PUT", host: "orders", port: 80, path: "/blobs/9",
                headers: HeaderFields([("Content-Type", "application/octet-stream"), ("X-Checksum", "1")]),
                body: CapturedBody(bytes: binary)),
            RecordedRequest(
                method: "POST", host: "orders", port: 80, path: "/uploads",
                headers: HeaderFields([("Content-Type", "application/octet-stream")]), body: CapturedBody(bytes: large)),
            RecordedRequest(
                method: "POST", host: "orders", port: 80, path: "/ping",
                headers: HeaderFields([("Content-Length", "0")])),
            RecordedRequest(method: "DELETE", host: "orders", port: 80, path: "/orders/7"),
            RecordedRequest(
                method: "PATCH", host: "orders", port: 80, path: "/orders/7", body: CapturedBody(bytes: json)),
        ]
        for request in requests {
            let label = "\(request.method) \(request.target)"
            let echoed = try Self.echo(try client.send(request))
            #expect(echoed.requestLine == "\(request.method) \(request.target) HTTP/1.1", "\(label)")
            #expect(echoed.body == request.body.bytes, "\(label): body")
            let sent = echoed.headers.filter { !["host", "content-length"].contains($0.0.lowercased()) }
            let recorded = request.headers.fields.filter { !["host", "content-length"].contains($0.name.lowercased()) }
            // Same names in the same order and case, same values, nothing added.
            #expect(sent.map(\.0) == recorded.map(\.name), "\(label): header names")
            #expect(sent.map(\.1) == recorded.map(\.value), "\(label): header values")
            // Host is the one deliberate rewrite: it names the mock.
            #expect(echoed.headers.filter { $0.0.lowercased() == "host" }.map(\.1) == ["127.0.0.1:\(port)"])
            let lengths = echoed.headers.filter { $0.0.lowercased() == "content-length" }.map(\.1)
            let expectsLength = !request.body.bytes.isEmpty || request.headers["content-length"] != nil
            #expect(lengths == (expectsLength ? [String(request.body.bytes.count)] : []), "\(label): Content-Length")
        }
    }
}
