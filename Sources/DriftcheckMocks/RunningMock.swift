import DriftcheckCore
import DriftcheckProcess
import DriftcheckReplay
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A mock could not be started or never answered: exit status 3, with what it printed.
public struct MockStartFailure: Error, CustomStringConvertible, Sendable {
    public var service: String
    public var reason: String
    public var output: String

    public var description: String {
        let tail = output.split(separator: "\n").suffix(20).joined(separator: "\n")
        return "\(service): \(reason)" + (tail.isEmpty ? "" : "\n--- mock output ---\n\(tail)")
    }

    /// The mock exited saying its port was taken (EADDRINUSE, as servers word it).
    var lostItsPort: Bool {
        let text = output.lowercased()
        return reason.contains("exited") && (text.contains("address already in use") || text.contains("eaddrinuse"))
    }
}

/// A `mock.yml` command started in its directory, in its own process group.
public final class RunningMock: Sendable {
    public let service: String
    public let url: String
    let process: ChildProcess
    let logPath: String

    private init(service: String, url: String, process: ChildProcess, logPath: String) {
        self.service = service
        self.url = url
        self.process = process
        self.logPath = logPath
    }

    var output: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Starts `spec.command` with `sh -c` in the mock's directory and waits until `url + ready`
    /// answers any HTTP status, the process exits, or `spec.timeout` passes.
    public static func start(service: String, spec: MockProcessSpec) async throws -> RunningMock {
        // A port found free here can be taken by another process before the mock binds it (a
        // loaded CI machine): a mock that says so gets another port, twice at most.
        var attempt = 1
        while true {
            do {
                return try await startOnce(service: service, spec: spec)
            } catch let failure as MockStartFailure
                where spec.url.contains("${PORT}") && attempt < 3 && failure.lostItsPort
            {
                attempt += 1
            }
        }
    }

    private static func startOnce(service: String, spec: MockProcessSpec) async throws -> RunningMock {
        guard let command = spec.command else {
            throw MockStartFailure(service: service, reason: "mock.yml has no command", output: "")
        }
        let logPath = NSTemporaryDirectory() + "driftcheck-mock-\(service)-\(UUID().uuidString.prefix(8)).log"
        var spec = spec
        var environment = ProcessInfo.processInfo.environment
        // `url: http://127.0.0.1:${PORT}` lets driftcheck choose a free port, passed as $PORT.
        if spec.url.contains("${PORT}") {
            let port = try freePort(service: service)
            spec.url = spec.url.replacingOccurrences(of: "${PORT}", with: String(port))
            environment["PORT"] = String(port)
        }
        let process: ChildProcess
        do {
            process = try ChildProcess.spawn(
                ["/bin/sh", "-c", command], environment: environment, directory: spec.directory, outputPath: logPath)
        } catch {
            throw MockStartFailure(service: service, reason: "cannot start '\(command)': \(error)", output: "")
        }
        let mock = RunningMock(service: service, url: spec.url, process: process, logPath: logPath)
        let deadline = Date().addingTimeInterval(spec.timeout)
        let probe = CurlClient(service: service, baseURL: spec.url, timeout: 2)
        let readyRequest = RecordedRequest(method: "GET", host: "", port: 0, path: spec.ready)
        var answered = false
        while Date() < deadline {
            // An answer counts once our command is seen still running after it: a command that
            // failed to bind must not be mistaken for ready because something else holds the port.
            if answered && waitpid(process.pid, nil, WNOHANG) == 0 { return mock }
            do {
                _ = try probe.send(readyRequest)
                answered = true
            } catch let unreachable as MockUnreachable {
                // A gRPC server refuses a plain GET with RST_STREAM: still an answer.
                answered = unreachable.spokeHTTP2
            } catch {
                answered = false
            }
            var status: Int32 = 0
            if waitpid(process.pid, &status, WNOHANG) == process.pid {
                let code = status & 0x7F == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
                throw MockStartFailure(
                    service: service, reason: "'\(command)' exited with status \(code) before answering at \(spec.url)",
                    output: mock.output)
            }
            try? await Task.sleep(nanoseconds: answered ? 50_000_000 : 100_000_000)
        }
        let output = mock.output
        await mock.stop()
        throw MockStartFailure(
            service: service,
            reason: "'\(command)' did not answer at \(spec.url)\(spec.ready) within \(Int(spec.timeout)) s",
            output: output)
    }

    /// A port nothing listens on now; the mock binds it a moment later.
    static func freePort(service: String) throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let result = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Int32 in
                guard bind(fd, pointer, length) == 0 else { return -1 }
                return getsockname(fd, pointer, &length)
            }
        }
        guard result == 0 else {
            throw MockStartFailure(service: service, reason: "no free port for ${PORT}", output: "")
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Stops the command and everything it started.
    public func stop() async {
        _ = await process.terminate(grace: 3)
        try? FileManager.default.removeItem(atPath: logPath)
    }
}
