import DriftcheckCore
import DriftcheckProcess
import DriftcheckReplay
import DriftcheckTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The real WireMock 2.35 standalone jar that the PyPI package `wiremock` ships, serving a
/// mappings directory on a free loopback port.
struct RealWireMock {
    let process: ChildProcess
    let port: Int
    let directory: TemporaryDirectory

    static func start(root: String) async throws -> RealWireMock {
        let packageDirectory = try #require(
            pythonPackageDirectory("wiremock"), "pip package 'wiremock' is missing: make test installs it")
        let serverDirectory = packageDirectory + "/server"
        let jarName = try #require(
            (try FileManager.default.contentsOfDirectory(atPath: serverDirectory)).first {
                $0.hasPrefix("wiremock") && $0.hasSuffix(".jar")
            })
        let port = try freeLoopbackPort()
        let directory = try TemporaryDirectory()
        let java = try ChildProcess.spawn(
            [
                "java", "-jar", "\(serverDirectory)/\(jarName)", "--port", String(port), "--bind-address", "127.0.0.1",
                "--root-dir", root, "--disable-banner", "--local-response-templating", "--no-request-journal",
            ], environment: ProcessInfo.processInfo.environment, outputPath: directory.file("wiremock.log"))
        let client = CurlClient(service: "wiremock", baseURL: "http://127.0.0.1:\(port)", timeout: 10)
        let ready = await eventually(timeout: 90) {
            let log = (try? String(contentsOfFile: directory.file("wiremock.log"), encoding: .utf8)) ?? ""
            // A corpus WireMock rejects ends the JVM; fail with its message instead of waiting.
            if log.contains("Exception in thread") { return true }
            let answer = try? client.send(RecordedRequest(method: "GET", host: "", port: 0, path: "/__admin/mappings"))
            return answer.map { String(decoding: $0.body.bytes, as: UTF8.self).contains("\"mappings\"") } ?? false
        }
        let log = (try? String(contentsOfFile: directory.file("wiremock.log"), encoding: .utf8)) ?? ""
        guard ready && !log.contains("Exception in thread") else {
            java.signalGroup(SIGKILL)
            throw WireMockDidNotStart(log: log)
        }
        return RealWireMock(process: java, port: port, directory: directory)
    }

    func client() -> CurlClient { CurlClient(service: "wiremock", baseURL: "http://127.0.0.1:\(port)", timeout: 10) }

    func stop() {
        process.signalGroup(SIGKILL)
        directory.remove()
    }

    struct WireMockDidNotStart: Error, CustomStringConvertible {
        var log: String
        var description: String { "WireMock did not start: \(log)" }
    }
}
