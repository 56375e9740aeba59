import DriftcheckCore
import DriftcheckDemo
import DriftcheckProcess
import Foundation
import NIOCore
import NIOPosix

#if canImport(Glibc)
    import Glibc
#endif

/// A directory under the system temp dir, removed by `remove()`.
public struct TemporaryDirectory: Sendable {
    public let path: String

    public init() throws {
        path = NSTemporaryDirectory() + "driftcheck-test-\(UUID().uuidString.prefix(12))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    public func file(_ name: String) -> String { "\(path)/\(name)" }

    public func write(_ name: String, _ text: String) throws -> String {
        let target = file(name)
        try text.write(toFile: target, atomically: true, encoding: .utf8)
        return target
    }

    public func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// Event loops shared by the tests' clients and upstreams.
public let testGroup: EventLoopGroup = MultiThreadedEventLoopGroup.singleton

/// A real upstream for the tests, with routes for the behaviours a recorder must survive:
/// `/echo` answers with what it received, `/count` with the body's size, `/bytes/N` streams N bytes, `/slow/MS` answers after MS ms, `/stall` never answers,
/// `/close` hangs up, `/truncated` breaks off a chunked body, `/status/N` answers N.
public enum TestUpstream {
    public static func start(host: String = "127.0.0.1") async throws -> LoopbackHTTPServer {
        try await LoopbackHTTPServer.start(group: testGroup, host: host, route: route)
    }

    public static func route(_ request: ServerRequest) -> ServerResponse {
        let parts = request.path.split(separator: "/").map(String.init)
        switch parts.first {
        case "echo":
            let headers = request.headers.map { "[\(quote($0.0)),\(quote($0.1))]" }.joined(separator: ",")
            let body = String(decoding: request.body, as: UTF8.self)
            return .json(
                "{\"method\":\(quote(request.method)),\"uri\":\(quote(request.uri)),\"headers\":[\(headers)],\"body\":\(quote(body)),\"bodySize\":\(request.bodySize)}",
                headers: [("Set-Cookie", "session=upstream-session-secret; Path=/; HttpOnly")])
        case "count":
            return .json("{\"bodySize\":\(request.bodySize)}")
        case "bytes":
            return ServerResponse(
                headers: [("Content-Type", "application/octet-stream")],
                body: .generated(count: Int(parts.last ?? "0") ?? 0))
        case "slow":
            return ServerResponse(
                headers: [("Content-Type", "application/json")], body: .bytes(Data("{\"slow\":true}".utf8)),
                delay: .milliseconds(Int64(parts.last ?? "500") ?? 500))
        case "stall": return ServerResponse(body: .stall)
        case "close": return ServerResponse(body: .close)
        case "truncated":
            return ServerResponse(headers: [("Content-Type", "text/plain")], body: .truncated(count: 1000))
        case "status":
            return .json("{\"status\":\(parts.last ?? "200")}", status: Int(parts.last ?? "200") ?? 200)
        default:
            return DemoService.route(request)
        }
    }

    static func quote(_ text: String) -> String {
        JSONValue.string(text).serialized()
    }
}

/// Locates and runs the built `driftcheck` binary (tests that need a real process: signals, exit codes).
public enum DriftcheckBinary {
    /// `DRIFTCHECK_BIN`, else the debug build next to this package.
    public static var path: String {
        if let explicit = ProcessInfo.processInfo.environment["DRIFTCHECK_BIN"] { return explicit }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return root.appendingPathComponent(".build/debug/driftcheck").path
    }

    /// A running `driftcheck` whose stdout+stderr go to a file.
    public struct Running: Sendable {
        public let process: ChildProcess
        public let outputPath: String

        public var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }

        /// Waits until the output has `count` `listening on` lines; returns their ports in order.
        public func listeners(_ count: Int, timeout: Double = 30) async throws -> [Int] {
            let deadline = Date().addingTimeInterval(timeout)
            while Date() < deadline {
                let ports = output.split(separator: "\n").filter { $0.contains("listening on http://") }.compactMap {
                    line -> Int? in
                    guard let start = line.range(of: "http://")?.upperBound else { return nil }
                    let address = line[start...].prefix { $0 != " " }
                    return address.split(separator: ":").last.flatMap { Int($0) }
                }
                if ports.count >= count { return ports }
                try await Task.sleep(nanoseconds: 50_000_000)
            }
            throw ClientError(description: "driftcheck did not start listening:\n\(output)")
        }
    }

    /// Starts the binary with `arguments`; with `inside`, its working directory is `directory`.
    public static func start(
        _ arguments: [String], in directory: TemporaryDirectory, environment: [String: String] = [:],
        inside: Bool = false
    )
        throws -> Running
    {
        let output = directory.file("driftcheck-\(UUID().uuidString.prefix(6)).log")
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        env["NO_COLOR"] = "1"
        let process = try ChildProcess.spawn(
            [path] + arguments, environment: env, directory: inside ? directory.path : nil, outputPath: output)
        return Running(process: process, outputPath: output)
    }

    /// Runs the binary to completion: exit status and everything it printed.
    public static func run(
        _ arguments: [String], in directory: TemporaryDirectory, environment: [String: String] = [:],
        inside: Bool = false
    )
        async throws -> (status: Int32, output: String)
    {
        let running = try start(arguments, in: directory, environment: environment, inside: inside)
        let status = await running.process.wait()
        return (status, running.output)
    }
}

/// Paths of the repository's `fixtures/` directory.
public enum Fixtures {
    public static var root: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("fixtures").path
    }

