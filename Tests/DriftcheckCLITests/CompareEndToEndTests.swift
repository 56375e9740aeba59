import DriftcheckCore
import DriftcheckDemo
import DriftcheckProcess
import DriftcheckStore
import DriftcheckTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// httpbin (PyPI) is a real service no one here wrote; it is recorded through our proxy and
/// compared against hand-written mocks in the three forms SPEC names.
/// Suites that start peer processes on ports picked by bind-and-release run one at a time,
/// so no two of them can be handed the same port.
@Suite(.serialized) enum PeerProcesses {}

extension PeerProcesses {
    @Suite struct CompareEndToEndTests {
        /// What one recording of each endpoint supports: no statistical claim.
        static let expected: Set<String> = [
            "GET /json phantom-field breaking $.slideshow.theme",
            "GET /json type breaking $.slideshow.date",
            "GET /json missing-field info $.slideshow.author",
            "GET /redirect-to header warning header:location",
            "GET /status/{id} status breaking status",
        ]
        /// Claims from a single sample, made only when `evidence:` allows them.
        static let fromOneSample: Set<String> = [
            "GET /json value info $.slideshow.title", "GET /uuid format warning $.uuid",
        ]

        /// Starts `python3 -m gunicorn httpbin:app` on a free port.
        static func startHTTPBin(_ directory: TemporaryDirectory) async throws -> (ChildProcess, Int) {
            let port = try freeLoopbackPort()
            let process = try ChildProcess.spawn(
                ["python3", "-m", "gunicorn", "-b", "127.0.0.1:\(port)", "-w", "2", "httpbin:app"],
                environment: ProcessInfo.processInfo.environment, outputPath: directory.file("httpbin.log"))
            let ready = await eventually(timeout: 30) { await httpbinAnswers(port: port) }
            if !ready { process.signalGroup(SIGKILL) }
            try #require(
                ready,
                "httpbin did not start: \((try? String(contentsOfFile: directory.file("httpbin.log"), encoding: .utf8)) ?? "")"
            )
            return (process, port)
        }

        /// Records the workload against httpbin through `driftcheck record`.
        static func record(into store: String, httpbin port: Int, _ directory: TemporaryDirectory) async throws {
            let recorder = try DriftcheckBinary.start(
                [
                    "record", "--store", store, "--upstream", "httpbin=http://127.0.0.1:\(port)", "--listen",
                    "127.0.0.1:0",
                ],
                in: directory)
            let proxyPort = try await recorder.listeners(1)[0]
            let workload = [
                ClientRequest("GET", "/json"), ClientRequest("GET", "/json"), ClientRequest("GET", "/uuid"),
                ClientRequest("GET", "/uuid"), ClientRequest("GET", "/status/418"), ClientRequest("GET", "/status/204"),
                ClientRequest("GET", "/redirect-to?url=/get&status_code=302"),
            ]
            let responses = try await LoopbackHTTPClient.send(workload, port: proxyPort, group: testGroup)
            #expect(responses.map(\.status) == [200, 200, 200, 200, 418, 204, 302])
            recorder.process.signalGroup(SIGINT)
            #expect(await recorder.process.wait() == 0)
        }

        static func findings(_ arguments: [String], _ directory: TemporaryDirectory) async throws -> (
            Int32, [JSONValue], String
        ) {
            let report = directory.file("report-\(UUID().uuidString.prefix(6)).json")
            let result = try await DriftcheckBinary.run(
                arguments + ["--format", "json", "--output", report], in: directory)
            guard let data = FileManager.default.contents(atPath: report),
                case .array(let findings)? = try JSONValue.parse(data)["findings"]
            else { return (result.status, [], result.output) }
            return (result.status, findings, result.output)
        }

        static func keys(_ findings: [JSONValue]) -> Set<String> {
            Set(
                findings.compactMap { finding in
                    guard case .string(let endpoint)? = finding["endpoint"], case .string(let kind)? = finding["kind"],
                        case .string(let severity)? = finding["severity"], case .string(let path)? = finding["path"]
                    else { return nil }
                    return "\(endpoint) \(kind) \(severity) \(path)"
                })
        }

