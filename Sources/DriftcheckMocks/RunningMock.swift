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
        guard let command = spec.command else {
            throw MockStartFailure(service: service, reason: "mock.yml has no command", output: "")
        }
        let logPath = NSTemporaryDirectory() + "driftcheck-mock-\(service)-\(UUID().uuidString.prefix(8)).log"
        let process: ChildProcess
        do {
            process = try ChildProcess.spawn(
                ["/bin/sh", "-c", command], environment: ProcessInfo.processInfo.environment, directory: spec.directory,
                outputPath: logPath)
        } catch {
            throw MockStartFailure(service: service, reason: "cannot start '\(command)': \(error)", output: "")
        }
        let mock = RunningMock(service: service, url: spec.url, process: process, logPath: logPath)
        let deadline = Date().addingTimeInterval(spec.timeout)
        let probe = CurlClient(service: service, baseURL: spec.url, timeout: 2)
        let readyRequest = RecordedRequest(method: "GET", host: "", port: 0, path: spec.ready)
        while Date() < deadline {
            if (try? probe.send(readyRequest)) != nil { return mock }
            var status: Int32 = 0
            if waitpid(process.pid, &status, WNOHANG) == process.pid {
                let code = status & 0x7F == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
                throw MockStartFailure(
                    service: service, reason: "'\(command)' exited with status \(code) before answering at \(spec.url)",
                    output: mock.output)
            }
            try? await Task.sleep(nanoseconds: 100_000_000)
        }
        let output = mock.output
        await mock.stop()
        throw MockStartFailure(
            service: service,
            reason: "'\(command)' did not answer at \(spec.url)\(spec.ready) within \(Int(spec.timeout)) s",
            output: output)
    }

    /// Stops the command and everything it started.
    public func stop() async {
        _ = await process.terminate(grace: 3)
        try? FileManager.default.removeItem(atPath: logPath)
    }
}