    public static func path(_ relative: String) -> String { "\(root)/\(relative)" }
}

/// A free TCP port on loopback, for peers (Java, Python) that cannot report the port they got.
public func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Int32 in
            guard bind(fd, pointer, length) == 0 else { return -1 }
            return getsockname(fd, pointer, &length)
        }
    }
    guard bound == 0 else { throw ClientError(description: "cannot find a free port") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// The port a server announces in its log as a line "listening on PORT", once it has (nil
/// after `timeout` seconds).
public func announcedPort(in log: String, timeout: Double = 60) async -> Int? {
    var port: Int?
    _ = await eventually(timeout: timeout) {
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        port = text.split(separator: "\n").first { $0.hasPrefix("listening on ") }.flatMap {
            Int($0.dropFirst("listening on ".count))
        }
        return port != nil
    }
    return port
}

/// Waits until `probe` returns true or `timeout` seconds pass.
public func eventually(timeout: Double = 60, _ probe: () async -> Bool) async -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if await probe() { return true }
        try? await Task.sleep(nanoseconds: 100_000_000)
    }
    return false
}

/// Runs `arguments` to completion on the calling thread; its exit status and its output
/// (stdout and stderr). Spawned with posix_spawn like every child of the tests: Foundation's
/// `Process` watches children with a select()-based CFRunLoop, and a test process under load
/// holds hundreds of descriptors (768 seen in a hung run), close to select()'s limit of 1024.
public func runToCompletion(_ arguments: [String]) throws -> (status: Int32, output: String) {
    let log = NSTemporaryDirectory() + "driftcheck-run-\(UUID().uuidString.prefix(8)).log"
    defer { unlink(log) }
    let process = try ChildProcess.spawn(
        arguments, environment: ProcessInfo.processInfo.environment, outputPath: log)
    let status = process.waitBlocking()
    return (status, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
}

/// A Python package's directory, or nil when it is not installed.
public func pythonPackageDirectory(_ name: String) -> String? {
    guard
        let (status, output) = try? runToCompletion([
            "python3", "-c", "import \(name), os; print(os.path.dirname(\(name).__file__))",
        ]), status == 0
    else { return nil }
    // stderr comes in the same output (a warning at import would come first): the path is last.
    return output.split(separator: "\n").last.map { $0.trimmingCharacters(in: .whitespaces) }
}

/// Runs the sqlite3 shell: an independent reader and writer of store files.
@discardableResult
public func runSQLite(_ path: String, _ sql: String) throws -> String {
    try runToCompletion(["sqlite3", path, sql]).output.trimmingCharacters(in: .whitespacesAndNewlines)
}

/// Whether httpbin (served by gunicorn) answers on `port`, directly or through a proxy.
/// Checking the Server header matters: with ports picked by bind-and-release, another test's
/// server can briefly hold the same port.
public func httpbinAnswers(port: Int) async -> Bool {
    guard let response = try? await LoopbackHTTPClient.send(ClientRequest("GET", "/uuid"), port: port, group: testGroup)
    else { return false }
    return response.header("server")?.contains("gunicorn") == true
}

/// `text` with every redaction marker's shape left out (`<redacted~s-~d8>` → `<redacted>`,
/// `<redacted:string~~l4>` → `<redacted:string>`), for expectations about where redaction happened.
public func normalizedMarkers(_ text: String?) -> String? {
    guard let text else { return nil }
    return text.replacingOccurrences(
        of: "<redacted(:[a-z]+)?~[^>]*>", with: "<redacted$1>", options: .regularExpression)
}

/// A Python HTTPS upstream (fixtures/tls/https_upstream.py) for `names`, signed by a CA of its
/// own that the openssl command line makes (or self-signed: a bad certificate).
public struct HTTPSUpstream: Sendable {
    public let process: ChildProcess
    public let port: Int
    public let caPath: String

    public static func start(in directory: TemporaryDirectory, names: [String], selfSigned: Bool = false) async throws
        -> HTTPSUpstream
    {
        let log = directory.file("upstream-\(UUID().uuidString.prefix(6)).log")
        let process = try ChildProcess.spawn(
            ["python3", Fixtures.path("tls/https_upstream.py"), selfSigned ? "selfsigned" : "serve", directory.path]
                + names, environment: ProcessInfo.processInfo.environment, outputPath: log)
        var port: Int?
        _ = await eventually(timeout: 60) {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            port = text.split(separator: "\n").first { $0.hasPrefix("port ") }.flatMap { Int($0.dropFirst(5)) }
            return port != nil
        }
        guard let port else {
            process.signalGroup(SIGKILL)
            throw ClientError(description: "the HTTPS upstream did not start")
        }
        return HTTPSUpstream(process: process, port: port, caPath: directory.file("upstream-ca.pem"))
    }

    public func stop() { process.signalGroup(SIGKILL) }
}

/// A real gRPC server (grpcio, `fixtures/grpc/grpc_server.py`) on a free loopback port; `drift`
/// makes it a drifted stub (see the script).
public struct GRPCServer: Sendable {
    public let process: ChildProcess
    public let port: Int

    /// With `tls`, it serves TLS with a leaf for `grpc.test` and 127.0.0.1 signed by
    /// `directory/upstream-ca.pem`.
    public static func start(in directory: TemporaryDirectory, drift: [String] = [], tls: Bool = false) async throws
        -> GRPCServer
    {
        // Port 0: the server binds a free port and says which; a port chosen here first could be
        // taken by another process before the server binds it (seen with a build running beside).
        let log = directory.file("grpc-server-\(UUID().uuidString.prefix(6)).log")
        let process = try ChildProcess.spawn(
            ["python3", Fixtures.path("grpc/grpc_server.py"), "0"] + drift
                + (tls ? ["--tls", directory.path] : []),
            environment: ProcessInfo.processInfo.environment, outputPath: log)
        guard let port = await announcedPort(in: log), port > 0 else {
            process.signalGroup(SIGKILL)
            throw ClientError(
                description:
                    "the gRPC server did not start: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        }
        return GRPCServer(process: process, port: port)
    }

    public func stop() { process.signalGroup(SIGKILL) }

    /// Runs `fixtures/grpc/grpc_client.py` against `target`; its output lines.
    /// `trusting` a CA file makes it speak TLS, checking the certificate for `name`; `proxy`
    /// sends it through an HTTP proxy with CONNECT (`grpc_proxy`).
    public static func client(
        _ target: String, _ arguments: [String], in directory: TemporaryDirectory, trusting caFile: String? = nil,
        name: String? = nil, proxy: String? = nil
    ) async throws -> [String] {
        let log = directory.file("grpc-client-\(UUID().uuidString.prefix(6)).log")
        var environment = ProcessInfo.processInfo.environment
        environment["grpc_proxy"] = proxy
        environment["GRPC_CLIENT_CA"] = caFile
        environment["GRPC_CLIENT_NAME"] = name
        let process = try ChildProcess.spawn(
            ["python3", Fixtures.path("grpc/grpc_client.py"), target] + arguments, environment: environment,
            outputPath: log)
        let status = await process.wait()
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        guard status == 0 else { throw ClientError(description: "the gRPC client failed (\(status)): \(output)") }
        return output.split(separator: "\n").map(String.init).filter { $0.hasPrefix("{") || $0.hasPrefix("ok ") }
    }
}

/// Runs blocking work (a big insert, a wait on a condition) on a thread of its own: on the
/// two-thread cooperative pool of a 2-core machine it would stall every other test's awaits.
public func offPool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            do { continuation.resume(returning: try work()) } catch { continuation.resume(throwing: error) }
        }
        thread.stackSize = 8 << 20
        thread.start()
    }
}