        @Test func httpbinComparedAgainstAllThreeMockForms() async throws {
            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            let (httpbin, port) = try await Self.startHTTPBin(directory)
            defer { httpbin.signalGroup(SIGKILL) }
            let store = directory.file("recordings.sqlite")
            try await Self.record(into: store, httpbin: port, directory)
            #expect(try SQLiteStore(path: store).count() == 7)

            // 1. WireMock mappings, evaluated by the built-in engine.
            let wiremock = try await Self.findings(
                ["compare", Fixtures.path("httpbin/wiremock"), "--store", store], directory)
            #expect(wiremock.0 == 0, "\(wiremock.2)")
            // A mapping's urlPathPattern is reported as a template, never as its regex.
            #expect(Self.keys(wiremock.1) == Self.expected.union(["GET /anything/{id} unverified info $"]))
            let lenient = try directory.write(
                "lenient.yml", "evidence: { min-samples: 1, min-requests: 1 }\n")
            let fewer = try await Self.findings(
                ["compare", Fixtures.path("httpbin/wiremock"), "--store", store, "--config", lenient], directory)
            #expect(
                Self.keys(fewer.1)
                    == Self.expected.union(Self.fromOneSample).union(["GET /anything/{id} unverified info $"]))
            let explained = try await DriftcheckBinary.run(
                ["compare", Fixtures.path("httpbin/wiremock"), "--store", store, "--explain"], in: directory)
            #expect(
                explained.output.contains("$.uuid: not enough evidence (2 samples, 1 distinct request)"),
                "\(explained.output)")

            // 2. mock.yml with a command: started in its directory, waited for, stopped.
            let process = try await Self.findings(
                ["compare", Fixtures.path("httpbin/process"), "--store", store], directory)
            #expect(process.0 == 0, "\(process.2)")
            #expect(Self.keys(process.1) == Self.expected)

            // 3. --mock NAME=URL: a mock someone already runs.
            let stubPort = try freeLoopbackPort()
            let stub = try ChildProcess.spawn(
                ["python3", Fixtures.path("httpbin/stub/httpbin_stub.py"), String(stubPort)],
                environment: ProcessInfo.processInfo.environment, outputPath: directory.file("stub.log"))
            defer { stub.signalGroup(SIGKILL) }
            #expect(
                await eventually(timeout: 20) {
                    let answer = try? await LoopbackHTTPClient.send(
                        ClientRequest("GET", "/uuid"), port: stubPort, group: testGroup)
                    return answer?.text.contains("not-a-uuid") == true
                })
            let running = try await Self.findings(
                ["compare", "--mock", "httpbin=http://127.0.0.1:\(stubPort)", "--store", store], directory)
            #expect(running.0 == 0, "\(running.2)")
            #expect(Self.keys(running.1) == Self.expected)

            // The gate fails on the breaking drifts; the same run with them accepted passes.
            let gate = try await DriftcheckBinary.run(
                ["gate", "--mock", "httpbin=http://127.0.0.1:\(stubPort)", "--store", store], in: directory)
            #expect(gate.status == 1, "\(gate.output)")
            let policy = try directory.write(
                "driftcheck.yml",
                """
                rules:
                  - { service: httpbin, endpoint: "GET /status/{id}", severity: off }
                accept:
                  - { service: httpbin, endpoint: "GET /json", reason: "the stub's slideshow is a placeholder", expires: 2999-01-01 }
                """)
            let accepted = try await DriftcheckBinary.run(
                ["gate", "--mock", "httpbin=http://127.0.0.1:\(stubPort)", "--store", store, "--config", policy],
                in: directory)
            #expect(accepted.status == 0, "\(accepted.output)")
            #expect(accepted.output.contains("accepted: the stub's slideshow is a placeholder"))
            #expect(!accepted.output.contains("GET /status/{id}"))
        }

        @Test(arguments: [
            (["compare", "/nonexistent/mocks"], 2, "/nonexistent/mocks: no such mocks directory"),
            (["compare"], 2, "name a mocks directory"),
            (["compare", "--mock", "x=ftp://nope"], 2, "--mock 'x=ftp://nope'"),
            (
                ["compare", "--mock", "orders=http://127.0.0.1:1", "--format", "pdf"], 2,
                "'pdf' is invalid for '--format <format>'"
            ),
            (
                ["compare", "--mock", "orders=http://127.0.0.1:1", "--fail-on", "sometimes"], 2,
                "'sometimes' is invalid for '--fail-on <level>'"
            ),
            (
                ["compare", "--mock", "orders=http://127.0.0.1:1", "--parallel", "0"], 2,
                "--parallel 0: must be at least 1"
            ),
            (
                ["compare", "--mock", "orders=http://127.0.0.1:1", "--config", "/nonexistent.yml"], 2,
                "--config /nonexistent.yml"
            ),
            (
                ["compare", "--mock", "orders=http://127.0.0.1:1"], 3,
                "orders: the mock at http://127.0.0.1:1 could not be reached"
            ),
        ])
        func exitStatuses(arguments: [String], status: Int32, message: String) async throws {
            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            let store = try storeWithOneExchange(in: directory, path: "/orders/1")
            let result = try await DriftcheckBinary.run(arguments + ["--store", store], in: directory)
            #expect(result.status == status, "\(result.output)")
            #expect(result.output.contains(message), "\(result.output)")
        }

        @Test func aMockCommandThatDiesIsExitThreeWithItsOutput() async throws {
            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            try FileManager.default.createDirectory(
                atPath: directory.file("mocks/orders"), withIntermediateDirectories: true)
            _ = try directory.write(
                "mocks/orders/mock.yml",
                "url: http://127.0.0.1:${PORT}\ncommand: \"echo 'cannot bind: address in use' >&2; exit 4\"\n")
            let store = try storeWithOneExchange(in: directory, path: "/")
            let result = try await DriftcheckBinary.run(
                ["compare", directory.file("mocks"), "--store", store], in: directory)
            #expect(result.status == 3)
            #expect(result.output.contains("exited with status 4"))
            #expect(result.output.contains("cannot bind: address in use"))
        }

        @Test func badMockFilesAreExitTwoNamingTheFile() async throws {
            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            try FileManager.default.createDirectory(
                atPath: directory.file("mocks/orders/mappings"), withIntermediateDirectories: true)
            try FileManager.default.createDirectory(
                atPath: directory.file("mocks/payments"), withIntermediateDirectories: true)
            let mapping = try directory.write("mocks/orders/mappings/broken.json", "{\"request\": ")
            _ = try directory.write("mocks/payments/mock.yml", "url: [not, a, url]\n")
            let store = directory.file("s.sqlite")
            try SQLiteStore(path: store).insert(
                [
                    Exchange(
                        service: "orders", request: RecordedRequest(method: "GET", host: "o", port: 80, path: "/"),
                        result: .response(RecordedResponse(status: 200)), startedAt: Date(), duration: 0.01)
                ], session: nil)
            let result = try await DriftcheckBinary.run(
                ["compare", directory.file("mocks"), "--store", store], in: directory)
            #expect(result.status == 2)
            #expect(result.output.contains("mock.yml: url:") || result.output.contains(mapping), "\(result.output)")
            #expect(result.output.split(separator: "\n").count == 1)
        }

        /// Found by the config fuzz target: a key that is not a scalar crashed the YAML library.
        @Test func hostilePolicyFilesAreExitTwoNamingTheFile() async throws {
            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            try FileManager.default.createDirectory(
                atPath: directory.file("mocks/orders/mappings"), withIntermediateDirectories: true)
            let store = try storeWithOneExchange(in: directory, path: "/")
            let nested = String(repeating: "[", count: 5_000) + String(repeating: "]", count: 5_000)
            // "Billion laughs": nine levels of ten aliases each, 10^9 values once expanded.
            let laughs =
                "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
                + (1...9).map {
                    "a\($0): &a\($0) [" + Array(repeating: "*a\($0 - 1)", count: 10).joined(separator: ", ") + "]\n"
                }
                .joined() + "rules: *a9\n"
            let cases = [
                "rules:\n  - { service: orders, \"$.debug\", severit}: off }\n", "rules:\n  - { [a, b]: 1 }\n",
                "? { a: 1 }\n: x\n", "rules: " + nested + "\n", "base: &b { severity: off }\nrules: [*b]\n",
                "rules:\n  - { severity: \"off\n", "\u{01}\u{02}\u{FF}", "rules:\n  - { severity: \"bad\\nvalue\" }\n",
                laughs,
            ]
            for (index, text) in cases.enumerated() {
                let config = try directory.write("policy-\(index).yml", text)
                let result = try await DriftcheckBinary.run(
                    ["compare", directory.file("mocks"), "--store", store, "--config", config], in: directory)
                #expect(result.status == 2, "\(text): \(result.output)")
                #expect(result.output.contains(config), "\(text): \(result.output)")
                #expect(result.output.split(separator: "\n").count == 1, "\(text): \(result.output)")
            }
            // The same trap in a mocks directory's mock.yml (issue 12): one line naming it, exit 2,
            // and the shapes only a mock.yml can get wrong.
            let mockCases =
                cases + [
                    "url: [1, 2]\n", "url: http://127.0.0.1:1\ntimeout: soon\n", "url: http://127.0.0.1:1\nport: 3\n",
                    "url: ftp://x\n", "command: [a]\nurl: http://127.0.0.1:${PORT}\n", "- just\n- a list\n",
                    // Found by the mock-yml fuzz target: a key with a newline made a two-line error.
                    "\"un\\nknown\": 1\n",
                    String(repeating: "\u{00}\u{FF}", count: 64),
                ]
            for (index, text) in mockCases.enumerated() {
                let mocks = directory.file("hostile-\(index)")
                try FileManager.default.createDirectory(atPath: mocks + "/orders", withIntermediateDirectories: true)
                let file = try directory.write("hostile-\(index)/orders/mock.yml", text)
                let result = try await DriftcheckBinary.run(["compare", mocks, "--store", store], in: directory)
                #expect(result.status == 2, "\(text): \(result.output)")
                #expect(result.output.contains(file), "\(text): \(result.output)")
                #expect(result.output.split(separator: "\n").count == 1, "\(text): \(result.output)")
            }
        }

        @Test func oldRecordingsAreStaleByPolicyAndMockCommandsAreStoppedAfterwards() async throws {
            let directory = try TemporaryDirectory()
            defer { directory.remove() }
            let store = directory.file("s.sqlite")
            let old = Date().addingTimeInterval(-40 * 86_400)
            try SQLiteStore(path: store).insert(
                [
                    Exchange(
                        service: "httpbin", request: RecordedRequest(method: "GET", host: "h", port: 80, path: "/uuid"),
                        result: .response(
                            RecordedResponse(
                                status: 200, headers: HeaderFields([("Content-Type", "application/json")]),
                                body: CapturedBody(
                                    bytes: Data(#"{"uuid":"3f2504e0-4f89-11d3-9a0c-0305e82c3301"}"#.utf8)))),
                        startedAt: old, duration: 0.01)
                ], session: nil)
            let policy = try directory.write(
                "driftcheck.yml", "max-age: 30d\nrules:\n  - { kind: stale-recording, severity: breaking }\n")
            let result = try await DriftcheckBinary.run(
                [
                    "gate", Fixtures.path("httpbin/process"), "--store", store, "--config", policy, "--format", "json",
                    "--output", directory.file("r.json"),
                ],
                in: directory)
            #expect(result.status == 1, "\(result.output)")
            let report = try JSONValue.parse(Data(contentsOf: URL(fileURLWithPath: directory.file("r.json"))))
            guard case .array(let findings)? = report["findings"] else {
                Issue.record("no findings")
                return
            }
            let stale = findings.first { $0["kind"] == .string("stale-recording") }
            #expect(stale?["severity"] == .string("breaking"))
            #expect(stale?["endpoint"] == .string("GET /uuid"))
            // The stub the mock.yml command started is gone with its process group.
            #expect(runningStubs() == 0)
        }

        /// Processes still running the fixture stub.
        func runningStubs() -> Int {
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
            return entries.filter { $0.allSatisfy(\.isNumber) }.filter { pid in
                let command = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? ""
                return command.contains("httpbin_stub.py") && command.contains("../../stub")
            }.count
        }
    }
}
