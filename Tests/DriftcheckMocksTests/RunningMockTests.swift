import DriftcheckTestSupport
import Foundation
import Testing

@testable import DriftcheckMocks

@Suite struct RunningMockTests {
    /// A mock.yml in `directory` whose command is `script`, on a port driftcheck chooses.
    static func spec(_ script: String, in directory: TemporaryDirectory) throws -> MockProcessSpec {
        try MockProcessSpec.parse(
            "url: http://127.0.0.1:${PORT}\ncommand: \(script)\ntimeout: 60\n", path: directory.file("mock.yml"))
    }

    /// The port chosen for `${PORT}` was taken before the mock bound it (another process on a
    /// busy machine): the mock gets another one, and starts.
    @Test func aMockThatLostItsPortIsStartedOnAnother() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let script =
            #"'echo "$PORT" >> ports; if [ ! -f taken ]; then touch taken; echo "OSError: [Errno 98] Address already in use" >&2; exit 1; fi; exec python3 -m http.server "$PORT" --bind 127.0.0.1'"#
        let mock = try await RunningMock.start(service: "orders", spec: try Self.spec(script, in: directory))
        let ports = try String(contentsOfFile: directory.file("ports"), encoding: .utf8).split(separator: "\n")
        #expect(ports.count == 2)
        #expect(mock.url == "http://127.0.0.1:\(ports[1])")
        await mock.stop()
    }

    /// Three attempts at most; and a mock that fails for any other reason is not started again.
    @Test func otherFailuresAreNotRetriedAndPortLossOnlyTwice() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let always = #"'echo x >> attempts; echo "bind: address already in use" >&2; exit 1'"#
        await #expect(throws: MockStartFailure.self) {
            try await RunningMock.start(service: "orders", spec: try Self.spec(always, in: directory))
        }
        #expect(try String(contentsOfFile: directory.file("attempts"), encoding: .utf8).count == 6)
        let other = #"'echo y >> others; echo "ModuleNotFoundError: No module named flask" >&2; exit 1'"#
        await #expect(throws: MockStartFailure.self) {
            try await RunningMock.start(service: "orders", spec: try Self.spec(other, in: directory))
        }
        #expect(try String(contentsOfFile: directory.file("others"), encoding: .utf8) == "y\n")
    }
}
